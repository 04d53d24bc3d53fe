//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/lambdatest"
)

// The sample app of infra/config/apps.dev.json (the sample with a test_event_code).
const (
	dataset       = "1234567890123456"
	testEventCode = "TEST12345"
)

// TestBootstrapUnderRIE runs the real bootstrap (host architecture) under the Lambda Runtime
// Interface Emulator, the way `sam local invoke` runs it in its container, and feeds it the
// Kinesis fixtures of events/capi-forwarder against the local Meta sandbox, with a dead-letter
// file: a good batch, a batch with bad records, and the good batch again once Meta refuses the
// token.
//
// Inputs: RIE_BIN (default .devtools/bin/aws-lambda-rie, installed by `make tools`) and
// HOST_BUILD_DIR (a prebuilt <dir>/capi-forwarder/bootstrap, from `make build-host`; without it
// the test builds one). A missing RIE skips the test, or fails it when EMULATORS_REQUIRED=1.
func TestBootstrapUnderRIE(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	rie := lambdatest.RIEBinary(t)
	bootstrap := lambdatest.Bootstrap(t, "capi-forwarder")

	const token, secret = "rie-sandbox-token-0123", "rie-sandbox-app-secret"
	sandbox, graphURL, err := metasandbox.Start(metasandbox.Config{AccessToken: token, AppSecret: secret, Datasets: []string{dataset}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sandbox.Close() })

	letterFile := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	invokeURL := lambdatest.Start(t, rie, bootstrap, append(lambdatest.AWSEnv(t),
		"APP_CONFIG_FILE="+filepath.Join(root, "infra", "config", "apps.dev.json"),
		"META_GRAPH_URL="+graphURL,
		"META_ACCESS_TOKEN="+token,
		"META_APP_SECRET="+secret,
		"DEAD_LETTER_FILE="+letterFile,
		"LOG_LEVEL=debug",
		"HOLD_PAUSE=10ms", // keep the expired-token case quick
	))

	const idPrefix = "2b0a7c2e-7f0e-4b8e-9d51-0000000000"
	if !t.Run("batch.json", func(t *testing.T) {
		resp := invokeBatch(t, invokeURL, freshFixture(t, "batch.json"))
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("batchItemFailures %+v, want none", resp.BatchItemFailures)
		}
		acc := sandbox.Accepted()
		// The 4th record has no consent: it must never reach Meta.
		if got, want := acceptedIDs(acc), []string{idPrefix + "01", idPrefix + "02", idPrefix + "03"}; len(acc) != 3 || !slices.Equal(got, want) {
			t.Errorf("Meta accepted %d events %q, want %q once each", len(acc), got, want)
		}
		for _, a := range acc {
			if a.Dataset != dataset || a.TestEventCode != testEventCode {
				t.Errorf("event %s: dataset %q, test_event_code %q; want %q, %q", a.EventID, a.Dataset, a.TestEventCode, dataset, testEventCode)
			}
			appData, _ := a.Event["app_data"].(map[string]any)
			extinfo, _ := appData["extinfo"].([]any)
			strs := 0
			for _, v := range extinfo {
				if _, isStr := v.(string); isStr {
					strs++
				}
			}
			if len(extinfo) != 16 || strs != 16 {
				t.Errorf("event %s: app_data.extinfo %v, want 16 strings", a.EventID, appData["extinfo"])
			}
		}
		if letters := readLetters(t, letterFile); len(letters) != 0 {
			t.Errorf("dead letters %q, want none", describe(letters))
		}
	}) {
		return
	}

	if !t.Run("bad-records.json", func(t *testing.T) {
		ev := freshFixture(t, "bad-records.json")
		before := len(sandbox.Accepted())
		resp := invokeBatch(t, invokeURL, ev)
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("batchItemFailures %+v, want none", resp.BatchItemFailures)
		}
		letters := readLetters(t, letterFile)
		want := []struct {
			reason string
			rec    events.KinesisRecord
		}{{"undecodable", ev.Records[1].Kinesis}, {"unsupported_version", ev.Records[2].Kinesis}}
		if len(letters) != len(want) {
			t.Fatalf("%d dead letters, want %d: %q", len(letters), len(want), describe(letters))
		}
		for i, w := range want {
			l := letters[i]
			if l.Reason != w.reason || l.SequenceNumber != w.rec.SequenceNumber || !bytes.Equal(l.Record, w.rec.Data) {
				t.Errorf("dead letter %d: reason %q, sequence number %s, record %q; want %q, %s, %q",
					i, l.Reason, l.SequenceNumber, l.Record, w.reason, w.rec.SequenceNumber, w.rec.Data)
			}
		}
		// Records 1 and 4 are good. The first test delivered the same event ids: look only at
		// what this batch delivered.
		delivered := slices.Compact(acceptedIDs(sandbox.Accepted()[before:]))
		if want := []string{idPrefix + "01", idPrefix + "02"}; !slices.Equal(delivered, want) {
			t.Errorf("Meta accepted %q, want %q", delivered, want)
		}
	}) {
		return
	}

	t.Run("batch.json with an expired token", func(t *testing.T) {
		sandbox.SetFaults(metasandbox.Faults{TokenExpired: true})
		ev := freshFixture(t, "batch.json")
		lettersBefore, acceptedBefore := len(readLetters(t, letterFile)), len(sandbox.Accepted())
		resp := invokeBatch(t, invokeURL, ev)
		// The stream keeps the batch from its first record until the token is fixed.
		want := []events.KinesisBatchItemFailure{{ItemIdentifier: ev.Records[0].Kinesis.SequenceNumber}}
		if !slices.Equal(resp.BatchItemFailures, want) {
			t.Errorf("batchItemFailures %+v, want %+v", resp.BatchItemFailures, want)
		}
		if letters := readLetters(t, letterFile); len(letters) > lettersBefore {
			t.Errorf("%d new dead letters, want none: %q", len(letters)-lettersBefore, describe(letters[lettersBefore:]))
		}
		if n := len(sandbox.Accepted()) - acceptedBefore; n != 0 {
			t.Errorf("Meta accepted %d events with an expired token", n)
		}
	})
}

// freshFixture returns the Kinesis event of events/capi-forwarder/<name> with the event time of
// every record that decodes set to a minute before now: the fixtures are fixed in time and Meta
// refuses events more than 7 days old. Records that do not decode stay as they are.
func freshFixture(t *testing.T, name string) events.KinesisEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(ingesttest.RepoRoot(t), "events", "capi-forwarder", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	at := time.Now().Add(-time.Minute).Unix()
	for i := range ev.Records {
		k := &ev.Records[i].Kinesis
		rec, err := envelope.DecodeOne(k.Data)
		if err != nil {
			continue // bad on purpose
		}
		rec.Event.Time = at
		k.Data = envelope.Append(nil, rec)
	}
	return ev
}

// invokeBatch sends a Kinesis event through the emulator and returns the function's partial
// batch response; anything else (a function error) fails the test.
func invokeBatch(t *testing.T, url string, ev events.KinesisEvent) events.KinesisEventResponse {
	t.Helper()
	raw := lambdatest.Invoke(t, url, ev)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var resp events.KinesisEventResponse
	if err := dec.Decode(&resp); err != nil || resp.BatchItemFailures == nil {
		t.Fatalf("invoke: not a Kinesis batch response (function error?): %s", raw)
	}
	return resp
}

// acceptedIDs returns the event ids of accepted events, sorted.
func acceptedIDs(acc []metasandbox.AcceptedEvent) []string {
	ids := make([]string, 0, len(acc))
	for _, a := range acc {
		ids = append(ids, a.EventID)
	}
	sort.Strings(ids)
	return ids
}

// readLetters returns the dead letters of the function's file queue.
func readLetters(t *testing.T, path string) []ports.DeadLetter {
	t.Helper()
	letters, err := deadletters.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return letters
}

// describe names dead letters by reason, event id and sequence number, for messages.
func describe(letters []ports.DeadLetter) []string {
	out := make([]string, 0, len(letters))
	for _, l := range letters {
		out = append(out, l.Reason+" "+l.EventID+" "+l.SequenceNumber)
	}
	return out
}

package capiforwarder

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/forward"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

const (
	token  = "sandbox-token-0123"
	secret = "sandbox-app-secret"
)

type harness struct {
	h       *Handler
	sandbox *metasandbox.Sandbox
	dlq     *deadletters.Memory
	logs    *bytes.Buffer
	metrics *bytes.Buffer
	apps    *appconfig.Config
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.dev.json")) // it sets a test_event_code
	if err != nil {
		t.Fatal(err)
	}
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: token, AppSecret: secret, Datasets: []string{apps.Apps[0].Meta.DatasetID}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	hs := &harness{sandbox: sb, dlq: &deadletters.Memory{}, logs: &bytes.Buffer{}, metrics: &bytes.Buffer{}, apps: apps}
	sender := metagraph.New(metagraph.Config{BaseURL: url, AccessToken: token, AppSecret: secret})
	hs.h, err = New(Config{
		Apps: apps,
		Forwarder: forward.New(sender, hs.dlq, forward.Options{Consumer: Consumer, MaxAttempts: 4,
			BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}),
		DLQ:       hs.dlq,
		Logger:    observability.NewLogger(hs.logs, "debug"),
		Metrics:   observability.NewEmitter(hs.metrics, "Test"),
		HoldPause: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// kinesisEvent runs request bodies through the real ingest parser and wraps the records as the
// event source mapping delivers them.
func kinesisEvent(t testing.TB, bodies ...string) events.KinesisEvent {
	t.Helper()
	pseudo, _ := identity.NewPseudonymizer([]byte("forwarder-test-pepper-01"))
	app := &appconfig.App{ID: "sample-shop", Platforms: []appconfig.Platform{"ios", "android"}}
	var ev events.KinesisEvent
	for _, body := range bodies {
		b, err := appevent.NewParser(pseudo).Parse(app, body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		envs, err := b.Events()
		if err != nil {
			t.Fatal(err)
		}
		// One event per record, as the forwarder reads them today (envelope.DecodeOne); the
		// ingest writes a user's events of one request as one record.
		for i, a := range b.Accepted {
			seq := fmt.Sprintf("4968%050d", len(ev.Records)+1)
			ev.Records = append(ev.Records, events.KinesisEventRecord{
				EventID: "shardId-000000000000:" + seq, EventSource: "aws:kinesis", EventName: "aws:kinesis:record",
				Kinesis: events.KinesisRecord{PartitionKey: a.UserKey, SequenceNumber: seq, Data: envelope.Append(nil, &envs[i])},
			})
		}
		b.Release()
	}
	return ev
}

func validBody(t testing.TB) string {
	return ingesttest.RefreshEventTimes(t, ingesttest.FixtureBody(t, "valid-batch.json"), time.Now())
}

func TestValidBatchReachesMetaOnce(t *testing.T) {
	hs := newHarness(t)
	ev := kinesisEvent(t, validBody(t))
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v\n%s", resp, err, hs.logs)
	}
	acc := hs.sandbox.Accepted()
	// The fixture's 4th event has no consent: it must never reach Meta.
	if len(acc) != 3 || len(hs.sandbox.Requests()) != 1 {
		t.Fatalf("%d events in %d requests reached Meta, want 3 in 1", len(acc), len(hs.sandbox.Requests()))
	}
	for _, a := range acc {
		if a.EventID == "2b0a7c2e-7f0e-4b8e-9d51-000000000004" {
			t.Fatal("event without consent forwarded")
		}
		if a.TestEventCode != "TEST12345" || a.Dataset != hs.apps.Apps[0].Meta.DatasetID {
			t.Errorf("routing: %+v", a)
		}
	}
	if len(hs.dlq.Letters()) != 0 {
		t.Fatalf("dead letters: %+v", hs.dlq.Letters())
	}
	if !strings.Contains(hs.metrics.String(), `"EventsSkippedNoConsent":1`) || !strings.Contains(hs.metrics.String(), `"EventsForwarded":3`) {
		t.Errorf("metrics: %s", hs.metrics)
	}
}

func TestBadRecordsAreDeadLetteredAlone(t *testing.T) {
	hs := newHarness(t)
	ev := kinesisEvent(t, validBody(t))
	good := len(ev.Records)
	bad := []struct {
		data   string
		reason string
	}{
		{`not json`, "undecodable"},
		{`{"v":3,"app":"sample-shop","uk":"k","event":{"id":"x","name":"n","time":1}}`, "unsupported_version"},
		{`{"v":1,"app":"other-app","uk":"k","event":{"id":"x","name":"n","time":1}}`, "unknown_app"},
		{`{"v":1,"app":"sample-shop","uk":"k","event":{"id":"old","name":"ActivateApp","time":1000,"consent":{"ads_personalization":true}}}`, "too_old"},
	}
	for i, b := range bad {
		seq := fmt.Sprintf("4969%050d", i)
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000001:" + seq,
			Kinesis: events.KinesisRecord{SequenceNumber: seq, Data: []byte(b.data)}})
	}
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	letters := hs.dlq.Letters()
	if len(letters) != len(bad) {
		t.Fatalf("%d letters, want %d: %+v", len(letters), len(bad), letters)
	}
	for i, l := range letters {
		if l.Reason != bad[i].reason || string(l.Record) != bad[i].data || l.ShardID != "shardId-000000000001" || l.Consumer != Consumer {
			t.Errorf("letter %d: %+v", i, l)
		}
	}
	if got := len(hs.sandbox.Accepted()); got != good-1 { // minus the event without consent
		t.Fatalf("%d events reached Meta, want %d", got, good-1)
	}
}

func TestPoisonEventIsIsolatedByMeta(t *testing.T) {
	hs := newHarness(t)
	hs.sandbox.SetFaults(metasandbox.Faults{PoisonEventIDs: []string{"2b0a7c2e-7f0e-4b8e-9d51-000000000002"}})
	ev := kinesisEvent(t, validBody(t))
	resp, _ := hs.h.Handle(context.Background(), ev)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %+v", resp.BatchItemFailures)
	}
	letters := hs.dlq.Letters()
	if len(letters) != 1 || letters[0].EventID != "2b0a7c2e-7f0e-4b8e-9d51-000000000002" || letters[0].Meta == nil ||
		letters[0].Meta.Code != 100 || letters[0].Meta.FBTraceID == "" {
		t.Fatalf("letters %+v", letters)
	}
	if got := len(hs.sandbox.Accepted()); got != 2 {
		t.Fatalf("%d delivered, want the 2 others", got)
	}
}

func TestTransientFailuresAreRetriedAndAuthFailuresHeld(t *testing.T) {
	t.Run("server errors: retried, then the first record is reported", func(t *testing.T) {
		hs := newHarness(t)
		hs.sandbox.SetFaults(metasandbox.Faults{ServerErrorRate: 1})
		ev := kinesisEvent(t, validBody(t))
		resp, _ := hs.h.Handle(context.Background(), ev)
		if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Kinesis.SequenceNumber {
			t.Fatalf("failures %+v", resp.BatchItemFailures)
		}
		if len(hs.dlq.Letters()) != 0 || len(hs.sandbox.Requests()) < 2 {
			t.Fatalf("letters %d requests %d", len(hs.dlq.Letters()), len(hs.sandbox.Requests()))
		}
		// Once Meta recovers, the redelivered batch goes through with the same event ids.
		hs.sandbox.SetFaults(metasandbox.Faults{})
		resp, _ = hs.h.Handle(context.Background(), ev)
		if len(resp.BatchItemFailures) != 0 || len(hs.sandbox.Accepted()) != 3 {
			t.Fatalf("after recovery: %+v, %d accepted", resp, len(hs.sandbox.Accepted()))
		}
	})
	t.Run("rate limited: retried, then held; nothing dead-lettered", func(t *testing.T) {
		hs := newHarness(t)
		hs.sandbox.SetFaults(metasandbox.Faults{RateLimitRate: 1, RateLimitCodes: []int{80001}})
		ev := kinesisEvent(t, validBody(t))
		resp, _ := hs.h.Handle(context.Background(), ev)
		if len(resp.BatchItemFailures) != 1 || len(hs.dlq.Letters()) != 0 || len(hs.sandbox.Requests()) < 2 {
			t.Fatalf("failures %+v letters %d requests %d", resp.BatchItemFailures, len(hs.dlq.Letters()), len(hs.sandbox.Requests()))
		}
		for _, r := range hs.sandbox.Requests() {
			if r.ErrorCode != 80001 {
				t.Fatalf("request answered %+v", r)
			}
		}
	})
	t.Run("expired token: held on the stream, alert, no dead letters", func(t *testing.T) {
		hs := newHarness(t)
		hs.sandbox.SetFaults(metasandbox.Faults{TokenExpired: true})
		ev := kinesisEvent(t, validBody(t))
		start := time.Now()
		resp, _ := hs.h.Handle(context.Background(), ev)
		if took := time.Since(start); took < 50*time.Millisecond {
			t.Errorf("answered after %v: the retries of a held batch must be paced", took)
		}
		if len(resp.BatchItemFailures) != 1 || len(hs.dlq.Letters()) != 0 || len(hs.sandbox.Requests()) != 1 {
			t.Fatalf("failures %+v letters %d requests %d", resp.BatchItemFailures, len(hs.dlq.Letters()), len(hs.sandbox.Requests()))
		}
		if !strings.Contains(hs.logs.String(), "ALERT") || !strings.Contains(hs.metrics.String(), `"CAPIAuthFailures":1`) {
			t.Fatalf("no alert: %s", hs.logs)
		}
	})
	t.Run("dead-letter queue down: bad records stay on the stream", func(t *testing.T) {
		hs := newHarness(t)
		hs.dlq.Fail = fmt.Errorf("sqs unavailable")
		ev := kinesisEvent(t, validBody(t))
		ev.Records = append([]events.KinesisEventRecord{{EventID: "shardId-000000000000:1", Kinesis: events.KinesisRecord{SequenceNumber: "1", Data: []byte("junk")}}}, ev.Records...)
		resp, _ := hs.h.Handle(context.Background(), ev)
		if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "1" {
			t.Fatalf("failures %+v", resp.BatchItemFailures)
		}
	})
}

// A replayed record (retarget archive replay) older than Meta's 7 days is skipped by design:
// neither sent nor dead-lettered. A replayed record within the window goes to Meta like any
// redelivery, and an app's event that old is still a dead letter.
func TestReplayedEventsPastMetasWindowAreSkippedNotDeadLettered(t *testing.T) {
	hs := newHarness(t)
	ev := kinesisEvent(t, validBody(t)) // 3 with consent, 1 without
	old := time.Now().Add(-30 * 24 * time.Hour).Unix()
	var replayedOld []string
	for i := range ev.Records {
		rec, err := envelope.DecodeOne(ev.Records[i].Kinesis.Data)
		if err != nil {
			t.Fatal(err)
		}
		rec.Replay = true
		if i%2 == 0 { // records 0 and 2: replayed from a month ago
			rec.Event.Time = old
			replayedOld = append(replayedOld, rec.Event.ID)
		}
		ev.Records[i].Kinesis.Data = envelope.Append(nil, rec)
	}
	appOld := `{"v":1,"app":"sample-shop","uk":"k","event":{"id":"old","name":"ActivateApp","time":1000,"consent":{"ads_personalization":true}}}`
	ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000001:1",
		Kinesis: events.KinesisRecord{SequenceNumber: "1", Data: []byte(appOld)}})

	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	letters := hs.dlq.Letters()
	if len(letters) != 1 || letters[0].EventID != "old" || letters[0].Reason != "too_old" {
		var got []string
		for _, l := range letters {
			got = append(got, l.EventID+":"+l.Reason)
		}
		t.Fatalf("dead letters %q, want only the app's own too_old event", got)
	}
	acc := hs.sandbox.Accepted()
	for _, a := range acc {
		for _, id := range replayedOld {
			if a.EventID == id {
				t.Errorf("replayed event %s from a month ago sent to Meta", id)
			}
		}
	}
	// Of records 1 and 3 (recent, replayed) the one with consent reaches Meta.
	if len(acc) != 1 {
		t.Fatalf("%d events reached Meta, want the 1 recent replayed event with consent", len(acc))
	}
	if !strings.Contains(hs.logs.String(), `"skipped_replay_too_old":2`) {
		t.Errorf("log does not count the skipped replays:\n%s", hs.logs)
	}
}

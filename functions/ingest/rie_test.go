//go:build linux

package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/lambdatest"
)

// TestBootstrapUnderRIE runs the real bootstrap (host architecture) under the Lambda Runtime
// Interface Emulator, the way `sam local invoke` runs it in its container, and feeds it the
// API Gateway fixtures of events/ingest against a local Kinesis.
//
// Inputs: RIE_BIN (default .devtools/bin/aws-lambda-rie, installed by `make tools`) and
// HOST_BUILD_DIR (a prebuilt <dir>/ingest/bootstrap, from `make build-host`; without it the test
// builds one). A missing RIE or emulator skips the test, or fails it when EMULATORS_REQUIRED=1.
func TestBootstrapUnderRIE(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	rie := lambdatest.RIEBinary(t)
	kinesalite := emulators.StartForTest(t, emulators.Kinesis)
	bootstrap := lambdatest.Bootstrap(t, "ingest")

	const stream = "rie-events"
	awsCfg, err := emulators.AWSConfig(context.Background(), kinesalite.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client := kinesis.NewFromConfig(awsCfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kinesisstream.EnsureStream(ctx, client, stream, 2); err != nil {
		t.Fatal(err)
	}

	invokeURL := lambdatest.Start(t, rie, bootstrap, append(lambdatest.AWSEnv(t),
		"EVENT_STREAM_NAME="+stream,
		"APP_CONFIG_FILE="+filepath.Join(root, "infra", "config", "apps.json"),
		"PSEUDONYM_PEPPER=rie-test-pepper-0123456789",
		"DEV_AUTH=true",
		"AWS_ENDPOINT_URL_KINESIS="+kinesalite.Endpoint,
	))

	now := time.Now()
	tests := []struct {
		fixture    string
		wantStatus int
		check      func(*testing.T, ingesttest.Answer)
	}{
		{"valid-batch.json", 202, ingesttest.WantAccepted(4)},
		{"missing-key.json", 401, nil},
		{"health.json", 200, func(t *testing.T, a ingesttest.Answer) {
			if a.Status != "ok" {
				t.Errorf("status %q, want ok", a.Status)
			}
		}},
		{"partly-invalid-batch.json", 202, ingesttest.WantAccepted(2, 1, 2)},
	}
	var sent []string // request bodies, for the personal data check
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			event := ingesttest.FixtureRequest(t, tc.fixture)
			event.Body = ingesttest.RefreshEventTimes(t, event.Body, now)
			sent = append(sent, event.Body)
			raw := lambdatest.Invoke(t, invokeURL, event)
			var resp events.APIGatewayProxyResponse
			if err := json.Unmarshal(raw, &resp); err != nil || resp.StatusCode == 0 {
				t.Fatalf("invoke: not a proxy response (function error?): %s", raw)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("statusCode %d, want %d; body %s", resp.StatusCode, tc.wantStatus, resp.Body)
			}
			if ct := resp.Headers["Content-Type"]; ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var a ingesttest.Answer
			if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
				t.Fatalf("body %q: %v", resp.Body, err)
			}
			if tc.wantStatus >= 400 && a.Error == "" {
				t.Errorf("error response without a message: %s", resp.Body)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
	if t.Failed() {
		return
	}

	// valid-batch: events 1-4; partly-invalid: its valid events 0 and 3 (ids ...01 and ...03).
	wantIDs := []string{"01", "01", "02", "03", "03", "04"}
	records, err := kinesisstream.NewTailer(client, stream, kinesisstream.TrimHorizon).Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	personal := ingesttest.PersonalValues(t, sent...)
	var gotIDs []string
	for _, r := range records {
		recs, err := envelope.Decode(r.Data) // version 2: a user's events of one request together
		if err != nil {
			t.Fatalf("record %s: %v", r.SequenceNumber, err)
		}
		for _, rec := range recs {
			if rec.App != "sample-shop" || r.PartitionKey != rec.UserKey || rec.V != envelope.Version {
				t.Errorf("record %s: app %q, partition key %q, user key %q, version %d", r.SequenceNumber, rec.App, r.PartitionKey, rec.UserKey, rec.V)
			}
			gotIDs = append(gotIDs, strings.TrimPrefix(rec.Event.ID, "2b0a7c2e-7f0e-4b8e-9d51-0000000000"))
		}
		ingesttest.AssertNoPersonalData(t, r.Data, personal)
	}
	sort.Strings(gotIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("event ids on the stream (suffixes) %q, want %q", gotIDs, wantIDs)
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
	"github.com/retarget-dev/retarget/shared/ports"
)

// foldIntoStore runs the real segment updater over stream records, as the event source
// mapping would, into store.
func foldIntoStore(t *testing.T, recs []ports.StreamRecord, store ports.SegmentStore) {
	t.Helper()
	rules, err := segments.ForConfig(loadSampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	h, err := segmentupdater.New(segmentupdater.Config{Rules: rules, Store: store, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisEvent
	for i, r := range recs {
		seq := fmt.Sprintf("4968%052d", i+1)
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq,
			Kinesis: events.KinesisRecord{PartitionKey: r.PartitionKey, SequenceNumber: seq, Data: r.Data}})
	}
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatalf("segment updater: %v %+v", err, resp.BatchItemFailures)
	}
}

// TestUserShowAfterTheEventsWentThroughThePipeline sends events with the CLI to the real
// ingest function, folds the stream with the real segment updater into dynalite, and reads the
// user back with user show.
func TestUserShowAfterTheEventsWentThroughThePipeline(t *testing.T) {
	endpoint, table, client := dynalite(t)
	store := dynamostate.New(client, table, dynamostate.Options{})
	api := startIngestAPI(t)

	ev := func(id, name string, ago time.Duration, extra string) string {
		return fmt.Sprintf(`{"event_id":%q,"event_name":%q,"event_time":%d,"user":{"app_user_id":"u-cli","email":"Mary.Major@Example.com","country":"US"},`+
			`"device":{"platform":"ios","os_version":"17.4.1"},"consent":{"ads_personalization":true,"advertiser_tracking_enabled":false}%s}`,
			id, name, testNow.Add(-ago).Unix(), extra)
	}
	lines := []string{
		ev("e-1", "MobileAppInstall", 26*time.Hour, ""),
		ev("e-2", "fb_mobile_activate_app", 25*time.Hour, ""),
		ev("e-3", "fb_mobile_activate_app", 5*time.Hour, ""),
		ev("e-4", "fb_mobile_activate_app", 4*time.Hour, ""),
		ev("e-5", "fb_mobile_purchase", 3*time.Hour, `,"custom_data":{"value":250,"currency":"USD"}`),
		fmt.Sprintf(`{"event_id":"e-9","event_name":"fb_mobile_activate_app","event_time":%d,"user":{"anon_id":"install-42"},`+
			`"device":{"platform":"android","os_version":"14"},"consent":{"ads_personalization":true}}`, testNow.Add(-time.Hour).Unix()),
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600)
	h := newHarness(t)
	h.mustRun(exitOK, "send", "--file", path, "--url", api.url)
	h.mustRun(exitOK, "send", "--sample", "40", "--url", api.url, "--seed", "3")
	foldIntoStore(t, api.stream.Records(), store)

	h.env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
	h.env["STATE_TABLE_NAME"] = table
	h.env["APP_CONFIG_FILE"] = sampleConfig
	out := h.mustRun(exitOK, "user", "show", "sample-shop", "u-cli")

	pseudo, _ := identity.NewPseudonymizer([]byte(devPepper))
	key := pseudo.UserKey("sample-shop", identity.KindAppUserID, "u-cli")
	want := map[string]string{
		"app":                "sample-shop",
		"user key":           key[:8] + "…",
		"version":            "1",
		"segments (stored)":  "new_installer, engaged, vip",
		"segments (now)":     "new_installer, engaged, vip",
		"platform":           "ios",
		"lifetime value":     "250.00 USD",
		"purchases":          "1",
		"has email":          "yes",
		"has phone":          "no",
		"has external id":    "yes",
		"has advertising id": "no (tracking denied)",
		"first seen":         testNow.Add(-26*time.Hour).Format(time.RFC3339) + " (26h ago)",
		"installed":          testNow.Add(-26*time.Hour).Format(time.RFC3339) + " (26h ago)",
		"last seen":          testNow.Add(-3*time.Hour).Format(time.RFC3339) + " (3h ago)",
		"consent":            "granted " + testNow.Add(-3*time.Hour).Format(time.RFC3339) + " (3h ago)",
	}
	for name, v := range want {
		if got := fieldValue(t, out, name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	// new_installer ends 3 days after the install: the next change, and the due time.
	if got := fieldValue(t, out, "next change"); got != "2026-03-11T08:00:00Z (in 46h)" {
		t.Errorf("next change = %q", got)
	}
	if got := fieldValue(t, out, "due at"); got == "-" {
		t.Errorf("no due time")
	}
	emailHash, _ := identity.NewNormalizer().HashField(identity.Email, "Mary.Major@Example.com", "")
	wantNotContains(t, out, key, emailHash.String(), "Mary", "u-cli")

	h.mustRun(exitOK, "user", "show", "--json", "sample-shop", "u-cli")
	var v userView
	h.decodeJSON(&v)
	if v.UserKeyPrefix != key[:8]+"…" || !slices.Equal(v.SegmentsNow, []string{"new_installer", "engaged", "vip"}) ||
		v.LifetimeValue != 250 || v.ReportingCurrency != "USD" || v.Purchases != 1 || v.Consent != "granted" ||
		!v.Identifiers.Email || v.Identifiers.Phone || !v.Identifiers.TrackingDenied || v.LastEvents["Purchase"] == "" {
		t.Errorf("json view %+v", v)
	}
	wantNotContains(t, h.stdout.String(), key, emailHash.String())

	// Time passes: the rules are evaluated now, the stored segments stay as written.
	h.now = testNow.Add(6 * 24 * time.Hour) // install 7 days ago, the opens of March 8 out of the window
	out = h.mustRun(exitOK, "user", "show", "sample-shop", "u-cli")
	if got := fieldValue(t, out, "segments (now)"); got != "vip" {
		t.Errorf("segments six days later = %q, want vip", got)
	}
	if got := fieldValue(t, out, "segments (stored)"); got != "new_installer, engaged, vip" {
		t.Errorf("stored segments = %q", got)
	}

	// A user known only by an anon_id is keyed by it.
	h.now = testNow
	out = h.mustRun(exitOK, "user", "show", "--id-kind", "anon_id", "sample-shop", "install-42")
	if fieldValue(t, out, "segments (now)") != "new_installer" || fieldValue(t, out, "has external id") != "no" {
		t.Errorf("anon user:\n%s", out)
	}
	h.mustRun(exitFailure, "user", "show", "sample-shop", "install-42")

	// A sample user, sent by send --sample, is there too.
	h.mustRun(exitOK, "user", "show", "sample-shop", "sample-user-1")

	// An explicit decision (the consent or erasure API) is shown with what it does.
	if got := fieldValue(t, out, "explicit consent"); got != "" && got != "-" {
		t.Errorf("explicit consent without a decision = %q", got)
	}
	no := false
	if err := store.PutConsent(context.Background(), ports.UserConsent{App: "sample-shop", UserKey: key, At: testNow.Add(-time.Hour).Unix(),
		ErasureID: "er_0123", LDU: &no}); err != nil {
		t.Fatal(err)
	}
	out = h.mustRun(exitOK, "user", "show", "sample-shop", "u-cli")
	if got, want := fieldValue(t, out, "explicit consent"), "withdrawn by erasure er_0123, LDU off "+testNow.Add(-time.Hour).Format(time.RFC3339)+" (1h ago)"; got != want {
		t.Errorf("explicit consent = %q, want %q", got, want)
	}
}

func TestUserShowErrors(t *testing.T) {
	endpoint, table, _ := dynalite(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{"missing arguments", nil, []string{"user", "show", "sample-shop"}, exitUsage, "want <app> <id>, got 1 argument(s)"},
		{"bad id kind", nil, []string{"user", "show", "--id-kind", "email", "sample-shop", "u-1"}, exitUsage, `--id-kind "email": want app_user_id, anon_id or madid`},
		{"unknown app", nil, []string{"user", "show", "no-such-app", "u-1"}, exitFailure, `retarget user show: unknown app "no-such-app" (the config has: sample-shop)`},
		{"bad config path", nil, []string{"user", "show", "--config", "no/such.json", "sample-shop", "u-1"}, exitFailure, "app config: open no/such.json: no such file or directory"},
		{"unknown user", nil, []string{"user", "show", "sample-shop", "u-nobody"}, exitFailure, "no such user in app sample-shop (no state under its key"},
		{"other pepper", map[string]string{"PSEUDONYM_PEPPER": "another-pepper-0123456789"}, []string{"user", "show", "sample-shop", "u-1"}, exitFailure, "derived with PSEUDONYM_PEPPER"},
		{"no pepper against AWS", map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": ""}, []string{"user", "show", "sample-shop", "u-1"}, exitFailure, "no pseudonym pepper: pass --pepper-secret-id or set PEPPER_SECRET_ID"},
		{"no table against AWS", map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": "", "STATE_TABLE_NAME": "", "PSEUDONYM_PEPPER": "another-pepper-0123456789"}, []string{"user", "show", "sample-shop", "u-1"}, exitFailure, "no state table: pass --table or set STATE_TABLE_NAME"},
		{"missing table", map[string]string{"STATE_TABLE_NAME": "no-such-table"}, []string{"user", "show", "sample-shop", "u-1"}, exitFailure, "ResourceNotFoundException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.env = map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "STATE_TABLE_NAME": table, "APP_CONFIG_FILE": sampleConfig}
			for k, v := range tc.env {
				h.env[k] = v
			}
			if code := h.run(tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, h.stderr.String())
			}
			wantContains(t, h.stderr.String(), tc.msg)
			wantNotContains(t, h.stderr.String(), "u-nobody")
		})
	}
}

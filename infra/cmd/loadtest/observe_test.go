package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Lines as the functions write them (observability.Emitter, slog JSON), shortened.
const (
	emfIngest     = `{"App":"sample-shop","BatchSize":20,"EventsAccepted":19,"EventsReceived":20,"EventsRejected":1,"EventsUnwritten":0,"Function":"ingest","IngestLatency":4.5,"PutRecordsCalls":1,"PutRecordsRetries":0,"_aws":{"Timestamp":1795907247211}}`
	emfIngestErr  = `{"App":"sample-shop","FieldErrors":1,"Function":"ingest","Reason":"invalid_email","_aws":{"Timestamp":1795907247211}}`
	emfForwarder  = `{"CAPIRequests":1,"EventsDeadLettered":2,"EventsForwarded":900,"Function":"capi-forwarder","RecordsRead":1000,"_aws":{"Timestamp":1795907248238}}`
	emfDeadLetter = `{"DeadLetters":2,"Function":"capi-forwarder","Reason":"too_old","_aws":{"Timestamp":1795907248238}}`
	emfUpdater    = `{"EventsApplied":480,"EventsDuplicate":20,"Function":"segment-updater","RecordsRead":25,"SegmentChanges":7,"UserWrites":25,"WriteConflicts":0,"_aws":{"Timestamp":1795907248305}}`
	emfSyncBusy   = `{"App":"sample-shop","Function":"audience-sync","PendingChanges":3,"_aws":{"Timestamp":1795907249000}}`
	emfSyncIdle   = `{"App":"sample-shop","Function":"audience-sync","PendingChanges":0,"_aws":{"Timestamp":1795907250000}}`
	logBatch      = `{"time":"2026-11-28T23:07:28.3Z","level":"INFO","msg":"batch applied","records":500,"users":25,"writes":25}`
	logSweep      = `{"time":"2026-11-28T23:07:22.3Z","level":"INFO","msg":"sweep","users":0,"membership_changes":0}`
	logIngest     = `{"time":"2026-11-28T23:07:27.2Z","level":"INFO","msg":"events ingested","events":20}`
)

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	writeLines(t, filepath.Join(dir, metricsLog), emfIngest, emfIngestErr, emfForwarder, emfDeadLetter, emfUpdater, emfSyncBusy)
	writeLines(t, filepath.Join(dir, segmentsLog), logBatch, logSweep)
	writeLines(t, filepath.Join(dir, ingestLog), logIngest)

	m := NewMetrics(dir, false)
	if err := m.Update(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"ingest EventsAccepted", m.Get(FnIngest, "EventsAccepted"), 19},
		{"ingest FieldErrors", m.Get(FnIngest, "FieldErrors"), 1},
		{"forwarder RecordsRead", m.Get(FnForwarder, "RecordsRead"), 1000},
		{"forwarder DeadLetters", m.Get(FnForwarder, "DeadLetters"), 2},
		{"updater UserWrites", m.Get(FnUpdater, "UserWrites"), 25},
		{"updater users", m.UpdaterUsers, 25},
		// The extra documents of one invocation (by reason) are no invocations.
		{"ingest invocations", float64(m.Invocations[FnIngest]), 1},
		{"forwarder invocations", float64(m.Invocations[FnForwarder]), 1},
		{"updater invocations", float64(m.Invocations[FnUpdater]), 1},
		// Version 2 records: 25 records of 20 events each; the forwarder's 1,000 records were
		// read before it reported EventsRead (902 events).
		{"updater events", m.UpdaterEvents(), 500},
		{"forwarder events", m.ForwarderEvents(), 902},
		{"ingest log bytes", float64(m.LogBytes[FnIngest]), float64(len(logIngest) + 1)},
		{"ingest EMF bytes", float64(m.EMFBytes[FnIngest]), float64(len(emfIngest) + len(emfIngestErr) + 2)},
		{"forwarder log bytes", float64(m.LogBytes[FnForwarder]), 0},
		{"forwarder EMF bytes", float64(m.EMFBytes[FnForwarder]), float64(len(emfForwarder) + len(emfDeadLetter) + 2)},
		{"updater log bytes", float64(m.LogBytes[FnUpdater]), float64(len(logBatch) + 1)},
		{"updater EMF bytes", float64(m.EMFBytes[FnUpdater]), float64(len(emfUpdater) + 1)},
		{"scheduled log bytes", float64(m.LogBytes["scheduled"]), float64(len(logSweep) + 1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(m.IngestLatencyMs) != 1 || m.IngestLatencyMs[0] != 4.5 || m.IngestEvents[0] != 20 {
		t.Errorf("ingest latency %v, events %v", m.IngestLatencyMs, m.IngestEvents)
	}
	if m.SyncIdleSince(time.UnixMilli(0)) {
		t.Error("sync idle although the last run had pending changes")
	}

	// Appended lines are read once; a line without its newline waits for it.
	writeLines(t, filepath.Join(dir, metricsLog), emfUpdater, emfSyncIdle)
	f, _ := os.OpenFile(filepath.Join(dir, metricsLog), os.O_APPEND|os.O_WRONLY, 0)
	half := len(emfUpdater) / 2
	f.WriteString(emfUpdater[:half])
	if err := m.Update(); err != nil {
		t.Fatal(err)
	}
	if got := m.Get(FnUpdater, "UserWrites"); got != 50 {
		t.Errorf("UserWrites after a second document = %v, want 50", got)
	}
	f.WriteString(emfUpdater[half:] + "\n")
	f.Close()
	m.Update()
	if got := m.Get(FnUpdater, "UserWrites"); got != 75 {
		t.Errorf("UserWrites after the completed line = %v, want 75", got)
	}
	if !m.SyncIdleSince(time.UnixMilli(1795907249500)) || m.SyncIdleSince(time.UnixMilli(1795907250500)) {
		t.Error("SyncIdleSince: the idle run at ...250000 is after ...249500 and before ...250500")
	}

	// A reader that skips what exists sees only what comes next.
	late := NewMetrics(dir, true)
	writeLines(t, filepath.Join(dir, metricsLog), emfIngest)
	late.Update()
	if late.Invocations[FnIngest] != 1 || late.Invocations[FnUpdater] != 0 {
		t.Errorf("skipping reader: invocations %v", late.Invocations)
	}
}

func TestMetricsMissingFiles(t *testing.T) {
	m := NewMetrics(filepath.Join(t.TempDir(), "nothing-yet"), false)
	if err := m.Update(); err != nil {
		t.Errorf("missing log files: %v", err)
	}
}

func TestSummarizeRequests(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(1795907000+int64(s), 0) }
	log := []sandboxRequest{
		{At: at(0), Method: "POST", Path: "/v26.0/123/events", Events: 5, Status: 200}, // before the run
		{At: at(10), Method: "POST", Path: "/v26.0/123/events", Events: 1000, Status: 200},
		{At: at(12), Method: "POST", Path: "/v26.0/123/events", Events: 1000, Status: 500},
		{At: at(11), Method: "POST", Path: "/v26.0/123/events", Events: 400, Status: 200},
		{At: at(13), Method: "POST", Path: "/v26.0/act_1/customaudiences", Status: 200},
		{At: at(14), Method: "POST", Path: "/v26.0/2385/users", Rows: 300, Status: 200},
		{At: at(15), Method: "POST", Path: "/v26.0/2385/usersreplace", Rows: 100, Status: 200},
		{At: at(16), Method: "GET", Path: "/v26.0/2385/users", Status: 200},
	}
	st := summarizeRequests(log, 1)
	want := SandboxStats{CAPIRequests: 3, CAPIFailed: 1, EventsDelivered: 1400, FirstDelivery: at(10), LastDelivery: at(11),
		AudienceUploads: 2, AudienceRows: 400, Entries: len(log)}
	if st != want {
		t.Errorf("summary\n%+v\nwant\n%+v", st, want)
	}
	// A log shorter than the skip was reset: everything counts.
	if st := summarizeRequests(log[:2], 5); st.EventsDelivered != 1005 {
		t.Errorf("after a reset: %+v", st)
	}
}

func TestStackEnv(t *testing.T) {
	got := stackEnv([]string{"PATH=/bin", "AWS_PROFILE=prod", "AWS_ENDPOINT_URL_KINESIS=http://x", "DEV_API_ADDR=0.0.0.0:3000",
		"META_GRAPH_URL=https://graph.facebook.com", "PSEUDONYM_PEPPER=p", "LOG_LEVEL=debug", "HOME=/root", "AUDIENCE_SYNC_INTERVAL=1h"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/root" {
		t.Errorf("stackEnv kept %q", got)
	}
}

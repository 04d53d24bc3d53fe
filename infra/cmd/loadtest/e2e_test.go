//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestLoadTestSmoke runs the real thing for a few seconds at a small rate: it builds and
// starts the dev stack, prefills a few users, sends, drains, measures, models and stops the
// stack, and checks that the report's figures are there and agree with each other.
func TestLoadTestSmoke(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	dir := t.TempDir()
	progress, err := os.Create(filepath.Join(dir, "progress.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer progress.Close()
	o := options{
		Config: filepath.Join(root, "infra", "config", "apps.json"), Stream: "retarget-events", Table: "retarget-state",
		Rate: 400, Duration: 3 * time.Second, DrainTimeout: 30 * time.Second,
		EventsPerRequest: 20, Senders: 4, Users: 2000, ZipfS: 1.1, ZipfV: 10, ConsentRate: 0.93, Shape: string(ShapeDevice),
		Seed: 3, Out: filepath.Join(dir, "loadtest.json"), WorkDir: filepath.Join(dir, "work"),
		VerifyIDs: true, Calibrate: true, SyncInterval: time.Second, SweepInterval: time.Second, MaxAttempts: 4,
		PrefillUsers: 200,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, o, &out, progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if t.Failed() {
		return
	}
	defer func() {
		if t.Failed() {
			t.Logf("printed report:\n%s", out.String())
		}
	}()

	// The dev stack and its emulators are gone.
	if rep.Stack == nil || !rep.Stack.StoppedCleanly {
		t.Errorf("dev stack shutdown: %+v", rep.Stack)
	}
	for _, pid := range []int{rep.Endpoints.KinesisPID, rep.Endpoints.DynamoPID} {
		if pid <= 0 || alive(pid) {
			t.Errorf("emulator pid %d: unknown or still running", pid)
		}
	}
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %q", rep.Errors)
	}

	// Everything sent was accepted, everything consented reached Meta once.
	c, th := rep.Client, rep.Throughput
	wantEvents := int(o.Rate * o.Duration.Seconds())
	if c.Generated != wantEvents || c.Accepted != c.Generated || c.Rejected != 0 || c.Lost != 0 {
		t.Errorf("generated %d, accepted %d, rejected %d, lost %d; want %d accepted", c.Generated, c.Accepted, c.Rejected, c.Lost, wantEvents)
	}
	if !th.Drained || th.DeliveredToMeta != th.ExpectedAtMeta || th.ExpectedAtMeta != c.Consented || c.Consented == 0 || c.Consented >= c.Accepted {
		t.Errorf("throughput %+v, consented %d of %d", th, c.Consented, c.Accepted)
	}
	if rep.IDs == nil || rep.IDs.Missing != 0 || rep.IDs.Unexpected != 0 || rep.IDs.Delivered != c.Consented {
		t.Errorf("event ids at Meta: %+v, want all %d consented ones", rep.IDs, c.Consented)
	}
	if th.UpdaterEvents != c.Accepted || th.UpdaterRecords < 1 || th.UpdaterRecords > c.Accepted {
		t.Errorf("updater read %d events in %d records, want %d events", th.UpdaterEvents, th.UpdaterRecords, c.Accepted)
	}
	if th.AcceptedPerSec < 0.8*o.Rate || th.AcceptedPerSec > 1.1*o.Rate || th.EndToEndPerSec <= 0 || th.EndToEndPerSec > th.AcceptedPerSec*1.05 {
		t.Errorf("rates: accepted %.0f/s, end to end %.0f/s at a target of %.0f/s", th.AcceptedPerSec, th.EndToEndPerSec, o.Rate)
	}
	if rep.Latency.Count != c.Requests || rep.Latency.P50 <= 0 || rep.Latency.P99 < rep.Latency.P50 {
		t.Errorf("client latency %+v for %d requests", rep.Latency, c.Requests)
	}
	if rep.Handler.Count != c.Requests || rep.Handler.P50 > rep.Latency.Max {
		t.Errorf("handler time %+v for %d requests", rep.Handler, c.Requests)
	}

	// Per hop: one PutRecords call per request of 20 events, CAPI calls of many events.
	h := rep.Hops
	if math.Abs(h.PutRecordsCallsPer500-25) > 0.01 || h.IngestEventsPerRequest != 20 {
		t.Errorf("PutRecords calls per 500 events %.2f, events per request %.1f; want 25 and 20", h.PutRecordsCallsPer500, h.IngestEventsPerRequest)
	}
	if h.CAPIRequestsPer1000 <= 0 || h.CAPIRequestsPer1000 > 1000/20 || h.CAPIFailedRequests != 0 {
		t.Errorf("CAPI requests per 1,000 events %.2f (%d failed)", h.CAPIRequestsPer1000, h.CAPIFailedRequests)
	}
	if h.AudienceUploads == 0 || h.AudienceRowsPerRequest <= 0 {
		t.Errorf("audience uploads %d, rows per request %.1f", h.AudienceUploads, h.AudienceRowsPerRequest)
	}
	if rep.Dynamo.WriteUnitsPerEvent <= 0 || rep.Dynamo.ReadUnitsPerEvent <= 0 || rep.Items == nil || rep.Items.Items == 0 {
		t.Errorf("dynamodb %+v, items %+v", rep.Dynamo.DynamoUnits, rep.Items)
	}
	if h.LogBytesPerEvent <= 0 || h.AppLogBytes > h.LogBytesPerEvent || h.EMFBytesPerEvent[FnIngest] <= 0 {
		t.Errorf("log bytes per event %.1f, of which JSON log lines %.1f (%v)", h.LogBytesPerEvent, h.AppLogBytes, h.AppLogBytesPerEvent)
	}
	// Records hold one event (version 1, or version 2 written one by one) up to a device's
	// whole flush (version 2 grouped by user).
	if st := rep.Stream; st == nil || st.BilledKB < 1 || st.Events < st.Records || st.RecordsPerEvent < 1.0/20 || st.RecordsPerEvent > 1 ||
		st.V1Records+st.V2Records != st.Records || st.SingleEventBilledKB < 1 {
		t.Errorf("stream sample %+v", rep.Stream)
	}
	for _, f := range rep.Lambda {
		if f.BilledMs < 1 || f.InvocationsPerEvent <= 0 || f.MemoryMB < 256 {
			t.Errorf("lambda %+v", f)
		}
	}

	// The model: both doors on both streams, the naive design dearer, the targets judged.
	best := rep.Cost.Best()
	if len(rep.Cost.Designs) != 4 || best.Cost.Total <= 0 || rep.Cost.Naive.Total <= 2*best.Cost.Total || len(rep.Cost.Scale) != len(ScaleRates) {
		t.Errorf("cost: %d designs, best %s $%.4f, naive $%.4f", len(rep.Cost.Designs), best.Name(), best.Cost.Total, rep.Cost.Naive.Total)
	}
	if len(rep.Targets) != 3 || rep.Targets[0].Pass {
		t.Errorf("targets %+v: 400 events/s cannot pass the 5,000 events/s target", rep.Targets)
	}
	if len(rep.CPU) == 0 || len(rep.Probes) == 0 {
		t.Errorf("cpu %+v, probes %+v", rep.CPU, rep.Probes)
	}

	// The printed table and the JSON file say the same.
	for _, want := range []string{"THROUGHPUT", "INGEST LATENCY", "PER HOP", "COST per million events", "naive (1/req)", "TARGETS", "FAIL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed report lacks %q", want)
		}
	}
	raw, err := os.ReadFile(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	got, _ := doc["throughput"].(map[string]any)["delivered_to_meta"].(float64)
	if int(got) != th.DeliveredToMeta {
		t.Errorf("JSON delivered_to_meta %v, want %d", got, th.DeliveredToMeta)
	}
	if _, err := os.Stat(o.WorkDir); err != nil {
		t.Errorf("work dir: %v", err)
	}
}

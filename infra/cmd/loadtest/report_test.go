package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func exampleReport() *Report {
	cost := PriceDesigns(batchedExample(), []FrontDoor{DoorREST, DoorHTTP}, 6500, 1,
		NaiveFigures{SingleEventMs: map[string]float64{FnIngest: 2}, WriteUnitsPerWrite: 1, ReadUnitsPerRead: 1, SingleEventRecordKB: 2})
	return &Report{
		Settings:   Settings{Mode: "devstack", Rate: 9000, Duration: "30s", EventsPerRequest: 20, Senders: 32, Users: 100_000, ZipfS: 1.1, ZipfV: 10, ConsentRate: 0.93, Shape: "device", CPUs: 2},
		Throughput: Throughput{SendSeconds: 30, OfferedPerSec: 9000, AcceptedPerSec: 8990, EndToEndPerSec: 8500, MetaPerSec: 5100, ExpectedAtMeta: 167_000, DeliveredToMeta: 167_000, BacklogAtEndOfSend: 3000, BacklogSeconds: 0.5, Sustained: true, Drained: true, DrainSeconds: 4.2, MetaPerSecond: []int{1200, 5100}},
		Client:     DriveResult{Generated: 180_000, Accepted: 179_700, Requests: 9000, AcceptedPerSecond: []int{5990, 6010}},
		Latency:    Summarize([]float64{3, 4, 5, 50}),
		Lambda:     batchedExample().Functions,
		Cost:       cost,
		Hops: Hops{LogsMeasured: true, AppLogBytes: 12.5, LogBytesPerEvent: 34, AppLogBytesPerEvent: map[string]float64{FnIngest: 11, FnForwarder: 0.5, FnUpdater: 1},
			EMFBytesPerEvent: map[string]float64{FnIngest: 20, FnForwarder: 0.5, FnUpdater: 1}},
		CPU:    []CPUUse{{Process: "kinesalite", PID: 4242, Cores: 0.9, PeakCores: 1.02, PeakRSSMB: 300}},
		Probes: []ProbeLatency{{Target: "kinesalite", Call: "DescribeStreamSummary", LatencySummary: Summarize([]float64{2, 40})}},
	}
}

// The log target counts JSON log and EMF lines; a function that logs nothing at INFO measures 0
// and passes, a run without the log folder does not.
func TestLogTarget(t *testing.T) {
	for _, tc := range []struct {
		hops Hops
		pass bool
	}{
		{Hops{LogsMeasured: true, LogBytesPerEvent: 0}, true},
		{Hops{LogsMeasured: true, LogBytesPerEvent: 9.9, AppLogBytes: 1}, true},
		{Hops{LogsMeasured: true, LogBytesPerEvent: 10.1, AppLogBytes: 1}, false},
		{Hops{}, false},
	} {
		r := exampleReport()
		r.Hops = tc.hops
		r.CheckTargets()
		if r.Targets[2].Pass != tc.pass {
			t.Errorf("%+v: log target %+v, want pass %v", tc.hops, r.Targets[2], tc.pass)
		}
	}
}

func TestCheckTargets(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Report)
		e2e      bool
		cost     bool
		whyMatch string
	}{
		{"fast but dear", func(*Report) {}, true, false, "HTTP API, provisioned stream; largest items: DynamoDB write units $0.156, API Gateway requests $0.050"},
		{"not drained", func(r *Report) { r.Throughput.Drained = false }, false, false, "not drained"},
		{"too slow", func(r *Report) { r.Settings.Rate, r.Throughput.EndToEndPerSec = 7000, 6999 }, false, false, ""},
		{"fell behind while sending", func(r *Report) {
			r.Throughput.Sustained, r.Throughput.BacklogAtEndOfSend, r.Throughput.BacklogSeconds = false, 18_640, 3.3
		}, false, false, "not sustained: 18,640 events (3.3 s of traffic)"},
		{"kept pace at the target rate", func(r *Report) {
			r.Settings.Rate, r.Throughput.AcceptedPerSec, r.Throughput.EndToEndPerSec = 8000, 7994, 7856
		}, true, false, "delivery kept pace with 7,994 events/s accepted"},
		{"kept pace below the target rate", func(r *Report) {
			r.Settings.Rate, r.Throughput.AcceptedPerSec, r.Throughput.EndToEndPerSec = 4900, 4900, 4850
		}, false, false, "--rate 8000"},
		{"accepted less than offered", func(r *Report) {
			r.Settings.Rate, r.Throughput.AcceptedPerSec, r.Throughput.EndToEndPerSec = 8000, 7840, 7760
		}, false, false, ""},
		{"offered too little", func(r *Report) { r.Settings.Rate, r.Throughput.EndToEndPerSec = 1000, 1000 }, false, false, "--rate 8000"},
		{"cheap", func(r *Report) { r.Cost.Designs[3].Cost.Total = 0.19 }, true, true, ""},
		{"exactly the targets", func(r *Report) { r.Throughput.EndToEndPerSec, r.Cost.Designs[3].Cost.Total = 8000, 0.20 }, true, true, ""},
		{"cheap at 20 is dear at 100", func(r *Report) { r.Settings.EventsPerRequest, r.Cost.Designs[3].Cost.Total = 100, 0.19 }, true, false, ""},
		{"cheap at 100", func(r *Report) { r.Settings.EventsPerRequest, r.Cost.Designs[3].Cost.Total = 100, 0.10 }, true, true, ""},
		{"nothing priced", func(r *Report) { r.Cost = CostReport{Cheapest: -1} }, true, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := exampleReport()
			tc.mutate(r)
			r.CheckTargets()
			if len(r.Targets) != 3 || r.Targets[0].Pass != tc.e2e || r.Targets[1].Pass != tc.cost {
				t.Fatalf("targets %+v, want e2e %v cost %v", r.Targets, tc.e2e, tc.cost)
			}
			// 34 B of log and EMF lines per event: over the 10 B target.
			if r.Targets[2].Pass || r.Targets[2].Measured != 34 || !strings.Contains(r.Targets[2].Why, "ingest 11.0 + 20.0, capi-forwarder 0.5 + 0.5, segment-updater 1.0 + 1.0") {
				t.Errorf("log target %+v", r.Targets[2])
			}
			if r.Passed() {
				t.Errorf("Passed() = %v", r.Passed())
			}
			why := r.Targets[0].Why + r.Targets[1].Why
			if tc.whyMatch != "" && !strings.Contains(why, tc.whyMatch) {
				t.Errorf("why %q lacks %q", why, tc.whyMatch)
			}
		})
	}
	if (&Report{}).Passed() {
		t.Error("a report without targets passed")
	}
}

func TestPrintAndJSON(t *testing.T) {
	r := exampleReport()
	r.CheckTargets()
	r.Note("a note")
	r.Note("a note") // once
	var b bytes.Buffer
	r.Print(&b)
	out := b.String()
	for _, want := range []string{
		"30s at 9,000 events/s, 20 events/request (device)",
		"end to end (API to Meta)    8,500 events/s",
		"1.2 5.1 (thousands)",
		"API Gateway requests", "$0.1750", "$3.5000", "$0.0500",
		"*HTTP API, 4 shards", "REST API, on demand", "naive (1/req)",
		"cheapest (*): HTTP API, provisioned stream",
		"AT SCALE", "1,000,000", "(620 shards)",
		"    ingest", "11.00 + 20.00",
		"end-to-end events/s (API to Meta)", "PASS", "FAIL",
		"kinesalite 0.90 (busiest second 1.02) 300 MB",
		"DescribeStreamSummary",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printed report lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "note: a note") != 1 {
		t.Errorf("note printed %d times", strings.Count(out, "note: a note"))
	}

	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Throughput, r.Throughput) {
		t.Errorf("throughput after JSON: %+v", back.Throughput)
	}
	if back.Cost.Best().Cost.Total != r.Cost.Best().Cost.Total || len(back.Cost.Naive.Lines) != 9 || back.Targets[1].Pass {
		t.Errorf("cost after JSON: %+v", back.Cost)
	}
	for _, key := range []string{`"end_to_end_events_per_second"`, `"capi_requests_per_1000_events"`, `"dollars_per_million_events"`, `"prices_as_of"`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestFormatProgress(t *testing.T) {
	s := ProgressStatus{Phase: "sending", Elapsed: 15 * time.Second, Total: 30 * time.Second, Sent: 45_000, Accepted: 44_000, AtMeta: 40_000}
	plain := FormatProgress(s, false)
	if want := "sending 15s/30s  sent 45,000  accepted 44,000 (2,933/s)  at Meta 40,000"; plain != want {
		t.Errorf("plain %q\nwant  %q", plain, want)
	}
	bar := FormatProgress(s, true)
	if !strings.HasPrefix(bar, "[============            ] sending") {
		t.Errorf("bar %q", bar)
	}
	s.Phase, s.Expected = "draining", 80_000
	if bar := FormatProgress(s, true); !strings.HasPrefix(bar, "[============            ] draining") || !strings.HasSuffix(bar, "of 80,000") {
		t.Errorf("drain bar %q: half of what is expected is at Meta", bar)
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.8: "1,234,568", -5000: "-5,000"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

package main

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// batchedExample is a batched pipeline on version 2 records with round figures, priced by
// hand below: 20 events a request, one record of 20 events (7 KB billed) per request.
func batchedExample() CostInputs {
	return CostInputs{
		EventsPerAPIRequest: 20,
		Functions: []FunctionLoad{
			{Name: FnIngest, MemoryMB: 256, InvocationsPerEvent: 1.0 / 20, BilledMs: 10},
			{Name: FnForwarder, MemoryMB: 512, InvocationsPerEvent: 1.0 / 1000, BilledMs: 200},
			{Name: FnUpdater, MemoryMB: 512, InvocationsPerEvent: 1.0 / 500, BilledMs: 500},
		},
		RecordsPerEvent:     1.0 / 20,
		RecordKB:            7,
		StreamConsumers:     2,
		EventsPerSecond:     5000,
		WriteUnitsPerEvent:  0.25,
		ReadUnitsPerEvent:   0.4,
		AppLogBytesPerEvent: 50,
		APIKeys:             1,
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// checkLines compares every line of b with want, and the total with their sum.
func checkLines(t *testing.T, name string, b CostBreakdown, want map[string]float64) {
	t.Helper()
	total := 0.0
	for item, dollars := range want {
		if got := b.Line(item); got.Item == "" || !near(got.Dollars, dollars) {
			t.Errorf("%s: %s: $%.8f per million events, want $%.8f", name, item, got.Dollars, dollars)
		}
		total += dollars
	}
	if len(b.Lines) != len(want) {
		t.Errorf("%s: %d lines, want %d: %+v", name, len(b.Lines), len(want), b.Lines)
	}
	if !near(b.Total, total) {
		t.Errorf("%s: total $%.8f, want $%.8f", name, b.Total, total)
	}
}

func TestModelRESTOnDemand(t *testing.T) {
	b := Model(batchedExample())
	invocations := 1.0/20 + 1.0/1000 + 1.0/500
	// 50,000 records per million events, 7 KB each: 350,000 KB = 0.3338 GB.
	kinesisGB := 50_000 * 7 * 1024 / float64(1<<30)
	checkLines(t, "REST", b, map[string]float64{
		ItemAPIGateway: 3.50 / 20,
		ItemLambdaReq:  invocations * 0.20,
		// GB-s per event: 0.05 x 0.010 s x 0.25 GB + 0.001 x 0.2 s x 0.5 GB + 0.002 x 0.5 s x 0.5 GB
		ItemLambdaCompute: (0.05*0.010*0.25 + 0.001*0.2*0.5 + 0.002*0.5*0.5) * 1e6 * 0.0000133334,
		ItemKinesisIn:     kinesisGB * 0.08,
		ItemKinesisOut:    2 * kinesisGB * 0.04,
		ItemKinesisHours:  1e6 / (5000 * 3600) * 0.04,
		ItemDynamoWrites:  0.25 * 0.625,
		ItemDynamoReads:   0.4 * 0.125,
		ItemLogs:          (50 + invocations*PlatformLogBytesPerInvocation + AccessLogBytesPerRequest/20) * 1e6 / (1 << 30) * 0.50,
	})
	// At a glance: API Gateway $0.175, DynamoDB $0.206, the stream $0.056: about $0.49.
	if b.Total < 0.47 || b.Total > 0.51 {
		t.Errorf("total $%.4f, want about $0.49", b.Total)
	}
	// Version 1 (one record of ~1.2 KB, 2 KB billed, per event) costs the stream 40/7 times more.
	v1 := batchedExample()
	v1.RecordsPerEvent, v1.RecordKB = 1, 2
	if got, want := Model(v1).Line(ItemKinesisIn).Dollars, b.Line(ItemKinesisIn).Dollars*40/7; !near(got, want) {
		t.Errorf("v1 records: Kinesis in $%.6f, want $%.6f", got, want)
	}
	// Unset records per event count as one per event.
	v1.RecordsPerEvent = 0
	if got, want := Model(v1).Line(ItemKinesisIn).Dollars, 1e6*2*1024/float64(1<<30)*0.08; !near(got, want) {
		t.Errorf("records per event unset: Kinesis in $%.6f, want $%.6f", got, want)
	}
}

func TestModelHTTPDoor(t *testing.T) {
	in := batchedExample()
	in.Door = DoorHTTP
	b := Model(in)
	// The authorizer: one key, authorised once per 300 s, at 5,000 events/s.
	auth := 1.0 / (300 * 5000)
	invocations := 1.0/20 + 1.0/1000 + 1.0/500 + auth
	kinesisGB := 50_000 * 7 * 1024 / float64(1<<30)
	// The limiter: 250 requests/s x 10 ms = 2.5 ingest instances, 3 writes a second.
	limiter := 3.0 / 5000
	checkLines(t, "HTTP", b, map[string]float64{
		ItemAPIGateway:    1.00 / 20,
		ItemLambdaReq:     invocations * 0.20,
		ItemLambdaCompute: (0.05*0.010*0.25 + 0.001*0.2*0.5 + 0.002*0.5*0.5 + auth*0.002*0.125) * 1e6 * 0.0000133334,
		ItemKinesisIn:     kinesisGB * 0.08,
		ItemKinesisOut:    2 * kinesisGB * 0.04,
		ItemKinesisHours:  1e6 / (5000 * 3600) * 0.04,
		ItemDynamoWrites:  0.25 * 0.625,
		ItemDynamoReads:   0.4 * 0.125,
		ItemRateLimiter:   limiter * 0.625,
		ItemLogs:          (50 + invocations*PlatformLogBytesPerInvocation + HTTPAccessLogBytesPerRequest/20) * 1e6 / (1 << 30) * 0.50,
	})
	if rest := Model(batchedExample()); rest.Total-b.Total < 0.12 {
		t.Errorf("HTTP $%.4f vs REST $%.4f: the door alone saves $0.125", b.Total, rest.Total)
	}
	// A WAF cannot sit in front of an HTTP API: asking for one prices nothing.
	in.WAF = true
	if Model(in).Line(ItemWAF).Item != "" {
		t.Error("WAF priced on an HTTP API")
	}
	// Ten keys: ten times the authorizer; no rate: no authorizer and no limiter shares.
	in.APIKeys = 10
	if got := AuthorizerLoad(in).InvocationsPerEvent; !near(got, 10*auth) {
		t.Errorf("10 keys: %v authorizer invocations per event, want %v", got, 10*auth)
	}
	in.EventsPerSecond = 0
	if b := Model(in); b.Line(ItemRateLimiter).Dollars != 0 || AuthorizerLoad(in).InvocationsPerEvent != 0 || math.IsNaN(b.Total) {
		t.Errorf("no rate: %+v", b.Lines)
	}
}

func TestIngestInstances(t *testing.T) {
	in := batchedExample()
	for _, tt := range []struct {
		rate, ms float64
		want     float64
	}{
		{5000, 10, 3},          // 250 requests/s x 0.010 s = 2.5
		{1_000_000, 10, 500},   // 50,000 requests/s x 0.010 s
		{1_000_000, 12.5, 625}, // longer invocations: more instances
		{10, 10, 1},            // never less than one
	} {
		in.EventsPerSecond, in.Functions[0].BilledMs = tt.rate, tt.ms
		if got := IngestInstances(in); got != tt.want {
			t.Errorf("%v events/s at %v ms: %v instances, want %v", tt.rate, tt.ms, got, tt.want)
		}
	}
}

func TestModelWAFAndSystemLogLevel(t *testing.T) {
	in := batchedExample()
	in.WAF = true
	if got, want := Model(in).Line(ItemWAF).Dollars, 0.60/20; !near(got, want) {
		t.Errorf("WAF $%.6f, want $%.6f", got, want)
	}
	in = batchedExample()
	in.SystemLogWarn = true
	if got, want := Model(in).Line(ItemLogs).Dollars, (50+AccessLogBytesPerRequest/20)*1e6/(1<<30)*0.50; !near(got, want) {
		t.Errorf("SystemLogLevel=WARN: logs $%.8f, want $%.8f (no platform records)", got, want)
	}
}

func TestModelNaive(t *testing.T) {
	batched := batchedExample()
	naive := NaiveInputs(batched, NaiveFigures{
		SingleEventMs:         map[string]float64{FnIngest: 5, FnForwarder: 20, FnUpdater: 8},
		LogBytesPerInvocation: map[string]float64{FnIngest: 1000, FnForwarder: 700, FnUpdater: 600},
		WriteUnitsPerWrite:    1,
		ReadUnitsPerRead:      1,
		SingleEventRecordKB:   2,
	})
	if naive.EventsPerAPIRequest != 1 || naive.WriteUnitsPerEvent != 1 || naive.ReadUnitsPerEvent != 1 ||
		naive.AppLogBytesPerEvent != 2300 || naive.RecordsPerEvent != 1 || naive.RecordKB != 2 || naive.EventsPerSecond != batched.EventsPerSecond {
		t.Fatalf("naive inputs %+v", naive)
	}
	for _, f := range naive.Functions {
		if f.InvocationsPerEvent != 1 {
			t.Errorf("%s: %v invocations per event, want 1", f.Name, f.InvocationsPerEvent)
		}
	}
	n := Model(naive)
	kinesisGB := 1e6 * 2 * 1024 / float64(1<<30) // a 2 KB record per event
	checkLines(t, "naive", n, map[string]float64{
		ItemAPIGateway: 3.50,
		ItemLambdaReq:  3 * 0.20,
		// 0.005 s x 0.25 GB + 0.020 s x 0.5 GB + 0.008 s x 0.5 GB per event
		ItemLambdaCompute: (0.005*0.25 + 0.020*0.5 + 0.008*0.5) * 1e6 * 0.0000133334,
		ItemKinesisIn:     kinesisGB * 0.08,
		ItemKinesisOut:    2 * kinesisGB * 0.04,
		ItemKinesisHours:  1e6 / (5000 * 3600) * 0.04,
		ItemDynamoWrites:  0.625,
		ItemDynamoReads:   0.125,
		ItemLogs:          (2300 + 3*PlatformLogBytesPerInvocation + AccessLogBytesPerRequest) * 1e6 / (1 << 30) * 0.50,
	})
	if b := Model(batched); n.Total < 5*b.Total {
		t.Errorf("naive $%.3f is not far above batched $%.3f", n.Total, b.Total)
	}
}

func TestModelEdgeCases(t *testing.T) {
	// No measured rate: stream hours cannot be shared out and count 0, not Inf.
	in := batchedExample()
	in.EventsPerSecond = 0
	in.EventsPerAPIRequest = 0
	b := Model(in)
	if b.Line(ItemKinesisHours).Dollars != 0 || b.Line(ItemAPIGateway).Dollars != 0 || math.IsNaN(b.Total) || math.IsInf(b.Total, 0) {
		t.Errorf("lines %+v", b.Lines)
	}
	// Larger records cost proportionally more on the stream.
	in = batchedExample()
	in.RecordKB = 14
	if got, want := Model(in).Line(ItemKinesisIn).Dollars, 2*Model(batchedExample()).Line(ItemKinesisIn).Dollars; !near(got, want) {
		t.Errorf("14 KB records: $%v, want $%v", got, want)
	}
}

func TestSampleLogLines(t *testing.T) {
	// The modelled log lines must stay plausible: Lambda's two platform records are several
	// hundred bytes, the access log line a few hundred.
	if PlatformLogBytesPerInvocation < 500 || PlatformLogBytesPerInvocation > 900 {
		t.Errorf("platform records %v bytes", PlatformLogBytesPerInvocation)
	}
	if AccessLogBytesPerRequest < 300 || AccessLogBytesPerRequest > 600 {
		t.Errorf("access log line %v bytes", AccessLogBytesPerRequest)
	}
}

// TestAccessLogSamplesMatchTheStack reads the access log formats from the stack's source: the
// modelled lines carry the same fields (values are typical, lengths close).
func TestAccessLogSamplesMatchTheStack(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	for _, tc := range []struct{ file, name, sample string }{
		{"ingestapi.go", "accessLogFormat", sampleAccessLog},
		{"httpapi.go", "httpAccessLogFormat", sampleHTTPAccessLog},
	} {
		b, err := os.ReadFile(filepath.Join(root, "infra", "stack", tc.file))
		if os.IsNotExist(err) {
			t.Logf("%s: not in this tree", tc.file)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		decl := regexp.MustCompile(`(?s)const ` + tc.name + ` = ((?:` + "`[^`]*`" + `\s*\+?\s*)+)`).FindSubmatch(b)
		if decl == nil {
			t.Errorf("%s: no const %s", tc.file, tc.name)
			continue
		}
		keys := func(s string) []string {
			var out []string
			for _, m := range regexp.MustCompile(`"(\w+)":`).FindAllStringSubmatch(s, -1) {
				out = append(out, m[1])
			}
			return out
		}
		if got, want := keys(tc.sample), keys(string(decl[1])); !slices.Equal(got, want) {
			t.Errorf("%s: the modelled line has fields %q, the stack's format %q", tc.name, got, want)
		}
	}
	if HTTPAccessLogBytesPerRequest >= AccessLogBytesPerRequest {
		t.Errorf("HTTP access log line %v B, REST %v B: expected shorter", HTTPAccessLogBytesPerRequest, AccessLogBytesPerRequest)
	}
}

// TestMemorySizesMatchTheStack reads the memory sizes from the stack's source (importing the
// package would compile the CDK), so the model cannot drift from what is deployed.
func TestMemorySizesMatchTheStack(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	read := func(file string) string {
		b, err := os.ReadFile(filepath.Join(root, "infra", "stack", file))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		file, expr string
		want       int
	}{
		{"capiforwarder.go", `ForwarderMemoryMiB\s*=\s*(\d+)`, ForwarderMemoryMB},
		{"segmentstate.go", `SegmentUpdaterMemoryMiB\s*=\s*(\d+)`, UpdaterMemoryMB},
		// The ingest function takes GoFunction's default.
		{"gofunction.go", `memory = (\d+)`, IngestMemoryMB},
	} {
		m := regexp.MustCompile(tc.expr).FindStringSubmatch(read(tc.file))
		if m == nil {
			t.Errorf("%s: no match for %s", tc.file, tc.expr)
			continue
		}
		if m[1] != strconv.Itoa(tc.want) {
			t.Errorf("%s: %s, the load test models %d MB", tc.file, m[0], tc.want)
		}
	}
	if ingest := read("ingestapi.go"); regexp.MustCompile(`MemoryMiB:`).MatchString(ingest) {
		t.Errorf("ingestapi.go sets MemoryMiB: update IngestMemoryMB and this test")
	}
}

func TestShardsFor(t *testing.T) {
	for _, tt := range []struct {
		records, bytes float64
		consumers      int
		want           int
	}{
		{5000, 1200, 2, 12}, // bytes: 5000 x 1200 B = 5.72 MiB/s in -> 5.72 shards, at 50% -> 12
		{5000, 100, 2, 10},  // records: 5 shards' 1,000/s, at 50% -> 10
		{5000, 1200, 4, 23}, // reads: 4 consumers x 5.72 MiB/s over 2 MiB/s a shard -> 11.4, at 50% -> 23
		{250, 6500, 2, 4},   // 5,000 events/s in records of 20: 1.55 MiB/s -> 1.55 shards, at 50% -> 4
		{1, 100, 2, 1},      // never 0
	} {
		if got := ShardsFor(tt.records, tt.bytes, tt.consumers); got != tt.want {
			t.Errorf("ShardsFor(%v records/s, %v B, %d consumers) = %d, want %d", tt.records, tt.bytes, tt.consumers, got, tt.want)
		}
	}
}

func TestModelProvisionedStream(t *testing.T) {
	onDemand := batchedExample()
	// 250 records/s of 6,500 B: 4 shards (TestShardsFor); each record one 25 KB PUT unit.
	p := Provisioned(onDemand, 6500, 1)
	if p.StreamShards != 4 || p.PutUnitsPerRecord != 1 {
		t.Fatalf("provisioned inputs: %d shards, %v PUT units, want 4 and 1", p.StreamShards, p.PutUnitsPerRecord)
	}
	b, od := Model(p), Model(onDemand)
	// 50,000 records per million events.
	if got, want := b.Line(ItemKinesisPut).Dollars, 0.05*0.014; !near(got, want) {
		t.Errorf("PUT units: $%.8f, want $%.8f", got, want)
	}
	if got, want := b.Line(ItemKinesisShards).Dollars, 4*0.015*1e6/(5000*3600); !near(got, want) {
		t.Errorf("shard hours: $%.8f, want $%.8f", got, want)
	}
	for _, item := range []string{ItemKinesisIn, ItemKinesisOut, ItemKinesisHours} {
		if b.Line(item).Item != "" {
			t.Errorf("a provisioned stream priced %q", item)
		}
	}
	// Everything but the stream is priced the same.
	if !near(b.Total-streamCost(b), od.Total-streamCost(od)) {
		t.Errorf("without the stream: $%.6f provisioned, $%.6f on demand", b.Total-streamCost(b), od.Total-streamCost(od))
	}
	if streamCost(b) >= streamCost(od)/5 {
		t.Errorf("stream $%.4f provisioned vs $%.4f on demand: expected a fraction at a steady 5,000 events/s", streamCost(b), streamCost(od))
	}
}

func streamCost(b CostBreakdown) float64 {
	return b.Line(ItemKinesisIn).Dollars + b.Line(ItemKinesisOut).Dollars + b.Line(ItemKinesisHours).Dollars +
		b.Line(ItemKinesisPut).Dollars + b.Line(ItemKinesisShards).Dollars
}

func TestDesignsAndCheapest(t *testing.T) {
	designs := Designs(batchedExample(), []FrontDoor{DoorREST, DoorHTTP}, 6500, 1)
	var names []string
	for _, d := range designs {
		names = append(names, d.Name())
	}
	want := []string{"REST API, on-demand stream", "REST API, provisioned stream", "HTTP API, on-demand stream", "HTTP API, provisioned stream"}
	if !slices.Equal(names, want) {
		t.Fatalf("designs %q, want %q", names, want)
	}
	if i := Cheapest(designs); i != 3 {
		t.Errorf("cheapest %s, want HTTP API on a provisioned stream", designs[i].Name())
	}
	// By hand: HTTP $0.05 + DynamoDB $0.15625 + $0.05 + limiter $0.000375 + PUT units $0.0007
	// + shard hours $0.003333 + Lambda and logs.
	in := batchedExample()
	in.Door = DoorHTTP
	rest := Model(in).Total - streamCost(Model(in))
	if got, want := designs[3].Cost.Total, rest+0.05*0.014+4*0.015*1e6/(5000*3600); !near(got, want) {
		t.Errorf("HTTP, provisioned: $%.6f, want $%.6f", got, want)
	}
	if Cheapest(nil) != -1 {
		t.Error("cheapest of nothing")
	}
	// One door only.
	if d := Designs(batchedExample(), []FrontDoor{DoorHTTP}, 6500, 1); len(d) != 2 || d[0].Door != DoorHTTP {
		t.Errorf("--api http: %+v", d)
	}
}

func TestAtRate(t *testing.T) {
	d := Designs(batchedExample(), []FrontDoor{DoorHTTP}, 6500, 1)
	// On demand at 1M events/s: the stream's hour shared by 200 times more events.
	od := AtRate(d[0], 1_000_000, 6500)
	if got, want := od.Line(ItemKinesisHours).Dollars, 1e6/(1e6*3600)*0.04; !near(got, want) {
		t.Errorf("stream hours at 1M/s: $%.8f, want $%.8f", got, want)
	}
	// 50,000 requests/s x 10 ms: 500 instances writing once a second for 1M events/s.
	if got, want := od.Line(ItemRateLimiter).Dollars, 500.0/1e6*0.625; !near(got, want) {
		t.Errorf("rate limiter at 1M/s: $%.8f, want $%.8f", got, want)
	}
	// Provisioned at 1M events/s: 50,000 records/s of 6,500 B = 310 MiB/s -> 620 shards at 50%.
	p := AtRate(d[1], 1_000_000, 6500)
	if p.Inputs.StreamShards != 620 {
		t.Errorf("%d shards at 1M events/s, want 620", p.Inputs.StreamShards)
	}
	if got, want := p.Line(ItemKinesisShards).Dollars, 620*0.015/3600; !near(got, want) {
		t.Errorf("shard hours at 1M/s: $%.8f, want $%.8f", got, want)
	}
	// Per-event lines do not move.
	if !near(p.Line(ItemDynamoWrites).Dollars, d[1].Cost.Line(ItemDynamoWrites).Dollars) || !near(p.Line(ItemAPIGateway).Dollars, 0.05) {
		t.Errorf("per-event lines moved: %+v", p.Lines)
	}
}

package main

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// batchedExample is a batched pipeline with round figures, priced by hand below.
func batchedExample() CostInputs {
	return CostInputs{
		EventsPerAPIRequest: 20,
		Functions: []FunctionLoad{
			{Name: FnIngest, MemoryMB: 256, InvocationsPerEvent: 1.0 / 20, BilledMs: 10},
			{Name: FnForwarder, MemoryMB: 512, InvocationsPerEvent: 1.0 / 1000, BilledMs: 200},
			{Name: FnUpdater, MemoryMB: 512, InvocationsPerEvent: 1.0 / 500, BilledMs: 500},
		},
		RecordKB:            1,
		StreamConsumers:     2,
		EventsPerSecond:     5000,
		WriteUnitsPerEvent:  0.25,
		ReadUnitsPerEvent:   0.4,
		AppLogBytesPerEvent: 50,
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestModelBatched(t *testing.T) {
	b := Model(batchedExample())
	invocations := 1.0/20 + 1.0/1000 + 1.0/500
	kinesisGB := 1024 * 1e6 / float64(1<<30) // one billed KB per record
	want := map[string]float64{
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
	}
	total := 0.0
	for item, dollars := range want {
		if got := b.Line(item).Dollars; !near(got, dollars) {
			t.Errorf("%s: $%.8f per million events, want $%.8f", item, got, dollars)
		}
		total += dollars
	}
	if len(b.Lines) != len(want) {
		t.Errorf("%d lines, want %d", len(b.Lines), len(want))
	}
	if !near(b.Total, total) {
		t.Errorf("total $%.8f, want $%.8f", b.Total, total)
	}
	// The figures that matter at a glance: about 0.58 dollars per million events.
	if b.Total < 0.55 || b.Total > 0.62 {
		t.Errorf("total $%.4f, want about $0.58", b.Total)
	}
}

func TestModelNaive(t *testing.T) {
	batched := batchedExample()
	naive := NaiveInputs(batched, NaiveFigures{
		SingleEventMs:         map[string]float64{FnIngest: 5, FnForwarder: 20, FnUpdater: 8},
		LogBytesPerInvocation: map[string]float64{FnIngest: 1000, FnForwarder: 700, FnUpdater: 600},
		WriteUnitsPerWrite:    1,
		ReadUnitsPerRead:      1,
	})
	if naive.EventsPerAPIRequest != 1 || naive.WriteUnitsPerEvent != 1 || naive.ReadUnitsPerEvent != 1 ||
		naive.AppLogBytesPerEvent != 2300 || naive.RecordKB != batched.RecordKB || naive.EventsPerSecond != batched.EventsPerSecond {
		t.Fatalf("naive inputs %+v", naive)
	}
	for _, f := range naive.Functions {
		if f.InvocationsPerEvent != 1 {
			t.Errorf("%s: %v invocations per event, want 1", f.Name, f.InvocationsPerEvent)
		}
	}
	n := Model(naive)
	want := map[string]float64{
		ItemAPIGateway: 3.50,
		ItemLambdaReq:  3 * 0.20,
		// 0.005 s x 0.25 GB + 0.020 s x 0.5 GB + 0.008 s x 0.5 GB per event
		ItemLambdaCompute: (0.005*0.25 + 0.020*0.5 + 0.008*0.5) * 1e6 * 0.0000133334,
		ItemDynamoWrites:  0.625,
		ItemDynamoReads:   0.125,
		ItemLogs:          (2300 + 3*PlatformLogBytesPerInvocation + AccessLogBytesPerRequest) * 1e6 / (1 << 30) * 0.50,
	}
	for item, dollars := range want {
		if got := n.Line(item).Dollars; !near(got, dollars) {
			t.Errorf("naive %s: $%.8f, want $%.8f", item, got, dollars)
		}
	}
	// Kinesis is the same in both designs.
	b := Model(batched)
	for _, item := range []string{ItemKinesisIn, ItemKinesisOut, ItemKinesisHours} {
		if !near(n.Line(item).Dollars, b.Line(item).Dollars) {
			t.Errorf("%s differs: naive $%v, batched $%v", item, n.Line(item).Dollars, b.Line(item).Dollars)
		}
	}
	if n.Total < 5*b.Total {
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
	in.RecordKB = 2
	if got, want := Model(in).Line(ItemKinesisIn).Dollars, 2*Model(batchedExample()).Line(ItemKinesisIn).Dollars; !near(got, want) {
		t.Errorf("2 KB records: $%v, want $%v", got, want)
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
		rate, bytes float64
		consumers   int
		want        int
	}{
		{5000, 1200, 2, 12}, // bytes: 5000 x 1200 B = 5.72 MiB/s in -> 5.72 shards, at 50% -> 12
		{5000, 100, 2, 10},  // records: 5 shards' 1,000/s, at 50% -> 10
		{5000, 1200, 4, 23}, // reads: 4 consumers x 5.72 MiB/s over 2 MiB/s a shard -> 11.4, at 50% -> 23
		{1, 100, 2, 1},      // never 0
	} {
		if got := ShardsFor(tt.rate, tt.bytes, tt.consumers); got != tt.want {
			t.Errorf("ShardsFor(%v/s, %v B, %d consumers) = %d, want %d", tt.rate, tt.bytes, tt.consumers, got, tt.want)
		}
	}
}

func TestModelProvisionedStream(t *testing.T) {
	onDemand := batchedExample()
	p := Provisioned(onDemand, 1200, 1)
	if p.StreamShards != 12 || p.PutUnitsPerRecord != 1 {
		t.Fatalf("provisioned inputs: %d shards, %v PUT units, want 12 and 1", p.StreamShards, p.PutUnitsPerRecord)
	}
	b, od := Model(p), Model(onDemand)
	if got, want := b.Line(ItemKinesisPut).Dollars, 0.014; !near(got, want) {
		t.Errorf("PUT units: $%.8f, want $%.8f", got, want)
	}
	if got, want := b.Line(ItemKinesisShards).Dollars, 12*0.015*1e6/(5000*3600); !near(got, want) {
		t.Errorf("shard hours: $%.8f, want $%.8f", got, want)
	}
	for _, item := range []string{ItemKinesisIn, ItemKinesisOut, ItemKinesisHours} {
		if b.Line(item).Item != "" {
			t.Errorf("a provisioned stream priced %q", item)
		}
	}
	// Everything but the stream is priced the same.
	stream := func(b CostBreakdown) float64 {
		return b.Line(ItemKinesisIn).Dollars + b.Line(ItemKinesisOut).Dollars + b.Line(ItemKinesisHours).Dollars +
			b.Line(ItemKinesisPut).Dollars + b.Line(ItemKinesisShards).Dollars
	}
	if !near(b.Total-stream(b), od.Total-stream(od)) {
		t.Errorf("without the stream: $%.6f provisioned, $%.6f on demand", b.Total-stream(b), od.Total-stream(od))
	}
	if stream(b) >= stream(od)/5 {
		t.Errorf("stream $%.4f provisioned vs $%.4f on demand: expected a fraction at a steady 5,000 events/s", stream(b), stream(od))
	}
}

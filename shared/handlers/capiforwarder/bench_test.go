package capiforwarder

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/app/forward"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// acceptAll stands in for Meta: the benchmark measures the forwarder's own work.
type acceptAll struct{}

func (acceptAll) Forward(_ context.Context, items []forward.Item) forward.Outcome {
	out := forward.Outcome{Requests: (len(items) + 999) / 1000}
	for _, it := range items {
		out.Delivered = append(out.Delivered, it.Index)
	}
	return out
}

// BenchmarkHandle1000 measures the forwarder's cost per event: decode the envelope, map it to
// a CAPI event, check it and serialise it, for a 1,000-record batch of fully identified events.
func BenchmarkHandle1000(b *testing.B) {
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(b), "infra", "config", "apps.json"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(Config{Apps: apps, Forwarder: acceptAll{}, DLQ: &deadletters.Memory{}})
	if err != nil {
		b.Fatal(err)
	}
	var bodies []string
	for i := 0; i < 250; i++ { // 250 requests of the 4-event fixture, 3 consented: 750 records...
		bodies = append(bodies, validBody(b))
	}
	ev := kinesisEvent(b, bodies...)
	for len(ev.Records) < 1000 { // ...topped up to exactly 1,000
		ev.Records = append(ev.Records, ev.Records[len(ev.Records)%3])
	}
	ev.Records = ev.Records[:1000]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, _ := h.Handle(context.Background(), ev)
		if len(resp.BatchItemFailures) != 0 {
			b.Fatal("failures")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/event")
}

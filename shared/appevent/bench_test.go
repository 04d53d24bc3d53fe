package appevent

import (
	"fmt"
	"testing"
)

// BenchmarkParse100 measures the ingest hot path: parse, validate, normalise, hash, derive the
// user key and encode the stream records of a 100-event batch with full personal data.
// Targets (issue #2): <= 2 µs and <= 15 allocations per event.
func BenchmarkParse100(b *testing.B) {
	const n = 100
	evs := make([]any, n)
	for i := range evs {
		e := set(validEvent(), "event_id", fmt.Sprintf("9f1c2d3e-0000-4000-8000-%012d", i))
		set(e, "user.app_user_id", fmt.Sprintf("u-%d", i%37))
		evs[i] = e
	}
	req := body(evs...)
	p := NewParser(testPeps)
	if got, err := p.Parse(testApp, req, testNow); err != nil || len(got.Accepted) != n {
		b.Fatalf("setup: %v %+v", err, got)
	}
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		batch, err := p.Parse(testApp, req, testNow)
		if err != nil {
			b.Fatal(err)
		}
		batch.Release() // as the handler does once the records are published
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / n
	b.ReportMetric(ns, "ns/event")
	allocs := testing.AllocsPerRun(20, func() {
		batch, _ := p.Parse(testApp, req, testNow)
		batch.Release()
	})
	b.ReportMetric(allocs/n, "allocs/event")
}

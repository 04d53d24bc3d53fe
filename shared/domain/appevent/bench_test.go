package appevent

import (
	"fmt"
	"testing"
)

// BenchmarkParse100 measures the ingest hot path: parse, validate, normalise, hash, derive the
// user key and encode the stream records (version 2) of a 100-event batch with full personal
// data. Targets: distinct-users <= 1.5 µs per event and >= 15x Meta's Node SDK on the same events
// (make bench-ingest); allocations per event no more than before. Figures: infra/docs/cost.md.
//
//   - distinct-users: 37 users with full personal data, interleaved (no event has the user
//     object of the event before it): 37 records. The parser derives each distinct user object
//     once per request (normalise, hash, key), so 63 events reuse an earlier event's identity.
//   - all-distinct: every one of the 100 events has its own user: nothing can be reused, 100
//     identities and 100 records. The worst case.
//   - one-device: the shape mobile SDKs send, a batch from one install whose events repeat the
//     same user object: one identity, one record.
func BenchmarkParse100(b *testing.B) {
	const n = 100
	for _, bc := range []struct {
		name  string
		event func(i int) map[string]any
	}{
		{"distinct-users", func(i int) map[string]any {
			e := set(validEvent(), "user.app_user_id", fmt.Sprintf("u-%d", i%37))
			return set(e, "user.email", fmt.Sprintf("user%d@example.com", i%37))
		}},
		{"all-distinct", func(i int) map[string]any {
			e := set(validEvent(), "user.app_user_id", fmt.Sprintf("u-%d", i))
			return set(e, "user.email", fmt.Sprintf("user%d@example.com", i))
		}},
		{"one-device", func(i int) map[string]any {
			names := []string{"fb_mobile_activate_app", "fb_mobile_content_view", "fb_mobile_add_to_cart", "fb_mobile_purchase"}
			return set(validEvent(), "event_name", names[i%len(names)])
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			evs := make([]any, n)
			for i := range evs {
				evs[i] = set(bc.event(i), "event_id", fmt.Sprintf("9f1c2d3e-0000-4000-8000-%012d", i))
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
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
			allocs := testing.AllocsPerRun(20, func() {
				batch, _ := p.Parse(testApp, req, testNow)
				batch.Release()
			})
			b.ReportMetric(allocs/n, "allocs/event")
		})
	}
}

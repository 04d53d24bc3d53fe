package audiencesync

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkSync200k syncs 200,000 pending changes (users joining cart_abandoner) into the Meta
// sandbox through the real Graph client and reports rows per request (target >= 9,500 on
// average), requests per 1,000,000 changes (target <= 101), and the heap the run allocated.
// Run it with -benchtime 1x: one iteration is a whole sync.
func BenchmarkSync200k(b *testing.B) {
	const n = 200_000
	for range b.N {
		b.StopTimer()
		h := newHarness(b)
		for i := 0; i < n; i++ {
			h.user(b, fmt.Sprintf("user-%06d", i), nil, []string{"cart_abandoner"}, 0)
		}
		s := h.syncer(b, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		reports, err := s.Run(context.Background())
		b.StopTimer()
		runtime.ReadMemStats(&after)
		if err != nil || reports[0].Synced != n {
			b.Fatalf("synced %d: %v", reports[0].Synced, err)
		}
		rows, requests := 0, 0
		for _, r := range h.sandbox.Requests() {
			if r.Rows > 0 {
				rows += r.Rows
				requests++
			}
		}
		b.ReportMetric(float64(rows)/float64(requests), "rows/request")
		b.ReportMetric(float64(requests)/n*1_000_000, "requests/1M-changes")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "MiB-allocated")
		b.StartTimer()
	}
}

// BenchmarkRefresh200k runs the full refresh of a 200,000-member audience (users in
// cart_abandoner, synced once beforehand) into the Meta sandbox and reports rows per replace
// request and the heap the refresh allocated. Run it with -benchtime 1x.
func BenchmarkRefresh200k(b *testing.B) {
	const n = 200_000
	for range b.N {
		b.StopTimer()
		h := newHarness(b)
		h.withRefresh(b, 24)
		for i := 0; i < n; i++ {
			h.user(b, fmt.Sprintf("user-%06d", i), nil, []string{"cart_abandoner"}, 0)
		}
		s := h.syncer(b, nil)
		run(b, s)
		h.now = h.now.Add(24 * time.Hour)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		reports := run(b, s)
		b.StopTimer()
		runtime.ReadMemStats(&after)
		refreshed := 0
		for _, a := range reports[0].Audiences {
			refreshed += a.RefreshRows
		}
		rows, requests := 0, 0
		for _, r := range h.sandbox.Requests() {
			if strings.HasSuffix(r.Path, "/usersreplace") {
				rows += r.Rows
				requests++
			}
		}
		if refreshed != n || rows != n {
			b.Fatalf("refreshed %d rows, sandbox got %d; want %d", refreshed, rows, n)
		}
		b.ReportMetric(float64(rows)/float64(requests), "rows/request")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "MiB-allocated")
		b.StartTimer()
	}
}

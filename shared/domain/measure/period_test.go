package measure

import (
	"strings"
	"testing"
	"time"
)

func TestPeriod(t *testing.T) {
	now := time.Date(2026, 3, 10, 23, 30, 0, 0, time.FixedZone("UTC+5", 5*3600)) // 18:30 UTC
	for _, c := range []struct {
		name, from, to   string
		wantFrom, wantTo string
		wantErr          string
	}{
		{name: "defaults: 28 days ending today (UTC)", wantFrom: "2026-02-11", wantTo: "2026-03-10"},
		{name: "to only", to: "2026-01-31", wantFrom: "2026-01-04", wantTo: "2026-01-31"},
		{name: "from only: to is today", from: "2026-03-01", wantFrom: "2026-03-01", wantTo: "2026-03-10"},
		{name: "one day", from: "2026-03-01", to: "2026-03-01", wantFrom: "2026-03-01", wantTo: "2026-03-01"},
		{name: "366 days", from: "2024-01-01", to: "2024-12-31", wantFrom: "2024-01-01", wantTo: "2024-12-31"},
		{name: "367 days", from: "2024-01-01", to: "2025-01-01", wantErr: "spans 367 days; at most 366"},
		{name: "reversed", from: "2026-03-02", to: "2026-03-01", wantErr: "from (2026-03-02) is after to (2026-03-01)"},
		{name: "from after the default to", from: "2026-04-01", wantErr: "is after to (2026-03-10)"},
		{name: "not a date", from: "yesterday", wantErr: `from: "yesterday" is not a day written YYYY-MM-DD`},
		{name: "no such day", to: "2026-02-30", wantErr: `to: "2026-02-30" is not a day written YYYY-MM-DD`},
		{name: "one-digit month", from: "2026-3-01", wantErr: "from:"},
		{name: "a time", to: "2026-03-01T00:00:00Z", wantErr: "to:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			from, to, err := Period(c.from, c.to, now)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || from != c.wantFrom || to != c.wantTo {
				t.Fatalf("Period = %s, %s, %v; want %s, %s", from, to, err, c.wantFrom, c.wantTo)
			}
		})
	}
}

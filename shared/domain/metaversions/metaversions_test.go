package metaversions

import (
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	cases := []struct {
		api      API
		v        string
		known    bool
		expiry   bool
		days     int
		expired  bool
		warn     bool
		contains string
	}{
		{Marketing, "v24.0", true, true, -27, true, true, "expired on 2026-11-10"},
		{Marketing, "v25.0", true, true, 78, false, false, "expires on 2027-02-23, in 78 days"},
		{Marketing, "v26.0", true, false, 0, false, false, "no published expiry"},
		{Marketing, "v27.0", true, false, 0, false, false, "no published expiry"},
		{Conversions, "v25.0", true, true, 600, false, false, "2028-07-29"},
		{Conversions, "v21.0", true, true, 45, false, true, "2027-01-21"},
		{Conversions, "v19.0", false, false, 0, false, false, "not in the version table"},
		{Marketing, "v99.0", false, false, 0, false, false, "expiry is unknown"},
	}
	for _, c := range cases {
		t.Run(string(c.api)+"/"+c.v, func(t *testing.T) {
			s := Check(c.api, c.v, now)
			if s.Known != c.known || s.HasExpiry != c.expiry || s.DaysLeft != c.days {
				t.Fatalf("Check = %+v, want known %v expiry %v days %d", s, c.known, c.expiry, c.days)
			}
			if s.Expired() != c.expired || s.Within(WarnDays) != c.warn {
				t.Errorf("Expired %v Within(60) %v, want %v %v", s.Expired(), s.Within(WarnDays), c.expired, c.warn)
			}
			if !strings.Contains(s.String(), c.contains) {
				t.Errorf("String() = %q, want it to contain %q", s.String(), c.contains)
			}
			if s.Known && s.Source == "" {
				t.Error("a known version names its source")
			}
		})
	}
}

func TestExpiryDayItself(t *testing.T) {
	// The last day still counts: 0 days left, not expired; the day after is expired.
	for _, c := range []struct {
		now     time.Time
		days    int
		expired bool
	}{
		{time.Date(2027, 2, 23, 23, 59, 0, 0, time.UTC), 0, false},
		{time.Date(2027, 2, 24, 0, 0, 0, 0, time.UTC), -1, true},
		{time.Date(2027, 2, 22, 0, 0, 1, 0, time.UTC), 1, false},
	} {
		d, ok := DaysLeft(Marketing, "v25.0", c.now)
		if !ok || d != c.days || Check(Marketing, "v25.0", c.now).Expired() != c.expired {
			t.Errorf("%s: DaysLeft = %d, %v; want %d (expired %v)", c.now, d, ok, c.days, c.expired)
		}
	}
}

func TestDefaultsAreInTheTableAndNotExpiring(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		api API
		v   string
	}{{Conversions, DefaultConversions}, {Marketing, DefaultMarketing}} {
		s := Check(c.api, c.v, now)
		if !s.Known || s.Within(WarnDays) {
			t.Errorf("default %s %s: %s", c.api, c.v, s)
		}
	}
}

func TestTableIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Table() {
		k := string(r.API) + r.Version
		if seen[k] || !Valid(r.Version) || r.Source == "" || (r.API != Marketing && r.API != Conversions) {
			t.Errorf("bad or duplicate row %+v", r)
		}
		seen[k] = true
	}
}

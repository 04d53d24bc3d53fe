package statetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// RunSpend runs the ports.SpendStore cases, each on a fresh, empty store from newStore.
func RunSpend(t *testing.T, newStore func(t *testing.T) ports.SpendStore) {
	for _, c := range spendCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var spendCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s ports.SpendStore)
}{
	{"spend round trip every field", spendRoundTrip},
	{"a pull of the same day and ad set replaces the row", spendReplaced},
	{"spend range is inclusive, in (date, ad set) order, per app", spendRange},
	{"60 rows in one call, a row named twice written once", spendMany},
	{"invalid spend input is rejected", spendInvalid},
}

func putSpend(ctx context.Context, t *testing.T, s ports.SpendStore, rows ...ports.SpendDay) {
	t.Helper()
	if err := s.PutSpend(ctx, rows); err != nil {
		t.Fatalf("PutSpend(%d rows) = %v", len(rows), err)
	}
}

func spendOf(ctx context.Context, t *testing.T, s ports.SpendStore, app, from, to string) []ports.SpendDay {
	t.Helper()
	rows, err := s.Spend(ctx, app, from, to)
	if err != nil {
		t.Fatalf("Spend(%s, %s, %s) = %v", app, from, to, err)
	}
	return rows
}

func spendRoundTrip(ctx context.Context, t *testing.T, s ports.SpendStore) {
	full := ports.SpendDay{App: app, Date: "2026-03-10", AdSetID: "23850000000000001", AdSet: "Win back – carts 🛒",
		Audiences: []string{"vip", "cart_abandoner", "vip"}, Contaminated: []string{"vip"},
		SpendMicros: 5_339_500_000, Currency: "EUR", Impressions: 120_000, Reach: 40_000, Clicks: 1_234, PulledAt: 1_773_100_000}
	bare := ports.SpendDay{App: app, Date: "2026-03-10", AdSetID: "23850000000000002", Audiences: []string{}, Contaminated: []string{}}
	putSpend(ctx, t, s, full, bare)
	got := spendOf(ctx, t, s, app, "2026-03-10", "2026-03-10")
	wantFull := full
	wantFull.Audiences = []string{"cart_abandoner", "vip"} // sorted, once each
	wantBare := bare
	wantBare.Audiences, wantBare.Contaminated = nil, nil // empty lists read back as nil
	if want := []ports.SpendDay{wantFull, wantBare}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Spend =\n %+v\nwant\n %+v", got, want)
	}
}

func spendReplaced(ctx context.Context, t *testing.T, s ports.SpendStore) {
	first := ports.SpendDay{App: app, Date: "2026-03-09", AdSetID: "7", Audiences: []string{"vip"}, Contaminated: []string{"vip"},
		SpendMicros: 10_000_000, Currency: "USD", Impressions: 900, Reach: 300, Clicks: 12, PulledAt: 100}
	putSpend(ctx, t, s, first)
	// Meta restated the day: fewer impressions, no clicks, and the later pull no longer found
	// the contamination. Every attribute is the new row's, none of the old survives.
	restated := ports.SpendDay{App: app, Date: "2026-03-09", AdSetID: "7", Audiences: []string{"vip"},
		SpendMicros: 8_500_000, Currency: "USD", Impressions: 850, Reach: 290, PulledAt: 200}
	putSpend(ctx, t, s, restated)
	got := spendOf(ctx, t, s, app, "2026-03-01", "2026-03-31")
	if want := []ports.SpendDay{restated}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the restated pull Spend =\n %+v\nwant\n %+v", got, want)
	}
}

func spendRange(ctx context.Context, t *testing.T, s ports.SpendStore) {
	row := func(a, date, adset string) ports.SpendDay {
		return ports.SpendDay{App: a, Date: date, AdSetID: adset, Audiences: []string{"vip"}, SpendMicros: 1}
	}
	putSpend(ctx, t, s,
		row(app, "2026-03-11", "2"), row(app, "2026-03-10", "9"), row(app, "2026-03-10", "10"),
		row(app, "2026-03-09", "1"), row(app, "2026-03-12", "1"), row("shop2", "2026-03-10", "3"))
	got := spendOf(ctx, t, s, app, "2026-03-10", "2026-03-11")
	var keys []string
	for _, r := range got {
		if r.App != app {
			t.Errorf("row of app %q in %s's spend", r.App, app)
		}
		keys = append(keys, r.Date+"#"+r.AdSetID)
	}
	// Both bounds included; ad set ids in string order within a date.
	if want := []string{"2026-03-10#10", "2026-03-10#9", "2026-03-11#2"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("Spend(2026-03-10..11) = %v, want %v", keys, want)
	}
	if got := spendOf(ctx, t, s, app, "2026-04-01", "2026-04-30"); len(got) != 0 {
		t.Errorf("Spend of an empty range = %+v", got)
	}
	if got := spendOf(ctx, t, s, "nobody", "2026-03-01", "2026-03-31"); len(got) != 0 {
		t.Errorf("Spend of an unknown app = %+v", got)
	}
}

func spendMany(ctx context.Context, t *testing.T, s ports.SpendStore) {
	var rows []ports.SpendDay
	for i := range 60 {
		rows = append(rows, ports.SpendDay{App: app, Date: fmt.Sprintf("2026-02-%02d", 1+i%28), AdSetID: fmt.Sprintf("%03d", i),
			Audiences: []string{"vip"}, SpendMicros: int64(i + 1)})
	}
	again := rows[5]
	again.SpendMicros = 999
	rows = append(rows, again) // the later copy wins
	putSpend(ctx, t, s, rows...)
	got := spendOf(ctx, t, s, app, "2026-02-01", "2026-02-28")
	if len(got) != 60 {
		t.Fatalf("Spend returned %d rows, want 60", len(got))
	}
	for _, r := range got {
		if r.AdSetID == "005" && r.SpendMicros != 999 {
			t.Errorf("ad set 005 spend %d, want the last copy's 999", r.SpendMicros)
		}
	}
}

func spendInvalid(ctx context.Context, t *testing.T, s ports.SpendStore) {
	ok := ports.SpendDay{App: app, Date: "2026-03-10", AdSetID: "1"}
	bad := map[string]func(r *ports.SpendDay){
		"empty app":        func(r *ports.SpendDay) { r.App = "" },
		"app with #":       func(r *ports.SpendDay) { r.App = "a#b" },
		"date not a date":  func(r *ports.SpendDay) { r.Date = "2026-02-30" },
		"date format":      func(r *ports.SpendDay) { r.Date = "20260310" },
		"empty ad set":     func(r *ports.SpendDay) { r.AdSetID = "" },
		"ad set with #":    func(r *ports.SpendDay) { r.AdSetID = "1#2" },
		"empty segment":    func(r *ports.SpendDay) { r.Audiences = []string{""} },
		"negative spend":   func(r *ports.SpendDay) { r.SpendMicros = -1 },
		"negative clicks":  func(r *ports.SpendDay) { r.Clicks = -1 },
		"negative pull at": func(r *ports.SpendDay) { r.PulledAt = -1 },
	}
	for name, mutate := range bad {
		r := ok
		mutate(&r)
		if err := s.PutSpend(ctx, []ports.SpendDay{ok, r}); !errors.Is(err, storecheck.ErrInvalid) {
			t.Errorf("PutSpend(%s) = %v, want ErrInvalid", name, err)
		}
	}
	// A call with a bad row writes none of its rows.
	if got := spendOf(ctx, t, s, app, "2026-01-01", "2026-12-31"); len(got) != 0 {
		t.Errorf("rows written by rejected calls: %+v", got)
	}
	for _, q := range [][3]string{{"", "2026-01-01", "2026-01-02"}, {app, "2026-1-1", "2026-01-02"}, {app, "2026-01-02", "2026-01-01"}} {
		if _, err := s.Spend(ctx, q[0], q[1], q[2]); !errors.Is(err, storecheck.ErrInvalid) {
			t.Errorf("Spend(%q, %q, %q) = %v, want ErrInvalid", q[0], q[1], q[2], err)
		}
	}
}

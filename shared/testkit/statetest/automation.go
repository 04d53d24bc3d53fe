package statetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// RunAutomation runs the ports.AutomationStore cases, each on a fresh, empty store from
// newStore.
func RunAutomation(t *testing.T, newStore func(t *testing.T) ports.AutomationStore) {
	for _, c := range automationCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var automationCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s ports.AutomationStore)
}{
	{"action round trip every field", actionRoundTrip},
	{"action versions are optimistic locks", actionVersions},
	{"actions range is by day, inclusive, in id order, per app", actionRange},
	{"invalid action input is rejected", actionInvalid},
	{"KPI days round trip, replace, range per audience", kpiDays},
	{"invalid KPI input is rejected", kpiInvalid},
}

// action returns a version-1 action of app decided on day; id is <day>-<suffix>.
func action(app, day, suffix string) ports.AutomationAction {
	return ports.AutomationAction{App: app, ID: day + "-" + suffix, Rule: "pause-small", Segment: "cart", AdAccountID: "act_1",
		AdSetID: "238500001", Action: ports.ActionPause, Status: ports.ActionProposed, Day: day, Version: 1,
		Before: ports.AdSetSettings{Status: ports.AdSetActive, DailyBudget: 1000},
		After:  ports.AdSetSettings{Status: ports.AdSetPaused, DailyBudget: 1000}}
}

func putAction(ctx context.Context, t *testing.T, s ports.AutomationStore, a ports.AutomationAction) {
	t.Helper()
	if err := s.PutAction(ctx, a); err != nil {
		t.Fatalf("PutAction(%s v%d) = %v", a.ID, a.Version, err)
	}
}

func actionRoundTrip(ctx context.Context, t *testing.T, s ports.AutomationStore) {
	a := ports.AutomationAction{App: app, ID: "2026-03-10-0123456789abcdef", Rule: "trim-costly", Segment: "lapsed_7d",
		AdAccountID: "act_123", AdSetID: "23850000000000001", AdSetName: "Win back – carts 🛒", Action: ports.ActionScale,
		Status: ports.ActionRefused, Before: ports.AdSetSettings{Status: ports.AdSetActive, DailyBudget: 10_000},
		After: ports.AdSetSettings{Status: ports.AdSetActive, DailyBudget: 8_000}, Reason: "cost above 4",
		Refusal: "Meta refused: (#100) code 17 subcode 1885172", Day: "2026-03-10", CreatedAt: 1_773_100_000, UpdatedAt: 1_773_100_060,
		History: []ports.ActionEvent{{At: 1_773_100_000, Status: ports.ActionProposed, By: "rule:trim-costly", Note: "n"},
			{At: 1_773_100_060, Status: ports.ActionRefused, By: "operator"}},
		Version: 1}
	putAction(ctx, t, s, a)
	got, ok, err := s.Action(ctx, app, a.ID)
	if err != nil || !ok || !reflect.DeepEqual(got, a) {
		t.Fatalf("Action = %+v, %v, %v\nwant %+v", got, ok, err, a)
	}
	if _, ok, err := s.Action(ctx, app, "2026-03-10-fedcba9876543210"); ok || err != nil {
		t.Errorf("Action(unknown) = %v, %v; want not found", ok, err)
	}
	if _, ok, err := s.Action(ctx, "shop2", a.ID); ok || err != nil {
		t.Errorf("Action of another app = %v, %v; want not found", ok, err)
	}
	// Changing the returned history does not change the stored one.
	got.History[0].Status = "changed"
	if again, _, _ := s.Action(ctx, app, a.ID); again.History[0].Status != ports.ActionProposed {
		t.Errorf("the stored history shares memory with a read")
	}
}

func actionVersions(ctx context.Context, t *testing.T, s ports.AutomationStore) {
	a := action(app, "2026-03-10", "00000000000000a1")
	putAction(ctx, t, s, a)
	if err := s.PutAction(ctx, a); !errors.Is(err, ports.ErrVersionConflict) {
		t.Fatalf("creating an existing action = %v, want ErrVersionConflict", err)
	}
	b := a
	b.Status, b.Version = ports.ActionApplied, 2
	putAction(ctx, t, s, b)
	// A concurrent writer that read version 1 loses.
	c := a
	c.Status, c.Version = ports.ActionRefused, 2
	if err := s.PutAction(ctx, c); !errors.Is(err, ports.ErrVersionConflict) {
		t.Fatalf("a stale write = %v, want ErrVersionConflict", err)
	}
	skip := a
	skip.Version = 4
	if err := s.PutAction(ctx, skip); !errors.Is(err, ports.ErrVersionConflict) {
		t.Fatalf("a write skipping a version = %v, want ErrVersionConflict", err)
	}
	missing := action(app, "2026-03-10", "00000000000000b2")
	missing.Version = 2
	if err := s.PutAction(ctx, missing); !errors.Is(err, ports.ErrVersionConflict) {
		t.Fatalf("updating an absent action = %v, want ErrVersionConflict", err)
	}
	got, _, _ := s.Action(ctx, app, a.ID)
	if got.Status != ports.ActionApplied || got.Version != 2 {
		t.Errorf("stored %s v%d, want applied v2", got.Status, got.Version)
	}
}

func actionRange(ctx context.Context, t *testing.T, s ports.AutomationStore) {
	for _, a := range []ports.AutomationAction{
		action(app, "2026-03-11", "0000000000000002"), action(app, "2026-03-10", "f000000000000000"),
		action(app, "2026-03-10", "0000000000000001"), action(app, "2026-03-09", "0000000000000003"),
		action(app, "2026-03-12", "0000000000000004"), action("shop2", "2026-03-10", "0000000000000005"),
	} {
		putAction(ctx, t, s, a)
	}
	got, err := s.Actions(ctx, app, "2026-03-10", "2026-03-11")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range got {
		ids = append(ids, a.ID)
	}
	want := []string{"2026-03-10-0000000000000001", "2026-03-10-f000000000000000", "2026-03-11-0000000000000002"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("Actions(2026-03-10..11) = %v, want %v", ids, want)
	}
	if got, err := s.Actions(ctx, app, "2026-04-01", "2026-04-30"); err != nil || len(got) != 0 {
		t.Errorf("Actions of an empty range = %+v, %v", got, err)
	}
}

func actionInvalid(ctx context.Context, t *testing.T, s ports.AutomationStore) {
	ok := action(app, "2026-03-10", "0000000000000001")
	bad := map[string]func(a *ports.AutomationAction){
		"empty app":              func(a *ports.AutomationAction) { a.App = "" },
		"app with #":             func(a *ports.AutomationAction) { a.App = "a#b" },
		"empty id":               func(a *ports.AutomationAction) { a.ID = "" },
		"id with #":              func(a *ports.AutomationAction) { a.ID = "2026-03-10-#1" },
		"id not starting by day": func(a *ports.AutomationAction) { a.ID = "2026-03-11-0000000000000001" },
		"day not a date":         func(a *ports.AutomationAction) { a.Day, a.ID = "2026-02-30", "2026-02-30-1" },
		"unknown status":         func(a *ports.AutomationAction) { a.Status = "done" },
		"version 0":              func(a *ports.AutomationAction) { a.Version = 0 },
	}
	for name, mutate := range bad {
		a := ok
		mutate(&a)
		if err := s.PutAction(ctx, a); !errors.Is(err, storecheck.ErrInvalid) {
			t.Errorf("PutAction(%s) = %v, want ErrInvalid", name, err)
		}
	}
	if got, _ := s.Actions(ctx, app, "2026-01-01", "2026-12-31"); len(got) != 0 {
		t.Errorf("actions written by rejected calls: %+v", got)
	}
	for _, q := range [][2]string{{"", "x"}, {app, ""}, {app, "a#b"}} {
		if _, _, err := s.Action(ctx, q[0], q[1]); !errors.Is(err, storecheck.ErrInvalid) {
			t.Errorf("Action(%q, %q) = %v, want ErrInvalid", q[0], q[1], err)
		}
	}
	if _, err := s.Actions(ctx, app, "2026-01-02", "2026-01-01"); !errors.Is(err, storecheck.ErrInvalid) {
		t.Errorf("Actions(from after to) = %v, want ErrInvalid", err)
	}
}

func kpiDays(ctx context.Context, t *testing.T, s ports.AutomationStore) {
	cost := func(v float64) *float64 { return &v }
	days := []ports.KPIDay{
		{App: app, Segment: "cart", Date: "2026-03-09", CostPerIncremental: cost(4.125), Significant: true, Members: 1234, Currency: "EUR"},
		{App: app, Segment: "cart", Date: "2026-03-10"}, // no cost, not significant, nothing known
		{App: app, Segment: "cart", Date: "2026-03-08", CostPerIncremental: cost(0.1), Members: 1},
		{App: app, Segment: "vip", Date: "2026-03-09", CostPerIncremental: cost(9)},
		{App: "shop2", Segment: "cart", Date: "2026-03-09", CostPerIncremental: cost(9)},
	}
	if err := s.PutKPIs(ctx, days); err != nil {
		t.Fatal(err)
	}
	got, err := s.KPIs(ctx, app, "cart", "2026-03-09", "2026-03-10")
	if err != nil {
		t.Fatal(err)
	}
	if want := []ports.KPIDay{days[0], days[1]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("KPIs(cart, 09..10) =\n %+v\nwant\n %+v", got, want)
	}
	// A later snapshot of the same day replaces it whole.
	again := ports.KPIDay{App: app, Segment: "cart", Date: "2026-03-09", Members: 1300, Currency: "EUR"}
	if err := s.PutKPIs(ctx, []ports.KPIDay{again}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.KPIs(ctx, app, "cart", "2026-03-01", "2026-03-31")
	if want := []ports.KPIDay{days[2], again, days[1]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the replacement KPIs =\n %+v\nwant\n %+v", got, want)
	}
	if got, _ := s.KPIs(ctx, app, "nobody", "2026-03-01", "2026-03-31"); len(got) != 0 {
		t.Errorf("KPIs of an unknown segment = %+v", got)
	}
}

func kpiInvalid(ctx context.Context, t *testing.T, s ports.AutomationStore) {
	nan := 0.0
	nan /= nan
	for name, k := range map[string]ports.KPIDay{
		"empty app":        {Segment: "cart", Date: "2026-03-10"},
		"segment with #":   {App: app, Segment: "a#b", Date: "2026-03-10"},
		"date":             {App: app, Segment: "cart", Date: "2026-3-10"},
		"negative members": {App: app, Segment: "cart", Date: "2026-03-10", Members: -1},
		"NaN cost":         {App: app, Segment: "cart", Date: "2026-03-10", CostPerIncremental: &nan},
	} {
		ok := ports.KPIDay{App: app, Segment: "cart", Date: "2026-03-11"}
		if err := s.PutKPIs(ctx, []ports.KPIDay{ok, k}); !errors.Is(err, storecheck.ErrInvalid) {
			t.Errorf("PutKPIs(%s) = %v, want ErrInvalid", name, err)
		}
	}
	if got, _ := s.KPIs(ctx, app, "cart", "2026-01-01", "2026-12-31"); len(got) != 0 {
		t.Errorf("KPI days written by rejected calls: %+v", got)
	}
	if _, err := s.KPIs(ctx, app, "", "2026-01-01", "2026-01-02"); !errors.Is(err, storecheck.ErrInvalid) {
		t.Errorf("KPIs(empty segment) = %v, want ErrInvalid", err)
	}
}

package report

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/ports"
)

// fakeOutcomes serves cohorts by segment and records the reads.
type fakeOutcomes struct {
	bySegment map[string][]ports.Outcome
	calls     []string
	err       error
}

func (f *fakeOutcomes) AddOutcomes(context.Context, []ports.Outcome) error {
	return errors.New("a report never writes")
}

func (f *fakeOutcomes) Outcomes(_ context.Context, app, segment string, fromDay, toDay int64) ([]ports.Outcome, error) {
	f.calls = append(f.calls, app+"/"+segment+" "+measure.DayString(fromDay)+".."+measure.DayString(toDay))
	return f.bySegment[segment], f.err
}

// fakeSpend serves rows and records the reads.
type fakeSpend struct {
	rows  []ports.SpendDay
	calls []string
	err   error
}

func (f *fakeSpend) PutSpend(context.Context, []ports.SpendDay) error {
	return errors.New("a report never writes")
}

func (f *fakeSpend) Spend(_ context.Context, app, from, to string) ([]ports.SpendDay, error) {
	f.calls = append(f.calls, app+" "+from+".."+to)
	return f.rows, f.err
}

// fakeSync has audience states by key; any other method of the port panics (nil embedded
// interface): a report only reads states.
type fakeSync struct {
	ports.AudienceSyncStore
	states map[string]ports.AudienceSyncState
	reads  []string
	err    error
}

func (f *fakeSync) GetAudienceState(_ context.Context, app, segment string) (ports.AudienceSyncState, bool, error) {
	f.reads = append(f.reads, app+"/"+segment)
	s, ok := f.states[app+"/"+segment]
	return s, ok, f.err
}

func frac(f float64) *float64 { return &f }

func config() *appconfig.Config {
	return &appconfig.Config{Apps: []appconfig.App{
		{ID: "other"},
		{
			ID: "shop", ReportingCurrency: "USD",
			Measurement: appconfig.Measurement{MinSample: 50},
			Audiences: []appconfig.Audience{
				{Segment: "cart_abandoner", Name: "Cart abandoners", AudienceID: "111"},                           // holdout id from the sync
				{Segment: "lapsed_7d", Name: "Lapsed", Create: true, HoldoutFraction: frac(0)},                    // no holdout
				{Segment: "vip", Name: "VIP", Create: true, HoldoutFraction: frac(0.2), HoldoutAudienceID: "333"}, // configured holdout id
				{Segment: "new_payer", Name: "New payers", Create: true, HoldoutFraction: frac(0.25)},             // not synced yet
			},
		},
	}}
}

type fixture struct {
	src      Sources
	outcomes *fakeOutcomes
	spend    *fakeSpend
	sync     *fakeSync
}

func newFixture(t *testing.T) fixture {
	day := func(date string) int64 {
		d, err := measure.ParseDate("test", date)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	cohort := func(segment, date string, arm holdout.Arm, users, re7 int64) ports.Outcome {
		return ports.Outcome{
			OutcomeKey:    ports.OutcomeKey{App: "shop", Segment: segment, JoinDay: day(date), Arm: arm},
			OutcomeCounts: ports.OutcomeCounts{Users: users, Reengaged1d: re7, Reengaged7d: re7, Reengaged28d: re7, RevenueMicros: re7 * 1_000_000},
		}
	}
	f := fixture{
		outcomes: &fakeOutcomes{bySegment: map[string][]ports.Outcome{
			"cart_abandoner": {
				cohort("cart_abandoner", "2026-11-01", holdout.Treated, 540, 189),
				cohort("cart_abandoner", "2026-11-01", holdout.Holdout, 60, 15),
			},
			"lapsed_7d": {cohort("lapsed_7d", "2026-11-02", holdout.Treated, 80, 20)},
		}},
		spend: &fakeSpend{rows: []ports.SpendDay{
			{App: "shop", Date: "2026-11-01", AdSetID: "as1", Audiences: []string{"cart_abandoner"}, SpendMicros: 54_000_000, Currency: "USD"},
		}},
		sync: &fakeSync{states: map[string]ports.AudienceSyncState{
			"shop/cart_abandoner":         {AudienceID: "999"}, // the configured id wins
			"shop/cart_abandoner:holdout": {AudienceID: "112"},
			"shop/lapsed_7d":              {AudienceID: "221"},
			"shop/lapsed_7d:holdout":      {AudienceID: "222"}, // a past holdout: not reported
			"shop/vip":                    {AudienceID: "331"},
			"shop/vip:holdout":            {AudienceID: "999"}, // the configured id wins
		}},
	}
	f.src = Sources{Config: config(), Outcomes: f.outcomes, Spend: f.spend, Sync: f.sync}
	return f
}

var now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestAudiences(t *testing.T) {
	f := newFixture(t)
	rep, err := Audiences(context.Background(), f.src, "shop", "2026-11-01", "2026-11-03", now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.App != "shop" || rep.From != "2026-11-01" || rep.To != "2026-11-03" || rep.GeneratedAt != "2026-12-07T10:00:00Z" {
		t.Errorf("header %+v", rep)
	}
	type ids struct {
		segment, audience, holdout string
		fraction                   float64
	}
	var got []ids
	for _, a := range rep.Audiences {
		got = append(got, ids{a.Segment, a.AudienceID, a.HoldoutAudienceID, a.HoldoutFraction})
	}
	want := []ids{
		{"cart_abandoner", "111", "112", 0.1},
		{"lapsed_7d", "221", "", 0},
		{"vip", "331", "333", 0.2},
		{"new_payer", "", "", 0.25},
	}
	if !slices.Equal(got, want) {
		t.Errorf("audiences\n got %+v\nwant %+v", got, want)
	}
	if want := []string{"shop/cart_abandoner:holdout", "shop/lapsed_7d", "shop/vip", "shop/new_payer", "shop/new_payer:holdout"}; !slices.Equal(f.sync.reads, want) {
		t.Errorf("sync reads %q, want %q (configured ids are not looked up)", f.sync.reads, want)
	}
	if want := []string{
		"shop/cart_abandoner 2026-11-01..2026-11-03", "shop/lapsed_7d 2026-11-01..2026-11-03",
		"shop/vip 2026-11-01..2026-11-03", "shop/new_payer 2026-11-01..2026-11-03",
	}; !slices.Equal(f.outcomes.calls, want) {
		t.Errorf("outcome reads %q, want %q", f.outcomes.calls, want)
	}
	if want := []string{"shop 2026-11-01..2026-11-03"}; !slices.Equal(f.spend.calls, want) {
		t.Errorf("spend reads %q, want %q", f.spend.calls, want)
	}

	// The app's min_sample (50) and reporting currency reach Build: 60 holdout users are
	// enough, and revenue in USD is compared with spend in USD.
	a := rep.Audiences[0]
	if a.Treated.Users != 540 || a.Holdout.Users != 60 || a.Lift7d.Difference == nil || a.Spend == nil || *a.Spend != 54 || a.IncrementalROAS == nil {
		t.Fatalf("cart_abandoner %+v", a)
	}
	if d := *a.Lift7d.Difference; d < 0.0999 || d > 0.1001 {
		t.Errorf("lift_7d %v, want 0.35 - 0.25", d)
	}
	if n := rep.Audiences[1].Lift7d.Note; n != "not enough data: the audience has no holdout (holdout_fraction is 0)" {
		t.Errorf("lapsed_7d lift note %q", n)
	}
	if n := rep.Audiences[2].Lift7d.Note; !strings.Contains(n, "at least 50 per arm") {
		t.Errorf("vip lift note %q, want the app's min_sample", n)
	}
}

func TestAudiencesDefaultMinSample(t *testing.T) {
	f := newFixture(t)
	f.src.Config.Apps[1].Measurement = appconfig.Measurement{}
	rep, err := Audiences(context.Background(), f.src, "shop", "2026-11-01", "2026-11-03", now)
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Audiences[0].Lift7d.Note; n != "not enough data: holdout has 60 users, at least 100 per arm are needed" {
		t.Errorf("note %q, want the default minimum sample of 100", n)
	}
}

func TestAudiencesErrors(t *testing.T) {
	storeErr := errors.New("throttled")
	for _, tc := range []struct {
		name     string
		app      string
		from, to string
		change   func(fixture)
		is       error
		contains string
	}{
		{"unknown app", "nope", "2026-11-01", "2026-11-03", nil, ErrUnknownApp, `unknown app "nope"`},
		{"bad period", "shop", "2026-11-04", "2026-11-03", nil, ErrPeriod, "from 2026-11-04 is after to 2026-11-03"},
		{"bad date", "shop", "yesterday", "2026-11-03", nil, measure.ErrPeriod, `from "yesterday" is not a date`},
		{"sync", "shop", "2026-11-01", "2026-11-03", func(f fixture) { f.sync.err = storeErr }, storeErr, "audience state of shop/cart_abandoner:holdout"},
		{"outcomes", "shop", "2026-11-01", "2026-11-03", func(f fixture) { f.outcomes.err = storeErr }, storeErr, "outcomes of shop/cart_abandoner"},
		{"spend", "shop", "2026-11-01", "2026-11-03", func(f fixture) { f.spend.err = storeErr }, storeErr, "spend of shop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.change != nil {
				tc.change(f)
			}
			_, err := Audiences(context.Background(), f.src, tc.app, tc.from, tc.to, now)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %v, want %v containing %q", err, tc.is, tc.contains)
			}
		})
	}
	if _, err := Audiences(context.Background(), Sources{Config: config()}, "shop", "2026-11-01", "2026-11-03", now); err == nil {
		t.Error("a report without stores was made")
	}
}

func TestPeriod(t *testing.T) {
	now := time.Date(2026, 12, 7, 23, 30, 0, 0, time.FixedZone("PST", -8*3600)) // 2026-12-08 07:30 UTC
	for _, tc := range []struct {
		from, to         string
		wantFrom, wantTo string
		err              string
	}{
		{"", "", "2026-11-10", "2026-12-07", ""}, // 28 days up to yesterday (UTC)
		{"", "2026-11-30", "2026-11-03", "2026-11-30", ""},
		{"2026-11-01", "", "2026-11-01", "2026-12-07", ""},
		{"2026-12-08", "", "2026-12-08", "2026-12-08", ""}, // today, asked for
		{"2026-12-20", "", "2026-12-20", "2026-12-20", ""},
		{"2026-11-01", "2026-11-02", "2026-11-01", "2026-11-02", ""},
		{"2025-01-01", "", "", "", "2025-01-01 to 2026-12-07 is 706 days, at most 366"},
		{"2026-11-31", "", "", "", `from "2026-11-31" is not a date (YYYY-MM-DD)`},
		{"", "12/01/2026", "", "", `to "12/01/2026" is not a date (YYYY-MM-DD)`},
		{"2026-11-03", "2026-11-02", "", "", "from 2026-11-03 is after to 2026-11-02"},
	} {
		from, to, err := Period(tc.from, tc.to, now)
		if tc.err != "" {
			if !errors.Is(err, ErrPeriod) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Period(%q, %q): error %v, want %q", tc.from, tc.to, err, tc.err)
			}
			continue
		}
		if err != nil || from != tc.wantFrom || to != tc.wantTo {
			t.Errorf("Period(%q, %q) = %s..%s, %v; want %s..%s", tc.from, tc.to, from, to, err, tc.wantFrom, tc.wantTo)
		}
	}
}

package measure

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/ports"
)

func day(t *testing.T, date string) int64 {
	t.Helper()
	d, err := time.Parse(DateLayout, date)
	if err != nil {
		t.Fatal(err)
	}
	return DayOf(d)
}

func cohort(t *testing.T, segment, date string, arm holdout.Arm, c ports.OutcomeCounts) ports.Outcome {
	return ports.Outcome{OutcomeKey: ports.OutcomeKey{App: "shop", Segment: segment, JoinDay: day(t, date), Arm: arm}, OutcomeCounts: c}
}

func spendRow(date, adset string, micros int64, currency string, audiences []string, contaminated ...string) ports.SpendDay {
	return ports.SpendDay{App: "shop", Date: date, AdSetID: adset, Audiences: audiences, Contaminated: contaminated, SpendMicros: micros, Currency: currency}
}

func near(got *float64, want float64) bool { return got != nil && math.Abs(*got-want) < 1e-9 }

// fixture: cart_abandoner has 1,800 treated users of whom 630 came back within 7 days and 200
// holdout users of whom 50 did (the 35% against 25% case of TestCompareProportionsKnownValues),
// cohorts outside the period that must not count, its own spend of 360 USD, a group ad set
// shared with lapsed_7d and a contaminated day; lapsed_7d is too small to compare.
func fixture(t *testing.T) Input {
	ca, lp := "cart_abandoner", "lapsed_7d"
	return Input{
		App: "shop", From: "2026-11-01", To: "2026-11-03",
		AsOf:              time.Date(2026, 12, 15, 9, 30, 0, 0, time.FixedZone("CET", 3600)),
		ReportingCurrency: "USD",
		MinSample:         100,
		Audiences: []AudienceInput{
			{Segment: ca, AudienceID: "111", HoldoutAudienceID: "112", HoldoutFraction: 0.1, Outcomes: []ports.Outcome{
				cohort(t, ca, "2026-11-02", holdout.Holdout, ports.OutcomeCounts{Users: 100, Reengaged1d: 10, Reengaged7d: 25, Reengaged28d: 30, Purchasers28d: 2, RevenueMicros: 100_000_000}),
				cohort(t, ca, "2026-11-01", holdout.Treated, ports.OutcomeCounts{Users: 1000, Reengaged1d: 200, Reengaged7d: 400, Reengaged28d: 500, Purchasers28d: 50, RevenueMicros: 5_000_000_000}),
				cohort(t, ca, "2026-10-31", holdout.Treated, ports.OutcomeCounts{Users: 999, Reengaged7d: 999}),
				cohort(t, ca, "2026-11-01", holdout.Holdout, ports.OutcomeCounts{Users: 100, Reengaged1d: 15, Reengaged7d: 25, Reengaged28d: 35, Purchasers28d: 3, RevenueMicros: 200_000_000}),
				cohort(t, ca, "2026-11-02", holdout.Treated, ports.OutcomeCounts{Users: 800, Reengaged1d: 150, Reengaged7d: 230, Reengaged28d: 300, Purchasers28d: 40, RevenueMicros: 3_000_000_000}),
				cohort(t, ca, "2026-11-04", holdout.Holdout, ports.OutcomeCounts{Users: 999}),
			}},
			{Segment: lp, AudienceID: "221", HoldoutFraction: 0.2, Outcomes: []ports.Outcome{
				cohort(t, lp, "2026-11-03", holdout.Treated, ports.OutcomeCounts{Users: 50, Reengaged7d: 20}),
				cohort(t, lp, "2026-11-03", holdout.Holdout, ports.OutcomeCounts{Users: 10, Reengaged7d: 3}),
			}},
		},
		Spend: []ports.SpendDay{
			spendRow("2026-10-31", "as1", 999_000_000, "USD", []string{ca}),
			spendRow("2026-11-01", "as1", 300_500_000, "USD", []string{ca}),
			spendRow("2026-11-02", "as3", 100_000_000, "USD", []string{ca, lp}, ca),
			spendRow("2026-11-03", "as1", 59_500_000, "USD", []string{ca}),
			spendRow("2026-11-03", "as4", 50_000_000, "USD", []string{lp, ca}),
			spendRow("2026-11-03", "as9", 7_000_000, "USD", nil),
			spendRow("2026-11-04", "as1", 999_000_000, "USD", []string{ca}, ca),
		},
	}
}

func TestBuildAudience(t *testing.T) {
	rep, err := Build(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.App != "shop" || rep.From != "2026-11-01" || rep.To != "2026-11-03" || rep.GeneratedAt != "2026-12-15T08:30:00Z" {
		t.Errorf("header %q %q %q %q", rep.App, rep.From, rep.To, rep.GeneratedAt)
	}
	if len(rep.Audiences) != 2 || rep.Audiences[0].Segment != "cart_abandoner" || rep.Audiences[1].Segment != "lapsed_7d" {
		t.Fatalf("audiences not in input order: %+v", rep.Audiences)
	}
	a := rep.Audiences[0]
	if a.App != "shop" || a.AudienceID != "111" || a.HoldoutAudienceID != "112" || a.HoldoutFraction != 0.1 {
		t.Errorf("ids %+v", a)
	}
	tr, ho := a.Treated, a.Holdout
	if tr.Users != 1800 || tr.Reengaged1d != 350 || tr.Reengaged7d != 630 || tr.Reengaged28d != 800 || tr.Purchasers28d != 90 || tr.Revenue28d != 8000 {
		t.Errorf("treated totals %+v", tr)
	}
	if ho.Users != 200 || ho.Reengaged1d != 25 || ho.Reengaged7d != 50 || ho.Reengaged28d != 65 || ho.Purchasers28d != 5 || ho.Revenue28d != 300 {
		t.Errorf("holdout totals %+v", ho)
	}
	if !near(tr.Retention1d, 350.0/1800) || !near(tr.Retention7d, 0.35) || !near(tr.Retention28d, 800.0/1800) || !near(tr.ValuePerUser28d, 8000.0/1800) {
		t.Errorf("treated rates %v %v %v %v", *tr.Retention1d, *tr.Retention7d, *tr.Retention28d, *tr.ValuePerUser28d)
	}
	if !near(ho.Retention7d, 0.25) || !near(ho.ValuePerUser28d, 1.5) || !near(a.HoldoutShare, 0.1) {
		t.Errorf("holdout rates %v %v, share %v", *ho.Retention7d, *ho.ValuePerUser28d, *a.HoldoutShare)
	}
	// lift_7d: the known values of 630/1800 against 50/200.
	l := a.Lift7d
	if !near(l.Difference, 0.1) || !near(l.CILow, 0.036071247810858256) || !near(l.CIHigh, 0.1639287521891417) || !near(l.PValue, 0.004622806742439867) || !l.Significant || l.Note != "" {
		t.Errorf("lift_7d %+v", l)
	}
	if a.Lift1d.Difference == nil || !near(a.Lift1d.Difference, 350.0/1800-25.0/200) || a.Lift28d.Difference == nil || !near(a.Lift28d.Difference, 800.0/1800-65.0/200) {
		t.Errorf("lift_1d %+v lift_28d %+v", a.Lift1d, a.Lift28d)
	}
	if !near(a.IncrementalReengaged7d, 180) || !near(a.IncrementalRevenue28d, 8000-1.5*1800) {
		t.Errorf("incremental %v %v", *a.IncrementalReengaged7d, *a.IncrementalRevenue28d)
	}
	// Spend: only the ad set that includes cart_abandoner alone, inside the period.
	if !near(a.Spend, 360) || a.Currency != "USD" || !near(a.CostPerIncrementalReengagement, 2) || !near(a.IncrementalROAS, 5300.0/360) {
		t.Errorf("spend %v %s cost %v roas %v", a.Spend, a.Currency, a.CostPerIncrementalReengagement, a.IncrementalROAS)
	}
	if !a.Contaminated || !slices.Equal(a.ContaminatedDays, []string{"2026-11-02"}) || a.WindowsOpen {
		t.Errorf("contaminated %v %v windows open %v", a.Contaminated, a.ContaminatedDays, a.WindowsOpen)
	}
	wantDays := []DayPoint{
		{Day: "2026-11-01", TreatedUsers: 1000, HoldoutUsers: 100, TreatedReengaged7d: 400, HoldoutReengaged7d: 25, TreatedRate7d: ptr(0.4), HoldoutRate7d: ptr(0.25), Spend: 300.5},
		{Day: "2026-11-02", TreatedUsers: 800, HoldoutUsers: 100, TreatedReengaged7d: 230, HoldoutReengaged7d: 25, TreatedRate7d: ptr(230.0 / 800), HoldoutRate7d: ptr(0.25)},
	}
	if got, _ := json.Marshal(a.Days); string(got) != string(must(json.Marshal(wantDays))) {
		t.Errorf("days\n got %s\nwant %s", got, must(json.Marshal(wantDays)))
	}
	wantNotes := []string{
		"spend: ad sets that include this audience with other managed audiences spent too; that spend is in groups, not split and not counted here",
		"spend: days are in the ad account's time zone, join days in UTC; both are matched as dates, so a day's spend and its cohort can be hours apart",
		"contaminated: on 2026-11-02 an active ad set included the audience without excluding its holdout audience; holdout users could see the ads, so the lift is biased toward 0",
	}
	if !slices.Equal(a.Notes, wantNotes) {
		t.Errorf("notes\n got %q\nwant %q", a.Notes, wantNotes)
	}

	// lapsed_7d: below the minimum sample, so null rates, lifts and cost, each said.
	b := rep.Audiences[1]
	if b.Treated.Retention7d != nil || b.Holdout.ValuePerUser28d != nil || b.Lift7d.Difference != nil || b.IncrementalReengaged7d != nil ||
		b.IncrementalRevenue28d != nil || b.Spend != nil || b.CostPerIncrementalReengagement != nil || b.IncrementalROAS != nil {
		t.Errorf("numbers below the minimum sample: %+v", b)
	}
	if !near(b.HoldoutShare, 10.0/60) || b.Contaminated || len(b.ContaminatedDays) != 0 {
		t.Errorf("share %v contaminated %v", b.HoldoutShare, b.ContaminatedDays)
	}
	if want := "not enough data: treated has 50 users, at least 100 per arm are needed; holdout has 10 users, at least 100 per arm are needed"; b.Lift7d.Note != want {
		t.Errorf("lift note %q", b.Lift7d.Note)
	}
	wantNotes = []string{
		"not enough data: treated has 50 users, at least 100 per arm are needed (its rates are null)",
		"not enough data: holdout has 10 users, at least 100 per arm are needed (its rates are null)",
		"cost per incremental re-engagement: not enough data (see lift_7d)",
		"spend: ad sets that include this audience with other managed audiences spent too; that spend is in groups, not split and not counted here",
	}
	if !slices.Equal(b.Notes, wantNotes) {
		t.Errorf("notes\n got %q\nwant %q", b.Notes, wantNotes)
	}

	// The group: both rows of the two audiences, whatever their order in the row, not split.
	wantGroups := []GroupSpend{{
		Audiences: []string{"cart_abandoner", "lapsed_7d"}, Spend: 150, Currency: "USD", AdSets: []string{"as3", "as4"},
		Note: "spend of ad sets that include several managed audiences (cart_abandoner, lapsed_7d): reported for the group, not split between them",
	}}
	if got, _ := json.Marshal(rep.Groups); string(got) != string(must(json.Marshal(wantGroups))) {
		t.Errorf("groups\n got %s\nwant %s", got, must(json.Marshal(wantGroups)))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestBuildCost: the cost per incremental re-engagement and the incremental ROAS, with the
// reason each is null.
func TestBuildCost(t *testing.T) {
	const costNotEnough = "cost per incremental re-engagement: not enough data (see lift_7d)"
	setHoldout7d := func(n int64) func(*Input) {
		return func(in *Input) {
			for i, o := range in.Audiences[0].Outcomes {
				if o.Arm == holdout.Holdout && o.JoinDay == day(t, "2026-11-01") {
					in.Audiences[0].Outcomes[i].Reengaged7d = n
				}
			}
		}
	}
	for _, tc := range []struct {
		name     string
		change   func(*Input)
		cost     *float64
		roas     bool
		note     string // a note the audience must have
		unwanted string // a note it must not have
	}{
		{"significant", func(*Input) {}, ptr(2), true, "", "lift not significant"},
		{"not significant: computed, with a note", setHoldout7d(35), ptr(360 / (1800 * (0.35 - 60.0/200))), true,
			"lift not significant: the cost per incremental re-engagement is not reliable", ""},
		{"lift not positive", setHoldout7d(70), nil, true,
			"cost per incremental re-engagement: lift not positive (no incremental re-engagement to pay for)", ""},
		{"no spend", func(in *Input) { in.Spend = nil }, nil, false, "cost per incremental re-engagement: no spend", "spend: days are"},
		{"zero spend", func(in *Input) {
			for i := range in.Spend {
				in.Spend[i].SpendMicros = 0
			}
		}, nil, false, "cost per incremental re-engagement: no spend", ""},
		{"not enough data", func(in *Input) { in.MinSample = 1000 }, nil, false, costNotEnough, ""},
		{"revenue in another currency", func(in *Input) { in.ReportingCurrency = "EUR" }, ptr(2), false,
			"incremental ROAS: revenue is in EUR and spend in USD, not compared", ""},
		{"no reporting currency", func(in *Input) { in.ReportingCurrency = "" }, ptr(2), false,
			"incremental ROAS: the app has no reporting_currency, so revenue cannot be compared with spend in USD", ""},
		{"spend in two currencies", func(in *Input) { in.Spend[3].Currency = "EUR" }, nil, false,
			"spend: the ad sets spent in several currencies (EUR, USD), not summed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t)
			tc.change(&in)
			rep, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			a := rep.Audiences[0]
			if (tc.cost == nil) != (a.CostPerIncrementalReengagement == nil) || tc.cost != nil && !near(a.CostPerIncrementalReengagement, *tc.cost) {
				t.Errorf("cost %v, want %v", show(a.CostPerIncrementalReengagement), show(tc.cost))
			}
			if (a.IncrementalROAS != nil) != tc.roas {
				t.Errorf("roas %v, want computed = %v", show(a.IncrementalROAS), tc.roas)
			}
			if tc.note != "" && !slices.Contains(a.Notes, tc.note) {
				t.Errorf("no note %q in %q", tc.note, a.Notes)
			}
			if tc.unwanted != "" && slices.ContainsFunc(a.Notes, func(n string) bool { return strings.HasPrefix(n, tc.unwanted) }) {
				t.Errorf("unexpected note %q in %q", tc.unwanted, a.Notes)
			}
		})
	}
}

func show(f *float64) any {
	if f == nil {
		return "null"
	}
	return *f
}

func TestBuildNoHoldout(t *testing.T) {
	in := fixture(t)
	a := &in.Audiences[0]
	a.HoldoutFraction = 0
	a.Outcomes = slices.DeleteFunc(a.Outcomes, func(o ports.Outcome) bool { return o.Arm == holdout.Holdout })
	rep, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Audiences[0]
	const want = "not enough data: the audience has no holdout (holdout_fraction is 0)"
	for _, l := range []Lift{r.Lift1d, r.Lift7d, r.Lift28d} {
		if l.Note != want || l.Difference != nil {
			t.Errorf("lift %+v, want the no-holdout note", l)
		}
	}
	if !near(r.HoldoutShare, 0) || r.Treated.Retention7d == nil || r.CostPerIncrementalReengagement != nil || r.IncrementalRevenue28d != nil {
		t.Errorf("share %v retention %v cost %v incremental revenue %v", show(r.HoldoutShare), show(r.Treated.Retention7d), show(r.CostPerIncrementalReengagement), show(r.IncrementalRevenue28d))
	}
	if r.Notes[0] != "no holdout (holdout_fraction is 0): the lift, the incremental numbers and their cost cannot be measured" ||
		slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "holdout has 0 users") }) {
		t.Errorf("notes %q", r.Notes)
	}
}

// TestBuildWindowsOpen: a cohort of day D is final from the start of day D+29 (UTC); the
// period's last day is open while it has not ended.
func TestBuildWindowsOpen(t *testing.T) {
	for _, tc := range []struct {
		asOf time.Time
		open string // the first open day named in the note, "" = closed
	}{
		{time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC), "2026-11-01"},
		{time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), "2026-11-01"},
		// 11-01 closed at 11-30 00:00; 11-02 has users and closes at 12-01 00:00.
		{time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC), "2026-11-02"},
		// 11-03 is still open, but it has no users and can get none.
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), ""},
		// The same instant in another zone is the same UTC day.
		{time.Date(2026, 11, 30, 20, 0, 0, 0, time.FixedZone("X", -5*3600)), ""},
	} {
		in := fixture(t)
		in.AsOf = tc.asOf
		rep, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		a := rep.Audiences[0]
		var got string
		for _, n := range a.Notes {
			if rest, ok := strings.CutPrefix(n, "windows open: cohorts that joined from "); ok {
				got = rest[:10]
			}
		}
		if a.WindowsOpen != (tc.open != "") || got != tc.open {
			t.Errorf("as of %v: windows open %v from %q, want from %q", tc.asOf, a.WindowsOpen, got, tc.open)
		}
	}
}

func TestBuildPeriod(t *testing.T) {
	for _, tc := range []struct{ from, to, err string }{
		{"2026-11-01", "2026-11-01", ""},
		{"2024-01-01", "2024-12-31", ""}, // 366 days, a leap year
		{"2025-01-01", "2026-01-01", ""}, // 366 days across a new year
		{"2024-01-01", "2025-01-01", `invalid period: 2024-01-01 to 2025-01-01 is 367 days, at most 366 are reported at once`},
		{"2026-11-02", "2026-11-01", `invalid period: from 2026-11-02 is after to 2026-11-01`},
		{"2026-11-1", "2026-11-03", `invalid period: from "2026-11-1" is not a date (YYYY-MM-DD)`},
		{"2026-11-01", "2026-02-30", `invalid period: to "2026-02-30" is not a date (YYYY-MM-DD)`},
		{"", "2026-11-03", `invalid period: from "" is not a date (YYYY-MM-DD)`},
		{"2026-11-01", "2026-11-03T00:00:00Z", `invalid period: to "2026-11-03T00:00:00Z" is not a date`},
	} {
		in := fixture(t)
		in.From, in.To = tc.from, tc.to
		_, err := Build(in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s..%s: %v", tc.from, tc.to, err)
		case tc.err != "" && (err == nil || !errors.Is(err, ErrPeriod) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s..%s: error %v, want %q (wrapping ErrPeriod)", tc.from, tc.to, err, tc.err)
		}
	}
	if _, err := Build(Input{From: "2026-11-01", To: "2026-11-01"}); err == nil {
		t.Error("a report without AsOf was built")
	}
}

// TestBuildJSONEmpty: an app without audiences or spend gives empty lists, never null, so that
// clients can iterate without checks.
func TestBuildJSONEmpty(t *testing.T) {
	rep, err := Build(Input{App: "shop", From: "2026-11-01", To: "2026-11-03", AsOf: time.Unix(1_800_000_000, 0),
		Audiences: []AudienceInput{{Segment: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := string(must(json.Marshal(rep)))
	for _, want := range []string{`"groups":[]`, `"contaminated_days":[]`, `"days":[]`, `"holdout_share":null`, `"spend":null`, `"difference":null`} {
		if !strings.Contains(got, want) {
			t.Errorf("%s missing from %s", want, got)
		}
	}
	rep, _ = Build(Input{App: "shop", From: "2026-11-01", To: "2026-11-03", AsOf: time.Unix(1_800_000_000, 0)})
	if got := string(must(json.Marshal(rep))); !strings.Contains(got, `"audiences":[]`) {
		t.Errorf("no audiences: %s", got)
	}
}

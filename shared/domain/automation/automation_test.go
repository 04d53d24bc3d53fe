package automation

import (
	"reflect"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

const (
	today   = "2026-03-10"
	acct    = "act_100"
	treated = "900"
)

func app(rules ...appconfig.AutomationRule) *appconfig.App {
	return &appconfig.App{ID: "shop", Meta: appconfig.Meta{AdAccountID: acct},
		Audiences:  []appconfig.Audience{{Segment: "cart"}},
		Automation: &appconfig.Automation{Rules: rules}}
}

func rule(when appconfig.RuleCondition, then appconfig.RuleAction) appconfig.AutomationRule {
	return appconfig.AutomationRule{ID: "r1", Segment: "cart", When: when, Then: then}
}

var (
	pause  = appconfig.RuleAction{PauseAdSets: true}
	resume = appconfig.RuleAction{ResumeAdSets: true}
	small  = appconfig.RuleCondition{AudienceSizeBelow: 1000}
)

func adSet(id, status string, budget int64, included ...string) ports.AdSet {
	return ports.AdSet{ID: id, Name: "set " + id, CampaignID: "c1", Status: status, DailyBudget: budget, Included: included}
}

func input(a *appconfig.App, members int64, sets ...ports.AdSet) Input {
	return Input{App: a, Today: today, Audiences: map[string]AudienceFacts{"cart": {AudienceID: treated, Members: members}},
		AdSets: map[string][]ports.AdSet{acct: sets}}
}

func ids(r Result) []string {
	var out []string
	for _, p := range r.Proposals {
		out = append(out, p.AdSetID)
	}
	return out
}

func cost(v float64) *float64 { return &v }

func TestSizeConditions(t *testing.T) {
	for _, c := range []struct {
		name    string
		when    appconfig.RuleCondition
		members int64
		want    bool
	}{
		{"below: 999 < 1000", small, 999, true},
		{"below: 1000 is not below", small, 1000, false},
		{"at least: 1500", appconfig.RuleCondition{AudienceSizeAtLeast: 1500}, 1500, true},
		{"at least: 1499", appconfig.RuleCondition{AudienceSizeAtLeast: 1500}, 1499, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Evaluate(input(app(rule(c.when, pause)), c.members, adSet("1", ports.AdSetActive, 0, treated)))
			if got := len(r.Proposals) == 1; got != c.want {
				t.Fatalf("proposed = %v, want %v (%+v)", got, c.want, r)
			}
		})
	}
}

func TestCostCondition(t *testing.T) {
	when := appconfig.RuleCondition{CostAbove: 4, ForDays: 3}
	day := func(date string, c *float64, sig bool) ports.KPIDay {
		return ports.KPIDay{App: "shop", Segment: "cart", Date: date, CostPerIncremental: c, Significant: sig, Currency: "USD"}
	}
	high := []ports.KPIDay{day("2026-03-08", cost(5), true), day("2026-03-09", cost(4.5), true), day(today, cost(6), true)}
	for _, c := range []struct {
		name string
		kpis []ports.KPIDay
		want bool
	}{
		{"above on each of the 3 days", high, true},
		{"a day missing", []ports.KPIDay{high[0], high[2]}, false},
		{"a day not significant", []ports.KPIDay{high[0], day("2026-03-09", cost(9), false), high[2]}, false},
		{"a day at X, not above", []ports.KPIDay{high[0], day("2026-03-09", cost(4), true), high[2]}, false},
		{"a day without a cost", []ports.KPIDay{high[0], day("2026-03-09", nil, true), high[2]}, false},
		{"the window ends today: older days do not count", []ports.KPIDay{day("2026-03-07", cost(9), true), high[0], high[1]}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := input(app(rule(when, appconfig.RuleAction{ScaleBudget: &appconfig.BudgetScale{Factor: 0.8, Floor: 1000, Cap: 50000}})), 5000,
				adSet("1", ports.AdSetActive, 10000, treated))
			f := in.Audiences["cart"]
			f.KPIs = c.kpis
			in.Audiences["cart"] = f
			r := Evaluate(in)
			if got := len(r.Proposals) == 1; got != c.want {
				t.Fatalf("proposed = %v, want %v (%+v)", got, c.want, r)
			}
			if c.want {
				p := r.Proposals[0]
				if p.After.DailyBudget != 8000 || !strings.Contains(p.Reason, "above 4 USD on each of the last 3 day(s)") {
					t.Errorf("proposal %+v: want budget 8000 and the reason", p)
				}
			}
		})
	}
}

func TestNoSpendCondition(t *testing.T) {
	when := appconfig.RuleCondition{NoSpendForDays: 3}
	row := func(date string, spend int64, segs ...string) ports.SpendDay {
		return ports.SpendDay{App: "shop", Date: date, AdSetID: "1", Audiences: segs, SpendMicros: spend}
	}
	for _, c := range []struct {
		name    string
		members int64
		spend   []ports.SpendDay
		want    bool
	}{
		{"zero rows, members", 10, nil, true},
		{"zero spend rows", 10, []ports.SpendDay{row("2026-03-08", 0, "cart"), row(today, 0, "cart")}, true},
		{"no members", 0, nil, false},
		{"spend on a day of the window", 10, []ports.SpendDay{row("2026-03-08", 1, "cart")}, false},
		{"spend before the window", 10, []ports.SpendDay{row("2026-03-07", 5_000_000, "cart")}, true},
		{"spend of another audience's ad set", 10, []ports.SpendDay{row(today, 5_000_000, "vip")}, true},
		{"spend of a group including it", 10, []ports.SpendDay{row(today, 5_000_000, "cart", "vip")}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := input(app(rule(when, resume)), c.members, adSet("1", ports.AdSetPaused, 0, treated))
			f := in.Audiences["cart"]
			f.Spend = c.spend
			in.Audiences["cart"] = f
			if got := len(Evaluate(in).Proposals) == 1; got != c.want {
				t.Fatalf("proposed = %v, want %v", got, c.want)
			}
		})
	}
}

func TestActions(t *testing.T) {
	scale := func(f float64, floor, cap int64) appconfig.RuleAction {
		return appconfig.RuleAction{ScaleBudget: &appconfig.BudgetScale{Factor: f, Floor: floor, Cap: cap}}
	}
	for _, c := range []struct {
		name   string
		then   appconfig.RuleAction
		set    ports.AdSet
		action string
		after  ports.AdSetSettings // zero: skipped
		skip   string
	}{
		{"pause an active ad set", pause, adSet("1", ports.AdSetActive, 500, treated), ports.ActionPause,
			ports.AdSetSettings{Status: ports.AdSetPaused, DailyBudget: 500}, ""},
		{"pause a paused one: no-op", pause, adSet("1", ports.AdSetPaused, 500, treated), "", ports.AdSetSettings{}, "already paused"},
		{"resume a paused ad set", resume, adSet("1", ports.AdSetPaused, 500, treated), ports.ActionResume,
			ports.AdSetSettings{Status: ports.AdSetActive, DailyBudget: 500}, ""},
		{"resume an active one: no-op", resume, adSet("1", ports.AdSetActive, 500, treated), "", ports.AdSetSettings{}, "already active"},
		{"scale rounds", scale(0.75, 100, 100000), adSet("1", ports.AdSetActive, 1001, treated), ports.ActionScale,
			ports.AdSetSettings{Status: ports.AdSetActive, DailyBudget: 751}, ""},
		{"scale stops at the cap", scale(2, 100, 1500), adSet("1", ports.AdSetActive, 1000, treated), ports.ActionScale,
			ports.AdSetSettings{Status: ports.AdSetActive, DailyBudget: 1500}, ""},
		{"scale stops at the floor", scale(0.5, 800, 5000), adSet("1", ports.AdSetPaused, 1000, treated), ports.ActionScale,
			ports.AdSetSettings{Status: ports.AdSetPaused, DailyBudget: 800}, ""},
		{"scale already at the cap: no-op", scale(2, 100, 1000), adSet("1", ports.AdSetActive, 1000, treated), "", ports.AdSetSettings{}, "unchanged"},
		{"scale already at the floor: no-op", scale(0.5, 1000, 5000), adSet("1", ports.AdSetActive, 1000, treated), "", ports.AdSetSettings{}, "unchanged"},
		{"scale without its own budget: skipped", scale(0.5, 1, 5000), adSet("1", ports.AdSetActive, 0, treated), "", ports.AdSetSettings{},
			"no daily budget of its own"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Evaluate(input(app(rule(small, c.then)), 10, c.set))
			if c.skip != "" {
				if len(r.Proposals) != 0 || len(r.Skipped) != 1 || !strings.Contains(r.Skipped[0].Reason, c.skip) {
					t.Fatalf("result %+v: want skipped with %q", r, c.skip)
				}
				return
			}
			if len(r.Proposals) != 1 {
				t.Fatalf("result %+v: want one proposal", r)
			}
			p := r.Proposals[0]
			before := ports.AdSetSettings{Status: c.set.Status, DailyBudget: c.set.DailyBudget}
			want := Proposal{ID: ActionID("shop", "r1", "1", today), Rule: "r1", Segment: "cart", AdAccountID: acct, AdSetID: "1",
				AdSetName: "set 1", Action: c.action, Before: before, After: c.after, Reason: "audience size 10 below 1000"}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("proposal\n %+v\nwant\n %+v", p, want)
			}
		})
	}
}

func TestCoverage(t *testing.T) {
	a := app(rule(small, pause))
	a.Audiences = append(a.Audiences, appconfig.Audience{Segment: "vip", AdAccountID: "act_200"})
	in := input(a, 10,
		adSet("1", ports.AdSetActive, 0, treated),
		adSet("2", ports.AdSetActive, 0, "other"),                                    // does not include the audience
		adSet("3", ports.AdSetActive, 0, "other", treated),                           // includes it among others
		ports.AdSet{ID: "4", Status: ports.AdSetActive, Excluded: []string{treated}}, // excludes it
		ports.AdSet{ID: "5", Status: "ARCHIVED", Included: []string{treated}},
	)
	in.AdSets["act_200"] = []ports.AdSet{adSet("6", ports.AdSetActive, 0, treated)} // an audience's account: the app's
	in.AdSets["act_999"] = []ports.AdSet{adSet("7", ports.AdSetActive, 0, treated)} // not the app's account
	if got, want := ids(Evaluate(in)), []string{"1", "3", "6"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("proposed ad sets %v, want %v", got, want)
	}

	a.Meta.AllowedCampaigns = []string{"c2"}
	in.AdSets[acct][2].CampaignID = "c2"
	if got, want := ids(Evaluate(in)), []string{"3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("with allowed_campaigns [c2]: proposed %v, want %v", got, want)
	}

	in.Audiences["cart"] = AudienceFacts{Members: 0} // the audience is not created yet
	if r := Evaluate(in); len(r.Proposals) != 0 {
		t.Fatalf("an audience without an id proposed %+v", r.Proposals)
	}
	in.App.Automation = nil
	if r := Evaluate(in); len(r.Proposals)+len(r.Skipped) != 0 {
		t.Fatalf("without automation: %+v", r)
	}
}

func TestDailyCap(t *testing.T) {
	a := app(rule(small, pause), appconfig.AutomationRule{ID: "r2", Segment: "cart", When: small, Then: pause})
	decided := func(adSet, status, day string) ports.AutomationAction {
		return ports.AutomationAction{ID: ActionID("shop", "other", adSet, day), AdSetID: adSet, Status: status, Day: day}
	}
	sets := []ports.AdSet{adSet("1", ports.AdSetActive, 0, treated), adSet("2", ports.AdSetActive, 0, treated),
		adSet("3", ports.AdSetActive, 0, treated), adSet("4", ports.AdSetActive, 0, treated), adSet("5", ports.AdSetActive, 0, treated)}
	in := input(a, 10, sets...)
	in.Decided = []ports.AutomationAction{
		decided("1", ports.ActionProposed, today), decided("2", ports.ActionApplied, today), decided("3", ports.ActionRefused, today),
		decided("4", ports.ActionUndone, today),         // undone: does not count
		decided("5", ports.ActionApplied, "2026-03-09"), // yesterday: does not count
	}
	r := Evaluate(in)
	if got, want := ids(r), []string{"4", "5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("with cap 1: proposed %v, want %v (%+v)", got, want, r.Skipped)
	}
	// r2's turn: every ad set is capped or has r1's proposal.
	var why []string
	for _, s := range r.Skipped {
		why = append(why, s.Rule+":"+s.AdSetID+":"+strings.SplitN(s.Reason, ":", 2)[0])
	}
	want := []string{"r1:1:daily cap reached", "r1:2:daily cap reached", "r1:3:daily cap reached",
		"r2:1:daily cap reached", "r2:2:daily cap reached", "r2:3:daily cap reached",
		"r2:4:another rule proposed a change to this ad set in this evaluation", "r2:5:another rule proposed a change to this ad set in this evaluation"}
	if !reflect.DeepEqual(why, want) {
		t.Errorf("skipped\n %v\nwant\n %v", why, want)
	}

	a.Automation.MaxChangesPerAdSetPerDay = 2
	if got, want := ids(Evaluate(in)), []string{"1", "2", "3", "4", "5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("with cap 2: proposed %v, want %v", got, want)
	}
	// The same rule on the same ad set the same day is one action: never decided twice.
	in.Decided = []ports.AutomationAction{{ID: ActionID("shop", "r1", "1", today), AdSetID: "1", Status: ports.ActionUndone, Day: today}}
	r = Evaluate(in)
	if got, want := ids(r), []string{"2", "3", "4", "5", "1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after r1's undone action on 1: proposed %v, want %v (r2 may act on 1)", got, want)
	}
}

func TestActionID(t *testing.T) {
	id := ActionID("shop", "r1", "1", today)
	if id != ActionID("shop", "r1", "1", today) || DayOfID(id) != today || len(id) != 27 {
		t.Fatalf("ActionID = %q (day %q): want stable, 27 characters, the day first", id, DayOfID(id))
	}
	for _, other := range []string{ActionID("shop2", "r1", "1", today), ActionID("shop", "r2", "1", today),
		ActionID("shop", "r1", "2", today), ActionID("shop", "r1", "1", "2026-03-11")} {
		if other == id {
			t.Errorf("ActionID collides: %q", other)
		}
	}
	for _, bad := range []string{"", "2026-03-10", "2026-02-30-0123456789abcdef", "2026-03-10-0123456789ABCDEF", "2026-03-10_0123456789abcdef"} {
		if DayOfID(bad) != "" {
			t.Errorf("DayOfID(%q) = %q, want \"\"", bad, DayOfID(bad))
		}
	}
}

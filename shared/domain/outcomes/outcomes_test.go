package outcomes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// joinAt is a Monday, 10:00 UTC.
const joinAt = int64(1772445600)

const hour = 3600

type fixture struct {
	app   *appconfig.App
	plan  *Plan
	rules *segments.AppRules
}

// sample loads the sample app (six audiences, default holdout 0.1, re-engagement ActivateApp).
func sample(t *testing.T) fixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := appconfig.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	app, _ := cfg.App("sample-shop")
	rules, err := segments.Compile(app)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{app: app, plan: NewPlan(app), rules: rules}
}

var seq int

func event(name string, at int64) *envelope.Event {
	seq++
	return &envelope.Event{ID: fmt.Sprintf("e-%d", seq), Name: name, Time: at,
		Device: envelope.Device{Platform: "android"}, Consent: envelope.Consent{AdsPersonalization: envelope.True}}
}

func purchase(at int64, usd float64) *envelope.Event {
	ev := event("fb_mobile_purchase", at)
	ev.Custom.Value = envelope.OptFloat{V: usd, Set: true}
	ev.Custom.Currency = "USD"
	return ev
}

func unconsented(ev *envelope.Event) *envelope.Event {
	ev.Consent.AdsPersonalization = envelope.False
	return ev
}

// userIn returns a user key the cart_abandoner audience assigns to arm.
func userIn(t *testing.T, f fixture, segment string, arm holdout.Arm) string {
	t.Helper()
	a := f.plan.audiences[segment]
	for i := range 1000 {
		if uk := fmt.Sprintf("user-%d", i); a.Arm(uk) == arm {
			return uk
		}
	}
	t.Fatal("no user in arm")
	return ""
}

func key(seg string, joined int64, arm holdout.Arm) ports.OutcomeKey {
	return ports.OutcomeKey{App: "sample-shop", Segment: seg, JoinDay: Day(joined), Arm: arm}
}

// TestOncePerUserAndWindow: two app opens within the first day count once in each window; an
// open on day 3 counts nothing more (every window it falls in already counted); a late open
// (by event time before one already counted) counts in the window it belongs to; an open
// without consent (State.Apply does not fold it) counts nothing.
func TestOncePerUserAndWindow(t *testing.T) {
	f := sample(t)
	uk := userIn(t, f, "cart_abandoner", holdout.Treated)
	var s segments.State
	tally := Tally{}
	f.plan.Apply(&s, event("fb_mobile_add_to_cart", joinAt-2*hour), f.rules, tally)
	f.plan.Enrol(&s, uk, []string{"cart_abandoner", "subscription_expired"}, joinAt, tally)
	k := key("cart_abandoner", joinAt, holdout.Treated)
	if got := tally.Outcomes(); len(got) != 1 || got[0].OutcomeKey != k || got[0].OutcomeCounts != (ports.OutcomeCounts{Users: 1}) {
		t.Fatalf("enrolment: %+v; want one user in the treated cart_abandoner cohort (subscription_expired has no audience)", got)
	}

	steps := []struct {
		name string
		ev   *envelope.Event
		want ports.OutcomeCounts
	}{
		{"open on day 3", event("fb_mobile_activate_app", joinAt+3*24*hour), ports.OutcomeCounts{Reengaged7d: 1, Reengaged28d: 1}},
		{"second open on day 3", event("ActivateApp", joinAt+3*24*hour+60), ports.OutcomeCounts{}},
		{"an open without consent", unconsented(event("fb_mobile_activate_app", joinAt+hour)), ports.OutcomeCounts{}},
		{"late open within the first day", event("fb_mobile_activate_app", joinAt+2*hour), ports.OutcomeCounts{Reengaged1d: 1}},
		{"another open within the first day", event("fb_mobile_activate_app", joinAt+3*hour), ports.OutcomeCounts{}},
		{"open on day 20", event("fb_mobile_activate_app", joinAt+20*24*hour), ports.OutcomeCounts{}},
		{"a view is no re-engagement event", event("fb_mobile_content_view", joinAt+hour), ports.OutcomeCounts{}},
	}
	for _, st := range steps {
		tally := Tally{}
		f.plan.Apply(&s, st.ev, f.rules, tally)
		if got := tally[k]; got != st.want {
			t.Errorf("%s: %+v, want %+v", st.name, got, st.want)
		}
	}
}

// TestEventsBeforeTheJoinDoNotCount: an open before the join, or at its very second (the event
// that made the user join), is no outcome; neither is one after the 28-day window.
func TestEventsBeforeTheJoinDoNotCount(t *testing.T) {
	f := sample(t)
	var s segments.State
	f.plan.Enrol(&s, "u1", []string{"lapsed_7d"}, joinAt, Tally{})
	for _, at := range []int64{joinAt - 24*hour, joinAt, joinAt + Window + 1} {
		tally := Tally{}
		f.plan.Apply(&s, event("fb_mobile_activate_app", at), f.rules, tally)
		f.plan.Apply(&s, purchase(at, 10), f.rules, tally)
		if len(tally) != 0 {
			t.Errorf("events at join%+ds counted: %+v", at-joinAt, tally)
		}
	}
}

// TestRevenueWithin28Days: every trusted purchase within 28 days adds its value (converted to
// the reporting currency), the purchaser counts once; later purchases and events without
// consent count nothing.
func TestRevenueWithin28Days(t *testing.T) {
	f := sample(t)
	var s segments.State
	f.plan.Enrol(&s, "u1", []string{"vip"}, joinAt, Tally{})
	k := key("vip", joinAt, f.plan.audiences["vip"].Arm("u1"))
	tally := Tally{}
	f.plan.Apply(&s, purchase(joinAt+24*hour, 10), f.rules, tally)
	f.plan.Apply(&s, purchase(joinAt+27*24*hour, 2.5), f.rules, tally)
	eur := purchase(joinAt+27*24*hour, 100)
	eur.Custom.Currency = "EUR"
	f.plan.Apply(&s, eur, f.rules, tally)
	f.plan.Apply(&s, purchase(joinAt+29*24*hour, 1000), f.rules, tally)
	unconsented := purchase(joinAt+2*24*hour, 500)
	unconsented.Consent.AdsPersonalization = envelope.False
	f.plan.Apply(&s, unconsented, f.rules, tally)
	want := ports.OutcomeCounts{Purchasers28d: 1, RevenueMicros: 12_500_000 + 108_000_000}
	if got := tally[k]; got != want {
		t.Fatalf("outcomes %+v, want %+v", got, want)
	}
}

// TestRejoin: a rejoin while the cohort is open starts nothing; after the window it starts a
// new cohort that counts on its own.
func TestRejoin(t *testing.T) {
	f := sample(t)
	var s segments.State
	tally := Tally{}
	f.plan.Enrol(&s, "u1", []string{"engaged"}, joinAt, tally)
	f.plan.Enrol(&s, "u1", []string{"engaged"}, joinAt+Window-1, tally)
	if len(s.Cohorts) != 1 || tally.Total().Users != 1 {
		t.Fatalf("rejoin within the window: cohorts %+v, tally %+v", s.Cohorts, tally)
	}
	later := joinAt + Window
	f.plan.Enrol(&s, "u1", []string{"engaged"}, later, tally)
	if len(s.Cohorts) != 2 || tally.Total().Users != 2 {
		t.Fatalf("rejoin after the window: cohorts %+v, tally %+v", s.Cohorts, tally)
	}
	tally = Tally{}
	f.plan.Apply(&s, event("fb_mobile_activate_app", later+hour), f.rules, tally)
	arm := f.plan.audiences["engaged"].Arm("u1")
	if got := tally.Outcomes(); len(got) != 1 || got[0].OutcomeKey != key("engaged", later, arm) || got[0].Reengaged1d != 1 {
		t.Fatalf("open after the rejoin: %+v; want it counted for the new cohort only", got)
	}
}

// TestHoldoutUsersEnrolInTheHoldoutArm: the arm is the holdout assignment of the audience.
func TestHoldoutUsersEnrolInTheHoldoutArm(t *testing.T) {
	f := sample(t)
	for _, arm := range holdout.Arms {
		uk := userIn(t, f, "cart_abandoner", arm)
		var s segments.State
		tally := Tally{}
		f.plan.Enrol(&s, uk, []string{"cart_abandoner"}, joinAt, tally)
		if tally[key("cart_abandoner", joinAt, arm)].Users != 1 || s.Cohorts[0].Arm != arm {
			t.Errorf("user of arm %v: tally %+v, cohorts %+v", arm, tally, s.Cohorts)
		}
	}
}

// TestPrune drops cohorts past the window and the grace, and the state round-trips cohorts.
func TestPrune(t *testing.T) {
	f := sample(t)
	var s segments.State
	f.plan.Enrol(&s, "u1", []string{"engaged"}, joinAt, Tally{})
	f.plan.Enrol(&s, "u1", []string{"vip"}, joinAt+10*24*hour, Tally{})
	Prune(&s, joinAt+Window+Grace)
	if len(s.Cohorts) != 2 {
		t.Fatalf("pruned within the grace: %+v", s.Cohorts)
	}
	Prune(&s, joinAt+Window+Grace+1)
	if len(s.Cohorts) != 1 || s.Cohorts[0].Segment != "vip" {
		t.Fatalf("after the grace: %+v", s.Cohorts)
	}
	data, _ := json.Marshal(&s)
	var back segments.State
	if err := json.Unmarshal(data, &back); err != nil || len(back.Cohorts) != 1 || back.Cohorts[0] != s.Cohorts[0] {
		t.Fatalf("round trip %s: %+v %v", data, back.Cohorts, err)
	}
}

// TestTallyAggregates: deltas of many users add up per cohort, in key order, zeros left out.
func TestTallyAggregates(t *testing.T) {
	total := Tally{}
	for i := range 20 {
		u := Tally{}
		u.Add(key("vip", joinAt, holdout.Arm(i%2)), ports.OutcomeCounts{Users: 1, RevenueMicros: 5})
		u.Add(key("engaged", joinAt, holdout.Treated), ports.OutcomeCounts{})
		total.Merge(u)
	}
	got := total.Outcomes()
	if len(got) != 2 || got[0].Arm != holdout.Treated || got[1].Arm != holdout.Holdout ||
		got[0].OutcomeCounts != (ports.OutcomeCounts{Users: 10, RevenueMicros: 50}) {
		t.Fatalf("outcomes %+v", got)
	}
	if NewPlan(&appconfig.App{ID: "x"}) != nil {
		t.Error("an app without audiences has a plan")
	}
}

// TestOnlyTrustedPurchasesCount: with trusted_values "server", a purchase the app sent itself
// is an event like any other (no purchaser, no revenue); a server-sent one counts.
func TestOnlyTrustedPurchasesCount(t *testing.T) {
	f := sample(t)
	app := *f.app
	app.TrustedValues = appconfig.TrustedValuesServer
	rules, err := segments.Compile(&app)
	if err != nil {
		t.Fatal(err)
	}
	var s segments.State
	f.plan.Enrol(&s, "u1", []string{"vip"}, joinAt, Tally{})
	tally := Tally{}
	f.plan.Apply(&s, purchase(joinAt+hour, 50), rules, tally)
	if len(tally) != 0 {
		t.Fatalf("an untrusted purchase counted: %+v", tally)
	}
	server := purchase(joinAt+2*hour, 20)
	server.Server = true
	f.plan.Apply(&s, server, rules, tally)
	if got := tally.Total(); got != (ports.OutcomeCounts{Purchasers28d: 1, RevenueMicros: 20_000_000}) {
		t.Fatalf("a trusted purchase: %+v", got)
	}
}

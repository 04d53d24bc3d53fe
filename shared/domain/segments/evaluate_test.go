package segments

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// check is one membership expectation: at t0+at, the user is (or is not) in the segment.
type check struct {
	at time.Duration
	in bool
}

// TestDefaultSegments checks each segment of the default pack in, out and at its boundaries,
// with the events folded both in the order listed and in reverse.
func TestDefaultSegments(t *testing.T) {
	// midnight is the first UTC midnight after t0 (Monday 10:00): Tuesday 00:00.
	midnight := 14 * hour
	tests := []struct {
		name    string
		segment string
		events  []*envelope.Event
		checks  []check
	}{
		// new_installer: install (MobileAppInstall, or the first event ever seen) within 3 days.
		{"new_installer via MobileAppInstall", "new_installer",
			[]*envelope.Event{ev("MobileAppInstall", t0), ev("fb_mobile_activate_app", t0.Add(5*minute))},
			[]check{{0, true}, {3*day - sec, true}, {3 * day, false}, {30 * day, false}}},
		{"new_installer via the first event", "new_installer",
			[]*envelope.Event{ev("fb_mobile_content_view", t0), ev("AddToCart", t0.Add(2*day))},
			[]check{{0, true}, {3*day - sec, true}, {3 * day, false}}},
		{"new_installer: a late install event older than the first event", "new_installer",
			[]*envelope.Event{ev("ActivateApp", t0), ev("MobileAppInstall", t0.Add(-day))},
			[]check{{2*day - sec, true}, {2 * day, false}}},
		{"new_installer: reinstall of a long-known user", "new_installer",
			[]*envelope.Event{ev("ActivateApp", t0.Add(-60*day)), ev("MobileAppInstall", t0)},
			[]check{{0, true}, {3*day - sec, true}, {3 * day, false}}},
		{"new_installer: first seen 4 days ago", "new_installer",
			[]*envelope.Event{ev("ActivateApp", t0.Add(-4*day)), ev("ActivateApp", t0)},
			[]check{{0, false}}},

		// engaged: at least 3 app opens in the last 7 days (UTC-day buckets).
		{"engaged: 2 opens", "engaged",
			[]*envelope.Event{ev("fb_mobile_activate_app", t0), ev("ActivateApp", t0.Add(hour))},
			[]check{{2 * hour, false}}},
		{"engaged: 3 opens, fb_mobile and CAPI names alike", "engaged",
			[]*envelope.Event{ev("fb_mobile_activate_app", t0), ev("ActivateApp", t0.Add(day)), ev("fb_mobile_activate_app", t0.Add(2*day))},
			[]check{{2*day - sec, true}, {2 * day, true}, {midnight + 6*day - sec, true}, {midnight + 6*day, false}}},
		{"engaged: other events do not count", "engaged",
			[]*envelope.Event{ev("ActivateApp", t0), ev("ActivateApp", t0.Add(hour)), ev("AddToCart", t0.Add(2*hour)), ev("fb_mobile_content_view", t0.Add(3*hour))},
			[]check{{4 * hour, false}}},
		{"engaged: the oldest open ages out, a fourth keeps the user in", "engaged",
			[]*envelope.Event{ev("ActivateApp", t0), ev("ActivateApp", t0.Add(day)), ev("ActivateApp", t0.Add(2*day)), ev("ActivateApp", t0.Add(3*day))},
			[]check{{midnight + 6*day, true}, {midnight + 7*day - sec, true}, {midnight + 7*day, false}}},

		// cart_abandoner: add-to-cart >= 1h ago, no purchase after it; leaves 7 days after it.
		{"cart_abandoner boundaries", "cart_abandoner",
			[]*envelope.Event{ev("fb_mobile_add_to_cart", t0)},
			[]check{{59*minute + 59*sec, false}, {hour, true}, {7*day - sec, true}, {7 * day, false}}},
		{"cart_abandoner: purchase after the add-to-cart", "cart_abandoner",
			[]*envelope.Event{ev("AddToCart", t0), ev("fb_mobile_purchase", t0.Add(30*minute), value(10, "USD"))},
			[]check{{hour, false}, {3 * day, false}}},
		{"cart_abandoner: purchase two hours later takes the user out", "cart_abandoner",
			[]*envelope.Event{ev("AddToCart", t0), ev("Purchase", t0.Add(2*hour), value(10, "USD"))},
			[]check{{3 * hour, false}}},
		{"cart_abandoner: purchase in the same second", "cart_abandoner",
			[]*envelope.Event{ev("AddToCart", t0), ev("Purchase", t0, value(10, "USD"))},
			[]check{{hour, false}}},
		{"cart_abandoner: a late add-to-cart older than the last purchase", "cart_abandoner",
			[]*envelope.Event{ev("Purchase", t0, value(10, "USD")), ev("AddToCart", t0.Add(-hour))},
			[]check{{2 * hour, false}, {2 * day, false}}},
		{"cart_abandoner: a new add-to-cart after the purchase restarts the clock", "cart_abandoner",
			[]*envelope.Event{ev("AddToCart", t0), ev("Purchase", t0.Add(10*minute), value(10, "USD")), ev("AddToCart", t0.Add(day))},
			[]check{{day + hour - sec, false}, {day + hour, true}, {8*day - sec, true}, {8 * day, false}}},

		// lapsed_7d: seen before, and no event at all for 7 days.
		{"lapsed_7d boundaries", "lapsed_7d",
			[]*envelope.Event{ev("ActivateApp", t0.Add(-3*day)), ev("fb_mobile_search", t0)},
			[]check{{0, false}, {7*day - sec, false}, {7 * day, true}, {90 * day, true}}},
		{"lapsed_7d: a late old event does not move last seen back", "lapsed_7d",
			[]*envelope.Event{ev("ActivateApp", t0), ev("ActivateApp", t0.Add(-6*day))},
			[]check{{day, false}, {7 * day, true}}},

		// vip: lifetime purchase value >= 200 in the reporting currency (USD).
		{"vip: 199.99 USD", "vip",
			[]*envelope.Event{ev("Purchase", t0, value(199.99, "USD"))},
			[]check{{0, false}}},
		{"vip: 200 USD", "vip",
			[]*envelope.Event{ev("fb_mobile_purchase", t0, value(200, "USD"))},
			[]check{{0, true}, {365 * day, true}}},
		{"vip: 100 USD + 92.59 EUR (199.9972 USD)", "vip",
			[]*envelope.Event{ev("Purchase", t0, value(100, "USD")), ev("Purchase", t0.Add(hour), value(92.59, "EUR"))},
			[]check{{2 * hour, false}}},
		{"vip: 100 USD + 92.60 EUR (200.008 USD)", "vip",
			[]*envelope.Event{ev("Purchase", t0, value(100, "USD")), ev("Purchase", t0.Add(hour), value(92.60, "EUR"))},
			[]check{{2 * hour, true}}},
		{"vip: an unknown currency is not counted", "vip",
			[]*envelope.Event{ev("Purchase", t0, value(150, "USD")), ev("Purchase", t0.Add(hour), value(100, "CHF"))},
			[]check{{2 * hour, false}}},
		{"vip: value of other events is not purchase value", "vip",
			[]*envelope.Event{ev("Purchase", t0, value(150, "USD")), ev("Subscribe", t0.Add(hour), value(100, "USD"))},
			[]check{{2 * hour, false}}},

		// onboarding_incomplete: registration >= 24h ago and no tutorial completion after it.
		{"onboarding_incomplete boundaries", "onboarding_incomplete",
			[]*envelope.Event{ev("fb_mobile_complete_registration", t0)},
			[]check{{24*hour - sec, false}, {24 * hour, true}, {60 * day, true}}},
		{"onboarding_incomplete: tutorial after registration", "onboarding_incomplete",
			[]*envelope.Event{ev("CompleteRegistration", t0), ev("fb_mobile_tutorial_completion", t0.Add(2*hour))},
			[]check{{24 * hour, false}, {10 * day, false}}},
		{"onboarding_incomplete: tutorial before registration does not count", "onboarding_incomplete",
			[]*envelope.Event{ev("TutorialCompletion", t0.Add(-hour)), ev("CompleteRegistration", t0)},
			[]check{{24*hour - sec, false}, {24 * hour, true}}},
		{"onboarding_incomplete: tutorial in the same second", "onboarding_incomplete",
			[]*envelope.Event{ev("CompleteRegistration", t0), ev("TutorialCompletion", t0)},
			[]check{{24 * hour, false}}},

		// subscription_expired: the newest subscription event's expiry is in the past.
		{"subscription_expired boundaries", "subscription_expired",
			[]*envelope.Event{ev("Subscribe", t0, expires(t0.Add(30*day)))},
			[]check{{30*day - sec, false}, {30 * day, true}, {90 * day, true}}},
		{"subscription_expired: StartTrial is a subscription event", "subscription_expired",
			[]*envelope.Event{ev("StartTrial", t0, expires(t0.Add(7*day)))},
			[]check{{7*day - sec, false}, {7 * day, true}}},
		{"subscription_expired: a renewal moves the expiry", "subscription_expired",
			[]*envelope.Event{ev("Subscribe", t0, expires(t0.Add(day))), ev("Subscribe", t0.Add(day-hour), expires(t0.Add(31*day)))},
			[]check{{2 * day, false}, {31*day - sec, false}, {31 * day, true}}},
		{"subscription_expired: an older subscription event arriving late changes nothing", "subscription_expired",
			[]*envelope.Event{ev("Subscribe", t0, expires(t0.Add(30*day))), ev("Subscribe", t0.Add(-40*day), expires(t0.Add(-10*day)))},
			[]check{{0, false}, {30*day - sec, false}, {30 * day, true}}},
		{"subscription_expired: an older event with a later expiry does not extend the newest", "subscription_expired",
			[]*envelope.Event{ev("StartTrial", t0, expires(t0.Add(7*day))), ev("Subscribe", t0.Add(-day), expires(t0.Add(365*day)))},
			[]check{{7 * day, true}}},
		{"subscription_expired: newest subscription event without an expiry", "subscription_expired",
			[]*envelope.Event{ev("Subscribe", t0, expires(t0.Add(day))), ev("Subscribe", t0.Add(hour))},
			[]check{{2 * day, false}}},
		{"subscription_expired: expiry on a purchase is not a subscription", "subscription_expired",
			[]*envelope.Event{ev("Purchase", t0, value(5, "USD"), expires(t0.Add(day)))},
			[]check{{2 * day, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleRules(t, tt.segment)
			reversed := slices.Clone(tt.events)
			slices.Reverse(reversed)
			for order, evs := range map[string][]*envelope.Event{"in order": tt.events, "reversed": reversed} {
				s := fold(r, evs...)
				for _, c := range tt.checks {
					got, _ := r.Evaluate(s, t0.Add(c.at))
					if in := slices.Contains(got, tt.segment); in != c.in {
						t.Errorf("%s: at t0%+v: in=%v, want %v (segments %v)", order, c.at, in, c.in, got)
					}
				}
			}
		})
	}
}

// TestNextDueIsTheExactFlipTime walks each default segment (alone) through time from due time
// to due time: just before nextDue nothing has changed, at nextDue something has.
func TestNextDueIsTheExactFlipTime(t *testing.T) {
	midnight := t0.Truncate(day).Add(day) // Tuesday 00:00 UTC
	tests := []struct {
		segment string
		events  []*envelope.Event
		want    []time.Time // the successive due times from t0
	}{
		{"new_installer", []*envelope.Event{ev("MobileAppInstall", t0)}, []time.Time{t0.Add(3 * day)}},
		{"engaged", []*envelope.Event{ev("ActivateApp", t0), ev("ActivateApp", t0.Add(hour)), ev("ActivateApp", t0.Add(2*hour)), ev("ActivateApp", t0.Add(day))},
			[]time.Time{midnight.Add(6 * day)}},
		{"cart_abandoner", []*envelope.Event{ev("AddToCart", t0)}, []time.Time{t0.Add(hour), t0.Add(7 * day)}},
		{"lapsed_7d", []*envelope.Event{ev("ActivateApp", t0)}, []time.Time{t0.Add(7 * day)}},
		{"vip", []*envelope.Event{ev("Purchase", t0, value(500, "USD"))}, nil},
		{"onboarding_incomplete", []*envelope.Event{ev("CompleteRegistration", t0)}, []time.Time{t0.Add(24 * hour)}},
		{"subscription_expired", []*envelope.Event{ev("Subscribe", t0, expires(t0.Add(30*day)))}, []time.Time{t0.Add(30 * day)}},
	}
	for _, tt := range tests {
		t.Run(tt.segment, func(t *testing.T) {
			r := sampleRules(t, tt.segment)
			s := fold(r, tt.events...)
			if got := walkDueTimes(t, r, s, t0); !slices.Equal(got, tt.want) {
				t.Fatalf("due times %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNextDueWithTheWholePack follows one user through the whole default pack: each due time
// is the next membership change of any segment, and the walk ends when nothing can change.
func TestNextDueWithTheWholePack(t *testing.T) {
	r := sampleRules(t)
	s := fold(r,
		ev("MobileAppInstall", t0),
		ev("ActivateApp", t0.Add(minute)),
		ev("CompleteRegistration", t0.Add(2*minute)),
		ev("AddToCart", t0.Add(5*minute)),
		ev("Subscribe", t0.Add(6*minute), expires(t0.Add(5*day))),
	)
	got := walkDueTimes(t, r, s, t0.Add(10*minute))
	want := []time.Time{
		t0.Add(hour + 5*minute),    // cart_abandoner joins
		t0.Add(24*hour + 2*minute), // onboarding_incomplete joins
		t0.Add(3 * day),            // new_installer leaves
		t0.Add(5 * day),            // subscription_expired joins
		t0.Add(7*day + 5*minute),   // cart_abandoner leaves (7 days after the add-to-cart)
		t0.Add(7*day + 6*minute),   // lapsed_7d joins (7 days after the last event, the Subscribe)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("due times\n%v\nwant\n%v", got, want)
	}
	final, due := r.Evaluate(s, t0.Add(365*day))
	if want := []string{"lapsed_7d", "onboarding_incomplete", "subscription_expired"}; !reflect.DeepEqual(final, want) || !due.IsZero() {
		t.Fatalf("a year later: %v (due %v), want %v and no due time", final, due, want)
	}
}

// walkDueTimes follows nextDue from start until it is zero, checking at each step that the
// membership is unchanged one second before it and changed at it. It returns the due times.
func walkDueTimes(t *testing.T, r *AppRules, s *State, start time.Time) []time.Time {
	t.Helper()
	var dues []time.Time
	now := start
	for range 50 {
		before, due := r.Evaluate(s, now)
		if due.IsZero() {
			return dues
		}
		if !due.After(now) {
			t.Fatalf("at %v: due time %v is not in the future", now, due)
		}
		if justBefore, _ := r.Evaluate(s, due.Add(-sec)); !slices.Equal(justBefore, before) {
			t.Fatalf("at %v: membership changed before the due time %v: %v -> %v", now, due, before, justBefore)
		}
		if at, _ := r.Evaluate(s, due); slices.Equal(at, before) {
			t.Fatalf("at %v: nothing changed at the due time %v (%v)", now, due, at)
		}
		dues = append(dues, due)
		now = due
	}
	t.Fatal("due times do not end")
	return nil
}

func TestConsentWithdrawalLeavesEverySegment(t *testing.T) {
	r := sampleRules(t)
	s := fold(r,
		ev("ActivateApp", t0), ev("ActivateApp", t0.Add(hour)), ev("ActivateApp", t0.Add(2*hour)),
		ev("Purchase", t0.Add(3*hour), value(300, "USD")),
	)
	want := []string{"new_installer", "engaged", "vip"}
	assertSegments := func(step string, now time.Time, want []string, wantDue bool) {
		t.Helper()
		got, due := r.Evaluate(s, now)
		if !slices.Equal(got, want) || due.IsZero() == wantDue {
			t.Fatalf("%s: segments %v (due %v), want %v (due expected: %v)", step, got, due, want, wantDue)
		}
	}
	assertSegments("consented", t0.Add(4*hour), want, true)

	// An event without ads_personalization=true: only the withdrawal is recorded.
	before := s.Clone()
	s.Apply(ev("Purchase", t0.Add(5*hour), withoutConsent(envelope.False)), r)
	if s.Purchases != before.Purchases || s.LastSeen != before.LastSeen || !s.Consent.Withdrawn {
		t.Fatalf("withdrawn event folded: %+v", s)
	}
	assertSegments("withdrawn", t0.Add(6*hour), nil, false)

	// An event that predates the withdrawal does not restore consent (but is folded: it was
	// consented when it happened).
	s.Apply(ev("ActivateApp", t0.Add(4*hour)), r)
	assertSegments("late older consented event", t0.Add(6*hour), nil, false)

	// Re-consent: the user returns to the segments the state supports.
	s.Apply(ev("ActivateApp", t0.Add(7*hour)), r)
	assertSegments("re-consented", t0.Add(8*hour), want, true)

	// The consent API (no event), and an absent flag, withdraw too.
	s.RecordConsent(false, t0.Add(9*hour).Unix())
	assertSegments("withdrawn by the API", t0.Add(10*hour), nil, false)
	s.RecordConsent(true, t0.Add(11*hour).Unix())
	assertSegments("granted by the API", t0.Add(12*hour), want, true)
	s.Apply(ev("ActivateApp", t0.Add(13*hour), withoutConsent(envelope.Unset)), r)
	assertSegments("absent flag", t0.Add(14*hour), nil, false)

	// At the same second, a withdrawal beats a grant, in either order.
	for _, grantFirst := range []bool{true, false} {
		s := &State{}
		at := t0.Unix()
		if grantFirst {
			s.RecordConsent(true, at)
		}
		s.RecordConsent(false, at)
		if !grantFirst {
			s.RecordConsent(true, at)
		}
		if s.Consented() {
			t.Fatalf("grant first=%v: grant won a tie", grantFirst)
		}
	}
}

func TestEvaluateWithoutStateOrRules(t *testing.T) {
	r := sampleRules(t)
	if got, due := r.Evaluate(&State{}, t0); got != nil || !due.IsZero() {
		t.Fatalf("empty state: %v %v", got, due)
	}
	var none *AppRules
	s := fold(none, ev("ActivateApp", t0))
	if got, due := none.Evaluate(s, t0); got != nil || !due.IsZero() {
		t.Fatalf("nil rules: %v %v", got, due)
	}
	if s.FirstSeen != t0.Unix() || len(s.Daily) != 0 {
		t.Fatalf("nil rules fold: %+v", s)
	}
}

// TestIssueScenario is the issue's "done when" story on the domain: add-to-cart two hours ago,
// a 250 USD purchase, three opens, a registration 30 hours ago and then the tutorial.
func TestIssueScenario(t *testing.T) {
	r := sampleRules(t)
	now := t0
	s := &State{}
	step := func(name string, e *envelope.Event, want ...string) {
		t.Helper()
		if e != nil {
			s.Apply(e, r)
		}
		got, _ := r.Evaluate(s, now)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: segments %v, want %v", name, got, want)
		}
	}
	step("add-to-cart two hours ago", ev("fb_mobile_add_to_cart", now.Add(-2*hour)), "new_installer", "cart_abandoner")
	step("purchase of 250 USD", ev("fb_mobile_purchase", now.Add(-minute), value(250, "USD")), "new_installer", "vip")
	if s.LifetimeValue() != 250 {
		t.Fatalf("lifetime value %v", s.LifetimeValue())
	}
	step("open 1", ev("fb_mobile_activate_app", now), "new_installer", "vip")
	step("open 2", ev("fb_mobile_activate_app", now), "new_installer", "vip")
	step("open 3", ev("fb_mobile_activate_app", now), "new_installer", "engaged", "vip")
	step("registration 30 hours ago", ev("fb_mobile_complete_registration", now.Add(-30*hour)), "new_installer", "engaged", "vip", "onboarding_incomplete")
	step("tutorial", ev("fb_mobile_tutorial_completion", now), "new_installer", "engaged", "vip")
}

func TestDiff(t *testing.T) {
	tests := []struct {
		before, after, joined, left []string
	}{
		{nil, nil, nil, nil},
		{nil, []string{"vip", "engaged"}, []string{"vip", "engaged"}, nil},
		{[]string{"vip", "engaged"}, nil, nil, []string{"vip", "engaged"}},
		{[]string{"a", "b", "c"}, []string{"c", "d", "a"}, []string{"d"}, []string{"b"}},
		{[]string{"a", "b"}, []string{"b", "a"}, nil, nil},
		{[]string{"a", "a"}, []string{"b", "b"}, []string{"b"}, []string{"a"}},
	}
	for _, tt := range tests {
		joined, left := Diff(tt.before, tt.after)
		if !slices.Equal(joined, tt.joined) || !slices.Equal(left, tt.left) {
			t.Errorf("Diff(%v, %v) = %v, %v; want %v, %v", tt.before, tt.after, joined, left, tt.joined, tt.left)
		}
	}
}

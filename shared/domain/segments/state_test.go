package segments

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// mixedEvents is a month of one user's events with everything the state keeps, including ties
// (same second) that only a deterministic tie-break makes order-independent.
func mixedEvents() []*envelope.Event {
	evs := []*envelope.Event{
		ev("MobileAppInstall", t0, platform("android"), att(envelope.Unset), madid("aaaaaaaa-0000-4000-8000-000000000001")),
		ev("fb_mobile_activate_app", t0.Add(minute), email("a@example.com"), phone("+15550001")),
		ev("fb_mobile_complete_registration", t0.Add(2*minute), externalID("u-1")),
		ev("AddToCart", t0.Add(3*minute)),
		ev("Purchase", t0.Add(4*minute), value(19.99, "USD")),
		ev("Purchase", t0.Add(5*minute), value(10.10, "EUR")),
		ev("Purchase", t0.Add(6*minute), value(1500, "XYZ")),
		ev("Subscribe", t0.Add(day), expires(t0.Add(31*day))),
		ev("StartTrial", t0.Add(day), expires(t0.Add(8*day))), // same second: the later expiry wins
		ev("fb_mobile_activate_app", t0.Add(2*day), email("b@example.com")),
		ev("fb_mobile_activate_app", t0.Add(2*day), email("c@example.com")), // same second as b
		ev("fb_mobile_activate_app", t0.Add(3*day), att(envelope.False)),    // ATT denied: madid dropped
		ev("fb_mobile_tutorial_completion", t0.Add(4*day)),
		ev("fb_mobile_add_to_cart", t0.Add(20*day), platform("ios"), madid("bbbbbbbb-0000-4000-8000-000000000002")),
		ev("fb_mobile_add_to_cart", t0.Add(20*day), platform("android")), // same second, other platform
		ev("Purchase", t0.Add(21*day), value(0.01, "GBP")),
		ev("Search", t0.Add(25*day), withoutConsent(envelope.False)),
		ev("ActivateApp", t0.Add(26*day)),
		ev("ActivateApp", t0.Add(27*day), phone("+15550002")),
		ev("ActivateApp", t0.Add(28*day)),
		ev("ActivateApp", t0.Add(28*day+hour)),
		ev("Subscribe", t0.Add(-30*day), expires(t0.Add(400*day))), // late and old: ignored for expiry
	}
	return evs
}

func TestFoldIsOrderIndependent(t *testing.T) {
	r := sampleRules(t)
	evs := mixedEvents()
	want := encode(t, fold(r, evs...))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		perm := slices.Clone(evs)
		rng.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
		if got := encode(t, fold(r, perm...)); got != want {
			t.Fatalf("permutation %d:\n%s\nwant\n%s", i, got, want)
		}
		// Fold first, write once: split into deltas at random, fold each, merge them in any order.
		stored := &State{}
		for len(perm) > 0 {
			n := 1 + rng.IntN(len(perm))
			delta := fold(r, perm[:n]...)
			stored.Merge(delta, r)
			perm = perm[n:]
		}
		if got := encode(t, stored); got != want {
			t.Fatalf("merged deltas %d:\n%s\nwant\n%s", i, got, want)
		}
	}
	t.Logf("state: %d bytes: %s", len(want), want)
}

func TestFoldKeepsWhatTheIssueNames(t *testing.T) {
	r := sampleRules(t)
	s := fold(r, mixedEvents()...)
	at := func(d time.Duration) int64 { return t0.Add(d).Unix() }
	checks := []struct {
		what      string
		got, want any
	}{
		{"first seen", s.FirstSeen, at(-30 * day)},
		{"install", s.InstalledAt(), at(0)},
		{"last seen", s.LastSeen, at(28*day + hour)},
		{"platform of the latest event", s.Platform, "ios"},
		{"last add-to-cart", s.LastTime("fb_mobile_add_to_cart"), at(20 * day)},
		{"last purchase", s.LastTime("Purchase"), at(21 * day)},
		{"registration", s.LastTime("CompleteRegistration"), at(2 * minute)},
		{"tutorial", s.LastTime("TutorialCompletion"), at(4 * day)},
		{"purchases", s.Purchases, int64(4)},
		{"lifetime value", s.LifetimeValue(), 19.99 + 10.908 + 0.0127},
		{"unconverted", s.UnconvertedValue(), map[string]float64{"XYZ": 1500}},
		{"subscription", s.Subscription, Subscription{At: at(day), ExpiresAt: at(31 * day)}},
		{"consent", s.Consent, Consent{At: at(28*day + hour)}},
		{"email (tie: greater digest)", s.Email, maxHashed(HashedID{hash("b@example.com"), at(2 * day)}, HashedID{hash("c@example.com"), at(2 * day)})},
		{"phone", s.Phone, HashedID{hash("+15550002"), at(27 * day)}},
		{"external id", s.ExternalID, HashedID{hash("u-1"), at(2 * minute)}},
		{"madid", s.MADID, AdvertisingID{ID: "bbbbbbbb-0000-4000-8000-000000000002", At: at(20 * day)}},
		{"daily opens: the 7-day window and one day of slack", s.Daily["ActivateApp"], Buckets{
			{dayOf(at(26 * day)), 1}, {dayOf(at(27 * day)), 1}, {dayOf(at(28 * day)), 2}}},
		{"tracked names", slices.Sorted(maps.Keys(s.Last)), []string{"AddToCart", "CompleteRegistration", "MobileAppInstall", "Purchase", "TutorialCompletion"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

func maxHashed(a, b HashedID) HashedID {
	a.observe(b)
	return a
}

func TestLatestByEventTime(t *testing.T) {
	r := sampleRules(t)
	const id1, id2 = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
	tests := []struct {
		name   string
		events []*envelope.Event
		check  func(s *State) bool
	}{
		{"a late older email does not replace the newer one",
			[]*envelope.Event{ev("ActivateApp", t0, email("new@x.io")), ev("ActivateApp", t0.Add(-hour), email("old@x.io"))},
			func(s *State) bool { return s.Email.Hash == hash("new@x.io") && s.Email.At == t0.Unix() }},
		{"an event without an email keeps the known one",
			[]*envelope.Event{ev("ActivateApp", t0, email("a@x.io")), ev("ActivateApp", t0.Add(hour))},
			func(s *State) bool { return s.Email.Hash == hash("a@x.io") }},
		{"ATT denial after the madid removes it",
			[]*envelope.Event{ev("ActivateApp", t0, madid(id1)), ev("ActivateApp", t0.Add(hour), att(envelope.False))},
			func(s *State) bool { return s.MADID == AdvertisingID{At: t0.Add(hour).Unix()} }},
		{"ATT denial before the madid does not",
			[]*envelope.Event{ev("ActivateApp", t0.Add(hour), madid(id1)), ev("ActivateApp", t0, att(envelope.False))},
			func(s *State) bool { return s.MADID.ID == id1 }},
		{"ATT denial in the same second wins",
			[]*envelope.Event{ev("ActivateApp", t0, madid(id1)), ev("ActivateApp", t0, att(envelope.False))},
			func(s *State) bool { return s.MADID.ID == "" }},
		{"iOS without an ATT flag: no madid",
			[]*envelope.Event{ev("ActivateApp", t0, att(envelope.Unset), madid(id1))},
			func(s *State) bool { return s.MADID.ID == "" && s.MADID.At == t0.Unix() }},
		{"Android without an ATT flag: madid kept",
			[]*envelope.Event{ev("ActivateApp", t0, platform("android"), att(envelope.Unset), madid(id2))},
			func(s *State) bool { return s.MADID.ID == id2 }},
		{"platform of the latest event",
			[]*envelope.Event{ev("ActivateApp", t0.Add(hour), platform("android")), ev("ActivateApp", t0, platform("ios"))},
			func(s *State) bool { return s.Platform == "android" }},
		{"platform: at the same second the greater name wins, in any order",
			[]*envelope.Event{ev("ActivateApp", t0, platform("ios")), ev("ActivateApp", t0, platform("android")), ev("ActivateApp", t0.Add(-hour), platform("web"))},
			func(s *State) bool { return s.Platform == "ios" }},
		{"a free purchase counts, value 0",
			[]*envelope.Event{ev("Purchase", t0, value(0, "USD"))},
			func(s *State) bool { return s.Purchases == 1 && s.ValueMicros == 0 && s.UnconvertedMicros == nil }},
		{"a value without currency is kept apart",
			[]*envelope.Event{ev("Purchase", t0, value(5, ""))},
			func(s *State) bool { return s.ValueMicros == 0 && s.UnconvertedMicros[NoCurrency] == 5_000_000 }},
		{"a rate converts: 1000 JPY at 0.0067",
			[]*envelope.Event{ev("Purchase", t0, value(1000, "JPY"))},
			func(s *State) bool { return s.ValueMicros == 6_700_000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reversed := slices.Clone(tt.events)
			slices.Reverse(reversed)
			for _, evs := range [][]*envelope.Event{tt.events, reversed} {
				if s := fold(r, evs...); !tt.check(s) {
					t.Fatalf("state: %s", encode(t, s))
				}
			}
		})
	}
}

func TestMergeIdentityAndClone(t *testing.T) {
	r := sampleRules(t)
	s := fold(r, mixedEvents()...)
	want := encode(t, s)
	s.Merge(&State{}, r)
	if got := encode(t, s); got != want {
		t.Fatalf("merging an empty delta changed the state:\n%s\nwant\n%s", got, want)
	}
	empty := &State{}
	empty.Merge(s, r)
	if got := encode(t, empty); got != want {
		t.Fatalf("merging into an empty state:\n%s\nwant\n%s", got, want)
	}
	c := s.Clone()
	c.Apply(ev("ActivateApp", t0.Add(28*day+2*hour)), r)
	c.Apply(ev("Purchase", t0.Add(28*day+2*hour), value(1, "XYZ")), r)
	if got := encode(t, s); got != want {
		t.Fatal("folding into a clone changed the original")
	}
	if !(&State{}).IsZero() || s.IsZero() || (&State{Consent: Consent{At: 1, Withdrawn: true}}).IsZero() {
		t.Fatal("IsZero")
	}
}

func TestStateJSONRoundTrip(t *testing.T) {
	r := sampleRules(t)
	s := fold(r, mixedEvents()...)
	data := encode(t, s)
	var back State
	if err := json.Unmarshal([]byte(data), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, s) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", back, *s)
	}
	if !strings.Contains(data, `"daily":{"ActivateApp":[[`) {
		t.Fatalf("buckets are not encoded as [day,count] pairs: %s", data)
	}
	for _, bad := range []string{`{"daily":{"X":[[1]]}}`, `{"daily":{"X":[1]}}`, `{"daily":{"X":[["a",1]]}}`} {
		if err := json.Unmarshal([]byte(bad), &State{}); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
	if data := encode(t, &State{}); data != "{}" {
		t.Fatalf("empty state encodes as %s", data)
	}
}

// yearOfActivity is a busy user over a year: daily opens, weekly carts and searches, monthly
// purchases in several currencies, monthly subscription renewals, changing identifiers.
func yearOfActivity() []*envelope.Event {
	start := t0.Add(-365 * day)
	evs := []*envelope.Event{
		ev("MobileAppInstall", start, madid("aaaaaaaa-0000-4000-8000-000000000001")),
		ev("fb_mobile_complete_registration", start.Add(10*minute), email("someone@example.com"), phone("+4915112345678"), externalID("user-123456")),
		ev("fb_mobile_tutorial_completion", start.Add(20*minute)),
	}
	currencies := []string{"USD", "EUR", "GBP", "CHF"}
	for d := range 365 {
		at := start.Add(time.Duration(d)*day + 8*hour)
		for k := range 1 + d%3 {
			evs = append(evs, ev("fb_mobile_activate_app", at.Add(time.Duration(k)*3*hour)))
		}
		evs = append(evs, ev("fb_mobile_content_view", at.Add(time.Minute)))
		if d%7 == 3 {
			evs = append(evs, ev("fb_mobile_search", at.Add(2*minute)), ev("fb_mobile_add_to_cart", at.Add(3*minute)))
		}
		if d%30 == 5 {
			evs = append(evs,
				ev("fb_mobile_purchase", at.Add(4*minute), value(49.95, currencies[d/30%len(currencies)]), email(fmt.Sprintf("someone+%d@example.com", d/90))),
				ev("Subscribe", at.Add(5*minute), value(9.99, "EUR"), expires(at.Add(31*day))))
		}
	}
	return evs
}

// TestStateStaysSmall folds a year of a busy user's activity and reports the encoded size:
// daily buckets are trimmed to the longest window, so the state does not grow with history.
func TestStateStaysSmall(t *testing.T) {
	r := sampleRules(t)
	evs := yearOfActivity()
	s := fold(r, evs...)
	data := encode(t, s)
	t.Logf("a year of activity (%d events) encodes to %d bytes: %s", len(evs), len(data), data)
	if len(data) > 1024 {
		t.Errorf("state is %d bytes, want <= 1024", len(data))
	}
	if n := len(s.Daily["ActivateApp"]); n > 8 {
		t.Errorf("%d daily buckets kept for a 7-day window, want <= 8", n)
	}
	if len(s.Daily) != 1 {
		t.Errorf("daily counts of names no rule counts: %v", s.Daily)
	}
	one := encode(t, fold(r, ev("fb_mobile_activate_app", t0, email("someone@example.com"))))
	t.Logf("one event encodes to %d bytes: %s", len(one), one)

	// A late event older than the window leaves no bucket behind.
	before := encode(t, s)
	s.Apply(ev("ActivateApp", t0.Add(-20*day)), r)
	if len(s.Daily["ActivateApp"]) > 8 || !strings.Contains(before, `"daily"`) {
		t.Errorf("a late old open was kept: %v", s.Daily)
	}
}

func TestTrimAfterRulesChange(t *testing.T) {
	all := sampleRules(t)
	s := fold(all, mixedEvents()...)
	app := appconfig.App{ID: "shop", Segments: []appconfig.Segment{{ID: "searcher", When: []appconfig.Condition{
		{Since: &appconfig.SinceCondition{Events: []string{"Search"}, Within: "1d"}}}}}}
	r, err := Compile(&app)
	if err != nil {
		t.Fatal(err)
	}
	r.Trim(s)
	if len(s.Daily) != 0 {
		t.Errorf("daily counts kept without a count rule: %v", s.Daily)
	}
	if _, ok := s.Last["MobileAppInstall"]; !ok {
		t.Error("core event time dropped")
	}
	s.Apply(ev("Search", t0.Add(29*day)), r)
	if s.LastTime("fb_mobile_search") != t0.Add(29*day).Unix() {
		t.Errorf("rule-referenced event not tracked: %v", s.Last)
	}
	if got, _ := r.Evaluate(s, t0.Add(29*day+hour)); !slices.Equal(got, []string{"searcher"}) {
		t.Errorf("segments %v", got)
	}
	if got := r.TrackedEvents(); !slices.Contains(got, "Search") || !slices.Contains(got, "Purchase") {
		t.Errorf("tracked events %v", got)
	}
	if got := all.CountedEvents(); !reflect.DeepEqual(got, map[string]int{"ActivateApp": 7}) {
		t.Errorf("counted events %v", got)
	}
	if r.App() != "shop" || r.ReportingCurrency() != "" || all.ReportingCurrency() != "USD" {
		t.Error("accessors")
	}
}

func TestCompileRejectsInvalidRules(t *testing.T) {
	app := appconfig.App{ID: "shop", Segments: []appconfig.Segment{{ID: "vip", When: []appconfig.Condition{
		{Value: &appconfig.ValueCondition{Attribute: "lifetime_value"}}}}}}
	_, err := Compile(&app)
	want := `app "shop".segments[0] ("vip").when[0].value: set at_least, below or both` + "\n" +
		`app "shop".segments[0] ("vip").when[0].value: lifetime_value needs the app's reporting_currency`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant\n%s", err, want)
	}
	cfg := &appconfig.Config{Apps: []appconfig.App{*sampleApp(t), app}}
	if _, err := ForConfig(cfg); err == nil || !strings.Contains(err.Error(), `app "shop"`) {
		t.Fatalf("ForConfig: %v", err)
	}
	rules, err := ForConfig(&appconfig.Config{Apps: cfg.Apps[:1]})
	if err != nil || !slices.Equal(rules["sample-shop"].Segments(), []string{"new_installer", "engaged", "cart_abandoner", "lapsed_7d", "vip", "onboarding_incomplete", "subscription_expired"}) {
		t.Fatalf("ForConfig: %v %v", rules, err)
	}
}

func TestDayOf(t *testing.T) {
	for _, tc := range []struct{ t, want int64 }{{0, 0}, {86399, 0}, {86400, 1}, {-1, -1}, {-86400, -1}, {-86401, -2}} {
		if got := dayOf(tc.t); got != tc.want {
			t.Errorf("dayOf(%d) = %d, want %d", tc.t, got, tc.want)
		}
	}
}

// TestDecideConsentWinsTheTie: an explicit grant in the same second as a stored withdrawal
// wins (an event's grant does not: a withdrawal wins ties between signals of unknown order).
func TestDecideConsentWinsTheTie(t *testing.T) {
	var events, decided State
	events.RecordConsent(false, 100)
	events.RecordConsent(true, 100)
	if events.Consented() {
		t.Error("a grant signal tied with a withdrawal won")
	}
	decided.RecordConsent(false, 100)
	decided.DecideConsent(true, 100)
	if !decided.Consented() || decided.Consent.At != 101 {
		t.Errorf("decision in the withdrawal's second: %+v, want granted just after it", decided.Consent)
	}
	decided.DecideConsent(false, 101)
	if decided.Consented() {
		t.Error("a withdrawal decision must still win its tie")
	}
}

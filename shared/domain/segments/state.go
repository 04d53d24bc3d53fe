package segments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// Event names the state treats specially (Conversions API names; the app's fb_mobile_* names
// are normalised to these by EventName).
const (
	EventInstall      = "MobileAppInstall"
	EventPurchase     = "Purchase"
	EventAddToCart    = "AddToCart"
	EventRegistration = "CompleteRegistration"
	EventTutorial     = "TutorialCompletion"
	EventSubscribe    = "Subscribe"  // a paid subscription started or renewed
	EventStartTrial   = "StartTrial" // a trial started; also a subscription event
)

// coreEvents always have their latest time kept, whatever the rules: they are the user
// attributes the issue names (install, add-to-cart, purchase, registration, tutorial).
var coreEvents = []string{EventInstall, EventAddToCart, EventPurchase, EventRegistration, EventTutorial}

// NoCurrency is the key under which values sent without a currency are kept (ISO 4217 "no
// currency"). The ingest API requires a currency with a value, so it only shows up in old or
// hand-made records.
const NoCurrency = "XXX"

// microsPerUnit is the fixed-point scale of money: integer sums are exact and do not depend on
// the order events are folded in (float sums would).
const microsPerUnit = 1_000_000

// State is what the segment rules need to know about one user. Every field is derived from
// event times, never arrival times, and combines by max, min or sum, so folding the same events
// in any order (or in several deltas merged together) gives the same State. The JSON form is
// the stored form; keys are short because DynamoDB bills them on every write.
type State struct {
	// FirstSeen and LastSeen are the earliest and latest event times (unix seconds).
	FirstSeen int64 `json:"fs,omitempty"`
	LastSeen  int64 `json:"ls,omitempty"`
	// Platform is the device platform of the latest event (ties: the greater name).
	Platform string `json:"pf,omitempty"`
	// Last is the latest time of each tracked event name: the core events (install,
	// add-to-cart, purchase, registration, tutorial completion) and those rules measure from.
	Last map[string]int64 `json:"last,omitempty"`
	// Daily holds per-UTC-day counts of the event names count rules reference, only as far back
	// as the longest window needs (see AppRules.Trim).
	Daily map[string]Buckets `json:"daily,omitempty"`
	// ValueMicros is the lifetime purchase value in millionths of the reporting currency, of
	// the purchases the app trusts with values (all, or only server-sent: trusted_values).
	ValueMicros int64 `json:"ltv,omitempty"`
	// UnconvertedMicros is purchase value in currencies without a configured rate, in
	// millionths of that currency, by ISO 4217 code. Reported, never guessed into ValueMicros.
	UnconvertedMicros map[string]int64 `json:"ltv_other,omitempty"`
	// Purchases counts purchase events (the trusted ones, as ValueMicros).
	Purchases int64 `json:"buys,omitempty"`
	// Subscription is the newest trusted subscription event (Subscribe or StartTrial).
	Subscription Subscription `json:"sub,omitzero"`
	// Consent is the latest consent signal.
	Consent Consent `json:"consent,omitzero"`
	// LDU is the latest Limited Data Use signal of the events that carried one, LDUDecision
	// the user's explicit decision (consent API); see LimitedDataUse.
	LDU         LDU `json:"ldu,omitzero"`
	LDUDecision LDU `json:"ldu_x,omitzero"`
	// The latest identifiers to match the user in Custom Audiences.
	Email      HashedID      `json:"em,omitzero"`
	Phone      HashedID      `json:"ph,omitzero"`
	ExternalID HashedID      `json:"xid,omitzero"`
	MADID      AdvertisingID `json:"madid,omitzero"`
	// Cohorts are the user's open enrolments in audience measurements (cohorts.go; package
	// outcomes starts, counts and drops them).
	Cohorts []Cohort `json:"co,omitempty"`
	// AppUserID is the app's own user id of the latest event that carried one: only apps that
	// share it (share_app_user_id) put it on the stream. It is stamped on the user's
	// membership changes for the bus.
	AppUserID string `json:"auid,omitempty"`
}

// Subscription is the newest subscription event: its event time and the
// custom_data.subscription_expires_at it carried (zero if it carried none).
type Subscription struct {
	At        int64 `json:"at"`
	ExpiresAt int64 `json:"exp,omitempty"`
}

// Consent is the latest ads_personalization signal: granted, or withdrawn, at event time At.
type Consent struct {
	At        int64 `json:"at"`
	Withdrawn bool  `json:"withdrawn,omitempty"`
}

// HashedID is a hashed identifier and the time of the event that carried it.
type HashedID struct {
	Hash identity.Hash `json:"h"`
	At   int64         `json:"at"`
}

// AdvertisingID is the device advertising id (IDFA/GAID) and the time of the event that set
// it. An empty ID with a time means that event denied tracking (ATT): the id must not be used.
type AdvertisingID struct {
	ID string `json:"id,omitempty"`
	At int64  `json:"at"`
}

// Buckets are per-day event counts, sorted by day.
type Buckets []Bucket

// Bucket counts one event name's events on one UTC day. It encodes as [day, count].
type Bucket struct {
	Day   int64 // days since 1970-01-01 UTC
	Count int64
}

// MarshalJSON writes [day, count].
func (b Bucket) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "[%d,%d]", b.Day, b.Count), nil
}

// UnmarshalJSON reads [day, count].
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var pair []int64
	if err := json.Unmarshal(data, &pair); err != nil || len(pair) != 2 {
		return fmt.Errorf("segments: bucket must be [day, count], got %s", data)
	}
	b.Day, b.Count = pair[0], pair[1]
	return nil
}

const secondsPerDay = 86400

// dayOf returns the UTC day of unix time t.
func dayOf(t int64) int64 {
	d := t / secondsPerDay
	if t%secondsPerDay < 0 {
		d--
	}
	return d
}

// EventName normalises an event name: the app SDK's fb_mobile_* names become their Conversions
// API names (fb_mobile_add_to_cart is AddToCart), other names are kept as sent.
func EventName(name string) string { return appevent.CAPIName(name) }

// Apply folds one event into the state. The caller applies each event once (the storage layer
// deduplicates by event id and sequence watermark); apart from that, events may come in any
// order. An event without ads_personalization=true records only the consent withdrawal.
// r may be nil (no rules: only the core attributes are kept).
func (s *State) Apply(ev *envelope.Event, r *AppRules) {
	t := ev.Time
	s.observeLDU(ev) // also from events without consent: it only ever restricts
	if !ev.Consent.AdsPersonalization.IsTrue() {
		s.observeConsent(Consent{At: t, Withdrawn: true})
		return
	}
	s.observeConsent(Consent{At: t})
	if s.FirstSeen == 0 || t < s.FirstSeen {
		s.FirstSeen = t
	}
	s.observeSeen(t, ev.Device.Platform)
	name := EventName(ev.Name)
	if r.keepsLast(name) {
		s.observeLast(name, t)
	}
	if r.bucketDays(name) > 0 {
		if s.Daily == nil {
			s.Daily = map[string]Buckets{}
		}
		s.Daily[name] = s.Daily[name].add(dayOf(t), 1)
	}
	// Values: a purchase's count and amount and a subscription's expiry feed value rules, so
	// they are kept only from events the app trusts with values (trusted_values). An untrusted
	// purchase or subscription still counts as an event above (counts, recency).
	switch name {
	case EventPurchase:
		if !r.trustsValues(ev) {
			break
		}
		s.Purchases++
		if v := ev.Custom.Value; v.Set {
			s.addValue(ev.Custom.Currency, v.V, r)
		}
	case EventSubscribe, EventStartTrial:
		if r.trustsValues(ev) {
			s.observeSubscription(Subscription{At: t, ExpiresAt: ev.Custom.SubscriptionExpiresAt})
		}
	}
	u := &ev.User
	s.Email.observe(HashedID{Hash: u.Email, At: t})
	s.Phone.observe(HashedID{Hash: u.Phone, At: t})
	s.ExternalID.observe(HashedID{Hash: u.ExternalID, At: t})
	switch {
	case !trackingAllowed(ev):
		s.MADID.observe(AdvertisingID{At: t}) // denial: forget the id from this time on
	case u.MADID != "":
		s.MADID.observe(AdvertisingID{ID: u.MADID, At: t})
	}
	r.Trim(s)
}

// trackingAllowed applies Meta's rule for advertiser_tracking_enabled (as the CAPI mapping
// does): an explicit flag wins; absent, tracking is allowed except on iOS, where ATT decides.
func trackingAllowed(ev *envelope.Event) bool {
	switch ev.Consent.AdvertiserTracking {
	case envelope.True:
		return true
	case envelope.False:
		return false
	}
	return ev.Device.Platform != "ios"
}

// RecordConsent folds a consent signal that came without an event (the consent API), at
// unix time at. Like event signals, the latest by time wins; a withdrawal wins a tie.
func (s *State) RecordConsent(granted bool, at int64) {
	s.observeConsent(Consent{At: at, Withdrawn: !granted})
}

// DecideConsent folds an explicit consent decision made at unix time at after everything the
// state holds (the consent API reads the state and writes it back conditionally). Signals are
// ordered by the second and a withdrawal wins a tie, which is right for events whose order is
// unknown; a decision is not one of them: a grant made in the same second as the withdrawal or
// erasure it answers must win, so it is placed just after the stored signal.
func (s *State) DecideConsent(granted bool, at int64) {
	if c := s.Consent; granted && c.Withdrawn && c.At >= at {
		at = c.At + 1
	}
	s.RecordConsent(granted, at)
}

// Merge folds d, a state built from other events (a delta), into s. Merge is commutative and
// associative: the storage layer can fold a batch of one user's events into a fresh State and
// merge it into the stored one, with the same result as applying the events one by one.
func (s *State) Merge(d *State, r *AppRules) {
	if d.FirstSeen != 0 && (s.FirstSeen == 0 || d.FirstSeen < s.FirstSeen) {
		s.FirstSeen = d.FirstSeen
	}
	if d.LastSeen != 0 {
		s.observeSeen(d.LastSeen, d.Platform)
	}
	for name, t := range d.Last {
		s.observeLast(name, t)
	}
	for name, bs := range d.Daily {
		if s.Daily == nil {
			s.Daily = map[string]Buckets{}
		}
		for _, b := range bs {
			s.Daily[name] = s.Daily[name].add(b.Day, b.Count)
		}
	}
	s.ValueMicros = addSaturating(s.ValueMicros, d.ValueMicros)
	for code, v := range d.UnconvertedMicros {
		s.addUnconverted(code, v)
	}
	s.Purchases += d.Purchases
	if d.Subscription.At != 0 {
		s.observeSubscription(d.Subscription)
	}
	if d.Consent.At != 0 {
		s.observeConsent(d.Consent)
	}
	s.LDU.observe(d.LDU)
	s.LDUDecision.observe(d.LDUDecision)
	s.Email.observe(d.Email)
	s.Phone.observe(d.Phone)
	s.ExternalID.observe(d.ExternalID)
	if d.MADID.At != 0 {
		s.MADID.observe(d.MADID)
	}
	if len(d.Cohorts) > 0 {
		s.Cohorts = mergeCohorts(s.Cohorts, d.Cohorts)
	}
	r.Trim(s)
}

// IsZero reports whether the state holds nothing (no event was ever folded into it).
func (s *State) IsZero() bool {
	return s.FirstSeen == 0 && s.Consent.At == 0
}

// Consented reports whether the latest consent signal grants ads personalisation. Without it
// the user is in no segment.
func (s *State) Consented() bool { return s.Consent.At != 0 && !s.Consent.Withdrawn }

// InstalledAt is the install time: the latest MobileAppInstall, else the first event seen.
func (s *State) InstalledAt() int64 {
	if t := s.Last[EventInstall]; t != 0 {
		return t
	}
	return s.FirstSeen
}

// LastTime returns the latest time of a tracked event (0 if never seen or not tracked).
func (s *State) LastTime(name string) int64 { return s.Last[EventName(name)] }

// LifetimeValue returns the lifetime purchase value in the reporting currency.
func (s *State) LifetimeValue() float64 { return float64(s.ValueMicros) / microsPerUnit }

// UnconvertedValue returns purchase value kept apart because its currency has no rate, by code.
func (s *State) UnconvertedValue() map[string]float64 {
	if len(s.UnconvertedMicros) == 0 {
		return nil
	}
	out := make(map[string]float64, len(s.UnconvertedMicros))
	for code, v := range s.UnconvertedMicros {
		out[code] = float64(v) / microsPerUnit
	}
	return out
}

func (s *State) observeSeen(t int64, platform string) {
	switch {
	case t > s.LastSeen:
		s.LastSeen, s.Platform = t, platform
	case t == s.LastSeen && platform > s.Platform:
		s.Platform = platform
	}
}

func (s *State) observeLast(name string, t int64) {
	if t > s.Last[name] {
		if s.Last == nil {
			s.Last = map[string]int64{}
		}
		s.Last[name] = t
	}
}

// observeSubscription keeps the newest subscription event; a tie keeps the later expiry.
func (s *State) observeSubscription(o Subscription) {
	cur := s.Subscription
	if o.At > cur.At || o.At == cur.At && o.ExpiresAt > cur.ExpiresAt {
		s.Subscription = o
	}
}

// observeConsent keeps the latest signal; at the same second a withdrawal wins (privacy first).
func (s *State) observeConsent(o Consent) {
	cur := s.Consent
	if o.At > cur.At || o.At == cur.At && o.Withdrawn && !cur.Withdrawn {
		s.Consent = o
	}
}

// observe keeps the identifier of the latest event; a tie keeps the greater digest, so the
// result does not depend on the order events are folded in.
func (h *HashedID) observe(o HashedID) {
	if o.Hash.IsZero() {
		return
	}
	if o.At > h.At || o.At == h.At && bytes.Compare(o.Hash[:], h.Hash[:]) > 0 {
		*h = o
	}
}

// observe keeps the latest observation; at the same second a denial wins, then the greater id.
func (m *AdvertisingID) observe(o AdvertisingID) {
	switch {
	case o.At > m.At:
		*m = o
	case o.At < m.At || m.ID == "":
	case o.ID == "" || o.ID > m.ID:
		*m = o
	}
}

// addValue adds a purchase value, converted to the reporting currency when a rate is known.
func (s *State) addValue(currency string, v float64, r *AppRules) {
	if currency == "" {
		currency = NoCurrency
	}
	if rate, ok := r.rate(currency); ok {
		s.ValueMicros = addSaturating(s.ValueMicros, toMicros(v*rate))
		return
	}
	s.addUnconverted(currency, toMicros(v))
}

func (s *State) addUnconverted(code string, micros int64) {
	if s.UnconvertedMicros == nil {
		s.UnconvertedMicros = map[string]int64{}
	}
	s.UnconvertedMicros[code] = addSaturating(s.UnconvertedMicros[code], micros)
}

// toMicros rounds a money amount to millionths, saturating instead of overflowing.
func toMicros(v float64) int64 {
	m := math.Round(v * microsPerUnit)
	switch {
	case m >= math.MaxInt64:
		return math.MaxInt64
	case m <= math.MinInt64:
		return math.MinInt64
	}
	return int64(m)
}

func addSaturating(a, b int64) int64 {
	c := a + b
	switch {
	case a > 0 && b > 0 && c < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && c >= 0:
		return math.MinInt64
	}
	return c
}

// add returns the buckets with n more events on day, keeping them sorted.
func (bs Buckets) add(day, n int64) Buckets {
	i, found := slices.BinarySearchFunc(bs, day, func(b Bucket, d int64) int {
		switch {
		case b.Day < d:
			return -1
		case b.Day > d:
			return 1
		}
		return 0
	})
	if found {
		bs[i].Count += n
		return bs
	}
	return slices.Insert(bs, i, Bucket{Day: day, Count: n})
}

// Clone returns a deep copy of s, e.g. to evaluate membership before and after a fold.
func (s *State) Clone() *State {
	c := *s
	c.Last = maps.Clone(s.Last)
	c.UnconvertedMicros = maps.Clone(s.UnconvertedMicros)
	c.Cohorts = slices.Clone(s.Cohorts)
	if s.Daily != nil {
		c.Daily = make(map[string]Buckets, len(s.Daily))
		for name, bs := range s.Daily {
			c.Daily[name] = slices.Clone(bs)
		}
	}
	return &c
}

// Package outcomes counts what happens to the users of a measured audience after they join its
// segment: per cohort (app, segment, UTC join day, holdout arm), how many joined, came back
// within 1, 7 and 28 days, bought within 28 days, and the revenue of those purchases.
//
// Enrolment. When a user joins a segment that has an audience (with a holdout or without), a
// cohort is recorded in the user's state (segments.Cohort): the arm (package holdout, decided
// by the user key alone), the join time (the membership change's time) and no flags yet; the
// cohort's Users counter goes up by one. A rejoin while a cohort of the segment is open (joined
// less than 28 days before) starts nothing: the user is already being followed. After that, a
// rejoin starts a new cohort.
//
// Outcomes. An event folded into the state (State.Apply: only consented events) with an event
// time after a cohort's join counts for it:
//   - a re-engagement event (the app's measurement.reengagement_events, normalised with
//     segments.EventName; default ActivateApp) within 1, 7 or 28 days sets the cohort's flag for
//     that window and adds one to its counter, once per user and window;
//   - a trusted purchase (one State.Apply counts: Purchases went up) within 28 days makes the
//     user a purchaser (once) and adds its value (the ValueMicros it added, reporting currency)
//     to the revenue, every purchase.
//
// Everything is keyed by event time, so late and out-of-order events count where they belong,
// and events before the join never count. The flags live in the user's item, written with the
// state in the same conditional write: a batch delivered again finds them set (and its events
// deduplicated) and counts nothing twice.
//
// Intention-to-treat: a user counts in their arm whether or not an ad ever reached them (a
// treated user may never be matched at Meta, a holdout user may be reached by broad targeting).
// The comparison of the arms is therefore unbiased but diluted; it never credits remarketing
// with what selection did.
//
// Cohorts older than the 28-day window plus a grace for late events (Grace) are dropped from
// the state (Prune) to keep the item small. The package does no I/O: the changes to the
// counters go into a Tally, which the caller writes once per batch (ports.OutcomeStore).
package outcomes

import (
	"cmp"
	"slices"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Windows (seconds).
const (
	day = 86400
	// Window is the longest outcome window: re-engagement within 28 days, purchases and revenue
	// within 28 days, and how long a cohort stays open to a rejoin.
	Window = 28 * day
	// Grace is how long a cohort is kept after its window closed: events up to this late (by
	// event time, e.g. an SDK flushing an offline queue) still count.
	Grace = 7 * day
)

// Plan is what counting needs of one app: the audiences (by segment) and their holdout
// assignment, and the re-engagement events. A nil *Plan counts nothing: Apply only folds.
type Plan struct {
	app       string
	audiences map[string]holdout.Assigner
	reengage  map[string]bool
}

// NewPlan returns the plan of app, or nil when it maps no segment to an audience.
func NewPlan(app *appconfig.App) *Plan {
	if len(app.Audiences) == 0 {
		return nil
	}
	p := &Plan{app: app.ID, audiences: map[string]holdout.Assigner{}, reengage: map[string]bool{}}
	for i := range app.Audiences {
		a := &app.Audiences[i]
		p.audiences[a.Segment] = holdout.New(app.ID, a.Segment, a.HoldoutSalt, a.Holdout())
	}
	for _, name := range app.Measurement.Events() {
		p.reengage[segments.EventName(name)] = true
	}
	return p
}

// ForConfig returns the plans of every app that has audiences, by app id.
func ForConfig(cfg *appconfig.Config) map[string]*Plan {
	out := map[string]*Plan{}
	for i := range cfg.Apps {
		if p := NewPlan(&cfg.Apps[i]); p != nil {
			out[cfg.Apps[i].ID] = p
		}
	}
	return out
}

// Measured reports whether segment has an audience (and so its joins are enrolled).
func (p *Plan) Measured(segment string) bool {
	if p == nil {
		return false
	}
	_, ok := p.audiences[segment]
	return ok
}

// Apply folds ev into s (s.Apply(ev, r)) and adds to t what it counts for the user's cohorts
// (each in the arm fixed at its enrolment).
func (p *Plan) Apply(s *segments.State, ev *envelope.Event, r *segments.AppRules, t Tally) {
	valueBefore, buysBefore := s.ValueMicros, s.Purchases
	s.Apply(ev, r)
	// State.Apply folds only consented events (the others record a withdrawal): count only
	// what it folded.
	if p == nil || len(s.Cohorts) == 0 || !ev.Consent.AdsPersonalization.IsTrue() {
		return
	}
	reengaged := p.reengage[segments.EventName(ev.Name)]
	bought := s.Purchases > buysBefore
	revenue := s.ValueMicros - valueBefore
	if !reengaged && !bought {
		return
	}
	for i := range s.Cohorts {
		c := &s.Cohorts[i]
		since := ev.Time - c.JoinedAt
		if since <= 0 || since > Window {
			continue // before (or at) the join, or after the window: not an outcome of it
		}
		var d ports.OutcomeCounts
		if reengaged {
			d.Reengaged1d = set(c, segments.Reengaged1d, since <= day)
			d.Reengaged7d = set(c, segments.Reengaged7d, since <= 7*day)
			d.Reengaged28d = set(c, segments.Reengaged28d, true)
		}
		if bought {
			d.Purchasers28d = set(c, segments.Purchased28d, true)
			d.RevenueMicros = revenue
		}
		t.Add(p.key(c), d)
	}
}

// set sets flag on c when within and not set yet, and returns 1 if it did (the user counts
// once per window), else 0.
func set(c *segments.Cohort, flag segments.CohortFlags, within bool) int64 {
	if !within || c.Flags&flag != 0 {
		return 0
	}
	c.Flags |= flag
	return 1
}

// Enrol starts a cohort in s for each segment of joined that has an audience, at unix time at
// (the membership change's time), unless one of that segment is still open; each new cohort
// adds one user to its counters in t. userKey decides the arm.
func (p *Plan) Enrol(s *segments.State, userKey string, joined []string, at int64, t Tally) {
	if p == nil {
		return
	}
	for _, seg := range joined {
		a, ok := p.audiences[seg]
		if !ok || open(s, seg, at) {
			continue
		}
		c := segments.Cohort{Segment: seg, JoinedAt: at, Arm: a.Arm(userKey)}
		s.Cohorts = append(s.Cohorts, c)
		t.Add(p.key(&c), ports.OutcomeCounts{Users: 1})
	}
}

// open reports whether s has a cohort of segment that joined less than Window before at (or
// after it: a join recorded with a later time is still being followed).
func open(s *segments.State, segment string, at int64) bool {
	for _, c := range s.Cohorts {
		if c.Segment == segment && at-c.JoinedAt < Window {
			return true
		}
	}
	return false
}

// Prune drops the cohorts whose window closed more than Grace before now (unix seconds): no
// event can count for them any more, and the user's item stays small.
func Prune(s *segments.State, now int64) {
	s.Cohorts = slices.DeleteFunc(s.Cohorts, func(c segments.Cohort) bool { return now-c.JoinedAt > Window+Grace })
	if len(s.Cohorts) == 0 {
		s.Cohorts = nil
	}
}

func (p *Plan) key(c *segments.Cohort) ports.OutcomeKey {
	return ports.OutcomeKey{App: p.app, Segment: c.Segment, JoinDay: Day(c.JoinedAt), Arm: c.Arm}
}

// Day is the UTC day (days since 1970-01-01) of unix time t: a cohort's join day.
func Day(t int64) int64 {
	d := t / day
	if t%day < 0 {
		d--
	}
	return d
}

// Tally adds up counter changes by cohort: a batch's deltas, written with one ADD per cohort.
type Tally map[ports.OutcomeKey]ports.OutcomeCounts

// Add adds d to k's counters; a zero d changes nothing.
func (t Tally) Add(k ports.OutcomeKey, d ports.OutcomeCounts) {
	if d.IsZero() {
		return
	}
	c := t[k]
	c.Add(d)
	t[k] = c
}

// Merge adds every counter of o to t.
func (t Tally) Merge(o Tally) {
	for k, d := range o {
		t.Add(k, d)
	}
}

// Outcomes returns the non-zero deltas in (app, segment, day, arm) order.
func (t Tally) Outcomes() []ports.Outcome {
	out := make([]ports.Outcome, 0, len(t))
	for k, c := range t {
		if !c.IsZero() {
			out = append(out, ports.Outcome{OutcomeKey: k, OutcomeCounts: c})
		}
	}
	slices.SortFunc(out, func(a, b ports.Outcome) int {
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Segment, b.Segment),
			cmp.Compare(a.JoinDay, b.JoinDay), cmp.Compare(a.Arm, b.Arm))
	})
	return out
}

// Total is the sum of every cohort's counters (for logs and metrics, which name no cohort).
func (t Tally) Total() ports.OutcomeCounts {
	var sum ports.OutcomeCounts
	for _, c := range t {
		sum.Add(c)
	}
	return sum
}

// Arm returns the arm userKey is assigned to in the audience of segment (Treated when the
// segment has none).
func (p *Plan) Arm(segment, userKey string) holdout.Arm {
	if p == nil {
		return holdout.Treated
	}
	return p.audiences[segment].Arm(userKey)
}

package segments

import (
	"slices"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// Evaluate returns the segments the user is in at now (in config order) and nextDue: the
// earliest moment after now at which membership of any segment changes if no new event
// arrives (zero if it never does). nextDue is exact, not an estimate: the sweeper re-evaluates
// at nextDue and finds a change. Times are compared in whole seconds (now is truncated).
//
// A user whose latest consent signal is not a grant is in no segment, and nothing changes
// until a new signal arrives (nextDue is zero).
func (r *AppRules) Evaluate(s *State, now time.Time) (segments []string, nextDue time.Time) {
	if r == nil || s == nil || !s.Consented() {
		return nil, time.Time{}
	}
	t := now.Unix()
	var due int64
	var buf [32]int64
	for i := range r.segments {
		seg := &r.segments[i]
		in := seg.holds(s, t)
		if in {
			segments = append(segments, seg.id)
		}
		// Each condition is constant between its change points, so the segment is too: the
		// first change point at which it differs from now is its exact flip time.
		cands := buf[:0]
		for k := range seg.conds {
			cands = seg.conds[k].changes(s, t, cands)
		}
		slices.Sort(cands)
		for _, c := range cands {
			if due != 0 && c >= due {
				break
			}
			if seg.holds(s, c) != in {
				due = c
				break
			}
		}
	}
	if due != 0 {
		nextDue = time.Unix(due, 0).UTC()
	}
	return segments, nextDue
}

func (seg *segment) holds(s *State, now int64) bool {
	for k := range seg.conds {
		if !seg.conds[k].holds(s, now) {
			return false
		}
	}
	return true
}

func (c *condition) holds(s *State, now int64) bool {
	switch c.kind {
	case kindCount:
		return c.count(s, now) >= c.atLeast
	case kindSince:
		x := c.moment(s)
		return x != 0 && c.inInterval(now-x)
	case kindNotFollowed:
		a := s.Last[c.event]
		if a == 0 {
			return false
		}
		for _, b := range c.events {
			if s.Last[b] >= a { // at or after: a purchase in the same second resolves the cart
				return false
			}
		}
		return c.inInterval(now - a)
	case kindValue:
		v := s.ValueMicros
		if c.attr == appconfig.AttrPurchaseCount {
			v = s.Purchases * microsPerUnit
		}
		return (!c.hasLow || v >= c.atLeast) && (!c.hasUp || v < c.upper)
	}
	return false
}

// inInterval reports whether elapsed lies in [atLeast, upper).
func (c *condition) inInterval(elapsed int64) bool {
	return (!c.hasLow || elapsed >= c.atLeast) && (!c.hasUp || elapsed < c.upper)
}

// count sums the events of the window: a bucket of day D counts at now while
// D > day(now) - window, i.e. until the window-th UTC midnight after its events (so an event
// counts for between window-1 and window days, never longer).
func (c *condition) count(s *State, now int64) int64 {
	from := dayOf(now) - c.days + 1
	var n int64
	for _, name := range c.events {
		for _, b := range s.Daily[name] {
			if b.Day >= from {
				n += b.Count
			}
		}
	}
	return n
}

// moment is the time a since condition measures from (0 if unknown).
func (c *condition) moment(s *State) int64 {
	switch c.attr {
	case "":
		var x int64
		for _, name := range c.events {
			x = max(x, s.Last[name])
		}
		return x
	case appconfig.AttrFirstSeen:
		return s.FirstSeen
	case appconfig.AttrLastSeen:
		return s.LastSeen
	case appconfig.AttrInstalled:
		return s.InstalledAt()
	case appconfig.AttrSubscriptionExpiresAt:
		return s.Subscription.ExpiresAt
	}
	return 0
}

// changes appends the moments after now at which the condition's truth can change without a
// new event.
func (c *condition) changes(s *State, now int64, dst []int64) []int64 {
	switch c.kind {
	case kindCount:
		first := dayOf(now) - c.days + 1
		for _, name := range c.events {
			for _, b := range s.Daily[name] {
				if b.Day >= first {
					dst = append(dst, (b.Day+c.days)*secondsPerDay) // the bucket leaves the window
				}
			}
		}
	case kindSince:
		dst = c.boundsAfter(c.moment(s), now, dst)
	case kindNotFollowed:
		dst = c.boundsAfter(s.Last[c.event], now, dst)
	}
	return dst
}

// boundsAfter appends the ends of the interval [x+atLeast, x+upper) that lie after now.
func (c *condition) boundsAfter(x, now int64, dst []int64) []int64 {
	if x == 0 {
		return dst
	}
	if c.hasLow && x+c.atLeast > now {
		dst = append(dst, x+c.atLeast)
	}
	if c.hasUp && x+c.upper > now {
		dst = append(dst, x+c.upper)
	}
	return dst
}

// Diff compares two memberships: joined lists the segments of after not in before, left those
// of before not in after, each in the order of its input.
func Diff(before, after []string) (joined, left []string) {
	for _, id := range after {
		if !slices.Contains(before, id) && !slices.Contains(joined, id) {
			joined = append(joined, id)
		}
	}
	for _, id := range before {
		if !slices.Contains(after, id) && !slices.Contains(left, id) {
			left = append(left, id)
		}
	}
	return joined, left
}

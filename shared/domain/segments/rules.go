package segments

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// AppRules are an app's segment rules compiled for evaluation, with what the state must keep
// for them (which event times, which daily counts and how far back) and the currency table.
// An AppRules is immutable and safe for concurrent use.
type AppRules struct {
	app      string
	currency string
	rates    map[string]float64
	segments []segment
	last     map[string]bool  // event names whose latest time the state keeps
	days     map[string]int64 // event name -> longest count window in days
	// serverValues: only server-sent events carry values the state keeps (trusted_values
	// "server"), so the holder of the publishable key cannot buy a user into a value segment.
	serverValues bool
}

type segment struct {
	id    string
	conds []condition // all must hold
}

type conditionKind uint8

const (
	kindCount conditionKind = iota + 1
	kindSince
	kindNotFollowed
	kindValue
)

// condition is one compiled primitive. Durations are in seconds, money in micros.
type condition struct {
	kind    conditionKind
	events  []string // count: counted; since: measured from the latest; not_followed: the "by" events
	event   string   // not_followed: the event measured from
	attr    string   // since, value
	atLeast int64    // count: events; since and not_followed ("after"): seconds; value: micros
	upper   int64    // since: within; not_followed: until; value: below (micros)
	hasLow  bool     // atLeast is set (since, value)
	hasUp   bool     // upper is set
	days    int64    // count: window in days
}

// Compile validates an app's segment rules and compiles them.
func Compile(app *appconfig.App) (*AppRules, error) {
	if err := app.ValidateSegments(); err != nil {
		return nil, err
	}
	r := &AppRules{
		app:          app.ID,
		currency:     app.ReportingCurrency,
		rates:        maps.Clone(app.CurrencyRates),
		serverValues: app.ValuesFromServerOnly(),
		last:         map[string]bool{},
		days:         map[string]int64{},
	}
	for _, name := range coreEvents {
		r.last[name] = true
	}
	for _, def := range app.Segments {
		seg := segment{id: def.ID}
		for _, c := range def.When {
			cc, err := r.compileCondition(&c)
			if err != nil { // unreachable after ValidateSegments; kept so a gap fails loudly
				return nil, fmt.Errorf("app %q segment %q: %w", app.ID, def.ID, err)
			}
			seg.conds = append(seg.conds, cc)
		}
		r.segments = append(r.segments, seg)
	}
	return r, nil
}

// ForConfig compiles the rules of every app in cfg, by app id.
func ForConfig(cfg *appconfig.Config) (map[string]*AppRules, error) {
	out := make(map[string]*AppRules, len(cfg.Apps))
	var errs []error
	for i := range cfg.Apps {
		r, err := Compile(&cfg.Apps[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[cfg.Apps[i].ID] = r
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *AppRules) compileCondition(c *appconfig.Condition) (condition, error) {
	seconds := func(s string) (int64, error) {
		if s == "" {
			return 0, nil
		}
		d, err := appconfig.ParseDuration(s)
		return int64(d / time.Second), err
	}
	switch {
	case c.Count != nil:
		window, err := seconds(c.Count.Within)
		if err != nil {
			return condition{}, err
		}
		cc := condition{kind: kindCount, events: c.Count.Events, atLeast: c.Count.AtLeast, days: window / secondsPerDay}
		for _, name := range cc.events {
			r.days[name] = max(r.days[name], cc.days)
		}
		return cc, nil
	case c.Since != nil:
		low, err1 := seconds(c.Since.AtLeast)
		up, err2 := seconds(c.Since.Within)
		if err := errors.Join(err1, err2); err != nil {
			return condition{}, err
		}
		for _, name := range c.Since.Events {
			r.last[name] = true
		}
		return condition{kind: kindSince, events: c.Since.Events, attr: c.Since.Attribute,
			atLeast: low, hasLow: c.Since.AtLeast != "", upper: up, hasUp: c.Since.Within != ""}, nil
	case c.NotFollowed != nil:
		nf := c.NotFollowed
		after, err1 := seconds(nf.After)
		until, err2 := seconds(nf.Until)
		if err := errors.Join(err1, err2); err != nil {
			return condition{}, err
		}
		r.last[nf.Event] = true
		for _, name := range nf.By {
			r.last[name] = true
		}
		return condition{kind: kindNotFollowed, event: nf.Event, events: nf.By,
			atLeast: after, hasLow: true, upper: until, hasUp: nf.Until != ""}, nil
	case c.Value != nil:
		v := c.Value
		cc := condition{kind: kindValue, attr: v.Attribute}
		if v.AtLeast != nil {
			cc.atLeast, cc.hasLow = toMicros(*v.AtLeast), true
		}
		if v.Below != nil {
			cc.upper, cc.hasUp = toMicros(*v.Below), true
		}
		return cc, nil
	}
	return condition{}, errors.New("condition names no primitive")
}

// App returns the id of the app the rules belong to.
func (r *AppRules) App() string { return r.app }

// Segments returns the segment ids in config order.
func (r *AppRules) Segments() []string {
	if r == nil {
		return nil
	}
	ids := make([]string, len(r.segments))
	for i, s := range r.segments {
		ids[i] = s.id
	}
	return ids
}

// ReportingCurrency returns the currency lifetime value is kept in ("" if none is configured).
func (r *AppRules) ReportingCurrency() string {
	if r == nil {
		return ""
	}
	return r.currency
}

// TrackedEvents returns the event names whose latest time the state keeps, sorted.
func (r *AppRules) TrackedEvents() []string {
	if r == nil {
		return slices.Sorted(slices.Values(coreEvents))
	}
	return slices.Sorted(maps.Keys(r.last))
}

// CountedEvents returns the event names the state keeps daily counts of, with the number of
// days each needs (the longest window that counts it).
func (r *AppRules) CountedEvents() map[string]int {
	out := map[string]int{}
	if r != nil {
		for name, d := range r.days {
			out[name] = int(d)
		}
	}
	return out
}

// trustsValues reports whether an event's values (purchase value and count, subscription
// expiry) may feed the state: always, unless the app trusts values from its server only and
// the event came from the app. Without rules every event is trusted.
func (r *AppRules) trustsValues(ev *envelope.Event) bool {
	return r == nil || !r.serverValues || ev.Server
}

func (r *AppRules) keepsLast(name string) bool {
	if r == nil {
		return slices.Contains(coreEvents, name)
	}
	return r.last[name]
}

func (r *AppRules) bucketDays(name string) int64 {
	if r == nil {
		return 0
	}
	return r.days[name]
}

// rate returns how many units of the reporting currency one unit of code is worth.
func (r *AppRules) rate(code string) (float64, bool) {
	if r == nil || r.currency == "" {
		return 0, false
	}
	if code == r.currency {
		return 1, true
	}
	rate, ok := r.rates[code]
	return rate, ok
}

// Trim drops from s what the rules no longer need: event times and daily counts of names no
// rule references, and daily buckets older than the longest window counting them. Apply and
// Merge trim; call Trim after the rules changed.
//
// Buckets are kept from day(LastSeen) - window on: evaluation at any time now >= LastSeen - 1d
// needs days from day(now) - window + 1, so the day of slack covers event times up to the
// 5 minutes in the future the ingest API accepts. LastSeen only grows, so trimming against it
// never removes a bucket a later fold would still count: the result does not depend on order.
func (r *AppRules) Trim(s *State) {
	for name := range s.Last {
		if !r.keepsLast(name) {
			delete(s.Last, name)
		}
	}
	today := dayOf(s.LastSeen)
	for name, bs := range s.Daily {
		w := r.bucketDays(name)
		if w == 0 {
			delete(s.Daily, name)
			continue
		}
		from := today - w
		i := 0
		for i < len(bs) && bs[i].Day < from {
			i++
		}
		switch {
		case i == len(bs):
			delete(s.Daily, name)
		case i > 0:
			s.Daily[name] = slices.Delete(bs, 0, i)
		}
	}
}

package appconfig

// The segment rule schema. A segment is a named conjunction of conditions; each condition is
// an object with exactly one key naming its primitive:
//
//	{"id": "cart_abandoner", "description": "...", "when": [
//	  {"not_followed": {"event": "AddToCart", "by": ["Purchase"], "after": "1h", "until": "7d"}}]}
//
// Primitives (times are compared in whole seconds; intervals are half-open, [start, end)):
//
//	count         {"events": [...], "within": "7d", "at_least": 3}
//	              at least N of these events in the last W whole days (UTC-day buckets)
//	since         {"events": [...]} or {"attribute": "installed"|"first_seen"|"last_seen"|
//	              "subscription_expires_at"}, with "at_least": D and/or "within": D
//	              time since the latest of the events (or the attribute) is >= at_least and < within
//	not_followed  {"event": "A", "by": ["B", ...], "after": D, "until": D}
//	              the latest A is at least "after" old, no B at or after it, and (if set) less
//	              than "until" old
//	value         {"attribute": "lifetime_value"|"purchase_count", "at_least": X, "below": Y}
//
// Event names are Conversions API names (AddToCart, Purchase, ActivateApp...) or custom names;
// events the app sends as fb_mobile_* are matched to their Conversions API name. The evaluation
// lives in package segments; this file only decodes and validates, so a bad rule fails the load.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Segment is one declarative segment: the user is in it while every condition holds.
type Segment struct {
	// ID names the segment in state, membership changes and audience mappings.
	ID string `json:"id"`
	// Description says what the segment means, for people reading the config.
	Description string `json:"description,omitempty"`
	// When lists the conditions; all must hold.
	When []Condition `json:"when"`

	problems []string // found while decoding; reported by Validate with the segment's path
}

// Condition is one test on a user's state. Exactly one field is set.
type Condition struct {
	Count       *CountCondition       `json:"count,omitempty"`
	Since       *SinceCondition       `json:"since,omitempty"`
	NotFollowed *NotFollowedCondition `json:"not_followed,omitempty"`
	Value       *ValueCondition       `json:"value,omitempty"`

	problems []string
}

// CountCondition holds when at least AtLeast of Events happened in the last Within (whole days).
type CountCondition struct {
	Events  []string `json:"events"`
	Within  string   `json:"within"`
	AtLeast int64    `json:"at_least"`
}

// SinceCondition holds when the time since a moment is at least AtLeast and less than Within.
// The moment is the latest of Events, or the time attribute Attribute. It never holds when the
// moment is unknown (the events never happened, the attribute is unset).
type SinceCondition struct {
	Events    []string `json:"events,omitempty"`
	Attribute string   `json:"attribute,omitempty"`
	AtLeast   string   `json:"at_least,omitempty"`
	Within    string   `json:"within,omitempty"`
}

// NotFollowedCondition holds from After after the latest Event until Until after it (no end if
// empty), unless one of By happened at or after that Event.
type NotFollowedCondition struct {
	Event string   `json:"event"`
	By    []string `json:"by"`
	After string   `json:"after"`
	Until string   `json:"until,omitempty"`
}

// ValueCondition compares a numeric attribute: AtLeast <= value < Below (each bound optional).
type ValueCondition struct {
	Attribute string   `json:"attribute"`
	AtLeast   *float64 `json:"at_least,omitempty"`
	Below     *float64 `json:"below,omitempty"`
}

// Time attributes a since condition can measure from.
const (
	AttrFirstSeen             = "first_seen"              // earliest event
	AttrLastSeen              = "last_seen"               // latest event
	AttrInstalled             = "installed"               // latest MobileAppInstall, else first_seen
	AttrSubscriptionExpiresAt = "subscription_expires_at" // of the newest subscription event
)

// Numeric attributes a value condition can compare.
const (
	AttrLifetimeValue = "lifetime_value" // in the app's reporting currency
	AttrPurchaseCount = "purchase_count"
)

// MaxDuration bounds rule durations: beyond it a rule is almost certainly a typo.
const MaxDuration = 3650 * 24 * time.Hour

var (
	segmentIDPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	eventNamePattern = regexp.MustCompile(`^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$`)
	currencyPattern  = regexp.MustCompile(`^[A-Z]{3}$`)
	durationPattern  = regexp.MustCompile(`^([0-9]{1,7}[dhms])+$`)
	timeAttributes   = []string{AttrInstalled, AttrFirstSeen, AttrLastSeen, AttrSubscriptionExpiresAt}
	valueAttributes  = []string{AttrLifetimeValue, AttrPurchaseCount}
	primitives       = "count, since, not_followed, value"
	durationUnits    = map[byte]time.Duration{'d': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}
)

// ParseDuration reads a rule duration: whole numbers with units d (24h), h, m, s, e.g. "90m",
// "24h", "7d", "1d12h". Negative durations and durations over MaxDuration are errors.
func ParseDuration(s string) (time.Duration, error) {
	if strings.HasPrefix(s, "-") && durationPattern.MatchString(s[1:]) {
		return 0, fmt.Errorf("%q: must not be negative", s)
	}
	if !durationPattern.MatchString(s) {
		return 0, fmt.Errorf("%q is not a duration (use a whole number and a unit, e.g. \"90m\", \"24h\", \"7d\"; units d, h, m, s)", s)
	}
	var total time.Duration
	for rest := s; rest != ""; {
		i := strings.IndexAny(rest, "dhms")
		n, _ := strconv.ParseInt(rest[:i], 10, 64) // at most 7 digits
		unit := durationUnits[rest[i]]
		if n > int64(MaxDuration/unit) || total+time.Duration(n)*unit > MaxDuration { // checked before it could overflow
			total = MaxDuration + 1
		} else {
			total += time.Duration(n) * unit
		}
		if total > MaxDuration {
			return 0, fmt.Errorf("%q: longer than %dd", s, MaxDuration/(24*time.Hour))
		}
		rest = rest[i+1:]
	}
	return total, nil
}

// UnmarshalJSON decodes a segment strictly, keeping problems (unknown keys, wrong types) for
// Validate so that the message names the app and the segment.
func (s *Segment) UnmarshalJSON(data []byte) error {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		*s = Segment{problems: []string{`must be an object: {"id": ..., "description": ..., "when": [...]}`}}
		return nil
	}
	type plain Segment
	var p plain
	err := strictDecode(data, &p)
	*s = Segment(p)
	if err != nil {
		s.problems = append(s.problems, describeFieldError(err))
	}
	return nil
}

// UnmarshalJSON decodes a condition: one key naming the primitive, its body decoded strictly.
func (c *Condition) UnmarshalJSON(data []byte) error {
	*c = Condition{}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		c.problems = append(c.problems, fmt.Sprintf("must be an object with one primitive (%s), e.g. {\"count\": {...}}", primitives))
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		var target any
		switch k {
		case "count":
			c.Count = new(CountCondition)
			target = c.Count
		case "since":
			c.Since = new(SinceCondition)
			target = c.Since
		case "not_followed":
			c.NotFollowed = new(NotFollowedCondition)
			target = c.NotFollowed
		case "value":
			c.Value = new(ValueCondition)
			target = c.Value
		default:
			c.problems = append(c.problems, fmt.Sprintf("unknown primitive %q (use one of %s)", k, primitives))
			continue
		}
		if err := strictDecode(raw[k], target); err != nil {
			c.problems = append(c.problems, k+": "+describeFieldError(err))
		}
	}
	return nil
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// describeFieldError turns a decoding error inside a rule into a short message.
func describeFieldError(err error) string {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%s: must be %s, not %s", typ.Field, typ.Type, typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("must be %s, not %s", typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return "is empty"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ") + " (check the spelling; unknown keys are not ignored)"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// checkSegments validates the app's currency settings and segment rules; bad reports each
// problem with its field path.
func (a *App) checkSegments(bad func(field, format string, args ...any)) {
	if c := a.ReportingCurrency; c != "" && !currencyPattern.MatchString(c) {
		bad("reporting_currency", "%q is not an ISO 4217 code (three capital letters, e.g. USD)", c)
	}
	if len(a.CurrencyRates) > 0 && a.ReportingCurrency == "" {
		bad("currency_rates", "needs reporting_currency (the currency the rates convert to)")
	}
	for _, code := range slices.Sorted(maps.Keys(a.CurrencyRates)) {
		rate := a.CurrencyRates[code]
		switch {
		case !currencyPattern.MatchString(code):
			bad("currency_rates", "%q is not an ISO 4217 code (three capital letters, e.g. EUR)", code)
		case code == a.ReportingCurrency:
			bad("currency_rates."+code, "is the reporting currency (its rate is 1 by definition)")
		case !(rate > 0) || math.IsInf(rate, 0):
			bad("currency_rates."+code, "must be a positive number of %s per %s (got %v)", a.ReportingCurrency, code, rate)
		}
	}
	ids := map[string]int{}
	for i := range a.Segments {
		s := &a.Segments[i]
		where := fmt.Sprintf("segments[%d]", i)
		if s.ID != "" {
			where = fmt.Sprintf("segments[%d] (%q)", i, s.ID)
		}
		for _, p := range s.problems {
			bad(where, "%s", p)
		}
		switch {
		case s.ID == "":
			bad(where+".id", "is required")
		case !segmentIDPattern.MatchString(s.ID):
			bad(where+".id", "must match ^[a-z][a-z0-9_]{0,62}$ (lowercase letter first, then lowercase letters, digits or '_')")
		default:
			if j, dup := ids[s.ID]; dup {
				bad(where+".id", "duplicates segments[%d]", j)
			}
			ids[s.ID] = i
		}
		if len(s.When) == 0 && len(s.problems) == 0 {
			bad(where+".when", "list at least one condition (%s)", primitives)
		}
		for k := range s.When {
			a.checkCondition(&s.When[k], fmt.Sprintf("%s.when[%d]", where, k), bad)
		}
	}
}

func (a *App) checkCondition(c *Condition, where string, bad func(field, format string, args ...any)) {
	for _, p := range c.problems {
		bad(where, "%s", p)
	}
	n := 0
	for _, set := range []bool{c.Count != nil, c.Since != nil, c.NotFollowed != nil, c.Value != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0 && len(c.problems) == 0:
		bad(where, "names no primitive (use one of %s)", primitives)
	case n > 1:
		bad(where, "names %d primitives: write one per condition (all conditions of a segment must hold)", n)
	}
	switch {
	case c.Count != nil:
		w := where + ".count"
		checkEventList(c.Count.Events, w+".events", bad)
		if d, ok := checkDuration(c.Count.Within, w+".within", true, bad); ok {
			if d == 0 || d%(24*time.Hour) != 0 {
				bad(w+".within", "%q: must be a whole number of days, at least 1d (counts are kept per UTC day)", c.Count.Within)
			}
		}
		if c.Count.AtLeast < 1 {
			bad(w+".at_least", "must be at least 1 (got %d)", c.Count.AtLeast)
		}
	case c.Since != nil:
		w := where + ".since"
		switch {
		case len(c.Since.Events) > 0 && c.Since.Attribute != "":
			bad(w, "set events or attribute, not both")
		case c.Since.Attribute != "":
			if !slices.Contains(timeAttributes, c.Since.Attribute) {
				bad(w+".attribute", "%q is not a time attribute (use one of %s)", c.Since.Attribute, strings.Join(timeAttributes, ", "))
			}
		case c.Since.Events == nil:
			bad(w, "set events (the latest of them) or attribute (one of %s)", strings.Join(timeAttributes, ", "))
		default:
			checkEventList(c.Since.Events, w+".events", bad)
		}
		if c.Since.AtLeast == "" && c.Since.Within == "" {
			bad(w, "set at_least, within or both")
		}
		least, okLeast := checkDuration(c.Since.AtLeast, w+".at_least", false, bad)
		within, okWithin := checkDuration(c.Since.Within, w+".within", false, bad)
		if okWithin && c.Since.Within != "" && within == 0 {
			bad(w+".within", "must be longer than 0s")
		}
		if okLeast && okWithin && c.Since.AtLeast != "" && c.Since.Within != "" && least >= within {
			bad(w, "at_least (%s) must be shorter than within (%s), or the condition never holds", c.Since.AtLeast, c.Since.Within)
		}
	case c.NotFollowed != nil:
		w := where + ".not_followed"
		nf := c.NotFollowed
		if msg := eventNameProblem(nf.Event); msg != "" {
			bad(w+".event", "%s", msg)
		}
		checkEventList(nf.By, w+".by", bad)
		if nf.Event != "" && slices.Contains(nf.By, nf.Event) {
			bad(w+".by", "lists the event itself (%q): the condition measures from its latest occurrence", nf.Event)
		}
		after, okAfter := checkDuration(nf.After, w+".after", true, bad)
		until, okUntil := checkDuration(nf.Until, w+".until", false, bad)
		if okAfter && okUntil && nf.Until != "" && until <= after {
			bad(w+".until", "(%s) must be longer than after (%s), or the condition never holds", nf.Until, nf.After)
		}
	case c.Value != nil:
		w := where + ".value"
		v := c.Value
		if !slices.Contains(valueAttributes, v.Attribute) {
			bad(w+".attribute", "%q is not a numeric attribute (use one of %s)", v.Attribute, strings.Join(valueAttributes, ", "))
		}
		switch {
		case v.AtLeast == nil && v.Below == nil:
			bad(w, "set at_least, below or both")
		case v.AtLeast != nil && v.Below != nil && *v.AtLeast >= *v.Below:
			bad(w, "at_least (%v) must be less than below (%v), or the condition never holds", *v.AtLeast, *v.Below)
		}
		if v.Attribute == AttrLifetimeValue && a.ReportingCurrency == "" {
			bad(w, "lifetime_value needs the app's reporting_currency")
		}
	}
}

// checkDuration validates an optional (or, with required, mandatory) duration field.
func checkDuration(s, field string, required bool, bad func(field, format string, args ...any)) (time.Duration, bool) {
	if s == "" {
		if required {
			bad(field, "is required (e.g. \"24h\", \"7d\")")
			return 0, false
		}
		return 0, true
	}
	d, err := ParseDuration(s)
	if err != nil {
		bad(field, "%v", err)
		return 0, false
	}
	return d, true
}

func checkEventList(names []string, field string, bad func(field, format string, args ...any)) {
	if len(names) == 0 {
		bad(field, "list at least one event name")
	}
	for i, n := range names {
		if msg := eventNameProblem(n); msg != "" {
			bad(fmt.Sprintf("%s[%d]", field, i), "%s", msg)
		} else if slices.Contains(names[:i], n) {
			bad(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", n)
		}
	}
}

// eventNameProblem checks an event name in a rule. Rules use the Conversions API names: the
// app's fb_mobile_* events are matched to them, so one spelling per event keeps rules readable.
func eventNameProblem(name string) string {
	switch {
	case name == "":
		return "is required (an event name such as AddToCart)"
	case strings.HasPrefix(name, "fb_"):
		return fmt.Sprintf("%q: use the Conversions API name (e.g. AddToCart for fb_mobile_add_to_cart, ActivateApp for fb_mobile_activate_app); app events named fb_mobile_* are matched to it", name)
	case !eventNamePattern.MatchString(name):
		return fmt.Sprintf("%q is not an event name (must match ^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$)", name)
	}
	return ""
}

// ValidateSegments checks the app's segment rules and currency settings alone; Config.Validate
// runs the same checks for every app.
func (a *App) ValidateSegments() error {
	var errs []error
	where := fmt.Sprintf("app %q", a.ID)
	a.checkSegments(func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", where, field, fmt.Sprintf(format, args...)))
	})
	return errors.Join(errs...)
}

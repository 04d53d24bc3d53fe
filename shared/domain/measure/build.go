package measure

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/ports"
)

// ErrPeriod is wrapped by every error about the from..to period: the caller's input is wrong
// (the route answers 400).
var ErrPeriod = errors.New("invalid period")

// MaxPeriodDays is the longest period a report covers: a year, leap day included.
const MaxPeriodDays = 366

// WindowDays is the longest outcome window: a cohort's counts are final 28 days after its
// join day ends.
const WindowDays = 28

// DateLayout is the form of every date of a report (YYYY-MM-DD).
const DateLayout = "2006-01-02"

const secondsPerDay = 86400

// ParsePeriod checks the join days from..to (YYYY-MM-DD, UTC, inclusive, from <= to, at most
// MaxPeriodDays days) and returns them as days since 1970-01-01, the cohorts' JoinDay. Errors
// wrap ErrPeriod.
func ParsePeriod(from, to string) (fromDay, toDay int64, err error) {
	if fromDay, err = ParseDate("from", from); err != nil {
		return 0, 0, err
	}
	if toDay, err = ParseDate("to", to); err != nil {
		return 0, 0, err
	}
	if fromDay > toDay {
		return 0, 0, fmt.Errorf("%w: from %s is after to %s", ErrPeriod, from, to)
	}
	if n := toDay - fromDay + 1; n > MaxPeriodDays {
		return 0, 0, fmt.Errorf("%w: %s to %s is %d days, at most %d are reported at once", ErrPeriod, from, to, n, MaxPeriodDays)
	}
	return fromDay, toDay, nil
}

// ParseDate reads one date (YYYY-MM-DD) as days since 1970-01-01; the error wraps ErrPeriod
// and names field (the parameter).
func ParseDate(field, s string) (int64, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil || t.Format(DateLayout) != s {
		return 0, fmt.Errorf("%w: %s %q is not a date (YYYY-MM-DD)", ErrPeriod, field, s)
	}
	return DayOf(t), nil
}

// DayOf is the UTC day of t, in days since 1970-01-01.
func DayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / secondsPerDay
	if s%secondsPerDay < 0 {
		d-- // floor, for instants before 1970
	}
	return d
}

// DayString is the date (YYYY-MM-DD) of a day since 1970-01-01.
func DayString(day int64) string {
	return time.Unix(day*secondsPerDay, 0).UTC().Format(DateLayout)
}

// Build computes the report of one app: per audience, in input order, the arms' totals over
// the cohorts that joined from in.From to in.To, the lifts at 1, 7 and 28 days, the
// incremental numbers, the spend of the ad sets that include that audience alone, and what
// follows from them. Spend of ad sets that include several managed audiences goes to
// Report.Groups, never split.
//
// Choices a reader of the numbers needs:
//   - Rates (retention, value per user) are null for an arm below the minimum sample; lifts
//     follow SampleShortfall. Per-day points are descriptive: their rates are given whenever
//     the arm has users that day.
//   - Incremental re-engaged = lift_7d.difference × treated users; incremental revenue =
//     (treated revenue per user − holdout revenue per user) × treated users (it has no
//     interval: the counters keep no per-user variance).
//   - The cost per incremental re-engagement is computed when the 7-day lift is computable and
//     positive and there is spend, significant or not: a note says when the lift is not
//     significant (the cost is then not reliable), so that the number is there for trends but
//     never read as a measured cost.
//   - Spend days are in the ad account's time zone, join days in UTC: both are compared as
//     dates, and a note says so.
func Build(in Input) (Report, error) {
	fromDay, toDay, err := ParsePeriod(in.From, in.To)
	if err != nil {
		return Report{}, fmt.Errorf("measure: %w", err)
	}
	if in.AsOf.IsZero() {
		return Report{}, errors.New("measure: AsOf is not set")
	}
	rep := Report{
		App:         in.App,
		From:        in.From,
		To:          in.To,
		GeneratedAt: in.AsOf.UTC().Format(time.RFC3339),
		Audiences:   make([]AudienceReport, 0, len(in.Audiences)),
	}
	p := period{
		fromDay: fromDay, toDay: toDay, from: in.From, to: in.To,
		asOfDay: DayOf(in.AsOf), minUsers: int64(max(in.MinSample, 1)),
	}
	rep.Groups = groupSpend(in.Spend, p)
	for _, a := range in.Audiences {
		rep.Audiences = append(rep.Audiences, buildAudience(in, p, a, rep.Groups))
	}
	return rep, nil
}

// period is a validated from..to with the report's as-of day and minimum sample.
type period struct {
	fromDay, toDay int64
	from, to       string // the same days as dates
	asOfDay        int64
	minUsers       int64 // at least 1
}

func (p period) inDays(day int64) bool    { return day >= p.fromDay && day <= p.toDay }
func (p period) inDates(date string) bool { return date >= p.from && date <= p.to }

// Outcome names of the lifts (they appear in the notes).
const (
	outcome1d  = "re-engaged within 1 day"
	outcome7d  = "re-engaged within 7 days"
	outcome28d = "re-engaged within 28 days"
)

func buildAudience(in Input, p period, a AudienceInput, groups []GroupSpend) AudienceReport {
	r := AudienceReport{
		App:               in.App,
		Segment:           a.Segment,
		AudienceID:        a.AudienceID,
		HoldoutAudienceID: a.HoldoutAudienceID,
		HoldoutFraction:   a.HoldoutFraction,
		ContaminatedDays:  []string{},
		Days:              []DayPoint{},
		Notes:             []string{},
	}
	note := func(format string, args ...any) { r.Notes = append(r.Notes, fmt.Sprintf(format, args...)) }

	// The arms' totals and the per-day points.
	var totals [2]ports.OutcomeCounts
	daily := map[int64]*[2]ports.OutcomeCounts{}
	for _, o := range a.Outcomes {
		if !p.inDays(o.JoinDay) || (o.Arm != holdout.Treated && o.Arm != holdout.Holdout) {
			continue
		}
		totals[o.Arm].Add(o.OutcomeCounts)
		d := daily[o.JoinDay]
		if d == nil {
			d = &[2]ports.OutcomeCounts{}
			daily[o.JoinDay] = d
		}
		d[o.Arm].Add(o.OutcomeCounts)
	}
	t, h := totals[holdout.Treated], totals[holdout.Holdout]
	r.Treated, r.Holdout = armStats(t, p.minUsers), armStats(h, p.minUsers)
	if all := t.Users + h.Users; all > 0 {
		r.HoldoutShare = ptr(float64(h.Users) / float64(all))
	}

	// The lifts.
	minSample := int(p.minUsers)
	r.Lift1d = LiftOf(Proportion{t.Reengaged1d, t.Users}, Proportion{h.Reengaged1d, h.Users}, minSample, outcome1d)
	r.Lift7d = LiftOf(Proportion{t.Reengaged7d, t.Users}, Proportion{h.Reengaged7d, h.Users}, minSample, outcome7d)
	r.Lift28d = LiftOf(Proportion{t.Reengaged28d, t.Users}, Proportion{h.Reengaged28d, h.Users}, minSample, outcome28d)
	noHoldout := a.HoldoutFraction == 0 && h.Users == 0
	if noHoldout {
		const why = NotEnoughData + ": the audience has no holdout (holdout_fraction is 0)"
		r.Lift1d, r.Lift7d, r.Lift28d = Lift{Note: why}, Lift{Note: why}, Lift{Note: why}
		note("no holdout (holdout_fraction is 0): the lift, the incremental numbers and their cost cannot be measured")
	}
	for _, arm := range []struct {
		name  string
		users int64
	}{{"treated", t.Users}, {"holdout", h.Users}} {
		if arm.users < p.minUsers && !(noHoldout && arm.name == "holdout") {
			note("%s: %s has %d users, at least %d per arm are needed (its rates are null)", NotEnoughData, arm.name, arm.users, p.minUsers)
		}
	}

	// Incremental numbers.
	if d := r.Lift7d.Difference; d != nil {
		r.IncrementalReengaged7d = ptr(*d * float64(t.Users))
	}
	if r.Treated.ValuePerUser28d != nil && r.Holdout.ValuePerUser28d != nil {
		r.IncrementalRevenue28d = ptr((*r.Treated.ValuePerUser28d - *r.Holdout.ValuePerUser28d) * float64(t.Users))
	}

	// Spend of the ad sets that include this audience alone, and contamination.
	sp := audienceSpend(in.Spend, p, a.Segment)
	r.ContaminatedDays = sp.contaminated
	r.Contaminated = len(sp.contaminated) > 0
	if len(sp.currencies) == 1 {
		r.Spend = ptr(float64(sp.micros) / 1e6)
		r.Currency = sp.currencies[0]
	}

	// Cost per incremental re-engagement.
	const cost = "cost per incremental re-engagement"
	switch d := r.Lift7d.Difference; {
	case d == nil:
		note("%s: %s (see lift_7d)", cost, NotEnoughData)
	case *d <= 0:
		note("%s: lift not positive (no incremental re-engagement to pay for)", cost)
	case r.Spend == nil || *r.Spend <= 0:
		note("%s: no spend", cost)
	default:
		r.CostPerIncrementalReengagement = ptr(*r.Spend / *r.IncrementalReengaged7d)
		if !r.Lift7d.Significant {
			note("lift not significant: the %s is not reliable", cost)
		}
	}

	// Incremental ROAS: revenue is in the reporting currency, spend in the account's.
	if r.IncrementalRevenue28d != nil && r.Spend != nil && *r.Spend > 0 {
		switch {
		case in.ReportingCurrency == "":
			note("incremental ROAS: the app has no reporting_currency, so revenue cannot be compared with spend in %s", r.Currency)
		case in.ReportingCurrency != r.Currency:
			note("incremental ROAS: revenue is in %s and spend in %s, not compared", in.ReportingCurrency, r.Currency)
		default:
			r.IncrementalROAS = ptr(*r.IncrementalRevenue28d / *r.Spend)
		}
	}

	// What qualifies the spend.
	if len(sp.currencies) > 1 {
		note("spend: the ad sets spent in several currencies (%s), not summed", strings.Join(sp.currencies, ", "))
	}
	for _, g := range groups {
		if slices.Contains(g.Audiences, a.Segment) {
			note("spend: ad sets that include this audience with other managed audiences spent too; that spend is in groups, not split and not counted here")
			break
		}
	}
	if sp.rows > 0 {
		note("spend: days are in the ad account's time zone, join days in UTC; both are matched as dates, so a day's spend and its cohort can be hours apart")
	}
	if r.Contaminated {
		note("contaminated: on %s an active ad set included the audience without excluding its holdout audience; holdout users could see the ads, so the lift is biased toward 0",
			strings.Join(sp.contaminated, ", "))
	}

	// Windows still open: a cohort of day D is final from the start of day D+29 (its last
	// user joined before D+1); the period's last day can also still get users.
	openFrom := max(p.fromDay, p.asOfDay-WindowDays)
	for day := openFrom; day <= p.toDay && !r.WindowsOpen; day++ {
		if c := daily[day]; day >= p.asOfDay || c != nil && c[0].Users+c[1].Users > 0 {
			r.WindowsOpen = true
		}
	}
	if r.WindowsOpen {
		note("windows open: cohorts that joined from %s on are less than %d days old as of %s; their counts can still grow (in both arms alike)",
			DayString(openFrom), WindowDays, DayString(p.asOfDay))
	}

	// The per-day points.
	for day := p.fromDay; day <= p.toDay; day++ {
		c := daily[day]
		if c == nil || c[0].Users+c[1].Users == 0 {
			continue
		}
		ct, ch := c[holdout.Treated], c[holdout.Holdout]
		dp := DayPoint{
			Day:                DayString(day),
			TreatedUsers:       ct.Users,
			HoldoutUsers:       ch.Users,
			TreatedReengaged7d: ct.Reengaged7d,
			HoldoutReengaged7d: ch.Reengaged7d,
			TreatedRate7d:      rate(ct.Reengaged7d, ct.Users, 1),
			HoldoutRate7d:      rate(ch.Reengaged7d, ch.Users, 1),
		}
		if len(sp.currencies) == 1 {
			dp.Spend = float64(sp.byDate[dp.Day]) / 1e6
		}
		r.Days = append(r.Days, dp)
	}
	return r
}

// armStats converts an arm's counters; rates are null below minUsers.
func armStats(c ports.OutcomeCounts, minUsers int64) ArmStats {
	s := ArmStats{
		Users:         c.Users,
		Reengaged1d:   c.Reengaged1d,
		Reengaged7d:   c.Reengaged7d,
		Reengaged28d:  c.Reengaged28d,
		Purchasers28d: c.Purchasers28d,
		Revenue28d:    float64(c.RevenueMicros) / 1e6,
	}
	s.Retention1d = rate(c.Reengaged1d, c.Users, minUsers)
	s.Retention7d = rate(c.Reengaged7d, c.Users, minUsers)
	s.Retention28d = rate(c.Reengaged28d, c.Users, minUsers)
	if c.Users >= minUsers && c.Users > 0 {
		s.ValuePerUser28d = ptr(s.Revenue28d / float64(c.Users))
	}
	return s
}

// rate is n/users, null below minUsers (and without users).
func rate(n, users, minUsers int64) *float64 {
	if users < minUsers || users <= 0 {
		return nil
	}
	return ptr(float64(n) / float64(users))
}

// spendOf is what the spend rows of the period say about one audience.
type spendOf struct {
	rows         int
	micros       int64
	currencies   []string         // sorted
	byDate       map[string]int64 // micros per date
	contaminated []string         // sorted dates
}

// audienceSpend sums the rows whose ad set includes exactly this audience, and collects the
// days any row said the audience's holdout was not excluded.
func audienceSpend(rows []ports.SpendDay, p period, segment string) spendOf {
	s := spendOf{byDate: map[string]int64{}, contaminated: []string{}}
	for _, row := range rows {
		if !p.inDates(row.Date) {
			continue
		}
		if slices.Contains(row.Contaminated, segment) && !slices.Contains(s.contaminated, row.Date) {
			s.contaminated = append(s.contaminated, row.Date)
		}
		if len(row.Audiences) != 1 || row.Audiences[0] != segment {
			continue
		}
		s.rows++
		s.micros += row.SpendMicros
		s.byDate[row.Date] += row.SpendMicros
		if !slices.Contains(s.currencies, row.Currency) {
			s.currencies = append(s.currencies, row.Currency)
		}
	}
	slices.Sort(s.currencies)
	slices.Sort(s.contaminated)
	return s
}

// groupSpend sums the period's rows of ad sets that include several managed audiences, per
// group of audiences and currency, in (audiences, currency) order.
func groupSpend(rows []ports.SpendDay, p period) []GroupSpend {
	type key struct{ audiences, currency string }
	byKey := map[key]*GroupSpend{}
	micros := map[key]int64{}
	for _, row := range rows {
		if len(row.Audiences) < 2 || !p.inDates(row.Date) {
			continue
		}
		auds := slices.Clone(row.Audiences)
		slices.Sort(auds)
		k := key{strings.Join(auds, "\x00"), row.Currency}
		g := byKey[k]
		if g == nil {
			g = &GroupSpend{
				Audiences: auds,
				Currency:  row.Currency,
				AdSets:    []string{},
				Note:      fmt.Sprintf("spend of ad sets that include several managed audiences (%s): reported for the group, not split between them", strings.Join(auds, ", ")),
			}
			byKey[k] = g
		}
		micros[k] += row.SpendMicros
		if !slices.Contains(g.AdSets, row.AdSetID) {
			g.AdSets = append(g.AdSets, row.AdSetID)
		}
	}
	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(strings.Compare(a.audiences, b.audiences), strings.Compare(a.currency, b.currency))
	})
	out := make([]GroupSpend, 0, len(keys))
	for _, k := range keys {
		g := byKey[k]
		g.Spend = float64(micros[k]) / 1e6
		slices.Sort(g.AdSets)
		out = append(out, *g)
	}
	return out
}

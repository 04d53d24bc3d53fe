// Package insights is the daily insights run (also run on demand): for every app with
// audiences it reads the ad sets of the app's ad accounts and their targeting, maps each to the
// managed audiences it includes, pulls Ads Insights per ad set and day for the last 28 days in
// the account's time zone (Meta restates recent days: each run re-pulls and replaces them),
// stores the rows (ports.SpendStore), checks that every active ad set including a treated
// audience excludes its holdout audience, emits per-audience metrics for the dashboard and
// the alarms, and then audits who holds and uses the app's audiences (audit.go).
//
// Decisions the code follows:
//   - An ad set that includes several managed audiences is stored once, for that group
//     (SpendDay.Audiences sorted); its spend is never split between them.
//   - Contamination is recorded on the run's date only: Meta keeps no targeting history, so a
//     run cannot know what an ad set excluded on an earlier day. Rows of older dates keep what
//     the run of that day stored; the audiences of a row are the targeting as pulled.
//   - Every active managed ad set gets a row on the run's date (zero spend until it delivers),
//     so that the day's contamination is kept even when Insights has no row yet.
//   - A stored row of one of the account's ad sets that the new pull no longer returns (Meta
//     restated it away) is written again with zero spend: the pull replaces the window.
//   - Pacing: a rate-limited answer stops that ad account for the run; usage at or above
//     PauseAtUsagePct, or a wait announced by Meta, stops the app's remaining pulls.
package insights

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/audit"
	"github.com/retarget-dev/retarget/shared/app/report"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Consumer names this function in logs and metrics.
const Consumer = "insights"

// Defaults and bounds.
const (
	// DefaultDays is the window re-pulled by every run: Meta settles insights for about 28
	// days, so each day is pulled again until it stops changing.
	DefaultDays = 28
	// MaxDays bounds an on-demand run's window.
	MaxDays = 90
	// PauseAtUsagePct of the insights rate limit stops the app's pull for this run.
	PauseAtUsagePct = 75
	// ReportDays is the window of join days the cost KPI is computed over.
	ReportDays = 28
	// HoldoutKeySuffix keys a segment's holdout audience in the audience sync state.
	HoldoutKeySuffix = ":holdout"
)

const dateLayout = "2006-01-02"

// Metric names (the stack's alarms and dashboard use the same).
const (
	MetricAudienceSpend        = "AudienceSpend"
	MetricAudienceMembers      = "AudienceMembers"
	MetricZeroSpendWithMembers = "ZeroSpendWithMembers"
	MetricHoldoutContaminated  = "HoldoutContaminated"
	MetricCostPerIncremental   = "CostPerIncrementalReengagement"
)

// ReportFunc computes an app's report (report.Audiences in production).
type ReportFunc func(ctx context.Context, app, from, to string, now time.Time) (measure.Report, error)

// Config wires a Runner.
type Config struct {
	Apps  *appconfig.Config
	Sync  ports.AudienceSyncStore
	Spend ports.SpendStore
	Meta  ports.AdsAPI
	// Audit reads who holds and uses the audiences for the misuse audit after each app's
	// pull (audit.go); nil takes Meta when it implements it (the Graph API client does), and
	// no audit runs without one.
	Audit ports.AudienceAuditAPI
	// Outcomes feed the report behind the cost KPI; Report replaces report.Audiences (tests).
	Outcomes ports.OutcomeStore
	Report   ReportFunc
	Logger   *slog.Logger
	Metrics  *observability.Emitter
	Now      func() time.Time
	// Automation keeps the daily KPI snapshots and the automation's actions; Writer writes ad
	// sets. With both set, apps with automation run it after their pull (after.go).
	Automation ports.AutomationStore
	Writer     ports.AdsWriter
}

// Runner runs the insights pull.
type Runner struct {
	cfg Config
}

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Apps == nil || cfg.Sync == nil || cfg.Spend == nil || cfg.Meta == nil {
		return nil, errors.New("insights: Apps, Sync, Spend and Meta are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if a, ok := cfg.Meta.(ports.AudienceAuditAPI); ok && cfg.Audit == nil {
		cfg.Audit = a
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Report == nil {
		src := report.Sources{Config: cfg.Apps, Outcomes: cfg.Outcomes, Spend: cfg.Spend, Sync: cfg.Sync}
		cfg.Report = func(ctx context.Context, app, from, to string, now time.Time) (measure.Report, error) {
			return report.Audiences(ctx, src, app, from, to, now)
		}
	}
	return &Runner{cfg: cfg}, nil
}

// Request is the Lambda input: {} (or the Scheduler's payload) runs every app over the
// default window; {"app": "shop", "days": 7} runs one app over the last 7 days.
type Request struct {
	App  string `json:"app,omitempty"`
	Days int    `json:"days,omitempty"`
}

// Summary is the Lambda answer.
type Summary struct {
	Apps []AppReport `json:"apps"`
}

// AccountReport says what the run did in one ad account.
type AccountReport struct {
	ID       string `json:"id"`
	Currency string `json:"currency,omitempty"`
	Since    string `json:"since,omitempty"`
	Until    string `json:"until,omitempty"`
	AdSets   int    `json:"managed_adsets"`
	Rows     int    `json:"rows"`
	// Stopped says why the account was not (fully) pulled; "" when it was.
	Stopped string `json:"stopped,omitempty"`
}

// AppReport says what the run did for one app.
type AppReport struct {
	App      string          `json:"app"`
	Accounts []AccountReport `json:"accounts"`
	// Contaminated maps a segment to the active ad sets that include its treated audience
	// without excluding its holdout audience.
	Contaminated map[string][]string `json:"contaminated,omitempty"`
	// Paused says why the app's pull stopped early (rate-limit usage).
	Paused string `json:"paused,omitempty"`
	// Misuse are the misuse audit's findings (audit.go).
	Misuse []audit.Finding `json:"misuse,omitempty"`
}

// Handle is the Lambda entry point (EventBridge Scheduler, or an on-demand invoke).
func (r *Runner) Handle(ctx context.Context, payload json.RawMessage) (Summary, error) {
	var req Request
	if len(payload) > 0 && string(payload) != "null" {
		if err := json.Unmarshal(payload, &req); err != nil {
			return Summary{}, fmt.Errorf("insights: input: want {} or {\"app\": \"...\", \"days\": N}: %w", err)
		}
	}
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-10*time.Second)) // time to store and answer
		defer cancel()
	}
	reports, err := r.Run(ctx, req)
	return Summary{Apps: reports}, err
}

// Run pulls every app with audiences (or req.App) once.
func (r *Runner) Run(ctx context.Context, req Request) ([]AppReport, error) {
	days := req.Days
	if days == 0 {
		days = DefaultDays
	}
	if days < 1 || days > MaxDays {
		return nil, fmt.Errorf("insights: days %d must be 1..%d", req.Days, MaxDays)
	}
	var apps []*appconfig.App
	for i := range r.cfg.Apps.Apps {
		a := &r.cfg.Apps.Apps[i]
		if (req.App == "" || a.ID == req.App) && len(a.Audiences) > 0 {
			apps = append(apps, a)
		}
	}
	if req.App != "" && len(apps) == 0 {
		return nil, fmt.Errorf("insights: app %q is not configured or has no audiences", req.App)
	}
	var reports []AppReport
	var errs []error
	for _, a := range apps {
		rep, err := r.runApp(ctx, a, days)
		reports = append(reports, rep)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", a.ID, err))
		}
	}
	return reports, errors.Join(errs...)
}

// managed is what an app's audiences are at Meta: the treated and holdout audience ids.
type managed struct {
	treated     map[string]string // audience id -> segment
	holdoutOf   map[string]string // segment -> holdout audience id ("" when not created yet)
	withHoldout map[string]bool   // segments whose audience has a holdout
	members     map[string]int64  // segment -> treated audience size
	accountOf   map[string]string // segment -> ad account holding it
}

func (r *Runner) managedAudiences(ctx context.Context, a *appconfig.App) (managed, error) {
	m := managed{treated: map[string]string{}, holdoutOf: map[string]string{}, withHoldout: map[string]bool{},
		members: map[string]int64{}, accountOf: map[string]string{}}
	for i := range a.Audiences {
		au := &a.Audiences[i]
		m.accountOf[au.Segment] = au.AccountID(a)
		st, found, err := r.cfg.Sync.GetAudienceState(ctx, a.ID, au.Segment)
		if err != nil {
			return m, fmt.Errorf("audience state of %s: %w", au.Segment, err)
		}
		id := au.AudienceID
		if found {
			m.members[au.Segment] = st.Size
			if id == "" {
				id = st.AudienceID
			}
		}
		if id != "" {
			m.treated[id] = au.Segment
		}
		if au.Holdout() <= 0 {
			continue
		}
		m.withHoldout[au.Segment] = true
		hid := au.HoldoutAudienceID
		if hid == "" {
			hst, found, err := r.cfg.Sync.GetAudienceState(ctx, a.ID, au.Segment+HoldoutKeySuffix)
			if err != nil {
				return m, fmt.Errorf("audience state of %s%s: %w", au.Segment, HoldoutKeySuffix, err)
			}
			if found {
				hid = hst.AudienceID
			}
		}
		m.holdoutOf[au.Segment] = hid
	}
	return m, nil
}

// accountRun is what the run learned of one ad account.
type accountRun struct {
	report AccountReport
	// today and yesterday in the account's time zone.
	today, yesterday string
	// adSetsRead: the targeting was read (contamination known); pulled: insights stored.
	adSetsRead, pulled bool
	// rows stored by this run.
	rows []ports.SpendDay
	// including maps a segment to the ad sets of the account that include it.
	including map[string][]string
}

func (r *Runner) runApp(ctx context.Context, a *appconfig.App, days int) (AppReport, error) {
	rep := AppReport{App: a.ID}
	m, err := r.managedAudiences(ctx, a)
	if err != nil {
		return rep, err
	}
	accounts := []string{}
	if a.Meta.AdAccountID != "" {
		accounts = append(accounts, a.Meta.AdAccountID)
	}
	for _, acc := range m.accountOf {
		accounts = append(accounts, acc)
	}
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)

	now := r.cfg.Now()
	runs := map[string]*accountRun{}
	contaminated := map[string][]string{} // segment -> ad set ids
	var errs []error
	for _, acc := range accounts {
		run := &accountRun{report: AccountReport{ID: acc}, including: map[string][]string{}}
		runs[acc] = run
		if rep.Paused != "" {
			run.report.Stopped = "app's pull paused: " + rep.Paused
			continue
		}
		err := r.runAccount(ctx, a.ID, acc, days, now, m, run, contaminated, &rep)
		if err == nil {
			continue
		}
		var ce *ports.CAPIError
		if errors.As(err, &ce) && ce.Class == ports.CAPIRateLimited {
			run.report.Stopped = "rate limited: " + err.Error()
			r.cfg.Logger.Warn("insights pull of the ad account stopped: rate limited; the next run pulls it", "app", a.ID,
				"ad_account", acc, "retry_after_s", ce.RetryAfter.Seconds(), "error", err.Error())
			continue
		}
		run.report.Stopped = err.Error()
		errs = append(errs, fmt.Errorf("ad account %s: %w", acc, err))
		if errors.As(err, &ce) && (ce.Class == ports.CAPIAuth || ce.Class == ports.CAPIVersionExpired) {
			r.cfg.Logger.Error("ALERT: Meta refused the insights pull (credentials, permissions or the Marketing API version); this app's pull is stopped",
				"app", a.ID, "ad_account", acc, "code", ce.Meta.Code, "subcode", ce.Meta.Subcode, "fbtrace_id", ce.Meta.FBTraceID)
			rep.Paused = "Meta refused the credentials or the API version"
		}
	}
	for _, acc := range accounts {
		rep.Accounts = append(rep.Accounts, runs[acc].report)
	}
	if len(contaminated) > 0 {
		rep.Contaminated = contaminated
		for _, seg := range sortedKeys(contaminated) {
			ids := contaminated[seg]
			r.cfg.Logger.Error("ALERT: active ad sets include the audience without excluding its holdout audience: holdout users can see the ads "+
				"and the measured lift is biased toward zero; exclude the holdout audience on these ad sets",
				"app", a.ID, "segment", seg, "holdout_audience_id", m.holdoutOf[seg], "adset_ids", strings.Join(ids, ","))
		}
	}
	r.emit(ctx, a, m, runs, contaminated, now)
	rep.Misuse = r.auditApp(ctx, a)
	r.cfg.Logger.Info("insights run", "app", a.ID, "accounts", len(accounts), "paused", rep.Paused)
	err = errors.Join(errs...)
	r.automate(ctx, a, rep, err)
	return rep, err
}

// runAccount reads one ad account's ad sets, pulls their insights and stores the rows.
func (r *Runner) runAccount(ctx context.Context, app, acc string, days int, now time.Time, m managed, run *accountRun,
	contaminated map[string][]string, rep *AppReport) error {
	account, err := r.cfg.Meta.AdAccount(ctx, acc)
	if err != nil {
		return fmt.Errorf("ad account: %w", err)
	}
	run.report.Currency = account.Currency
	loc, err := time.LoadLocation(account.TimezoneName)
	if err != nil || account.TimezoneName == "" {
		r.cfg.Logger.Warn("ad account time zone unknown; using UTC", "app", app, "ad_account", acc, "timezone", account.TimezoneName)
		loc = time.UTC
	}
	local := now.In(loc)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, time.UTC) // calendar arithmetic only
	run.today, run.yesterday = day.Format(dateLayout), day.AddDate(0, 0, -1).Format(dateLayout)
	since := day.AddDate(0, 0, -(days - 1)).Format(dateLayout)
	run.report.Since, run.report.Until = since, run.today

	adSets, err := r.cfg.Meta.AdSets(ctx, acc)
	if err != nil {
		return fmt.Errorf("ad sets: %w", err)
	}
	type target struct {
		adSet        ports.AdSet
		audiences    []string
		contaminated []string
	}
	targets := map[string]*target{}
	accountAdSets := map[string]bool{}
	for _, as := range adSets {
		accountAdSets[as.ID] = true
		t := &target{adSet: as}
		for _, id := range as.Included {
			seg, ok := m.treated[id]
			if !ok {
				continue
			}
			t.audiences = append(t.audiences, seg)
			run.including[seg] = append(run.including[seg], as.ID)
			if as.Active() && m.withHoldout[seg] && (m.holdoutOf[seg] == "" || !slices.Contains(as.Excluded, m.holdoutOf[seg])) {
				t.contaminated = append(t.contaminated, seg)
				contaminated[seg] = append(contaminated[seg], as.ID)
			}
		}
		if len(t.audiences) == 0 {
			continue // not a managed audience's ad set: not ours to report
		}
		slices.Sort(t.audiences)
		t.audiences = slices.Compact(t.audiences)
		slices.Sort(t.contaminated)
		t.contaminated = slices.Compact(t.contaminated)
		targets[as.ID] = t
	}
	run.adSetsRead = true
	run.report.AdSets = len(targets)
	if len(targets) == 0 {
		return nil
	}

	ids := sortedKeys(targets)
	rows, usage, err := r.cfg.Meta.Insights(ctx, ports.InsightsRequest{AdAccountID: acc, Since: since, Until: run.today, AdSetIDs: ids})
	if err != nil {
		return fmt.Errorf("insights: %w", err)
	}
	if usage.UsagePct >= PauseAtUsagePct || usage.RegainAfter > 0 {
		rep.Paused = fmt.Sprintf("insights rate-limit usage %.0f%%, regain access in %s", usage.UsagePct, usage.RegainAfter)
		r.cfg.Logger.Warn("insights pull paused for this app: Meta's insights rate limit is nearly used up; the next run pulls the rest",
			"app", app, "ad_account", acc, "usage_pct", usage.UsagePct, "regain_after_s", usage.RegainAfter.Seconds())
	}

	// The stored rows of the window: contamination of older dates is kept, and rows the pull
	// no longer returns are replaced by zero.
	stored, err := r.cfg.Spend.Spend(ctx, app, since, run.today)
	if err != nil {
		return fmt.Errorf("stored spend: %w", err)
	}
	storedBy := map[string]ports.SpendDay{}
	for _, s := range stored {
		storedBy[s.Date+"#"+s.AdSetID] = s
	}
	out := map[string]ports.SpendDay{}
	row := func(t *target, date string) ports.SpendDay {
		d := ports.SpendDay{App: app, Date: date, AdSetID: t.adSet.ID, AdSet: t.adSet.Name,
			Audiences: slices.Clone(t.audiences), Currency: account.Currency, PulledAt: now.Unix()}
		if date == run.today {
			d.Contaminated = slices.Clone(t.contaminated)
		} else if s, ok := storedBy[date+"#"+t.adSet.ID]; ok {
			d.Contaminated = s.Contaminated
		}
		return d
	}
	for _, in := range rows {
		t, ok := targets[in.AdSetID]
		if !ok || in.Date < since || in.Date > run.today {
			continue
		}
		d := row(t, in.Date)
		d.SpendMicros, d.Impressions, d.Reach, d.Clicks = in.SpendMicros, in.Impressions, in.Reach, in.Clicks
		if in.Currency != "" {
			d.Currency = in.Currency
		}
		out[d.Date+"#"+d.AdSetID] = d
	}
	for _, id := range ids {
		if t := targets[id]; t.adSet.Active() {
			if _, ok := out[run.today+"#"+id]; !ok {
				out[run.today+"#"+id] = row(t, run.today) // keeps the day's contamination
			}
		}
	}
	for _, s := range stored {
		if _, ok := out[s.Date+"#"+s.AdSetID]; ok || !accountAdSets[s.AdSetID] {
			continue
		}
		// Meta restated the row away: zero, keeping what the row said of its targeting.
		z := s
		z.SpendMicros, z.Impressions, z.Reach, z.Clicks, z.PulledAt = 0, 0, 0, 0, now.Unix()
		if t, ok := targets[s.AdSetID]; ok {
			z.Audiences = slices.Clone(t.audiences)
		}
		out[s.Date+"#"+s.AdSetID] = z
	}
	run.rows = make([]ports.SpendDay, 0, len(out))
	for _, k := range sortedKeys(out) {
		run.rows = append(run.rows, out[k])
	}
	if err := r.cfg.Spend.PutSpend(ctx, run.rows); err != nil {
		return fmt.Errorf("store spend: %w", err)
	}
	run.pulled = true
	run.report.Rows = len(run.rows)
	return nil
}

// emit writes the per-audience metrics.
func (r *Runner) emit(ctx context.Context, a *appconfig.App, m managed, runs map[string]*accountRun, contaminated map[string][]string, now time.Time) {
	costs := r.costs(ctx, a, now)
	none := observability.Unit("None")
	for i := range a.Audiences {
		seg := a.Audiences[i].Segment
		metrics := []observability.Metric{{Name: MetricAudienceMembers, Unit: observability.Count, Value: float64(m.members[seg])}}
		// The audience's ad sets may sit in any of the app's accounts: spend and contamination
		// are known when every account was read.
		allRead, allPulled := true, true
		var alone, including int64
		for _, run := range runs {
			allRead = allRead && run.adSetsRead
			allPulled = allPulled && (run.pulled || run.adSetsRead && run.report.AdSets == 0)
			for _, d := range run.rows {
				if d.Date != run.yesterday || !slices.Contains(d.Audiences, seg) {
					continue
				}
				including += d.SpendMicros
				if len(d.Audiences) == 1 {
					alone += d.SpendMicros
				}
			}
		}
		if allPulled {
			zero := 0.0
			if including == 0 && m.members[seg] > 0 {
				zero = 1
			}
			metrics = append(metrics,
				observability.Metric{Name: MetricAudienceSpend, Unit: none, Value: float64(alone) / 1e6},
				observability.Metric{Name: MetricZeroSpendWithMembers, Unit: observability.Count, Value: zero})
		}
		if allRead {
			c := 0.0
			if len(contaminated[seg]) > 0 {
				c = 1
			}
			metrics = append(metrics, observability.Metric{Name: MetricHoldoutContaminated, Unit: observability.Count, Value: c})
		}
		if v, ok := costs[seg]; ok {
			metrics = append(metrics, observability.Metric{Name: MetricCostPerIncremental, Unit: none, Value: v})
		}
		r.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}, {Name: "App", Value: a.ID}, {Name: "Audience", Value: seg}},
			metrics...)
	}
}

// costs returns the cost per incremental re-engagement of each audience the report gives a
// number for, over the trailing ReportDays join days (UTC).
func (r *Runner) costs(ctx context.Context, a *appconfig.App, now time.Time) map[string]float64 {
	to := now.UTC()
	from := to.AddDate(0, 0, -(ReportDays - 1))
	rep, err := r.cfg.Report(ctx, a.ID, from.Format(dateLayout), to.Format(dateLayout), now)
	if err != nil {
		r.cfg.Logger.Warn("no report for the cost metric", "app", a.ID, "error", err.Error())
		return nil
	}
	r.recordKPIs(ctx, a, rep, now)
	out := map[string]float64{}
	for _, au := range rep.Audiences {
		if au.CostPerIncrementalReengagement != nil {
			out[au.Segment] = *au.CostPerIncrementalReengagement
		}
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

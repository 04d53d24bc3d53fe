package insights

// After an app's pull: the day's KPI snapshot of each audience (what the automation's cost
// condition reads), then the app's automation, when it has one. Neither fails the pull: their
// errors are logged.

import (
	"context"
	"errors"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/automation"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/ports"
)

// MetricAutomationProposals counts the actions an automation run recorded, per app.
const MetricAutomationProposals = "AutomationProposals"

// recordKPIs stores the day's snapshot of each audience of rep (the report behind the cost
// metric): its cost per incremental re-engagement, whether the 7-day lift was significant,
// its acknowledged members and currency. Without an AutomationStore it does nothing.
func (r *Runner) recordKPIs(ctx context.Context, a *appconfig.App, rep measure.Report, now time.Time) {
	if r.cfg.Automation == nil {
		return
	}
	date := now.UTC().Format(dateLayout)
	var days []ports.KPIDay
	for _, au := range rep.Audiences {
		k := ports.KPIDay{App: a.ID, Segment: au.Segment, Date: date, CostPerIncremental: au.CostPerIncrementalReengagement,
			Significant: au.Lift7d.Significant, Currency: au.Currency}
		st, found, err := r.cfg.Sync.GetAudienceState(ctx, a.ID, au.Segment)
		if err != nil {
			r.cfg.Logger.Warn("KPI snapshot without members: audience state unreadable", "app", a.ID, "segment", au.Segment, "error", err.Error())
		} else if found {
			k.Members = st.Size
		}
		days = append(days, k)
	}
	if len(days) == 0 {
		return
	}
	if err := r.cfg.Automation.PutKPIs(ctx, days); err != nil {
		r.cfg.Logger.Error("KPI snapshots not stored: the automation's cost condition misses today", "app", a.ID, "error", err.Error())
	}
}

// automate runs a's automation after its pull, when it has one and the pull completed: a
// partial pull leaves spend rows missing, which a no-spend condition would read as no spend.
func (r *Runner) automate(ctx context.Context, a *appconfig.App, rep AppReport, pullErr error) {
	if a.Automation == nil || r.cfg.Automation == nil || r.cfg.Writer == nil {
		return
	}
	incomplete := rep.Paused != ""
	for _, acc := range rep.Accounts {
		incomplete = incomplete || acc.Stopped != ""
	}
	if pullErr != nil || incomplete {
		r.cfg.Logger.Warn("automation skipped: the app's pull did not complete; the next run evaluates it", "app", a.ID)
		return
	}
	svc, err := automation.New(automation.Config{Apps: r.cfg.Apps, Sync: r.cfg.Sync, Spend: r.cfg.Spend, Store: r.cfg.Automation,
		Ads: r.cfg.Meta, Writer: r.cfg.Writer, Logger: r.cfg.Logger, Now: r.cfg.Now,
		Proposed: func(_ context.Context, app string, n int) {
			r.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}, {Name: "App", Value: app}},
				observability.Metric{Name: MetricAutomationProposals, Unit: observability.Count, Value: float64(n)})
		}})
	if err != nil {
		r.cfg.Logger.Error("automation not run", "app", a.ID, "error", err.Error())
		return
	}
	res, err := svc.Run(ctx, a.ID)
	if err != nil && !errors.Is(err, automation.ErrOff) {
		r.cfg.Logger.Error("automation run failed; the next pull runs it again", "app", a.ID, "error", err.Error())
	}
	r.cfg.Logger.Info("automation run", "app", a.ID, "mode", res.Mode, "actions", len(res.Actions), "skipped", len(res.Skipped))
}

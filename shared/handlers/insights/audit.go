package insights

// The daily misuse audit: after an app's pull, audit.Run over its managed audiences; an ALERT
// log line per finding and, per audience, the AudienceMisuseFindings metric (the count of
// misuse findings over its treated and holdout audiences, 0 when clean) the stack's
// AudienceMisuse alarms watch. An audience whose audit is incomplete (a Meta read failed) and
// found nothing gets no datapoint: missing data, not a clean bill.

import (
	"context"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/audit"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// MetricAudienceMisuseFindings is the count of an audience's misuse findings in a run.
const MetricAudienceMisuseFindings = "AudienceMisuseFindings"

// auditApp audits a's audiences, logs and measures the findings, and returns them. Without an
// audit reader (Config.Audit nil) it does nothing.
func (r *Runner) auditApp(ctx context.Context, a *appconfig.App) []audit.Finding {
	if r.cfg.Audit == nil {
		return nil
	}
	findings, err := audit.Run(ctx, audit.Sources{Sync: r.cfg.Sync, Audit: r.cfg.Audit, Ads: r.cfg.Meta}, a)
	if err != nil {
		r.cfg.Logger.Error("misuse audit not run: the audience sync state could not be read; the next run audits", "app", a.ID, "error", err.Error())
		return nil
	}
	count := map[string]int{}
	incomplete := map[string]bool{}
	appIncomplete := false
	for _, f := range findings {
		msg := "ALERT: misuse of a managed audience: " + f.Explanation
		if !f.Misuse() {
			msg = "ALERT: the misuse audit could not read Meta: " + f.Explanation
			if f.Segment == "" {
				appIncomplete = true
			}
			incomplete[f.Segment] = true
		} else {
			count[f.Segment]++
		}
		r.cfg.Logger.Error(msg, "app", f.App, "segment", f.Segment, "audience_key", f.Key, "audience_id", f.AudienceID, "kind", f.Kind,
			"ad_account", f.AdAccountID, "campaign_id", f.CampaignID, "adset_id", f.AdSetID, "ad_id", f.AdID)
	}
	for i := range a.Audiences {
		seg := a.Audiences[i].Segment
		n := count[seg]
		if n == 0 && (appIncomplete || incomplete[seg]) {
			continue
		}
		r.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}, {Name: "App", Value: a.ID}, {Name: "Audience", Value: seg}},
			observability.Metric{Name: MetricAudienceMisuseFindings, Unit: observability.Count, Value: float64(n)})
	}
	return findings
}

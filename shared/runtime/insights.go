package runtime

import (
	"context"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/handlers/insights"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// NewInsights builds the insights run: the state table's store (spend, audience sync state,
// cohort counters, KPI snapshots and automation actions) and the Marketing API client the
// audience sync uses, which also writes the ad sets of apps whose automation applies.
func NewInsights(ctx context.Context, c env.Insights, d Deps) (*insights.Runner, error) {
	s, err := NewSegments(c.Common, c.State, d.AWS)
	if err != nil {
		return nil, err
	}
	creds, err := MetaCredentials(ctx, c.Meta, d.AWS)
	if err != nil {
		return nil, err
	}
	metrics := observability.NewEmitter(d.Metrics, c.MetricsNamespace)
	graph := newGraph(c.Meta, creds, metaversions.Marketing, insights.Consumer, d.Log, metrics)
	return insights.New(insights.Config{Apps: s.Apps, Sync: s.Store, Spend: s.Store, Meta: graph, Outcomes: s.Store,
		Automation: s.Store, Writer: graph, Logger: d.Log, Metrics: metrics})
}

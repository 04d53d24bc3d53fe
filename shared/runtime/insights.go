package runtime

import (
	"context"
	"errors"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/handlers/insights"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// NewInsights builds the insights run: the state table's store (spend, audience sync state,
// cohort counters) and the Marketing API client the audience sync uses.
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
	// TODO(merge): the Ads API (ad accounts, ad sets, insights) and the cohort counters land
	// with their own changes; until then the client and the store are checked here at run
	// time. Once *metagraph.Client implements ports.AdsAPI and *dynamostate.Store
	// ports.OutcomeStore, pass graph and s.Store directly.
	ads, ok := any(graph).(ports.AdsAPI)
	if !ok {
		return nil, errors.New("insights: the Graph API client does not implement ports.AdsAPI (ad sets and insights) in this build")
	}
	outcomes, _ := any(s.Store).(ports.OutcomeStore) // nil: the cost metric is left out
	return insights.New(insights.Config{Apps: s.Apps, Sync: s.Store, Spend: s.Store, Meta: ads, Outcomes: outcomes,
		Logger: d.Log, Metrics: metrics})
}

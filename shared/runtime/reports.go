package runtime

import (
	"context"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/app/report"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Reports is the report function of GET /v1/reports/audiences (the users-api function) and
// `retarget report`: report.Audiences over the state table, which keeps the cohort counters,
// the spend and the audience sync state. It is nil, and the route answers 501, while the
// store lacks one of them.
func Reports(apps *appconfig.Config, store *dynamostate.Store) usersapi.ReportFunc {
	src, ok := ReportSources(apps, store)
	if !ok {
		return nil
	}
	return func(ctx context.Context, app, from, to string, now time.Time) (measure.Report, error) {
		return report.Audiences(ctx, src, app, from, to, now)
	}
}

// ReportSources are the stores a report reads, from the state table; ok is false while the
// store does not implement all of them.
//
// TODO(lead): the outcome and spend stores are being added to dynamostate by another change;
// once dynamostate.Store implements ports.OutcomeStore and ports.SpendStore (or they become
// their own types), assign them directly here instead of asserting, so a missing method is a
// compile error rather than a 501.
func ReportSources(apps *appconfig.Config, store *dynamostate.Store) (report.Sources, bool) {
	src := report.Sources{Config: apps, Sync: store}
	var ok1, ok2 bool
	src.Outcomes, ok1 = any(store).(ports.OutcomeStore)
	src.Spend, ok2 = any(store).(ports.SpendStore)
	return src, ok1 && ok2
}

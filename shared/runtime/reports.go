package runtime

import (
	"context"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/app/report"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
)

// Reports is the report function of GET /v1/reports/audiences (the users-api function) and
// `retarget report`: report.Audiences over the state table, which keeps the cohort counters,
// the spend and the audience sync state.
func Reports(apps *appconfig.Config, store *dynamostate.Store) usersapi.ReportFunc {
	src := report.Sources{Config: apps, Outcomes: store, Spend: store, Sync: store}
	return func(ctx context.Context, app, from, to string, now time.Time) (measure.Report, error) {
		return report.Audiences(ctx, src, app, from, to, now)
	}
}

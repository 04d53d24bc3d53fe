// Package report is the use case behind GET /v1/reports/audiences, `retarget report` and the
// insights run's KPI metrics: it reads one app's cohort counters, spend and audience ids and
// hands them to measure.Build.
package report

import (
	"context"
	"errors"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Sources are the stores a report reads.
type Sources struct {
	Config   *appconfig.Config
	Outcomes ports.OutcomeStore
	Spend    ports.SpendStore
	Sync     ports.AudienceSyncStore
}

// Audiences returns app's report for the join days from..to (YYYY-MM-DD), made at now.
func Audiences(ctx context.Context, src Sources, app, from, to string, now time.Time) (measure.Report, error) {
	return measure.Report{}, errors.New("report: not implemented yet")
}

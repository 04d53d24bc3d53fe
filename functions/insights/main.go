// Command insights pulls Ads Insights spend per ad set and day into the state table and checks
// the holdout exclusions, run daily by EventBridge Scheduler (and on demand). It only wires:
// runtime.Start reads the environment once (env.ReadInsights names the variables), builds the
// clients once and hands the handler to the Lambda runtime.
package main

import (
	"context"
	// Insights days are calendar days of each ad account's time zone: the zone database is
	// embedded rather than trusted to the runtime image.
	_ "time/tzdata"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("insights", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadInsights(getenv)
		if err != nil {
			return nil, err
		}
		r, err := runtime.NewInsights(ctx, c, d)
		if err != nil {
			return nil, err
		}
		return r.Handle, nil
	})
}

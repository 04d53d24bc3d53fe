// Command audience-sync uploads segment membership changes to Meta Custom Audiences, run by EventBridge Scheduler.
// It only wires: runtime.Start reads the environment once (env.ReadAudienceSync names the variables), builds
// the clients once and hands the handler to the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("audience-sync", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadAudienceSync(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewAudienceSync(ctx, c, d)
		return h.Handle, err
	})
}

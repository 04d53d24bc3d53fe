// Command segment-sweeper applies time-based segment transitions, run by EventBridge Scheduler.
// It only wires: runtime.Start reads the environment once (env.ReadSweeper names the variables), builds
// the clients once and hands the handler to the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("segment-sweeper", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadSweeper(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewSweeper(c, d)
		return h.Handle, err
	})
}

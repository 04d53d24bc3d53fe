// Command segment-updater keeps per-user segment state, fed by the Kinesis event source mapping.
// It only wires: runtime.Start reads the environment once (env.ReadUpdater names the variables), builds
// the clients once and hands the handler to the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("segment-updater", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadUpdater(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewUpdater(c, d)
		return h.Handle, err
	})
}

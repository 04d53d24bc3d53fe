// Command archive-purge makes erasure reach the event archive in AWS: run hourly by
// EventBridge Scheduler, it rewrites the archive bucket's files that hold erased users' rows
// without them (shared/app/purge). It only wires: runtime.Start reads the environment once
// (env.ReadArchivePurge names the variables), builds the clients once and hands the handler to
// the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("archive-purge", func(_ context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadArchivePurge(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewArchivePurge(c, d)
		if err != nil {
			return nil, err
		}
		return h, nil
	})
}

// Command ingest is the ingest Lambda: POST /v1/events and GET /v1/health behind API Gateway.
// It only wires: runtime.Start reads the environment once (env.ReadIngest names the variables), builds
// the clients once and hands the handler to the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("ingest", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadIngest(getenv)
		if err != nil {
			return nil, err
		}
		// The handler itself, not h.Handle: its Invoke reads API Gateway's event without
		// reflection (a request's body is most of its bytes).
		return runtime.NewIngest(ctx, c, d)
	})
}

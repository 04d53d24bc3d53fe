// Command capi-forwarder forwards the event stream to Meta's Conversions API, fed by the Kinesis event source mapping.
// It only wires: runtime.Start reads the environment once (env.ReadForwarder names the variables), builds
// the clients once and hands the handler to the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("capi-forwarder", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadForwarder(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewForwarder(ctx, c, d)
		return h.Handle, err
	})
}

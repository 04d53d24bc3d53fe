// Command key-authorizer is the Lambda REQUEST authorizer of the HTTP API front door (-c
// api=http): it maps a request's x-api-key to its app. It only wires: runtime.Start reads the
// environment once (env.ReadKeyAuthorizer names the variables), reads the apps' key secrets
// once and hands the handler to the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("key-authorizer", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadKeyAuthorizer(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewKeyAuthorizer(ctx, c, d)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	})
}

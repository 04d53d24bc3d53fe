// Command users-api serves the /v1/users routes behind API Gateway: a user's segments, consent decisions and erasure.
// It only wires: runtime.Start reads the environment once (env.ReadUsersAPI names the variables), builds
// the clients once and hands the handler to the Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("users-api", func(ctx context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadUsersAPI(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewUsersAPI(ctx, c, d)
		return h.Handle, err
	})
}

// Command users-api serves GET /v1/users/{app_user_id}/segments behind API Gateway. It
// only wires: see usersapi.FromEnv for the environment.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
)

func main() {
	ctx := context.Background()
	log := observability.NewLogger(os.Stdout, os.Getenv("LOG_LEVEL"))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("users-api: aws config", "error", err.Error())
		os.Exit(1)
	}
	h, err := usersapi.FromEnv(ctx, os.Getenv, awsCfg, log)
	if err != nil {
		log.Error("users-api: cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

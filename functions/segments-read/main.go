// Command segments-read serves GET /v1/users/{app_user_id}/segments behind API Gateway. It
// only wires: see segmentsapi.FromEnv for the environment.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/retarget-dev/retarget/shared/observability"
	"github.com/retarget-dev/retarget/shared/segmentsapi"
)

func main() {
	ctx := context.Background()
	log := observability.NewLogger(os.Stdout, os.Getenv("LOG_LEVEL"))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("segments-read: aws config", "error", err.Error())
		os.Exit(1)
	}
	h, err := segmentsapi.FromEnv(ctx, os.Getenv, awsCfg, log)
	if err != nil {
		log.Error("segments-read: cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

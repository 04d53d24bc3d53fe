// Command ingest is the ingest Lambda: POST /v1/events and GET /v1/health behind API Gateway.
// It only wires: the environment is read once (see ingestapi.FromEnv for the variables), the
// clients are built once, and the handler goes to the Lambda runtime.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
)

func main() {
	ctx := context.Background()
	log := observability.NewLogger(os.Stdout, os.Getenv(ingestapi.EnvLogLevel))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("ingest: aws config", "error", err.Error())
		os.Exit(1)
	}
	h, err := ingestapi.FromEnv(ctx, os.Getenv, awsCfg, log, os.Stdout)
	if err != nil {
		log.Error("ingest: cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

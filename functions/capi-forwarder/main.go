// Command capi-forwarder is the Conversions API forwarder Lambda, fed by the Kinesis event
// source mapping. It only wires: see capiforwarder.FromEnv for the environment.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/handlers/capiforwarder"
)

func main() {
	ctx := context.Background()
	log := observability.NewLogger(os.Stdout, os.Getenv("LOG_LEVEL"))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("capi-forwarder: aws config", "error", err.Error())
		os.Exit(1)
	}
	h, err := capiforwarder.FromEnv(ctx, os.Getenv, awsCfg, log, os.Stdout)
	if err != nil {
		log.Error("capi-forwarder: cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// Command segment-updater keeps per-user segment state, fed by the Kinesis event source
// mapping. It only wires: see segmentupdater.FromEnv for the environment.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
)

func main() {
	log := observability.NewLogger(os.Stdout, os.Getenv("LOG_LEVEL"))
	awsCfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("segment-updater: aws config", "error", err.Error())
		os.Exit(1)
	}
	h, err := segmentupdater.FromEnv(os.Getenv, awsCfg, log, os.Stdout)
	if err != nil {
		log.Error("segment-updater: cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

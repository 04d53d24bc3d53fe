// Command segment-sweeper applies time-based segment transitions, run by EventBridge
// Scheduler. It only wires: see segmentsweeper.FromEnv for the environment.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/handlers/segmentsweeper"
)

func main() {
	log := observability.NewLogger(os.Stdout, os.Getenv("LOG_LEVEL"))
	awsCfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("segment-sweeper: aws config", "error", err.Error())
		os.Exit(1)
	}
	s, err := segmentsweeper.FromEnv(os.Getenv, awsCfg, log, os.Stdout)
	if err != nil {
		log.Error("segment-sweeper: cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(s.Handle)
}

// Command audience-sync uploads segment membership changes to Meta Custom Audiences, run by
// EventBridge Scheduler. It only wires: see audiencesync.FromEnv for the environment.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/handlers/audiencesync"
)

func main() {
	ctx := context.Background()
	log := observability.NewLogger(os.Stdout, os.Getenv("LOG_LEVEL"))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("audience-sync: aws config", "error", err.Error())
		os.Exit(1)
	}
	s, err := audiencesync.FromEnv(ctx, os.Getenv, awsCfg, log, os.Stdout)
	if err != nil {
		log.Error("audience-sync: cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(s.Handle)
}

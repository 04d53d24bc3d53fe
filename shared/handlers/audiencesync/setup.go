package audiencesync

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/handlers/capiforwarder"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
)

// FromEnv builds the syncer from the environment: STATE_TABLE_NAME and APP_CONFIG_FILE as for
// the segment functions, META_GRAPH_URL / META_API_VERSION / META_SECRET_ID (or, locally,
// META_ACCESS_TOKEN and META_APP_SECRET) as for the forwarder.
func FromEnv(ctx context.Context, getenv func(string) string, awsCfg aws.Config, log *slog.Logger, metrics io.Writer) (*Syncer, error) {
	c, err := segmentupdater.CommonFromEnv(getenv, awsCfg)
	if err != nil {
		return nil, err
	}
	aa, err := audiences.ForConfig(c.Apps)
	if err != nil {
		return nil, err
	}
	creds, err := capiforwarder.CredentialsFromEnv(ctx, getenv, awsCfg)
	if err != nil {
		return nil, err
	}
	meta := metagraph.New(metagraph.Config{BaseURL: getenv(capiforwarder.EnvGraphURL), Version: getenv(capiforwarder.EnvAPIVersion),
		AccessToken: creds.AccessToken, AppSecret: creds.AppSecret})
	return New(Config{Audiences: aa, Users: c.Store, State: c.Store, Meta: meta, Logger: log,
		Metrics: observability.NewEmitter(metrics, getenv(segmentupdater.EnvMetricsNS))})
}

// Handle is the Lambda entry point for EventBridge Scheduler. It fails only when no app could
// be synced; the rest resumes at the next run.
func (s *Syncer) Handle(ctx context.Context, _ any) (int, error) {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-10*time.Second)) // time to checkpoint and answer
		defer cancel()
	}
	reports, err := s.Run(ctx)
	synced := 0
	for _, r := range reports {
		synced += r.Synced
	}
	return synced, err
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/handlers/insights"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
)

// stateTable is the local segment state table in dynalite.
const stateTable = devenv.StateTable

// updaterESM is the updater's event source mapping as the stack declares it, with a 1 s window.
var updaterESM = streampoller.Config{
	BatchSize:               env.UpdaterBatchSize,
	BatchingWindow:          time.Second,
	BisectOnError:           true,
	MaxRetryAttempts:        env.MappingRetryAttempts,
	MaxRecordAge:            env.MappingMaxRecordAge,
	ReportBatchItemFailures: true,
	FunctionTimeout:         60 * time.Second,
}

// segmentFunctions runs the segment updater behind a local event source mapping, the sweeper
// on a ticker (then afterSweep: the segment events' publisher), and serves the read route.
type segmentFunctions struct {
	read   *usersapi.Handler
	cancel context.CancelFunc
	done   chan struct{}
}

// startSegments runs the segment functions on the state table (created by run).
func startSegments(ctx context.Context, s settings, m *meta, kinesisCfg, dynamoCfg aws.Config, devIssuer *appconfig.EndUserAuth, afterSweep func(context.Context), logs *logFiles, out *console) (*segmentFunctions, error) {
	common, state := env.Common{ConfigFile: s.ConfigFile}, env.State{Table: stateTable}
	logger := slog.New(slog.NewMultiHandler(
		observability.NewLogger(logs.segments, s.LogLevel).Handler(),
		slog.NewTextHandler(out.err, &slog.HandlerOptions{Level: slog.LevelWarn}),
	))
	d := runtime.Deps{AWS: dynamoCfg, Log: logger, Metrics: logs.metrics}
	updater, err := runtime.NewUpdater(env.Updater{Common: common, State: state}, d)
	if err != nil {
		return nil, fmt.Errorf("segment-updater: %w", err)
	}
	sweeper, err := runtime.NewSweeper(env.Sweeper{Common: common, State: state}, d)
	if err != nil {
		return nil, fmt.Errorf("segment-sweeper: %w", err)
	}
	read, err := runtime.NewUsersAPI(ctx, env.UsersAPI{Common: common, State: state, Pepper: env.PepperSource{Value: s.Pepper},
		Keys: env.Keys{DevAuth: true, DevAPIKey: s.APIKey}, DevEndUser: devIssuer}, d)
	if err != nil {
		return nil, fmt.Errorf("users-api: %w", err)
	}
	syncer, err := runtime.NewAudienceSync(ctx, env.AudienceSync{Common: common, State: state, Meta: m.env()}, d)
	if err != nil {
		return nil, fmt.Errorf("audience-sync: %w", err)
	}
	insightsRun, err := runtime.NewInsights(ctx, env.Insights{Common: common, State: state, Meta: m.env()}, d)
	if err != nil {
		return nil, fmt.Errorf("insights: %w", err)
	}
	cfg := updaterESM
	cfg.Stream = s.StreamName
	cfg.Logger = logger
	cfg.OnFailure = func(_ context.Context, f streampoller.FailureRecord) error {
		out.Errorf("segment-updater: records %s..%s of %s given up (%s)", f.StartSequenceNumber, f.EndSequenceNumber, f.Shard, f.Reason)
		return nil
	}
	poller, err := streampoller.New(kinesis.NewFromConfig(kinesisCfg), cfg, updater.Handle)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	sf := &segmentFunctions{read: read, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sf.done)
		go func() {
			if err := poller.Run(runCtx); err != nil {
				out.Errorf("segment-updater poller: %v", err)
			}
		}()
		sweep := time.NewTicker(s.SweepInterval)
		defer sweep.Stop()
		sync := time.NewTicker(s.AudienceSyncInterval)
		defer sync.Stop()
		pull := time.NewTicker(s.InsightsInterval)
		defer pull.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-sweep.C:
				sweepCtx, stop := context.WithTimeout(runCtx, 5*time.Minute)
				if _, err := sweeper.Sweep(sweepCtx); err != nil && runCtx.Err() == nil {
					out.Errorf("segment-sweeper: %v", err)
				}
				afterSweep(sweepCtx) // the sweeper's Lambda publishes the recorded changes after its sweep
				stop()
			case <-sync.C:
				syncCtx, stop := context.WithTimeout(runCtx, 10*time.Minute)
				if _, err := syncer.Run(syncCtx); err != nil && runCtx.Err() == nil {
					out.Errorf("audience-sync: %v", err)
				}
				stop()
			case <-pull.C:
				pullCtx, stop := context.WithTimeout(runCtx, 10*time.Minute)
				if _, err := insightsRun.Run(pullCtx, insights.Request{}); err != nil && runCtx.Err() == nil {
					out.Errorf("insights: %v", err)
				}
				stop()
			}
		}
	}()
	return sf, nil
}

func (sf *segmentFunctions) stop() {
	sf.cancel()
	<-sf.done
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/handlers/audiencesync"
	"github.com/retarget-dev/retarget/shared/handlers/capiforwarder"
	"github.com/retarget-dev/retarget/shared/handlers/segmentsweeper"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
)

// stateTable is the local segment state table in dynalite.
const stateTable = devenv.StateTable

// updaterESM is the updater's event source mapping as the stack declares it, with a 1 s window.
var updaterESM = streampoller.Config{
	BatchSize:               segmentupdater.MappingBatchSize,
	BatchingWindow:          time.Second,
	BisectOnError:           true,
	MaxRetryAttempts:        capiforwarder.MappingRetryAttempts,
	MaxRecordAge:            capiforwarder.MappingMaxRecordAge,
	ReportBatchItemFailures: true,
	FunctionTimeout:         60 * time.Second,
}

// segmentFunctions runs the segment updater behind a local event source mapping, the sweeper
// on a ticker, and serves the read route.
type segmentFunctions struct {
	read   *usersapi.Handler
	cancel context.CancelFunc
	done   chan struct{}
}

// startSegments runs the segment functions on the state table (created by run).
func startSegments(ctx context.Context, s settings, m *meta, kinesisCfg, dynamoCfg aws.Config, logs *logFiles, out *console) (*segmentFunctions, error) {
	env := map[string]string{
		segmentupdater.EnvTableName:  stateTable,
		segmentupdater.EnvConfigFile: s.ConfigFile,
		"PSEUDONYM_PEPPER":           s.Pepper,
		"DEV_AUTH":                   "true",
		"DEV_API_KEY":                s.APIKey,
		capiforwarder.EnvGraphURL:    m.URL,
		capiforwarder.EnvAccessToken: m.Token,
		capiforwarder.EnvAppSecret:   m.Secret,
	}
	getenv := func(k string) string { return env[k] }
	logger := slog.New(slog.NewMultiHandler(
		observability.NewLogger(logs.segments, s.LogLevel).Handler(),
		slog.NewTextHandler(out.err, &slog.HandlerOptions{Level: slog.LevelWarn}),
	))
	updater, err := segmentupdater.FromEnv(getenv, dynamoCfg, logger, logs.metrics)
	if err != nil {
		return nil, fmt.Errorf("segment-updater: %w", err)
	}
	sweeper, err := segmentsweeper.FromEnv(getenv, dynamoCfg, logger, logs.metrics)
	if err != nil {
		return nil, fmt.Errorf("segment-sweeper: %w", err)
	}
	read, err := usersapi.FromEnv(ctx, getenv, dynamoCfg, logger)
	if err != nil {
		return nil, fmt.Errorf("users-api: %w", err)
	}
	syncer, err := audiencesync.FromEnv(ctx, getenv, dynamoCfg, logger, logs.metrics)
	if err != nil {
		return nil, fmt.Errorf("audience-sync: %w", err)
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
		for {
			select {
			case <-runCtx.Done():
				return
			case <-sweep.C:
				sweepCtx, stop := context.WithTimeout(runCtx, 5*time.Minute)
				if _, err := sweeper.Sweep(sweepCtx); err != nil && runCtx.Err() == nil {
					out.Errorf("segment-sweeper: %v", err)
				}
				stop()
			case <-sync.C:
				syncCtx, stop := context.WithTimeout(runCtx, 10*time.Minute)
				if _, err := syncer.Run(syncCtx); err != nil && runCtx.Err() == nil {
					out.Errorf("audience-sync: %v", err)
				}
				stop()
			}
		}
	}()
	return sf, nil
}

// handle routes the /v1/users routes to their function and everything else to the ingest
// function.
func (sf *segmentFunctions) handle(ingest ProxyFunc) ProxyFunc {
	return func(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		if _, ok := usersapi.Routes[req.Resource]; ok {
			return sf.read.Handle(ctx, req)
		}
		return ingest(ctx, req)
	}
}

func (sf *segmentFunctions) stop() {
	sf.cancel()
	<-sf.done
}

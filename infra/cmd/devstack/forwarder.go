package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
)

// Dev defaults of the Meta credentials: the sandbox accepts exactly these.
const (
	devMetaToken  = devenv.MetaAccessToken
	devMetaSecret = devenv.MetaAppSecret
)

// The forwarder's event source mapping, as the stack declares it except for a shorter batching
// window, so that events show up in the sandbox within a second.
var forwarderESM = streampoller.Config{
	BatchSize:               env.ForwarderBatchSize,
	BatchingWindow:          time.Second,
	BisectOnError:           true,
	MaxRetryAttempts:        env.MappingRetryAttempts,
	MaxRecordAge:            env.MappingMaxRecordAge,
	ReportBatchItemFailures: true,
	FunctionTimeout:         60 * time.Second,
}

// meta is where the forwarder sends events: the embedded sandbox, or META_GRAPH_URL.
type meta struct {
	URL     string
	Sandbox *metasandbox.Sandbox // nil when META_GRAPH_URL points elsewhere
	Token   string
	Secret  string
	// CAPIVersion and MarketingVersion are the versions the functions call (the environment's,
	// else the defaults); the embedded sandbox serves both.
	CAPIVersion, MarketingVersion string
}

// env is how the functions that call Meta reach it.
func (m *meta) env() env.Meta {
	return env.Meta{GraphURL: m.URL, AccessToken: m.Token, AppSecret: m.Secret,
		CAPIVersion: m.CAPIVersion, MarketingVersion: m.MarketingVersion}
}

// startMeta starts the Meta Graph sandbox unless META_GRAPH_URL is set.
func startMeta(s settings, apps *appconfig.Config) (*meta, error) {
	m := &meta{URL: s.MetaGraphURL, Token: s.MetaToken, Secret: s.MetaSecret,
		CAPIVersion:      cmp.Or(s.MetaCAPIVersion, metaversions.DefaultConversions),
		MarketingVersion: cmp.Or(s.MetaMarketingVersion, metaversions.DefaultMarketing)}
	if m.URL != "" {
		return m, nil
	}
	datasets, accounts := apps.MetaIDs()
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: m.Token, AppSecret: m.Secret, Datasets: datasets,
		AdAccounts: accounts, Faults: s.Faults, RemovalMinSize: s.SandboxRemovalMinSize,
		Version: m.CAPIVersion, Versions: []string{m.MarketingVersion},
		// Every treated audience gets an active ad set that excludes its holdout audience, so
		// spend, contamination checks and the report all have something to show locally.
		Ads: metasandbox.AdsConfig{AutoAdSets: true}})
	if err != nil {
		return nil, fmt.Errorf("meta sandbox: %w", err)
	}
	m.URL, m.Sandbox = url, sb
	return m, nil
}

// forwarder runs the CAPI forwarder function behind a local event source mapping.
type forwarder struct {
	poller *streampoller.Poller
	done   chan struct{}
	cancel context.CancelFunc
}

// startForwarder builds the forwarder exactly as the Lambda does (runtime.NewForwarder) and
// polls the stream for it. Dead letters and the mapping's on-failure records go to JSON lines
// files in the log folder.
func startForwarder(s settings, m *meta, awsCfg aws.Config, dynamoEndpoint string, logs *logFiles, out *console) (*forwarder, error) {
	c := env.Forwarder{
		Common:         env.Common{ConfigFile: s.ConfigFile},
		Meta:           m.env(),
		DeadLetterFile: filepath.Join(s.LogDir, deadLettersFile),
		StateTable:     stateTable,
		DynamoEndpoint: dynamoEndpoint,
	}
	logger := slog.New(slog.NewMultiHandler(
		observability.NewLogger(logs.forwarder, s.LogLevel).Handler(),
		slog.NewTextHandler(out.err, &slog.HandlerOptions{Level: slog.LevelWarn}),
	))
	h, err := runtime.NewForwarder(context.Background(), c, runtime.Deps{AWS: awsCfg, Log: logger, Metrics: logs.metrics})
	if err != nil {
		return nil, fmt.Errorf("capi-forwarder: %w", err)
	}
	cfg := forwarderESM
	cfg.Stream = s.StreamName
	cfg.Logger = logger
	var mu sync.Mutex
	cfg.OnFailure = func(_ context.Context, f streampoller.FailureRecord) error {
		mu.Lock()
		defer mu.Unlock()
		out.Errorf("capi-forwarder: records %s..%s of %s given up (%s): see %s", f.StartSequenceNumber, f.EndSequenceNumber, f.Shard, f.Reason, esmFailuresFile)
		line, _ := json.Marshal(f)
		_, err := logs.esmFailures.Write(append(line, '\n'))
		return err
	}
	p, err := streampoller.New(kinesis.NewFromConfig(awsCfg), cfg, h.Handle)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{poller: p, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(f.done)
		if err := p.Run(ctx); err != nil {
			out.Errorf("capi-forwarder poller: %v", err)
		}
	}()
	return f, nil
}

// stop ends the polling and waits for the batch in flight.
func (f *forwarder) stop() {
	f.cancel()
	<-f.done
}

// File names in the log folder.
const (
	deadLettersFile = devenv.DeadLettersFile
	esmFailuresFile = "esm-failures.jsonl"
)

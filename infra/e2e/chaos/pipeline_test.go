package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/handlers/audiencesync"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
	"github.com/retarget-dev/retarget/shared/testkit/faultproxy"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// Names and credentials of the test's private stack (everything listens on 127.0.0.1).
const (
	streamName   = "chaos-events"
	stateTable   = "chaos-state"
	streamShards = 2
	pepper       = "chaos-test-pepper-0123456789"
	apiKey       = "dev-api-key" // the sample app's dev key in infra/config/apps.json
	metaToken    = "chaos-meta-token"
	metaSecret   = "chaos-meta-app-secret"
)

// The local event source mappings: the stack's settings (batch sizes, bisect, partial batch
// response, record age) with short batching windows and polls, so that a run of seconds makes
// many invocations and many Meta requests.
const (
	mappingWindow   = 250 * time.Millisecond
	mappingPoll     = 100 * time.Millisecond
	functionTimeout = 30 * time.Second
	holdPause       = 300 * time.Millisecond // the forwarder's pause after an auth failure (10 s deployed)
	syncInterval    = 400 * time.Millisecond // audience sync ticker (5 min deployed)
	syncRunTimeout  = 30 * time.Second
)

// pipeline is the whole stack of one test run.
type pipeline struct {
	apps *appconfig.Config
	app  *appconfig.App

	rng      *rng
	aws      *awsFaults
	lossy    *lossyTransport
	dynx     *dynamoProxy
	injected *counters

	kinesisDirect *kinesis.Client    // straight to kinesalite: setup and checks only
	store         *dynamostate.Store // straight to dynalite: checks only
	dynDirect     *dynamodb.Client   // straight to dynalite: setup and checks only
	meta          *metaServer
	dlqFile       string
	logs          *ringLog

	ingest     *ingestapi.Handler
	direct     *directProducer // puts the direct users' requests on the stream (mixed_test.go)
	fwdPoller  *streampoller.Poller
	updPoller  *streampoller.Poller
	fwdCrash   *crasher
	updCrash   *crasher
	syncer     *audiencesync.Syncer
	onFailure  *counters // records the mappings gave up on, by mapping
	sabotage   string
	sabotageID string // the event the handler-level sabotage modes drop

	stopPollers func()
	stopSync    func()
}

// metaServer serves the sandbox on loopback and counts the requests it is answering, so the
// fault schedule can wait for traffic and the checks for held requests to be answered.
type metaServer struct {
	sb       *metasandbox.Sandbox
	srv      *httptest.Server
	inflight atomic.Int64
	events   atomic.Int64 // CAPI requests that arrived
	audience atomic.Int64 // Custom Audience requests that arrived
}

func (m *metaServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.inflight.Add(1)
	defer m.inflight.Add(-1)
	switch {
	case strings.HasPrefix(r.URL.Path, "/_sandbox/") || r.URL.Path == "/health":
	case strings.HasSuffix(r.URL.Path, "/events"):
		m.events.Add(1)
	default:
		m.audience.Add(1)
	}
	m.sb.ServeHTTP(w, r)
}

// waitQuiet waits until no Graph request is being answered (held requests included).
func (m *metaServer) waitQuiet(ctx context.Context) error {
	for m.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("meta sandbox still answering %d requests: %w", m.inflight.Load(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// ringLog keeps the last lines the functions logged at warning level and above, shown when
// the test fails, and counts them.
type ringLog struct {
	mu     sync.Mutex
	lines  []string
	total  int
	alerts int
}

const ringLines = 80

func (l *ringLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.total++
		if strings.Contains(line, "ALERT") {
			l.alerts++
		}
		l.lines = append(l.lines, line)
		if len(l.lines) > ringLines {
			l.lines = l.lines[len(l.lines)-ringLines:]
		}
	}
	return len(p), nil
}

func (l *ringLog) logger(fn string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn})).With("fn", fn)
}

func (l *ringLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d lines in all, %d ALERT; the last ones:\n%s", l.total, l.alerts, strings.Join(l.lines, "\n"))
}

func (l *ringLog) counts() (total, alerts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.alerts
}

// startPipeline starts the emulators, the proxies, the sandbox and every function, with the
// faults off. poison are the event ids Meta refuses.
func startPipeline(t *testing.T, seed uint64, poison []string, sabotage string) *pipeline {
	t.Helper()
	kin := emulators.StartForTest(t, emulators.Kinesis)
	dyn := emulators.StartForTest(t, emulators.DynamoDB)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cfgPath := filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json")
	apps, err := env.LoadApps(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{apps: apps, app: &apps.Apps[0], rng: newRNG(seed), injected: &counters{}, onFailure: &counters{},
		logs: &ringLog{}, dlqFile: filepath.Join(t.TempDir(), "dead-letters.jsonl"), sabotage: sabotage}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("warnings and errors the functions logged: %s", p.logs.tail())
		}
	})
	p.aws = &awsFaults{rng: p.rng, injected: p.injected}
	p.lossy = newLossyTransport(p.rng, p.injected)

	// Setup talks to the emulators directly.
	kinCfg, err := emulators.AWSConfig(ctx, kin.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.kinesisDirect = kinesis.NewFromConfig(kinCfg)
	if err := kinesisstream.EnsureStream(ctx, p.kinesisDirect, streamName, streamShards); err != nil {
		t.Fatal(err)
	}
	dynCfg, err := emulators.AWSConfig(ctx, dyn.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.dynDirect = dynamodb.NewFromConfig(dynCfg)
	if err := dynamostate.CreateTable(ctx, p.dynDirect, stateTable); err != nil {
		t.Fatal(err)
	}
	p.store = dynamostate.New(p.dynDirect, stateTable, dynamostate.Options{})

	// The functions talk through the fault proxies: client -> faultproxy -> kinesalite, and
	// client -> faultproxy -> dynamoProxy (unprocessed items, latency) -> dynalite.
	kinProxy, err := faultproxy.Start(kin.Endpoint, p.aws.kinesisRules())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kinProxy.Close() })
	p.dynx = startDynamoProxy(dyn.Endpoint, p.rng)
	t.Cleanup(p.dynx.Close)
	dynProxy, err := faultproxy.Start(p.dynx.URL(), p.aws.dynamoRules())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dynProxy.Close() })
	kinesisCfg, err := emulators.AWSConfig(ctx, kinProxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	kinesisCfg.HTTPClient = p.lossy.client()
	dynamoCfg, err := emulators.AWSConfig(ctx, dynProxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	dynamoCfg.HTTPClient = p.lossy.client()

	// The Meta sandbox knows the apps' datasets and ad accounts.
	datasets, accounts := apps.MetaIDs()
	sb, err := metasandbox.New(metasandbox.Config{AccessToken: metaToken, AppSecret: metaSecret,
		Datasets: datasets, AdAccounts: accounts, RemovalMinSize: -1,
		Faults: metasandbox.Faults{PoisonEventIDs: poison}})
	if err != nil {
		t.Fatal(err)
	}
	p.meta = &metaServer{sb: sb}
	p.meta.srv = httptest.NewServer(p.meta)
	t.Cleanup(func() {
		sb.Close() // releases held requests first
		p.meta.srv.Close()
	})

	// Every function built by package runtime, as the Lambdas and the dev stack build them.
	common := env.Common{ConfigFile: cfgPath} // the same app config for every function
	state := env.State{Table: stateTable}
	meta := env.Meta{GraphURL: p.meta.srv.URL, AccessToken: metaToken, AppSecret: metaSecret}
	deps := func(name string, awsCfg aws.Config) runtime.Deps {
		return runtime.Deps{AWS: awsCfg, Log: p.logs.logger(name), Metrics: io.Discard}
	}
	p.ingest, err = runtime.NewIngest(ctx, env.Ingest{Common: common, StreamName: streamName,
		Pepper: env.PepperSource{Value: pepper}, Keys: env.Keys{DevAuth: true}}, deps("ingest", kinesisCfg))
	if err != nil {
		t.Fatal(err)
	}
	// The direct producer parses as the ingest does and writes through the same faults.
	pseudo, err := identity.NewPseudonymizer([]byte(pepper))
	if err != nil {
		t.Fatal(err)
	}
	directClient := kinesis.NewFromConfig(kinesisCfg, func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
	p.direct = &directProducer{app: p.app, parser: appevent.NewParser(pseudo), dropOne: sabotage == "direct-drop",
		pub: stream.NewPublisher(kinesisstream.NewWriter(directClient, streamName, ""), stream.Options{})}
	fwd, err := runtime.NewForwarder(ctx, env.Forwarder{Common: common, Meta: meta, DeadLetterFile: p.dlqFile,
		HoldPause: holdPause, StateTable: stateTable, DynamoEndpoint: dynProxy.URL()}, deps("capi-forwarder", kinesisCfg))
	if err != nil {
		t.Fatal(err)
	}
	upd, err := runtime.NewUpdater(env.Updater{Common: common, State: state}, deps("segment-updater", dynamoCfg))
	if err != nil {
		t.Fatal(err)
	}
	p.syncer, err = runtime.NewAudienceSync(ctx, env.AudienceSync{Common: common, State: state, Meta: meta}, deps("audience-sync", dynamoCfg))
	if err != nil {
		t.Fatal(err)
	}

	// The event source mappings, with their crash injection.
	p.fwdCrash = &crasher{name: "capi-forwarder", rng: p.rng}
	p.updCrash = &crasher{name: "segment-updater", rng: p.rng}
	pollerClient := kinesis.NewFromConfig(kinesisCfg)
	newMapping := func(name string, batch int, c *crasher, h streampoller.Handler) *streampoller.Poller {
		cfg := streampoller.Config{
			Stream:                  streamName,
			BatchSize:               batch,
			BatchingWindow:          mappingWindow,
			BisectOnError:           true,
			MaxRetryAttempts:        env.MappingRetryAttempts,
			MaxRecordAge:            env.MappingMaxRecordAge,
			ReportBatchItemFailures: true,
			FunctionTimeout:         functionTimeout,
			PollInterval:            mappingPoll,
			Crash:                   c.crash,
			Logger:                  p.logs.logger(name + "-esm"),
			OnFailure: func(_ context.Context, f streampoller.FailureRecord) error {
				p.onFailure.add(fmt.Sprintf("%s: %s records %s..%s of %s (%s after %d attempts)", name, f.Reason,
					f.StartSequenceNumber, f.EndSequenceNumber, f.Shard, f.Reason, f.Attempts), f.BatchSize)
				return nil
			},
		}
		poller, err := streampoller.New(pollerClient, cfg, c.wrap(h))
		if err != nil {
			t.Fatal(err)
		}
		return poller
	}
	p.fwdPoller = newMapping("capi-forwarder", env.ForwarderBatchSize, p.fwdCrash, p.sabotaged("meta-drop", fwd.Handle))
	p.updPoller = newMapping("segment-updater", env.UpdaterBatchSize, p.updCrash, p.sabotaged("state-drop", upd.Handle))
	return p
}

// sabotaged drops the sabotage event from every batch the handler sees, when the run's
// sabotage mode is mode: the mapping then checkpoints a record the function never handled.
func (p *pipeline) sabotaged(mode string, h streampoller.Handler) streampoller.Handler {
	if p.sabotage != mode {
		return h
	}
	return func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		kept := ev.Records[:0:0]
		for _, r := range ev.Records {
			if !bytes.Contains(r.Kinesis.Data, []byte(`"id":"`+p.sabotageID+`"`)) {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			return events.KinesisEventResponse{}, nil
		}
		return h(ctx, events.KinesisEvent{Records: kept})
	}
}

// setFaults turns the fault injection of the AWS side and the mappings on or off. The Meta
// sandbox's faults are set by the fault schedule.
func (p *pipeline) setFaults(on bool) {
	p.aws.on.Store(on)
	p.lossy.on.Store(on)
	p.fwdCrash.on.Store(on)
	p.updCrash.on.Store(on)
	if on {
		p.dynx.rate.set(dynamoUnprocessedRate)
		p.dynx.slow.set(dynamoSlowWriteRate)
	} else {
		p.dynx.rate.set(0)
		p.dynx.slow.set(0)
	}
}

// start runs the two mappings and the audience sync ticker.
func (p *pipeline) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, poller := range []*streampoller.Poller{p.fwdPoller, p.updPoller} {
		wg.Go(func() {
			if err := poller.Run(ctx); err != nil {
				t.Errorf("event source mapping stopped: %v", err)
			}
		})
	}
	p.stopPollers = func() { cancel(); wg.Wait() }

	syncCtx, stopSync := context.WithCancel(context.Background())
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		for syncCtx.Err() == nil {
			runCtx, stop := context.WithTimeout(syncCtx, syncRunTimeout)
			p.syncer.Run(runCtx) // errors are the faults': the next run resumes
			stop()
			select {
			case <-syncCtx.Done():
			case <-time.After(syncInterval):
			}
		}
	}()
	p.stopSync = func() { stopSync(); <-syncDone }
}

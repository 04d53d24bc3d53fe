// Command devstack runs the pipeline locally on loopback (`make dev`): the Kinesis and DynamoDB
// emulators from .devtools, the event stream, and the ingest function behind a stand-in for API
// Gateway (REST API, Lambda proxy integration). Nothing listens beyond 127.0.0.1 / ::1.
//
//	go build -o build/host/devstack ./infra/cmd/devstack && build/host/devstack -config infra/config/apps.dev.json
//
// Flags: -config (app config, default infra/config/apps.dev.json), -tail (default on: one line per
// stream record), -tail-json (whole records as JSON lines), -dev-dir (state folder, default
// .dev), -log-dir (default logs in -dev-dir).
// Environment: DEV_API_ADDR (default 127.0.0.1:3000; loopback only; port 0 picks a free port),
// DEV_API_KEY (replaces the first app's dev key), PSEUDONYM_PEPPER (default: a public dev
// pepper), EVENT_STREAM_NAME (default retarget-events), LOG_LEVEL (function log level),
// DEV_ADMIN_ACCESS_KEY_ID / DEV_ADMIN_SECRET_ACCESS_KEY (the credentials the IAM routes'
// SigV4 signatures are checked against; default the public devenv.AdminAccessKeyID /
// devenv.AdminSecretAccessKey, region us-east-1, 5 minutes of clock skew), API (the front door:
// rest, the default, or http; see below).
//
// The API enforces access.Routes as API Gateway does (see Gateway): the app key on keyed
// routes, and a SigV4 signature on the IAM ones. API=http stands in for the HTTP API front door
// instead (`cdk synth -c api=http`, infra/docs/front-door.md; see HTTPDoor): the real key
// authorizer (keyauthorizer, with a ring of the apps' dev keys) in front of the keyed routes,
// its answers cached 300 s per key, its context in requestContext.authorizer; the JWT
// authorizer on /v1/me; SigV4 on the IAM routes; no request models; and the ingest function's
// per-app limit (api_key.rate_limit, burst_limit) on the rate table in dynalite.
//
// Output on stdout, for people and scripts. Startup ends with these lines, in this order:
//
//	  kinesis   http://127.0.0.1:PORT  (kinesalite, pid N) stream NAME, 2 shards
//	  dynamodb  http://127.0.0.1:PORT  (dynalite, pid N) no tables yet
//	  ...
//	retarget dev stack ready on http://127.0.0.1:PORT
//
// then one line per API request ("api POST /v1/events 202 3.1ms req=ID") and, with -tail, one
// per stream record ("tail shard=... seq=... app=... user=... event=... id=... bytes=N").
// The function's JSON log and its EMF metric lines go to files in -log-dir; its warnings and
// errors also go to stderr.
//
// Just before the ready line, the dev stack writes <dev-dir>/endpoints.json (package devenv:
// the API, Meta sandbox, Kinesis and DynamoDB endpoints, names, pids, dev credentials and log
// files) for the CLI, the load test and scripts; it removes the file when it stops cleanly.
//
// Ctrl-C or SIGTERM stops the API (waiting for requests in flight), the tail and the emulators,
// and exits 0. The emulators also exit by themselves when this process dies, even by SIGKILL
// (see package emulators).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/devissuer"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/sandbox/sigv4"
)

const (
	// functionTimeout is the ingest function's timeout in the stack (GoFunction's default).
	functionTimeout = 10 * time.Second
	// shutdownGrace bounds the wait for requests in flight at shutdown.
	shutdownGrace = 10 * time.Second
	// setupTimeout bounds emulator start and stream creation.
	setupTimeout = 60 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := &console{out: os.Stdout, err: os.Stderr}
	// DEVSTACK_CPUPROFILE=<file> profiles the whole stack (functions, pollers, gateway,
	// sandbox) until it stops: `go tool pprof <file>` shows where a load test's CPU goes.
	if path := os.Getenv("DEVSTACK_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			out.Errorf("DEVSTACK_CPUPROFILE: %v", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if err := run(ctx, stop, os.Args[1:], os.Getenv, out); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		if ctx.Err() != nil { // Ctrl-C during startup: what did start has been stopped
			out.Errorf("interrupted during startup (%v)", err)
			return
		}
		out.Errorf("%v", err)
		os.Exit(1)
	}
}

// run starts everything, serves until ctx ends, then stops everything. stopSignals restores
// the default signal handling once shutdown begins, so a second Ctrl-C ends the process at once.
func run(ctx context.Context, stopSignals func(), args []string, getenv func(string) string, out *console) error {
	s, err := parseSettings(args, getenv, out.err)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	apps, err := env.LoadApps(s.ConfigFile)
	if err != nil {
		return err
	}
	app := &apps.Apps[0]
	key := app.APIKey.DevValue
	if s.APIKey != "" {
		key = s.APIKey
	}

	// Listen first: a busy port should fail before anything else starts. Connections made
	// before the server runs wait in the backlog.
	ln, err := net.Listen("tcp", s.APIAddr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: the port is taken (another dev stack?); choose another with %s=127.0.0.1:PORT", s.APIAddr, EnvAPIAddr)
		}
		return fmt.Errorf("listen on %s (%s): %w", s.APIAddr, EnvAPIAddr, err)
	}
	defer ln.Close() // Serve owns it once it runs; closing twice is harmless
	apiURL := "http://" + ln.Addr().String()

	logs, err := openLogs(s.LogDir)
	if err != nil {
		return err
	}
	defer logs.Close()

	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	defer cancelSetup()
	kinesalite, err := emulators.Start(setupCtx, emulators.Kinesis, emulators.Options{Stderr: logs.kinesalite})
	if err != nil {
		return withToolsHint(err)
	}
	defer stopEmulator(out, kinesalite)
	dynalite, err := emulators.Start(setupCtx, emulators.DynamoDB, emulators.Options{Stderr: logs.dynalite})
	if err != nil {
		return withToolsHint(err)
	}
	defer stopEmulator(out, dynalite)

	awsCfg, err := emulators.AWSConfig(ctx, kinesalite.Endpoint)
	if err != nil {
		return err
	}
	admin := kinesis.NewFromConfig(awsCfg)
	if err := kinesisstream.EnsureStream(setupCtx, admin, s.StreamName, streamShards); err != nil {
		return err
	}

	ingestCfg := awsCfg
	if s.FrontDoor == devenv.FrontDoorHTTP {
		// The ingest function's per-app limit counts in the rate table, as deployed.
		if ingestCfg, err = ingestAWS(awsCfg, dynalite.Endpoint); err != nil {
			return err
		}
		dynamoCfg, err := emulators.AWSConfig(ctx, dynalite.Endpoint)
		if err != nil {
			return err
		}
		if err := createRateTable(setupCtx, dynamodb.NewFromConfig(dynamoCfg), rateTable); err != nil {
			return fmt.Errorf("rate table: %w", err)
		}
	}
	handler, err := newIngestHandler(ctx, s, ingestCfg, logs, out)
	if err != nil {
		return fmt.Errorf("ingest function: %w", err)
	}
	os.Remove(filepath.Join(s.LogDir, deadLettersFile)) // the stream starts empty: so do its dead letters
	metaAPI, err := startMeta(s, apps)
	if err != nil {
		return err
	}
	if metaAPI.Sandbox != nil {
		defer metaAPI.Sandbox.Close()
	}
	dynamoCfg, err := emulators.AWSConfig(ctx, dynalite.Endpoint)
	if err != nil {
		return err
	}
	// The state table before the forwarder: it reads explicit consent decisions from it.
	if err := dynamostate.CreateTable(setupCtx, dynamodb.NewFromConfig(dynamoCfg), stateTable); err != nil {
		return fmt.Errorf("state table: %w", err)
	}
	fwd, err := startForwarder(s, metaAPI, awsCfg, dynalite.Endpoint, logs, out)
	if err != nil {
		return err
	}
	defer fwd.stop()
	// The dev token issuer: its keys are served next to the API, and the users routes trust it
	// for every app that has auth.end_user (retarget dev token mints its tokens).
	devIssuer := devissuer.EndUserAuth(apiURL+devissuer.JWKSPath, "")
	chans, err := startChannels(s, apps, dynamoCfg, logs, out)
	if err != nil {
		return err
	}
	defer chans.stop()
	segs, err := startSegments(setupCtx, s, metaAPI, awsCfg, dynamoCfg, devIssuer, chans.publish, logs, out)
	if err != nil {
		return err
	}
	defer segs.stop()
	arch, err := startArchiver(s, apps, awsCfg, slog.New(slog.NewTextHandler(out.err, &slog.HandlerOptions{Level: slog.LevelWarn})), out)
	if err != nil {
		return err
	}
	defer arch.stop()
	purger, err := startArchivePurge(getenv, s, apps, dynamoCfg, slog.New(slog.NewTextHandler(out.err, &slog.HandlerOptions{Level: slog.LevelWarn})), out)
	if err != nil {
		return err
	}
	defer purger.stop()

	var httpDoor *HTTPDoor
	if s.FrontDoor == devenv.FrontDoorHTTP {
		// The authorizer's decisions go to the ingest log (one line per key and cache period).
		logger := slog.New(observability.NewLogger(logs.ingest, s.LogLevel).Handler())
		door, stopDoor, err := newHTTPDoor(ctx, s, apps, apiURL+devissuer.JWKSPath, logger)
		if err != nil {
			return err
		}
		defer stopDoor()
		httpDoor = door
	}
	ingest := ViaJSON(handler) // its event as JSON, read by the function's own decoder as in Lambda
	gateway := &Gateway{
		Function:  ingest,
		Functions: map[string]ProxyFunc{access.FunctionIngest: ingest, access.FunctionUsersAPI: segs.read.Handle},
		Routes:    access.Routes,
		APIKeys:   devAPIKeys(apps, s.APIKey),
		SigV4:     adminVerifier(s),
		// The stack puts the same request model on both event routes (REST door only).
		Models: map[string]func([]byte) bool{
			http.MethodPost + " " + access.PathEvents:       appevent.BodyShapeOK,
			http.MethodPost + " " + access.PathServerEvents: appevent.BodyShapeOK,
		},
		ModelError: appevent.BodyShapeResponse(),
		Stage:      "dev",
		HTTP:       httpDoor,
		Timeout:    functionTimeout,
		Access:     out.access,
		Errors: func(id string, err error) {
			out.Errorf("request %s: function failed: %v", id, err)
		},
	}
	srv := &http.Server{
		// The dev token issuer's keys and the channel test route are served beside the API;
		// everything else is the API.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == devissuer.JWKSPath && r.Method == http.MethodGet {
				w.Header().Set("Content-Type", "application/json")
				w.Write(devissuer.JWKS())
				return
			}
			if r.URL.Path == devenv.ChannelsTestPath && r.Method == http.MethodPost {
				chans.serveTest(w, r)
				return
			}
			gateway.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(out.err, "devstack: http: ", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	tailDone := make(chan struct{})
	tailCtx, stopTail := context.WithCancel(context.Background())
	defer stopTail()
	if s.Tail {
		t := &streamTail{tailer: kinesisstream.NewTailer(admin, s.StreamName, kinesisstream.TrimHorizon), out: out, json: s.TailJSON}
		go func() { defer close(tailDone); t.run(tailCtx) }()
	} else {
		close(tailDone)
	}

	st := started{
		Settings: s, App: app, Key: key,
		KinesisURL: kinesalite.Endpoint, KinesisPID: kinesalite.Pid(),
		DynamoURL: dynalite.Endpoint, DynamoPID: dynalite.Pid(),
		APIURL: apiURL, ExampleEventAt: time.Now(), Meta: metaAPI,
	}
	// The endpoints file before the ready line: whoever sees the line can read the file.
	doc, err := endpointsDoc(ctx, st, awsCfg, logs)
	if err == nil {
		err = devenv.WriteEndpoints(s.DevDir, doc)
	}
	if err != nil {
		return err
	}
	removeEndpoints := func() {
		if err := devenv.RemoveEndpoints(s.DevDir, os.Getpid()); err != nil {
			out.Errorf("%v", err)
		}
	}
	defer removeEndpoints()
	out.printSummary(st)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	stopSignals()
	removeEndpoints() // first: tools must not find a stack that is going away
	out.Println("stopping: api, forwarder, segments, archiver, tail, emulators")

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		out.Errorf("api shutdown: %v", err)
	}
	fwd.stop()
	segs.stop()
	chans.stop()
	arch.stop()
	stopTail()
	<-tailDone
	stopEmulator(out, dynalite) // the deferred calls cover the early returns; Stop is idempotent
	stopEmulator(out, kinesalite)
	out.Println("stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("api server: %w", serveErr)
	}
	return nil
}

// newIngestHandler builds the ingest function exactly as the Lambda does (runtime.NewIngest),
// from a configuration that holds only what the dev stack decides: no pepper secret or API key
// ids from the developer's shell. With the HTTP door it has the rate table, which awsCfg
// reaches (ingestAWS).
func newIngestHandler(ctx context.Context, s settings, awsCfg aws.Config, logs *logFiles, out *console) (*ingestapi.Handler, error) {
	c := env.Ingest{
		Common:     env.Common{ConfigFile: s.ConfigFile},
		StreamName: s.StreamName,
		Pepper:     env.PepperSource{Value: s.Pepper},
		Keys:       env.Keys{DevAuth: true, DevAPIKey: s.APIKey},
	}
	if s.FrontDoor == devenv.FrontDoorHTTP {
		c.RateTable = rateTable // the per-app limit of the HTTP door
	}
	// The JSON log goes to its file; warnings and errors also reach the terminal.
	logger := slog.New(slog.NewMultiHandler(
		observability.NewLogger(logs.ingest, s.LogLevel).Handler(),
		slog.NewTextHandler(out.err, &slog.HandlerOptions{Level: slog.LevelWarn}),
	))
	// EMF metric lines go to their own file: on the terminal they would bury everything else.
	return runtime.NewIngest(ctx, c, runtime.Deps{AWS: awsCfg, Log: logger, Metrics: logs.metrics})
}

// devAPIKeys are the x-api-key values the gateway knows: the apps' dev keys, the first one
// replaced by DEV_API_KEY, as the functions map them (ingestapi.DevKeys). In AWS the API's
// keys and usage plans play this part.
func devAPIKeys(apps *appconfig.Config, devAPIKey string) map[string]bool {
	keys := map[string]bool{}
	for k := range ingestapi.DevKeys(apps, devAPIKey) {
		keys[k] = true
	}
	return keys
}

// adminVerifier checks the IAM routes' signatures against the dev admin credentials, as API
// Gateway checks them against IAM.
func adminVerifier(s settings) *sigv4.Verifier {
	return &sigv4.Verifier{
		Credentials: map[string]sigv4.Credential{s.AdminAccessKeyID: {
			SecretAccessKey: s.AdminSecretAccessKey, UserARN: devenv.AdminUserARN, Caller: devenv.AdminCaller,
		}},
		Region: devenv.APIRegion,
	}
}

// logFiles are the dev stack's log files, truncated at each start.
type logFiles struct {
	ingest, forwarder, segments, metrics, kinesalite, dynalite, esmFailures *os.File
}

func openLogs(dir string) (*logFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	l := &logFiles{}
	for _, f := range []struct {
		name string
		dst  **os.File
	}{{"ingest.log", &l.ingest}, {"forwarder.log", &l.forwarder}, {"segments.log", &l.segments}, {"metrics.log", &l.metrics},
		{"kinesalite.log", &l.kinesalite}, {"dynalite.log", &l.dynalite}, {esmFailuresFile, &l.esmFailures}} {
		file, err := os.Create(filepath.Join(dir, f.name))
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("log file: %w", err)
		}
		*f.dst = file
	}
	return l, nil
}

// Close closes the files that are open.
func (l *logFiles) Close() {
	for _, f := range []*os.File{l.ingest, l.forwarder, l.segments, l.metrics, l.kinesalite, l.dynalite, l.esmFailures} {
		if f != nil {
			f.Close()
		}
	}
}

func stopEmulator(out *console, p *emulators.Process) {
	if err := p.Stop(); err != nil {
		out.Errorf("%v", err)
	}
}

// withToolsHint adds what to do when the emulators are not installed.
func withToolsHint(err error) error {
	if errors.Is(err, emulators.ErrToolsMissing) && !strings.Contains(err.Error(), "make tools") {
		return fmt.Errorf("%w (run `make tools`)", err)
	}
	return err
}

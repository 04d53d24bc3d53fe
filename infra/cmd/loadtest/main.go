// Command loadtest drives the pipeline with a synthetic app population and measures it end to
// end, then models what a million events cost on AWS (`make loadtest`).
//
//	go run ./infra/cmd/loadtest [flags]                  # starts its own dev stack (make dev's binary)
//	go run ./infra/cmd/loadtest --dev-dir .dev               # the running make dev
//	go run ./infra/cmd/loadtest --url http://127.0.0.1:3000 --sandbox-url ... --log-dir .dev/logs ...
//
// Without --url or --dev-dir it builds infra/cmd/devstack, runs it on free loopback ports with
// its state and logs in a temporary folder, reads where it runs from its endpoints file, and
// stops it (SIGTERM) at the end, checking that the emulators are gone. With --dev-dir it uses
// the running dev stack whose endpoints file is in that folder. With --url it uses a running
// stack; --sandbox-url, --log-dir, --kinesis-endpoint and --dynamodb-endpoint then say where
// the rest is (what is not given is not measured); with --dev-dir they override the file.
//
// It first gives the --prefill-users most active users five days of history (an empty state
// table would make every user of the run new). Then it sends requests of --events-per-request
// events (default 20) at --rate events per second for --duration from --senders connections;
// users are drawn from a Zipf law over --users users; each request is one device's flush
// (--shape device) or mixes users (--shape mixed). It waits until the Meta sandbox holds every
// consented event and the updater has read every record (or --drain-timeout passes), reads
// the functions' EMF metrics and logs, the stream and the state table, replays stream records
// through the forwarder and the updater to time them, and prints the figures and the cost
// model next to a naive design's, with the targets. --out writes it all as JSON. The
// exit code is 0 when the measurement worked (1 if not, 2 for bad flags), or 3 with --strict
// when a target failed.
//
// Decisions, for whoever reads the figures:
//   - End to end is the pace at which Meta received the consented events, from its first to
//     its last delivery (never less than the sending time), scaled to all accepted events
//     (events without consent cross the stream and the updater but may not reach Meta); it
//     counts only when everything drained.
//   - DynamoDB units are counted from what the functions report (EMF and log lines) times the
//     table's access pattern and the item sizes read back (see dynamoMethod): the dev stack
//     wires its functions straight to dynalite, so no counting proxy fits in front of it.
//   - The forwarder's and the updater's handler times come from replaying records of the run
//     after it (on an idle machine, as a Lambda has its own CPU); the ingest handler's from its
//     IngestLatency metric under load.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// defaultPrefillUsers is how many users get a history before a run on a dev stack started
// here: the most active users, who send most of the traffic (83% with the default Zipf law
// over 100,000 users), in about 30 s on 2 cores.
const defaultPrefillUsers = 10_000

// options are the command line.
type options struct {
	URL, APIKey, SandboxURL, KinesisURL, DynamoURL, LogDir, Stream, Table string
	DevDir                                                                string
	Config                                                                string
	Rate                                                                  float64
	Duration, DrainTimeout                                                time.Duration
	EventsPerRequest, Senders, Users                                      int
	ZipfS, ZipfV, ConsentRate                                             float64
	Shape                                                                 string
	Seed                                                                  uint64
	Out, WorkDir                                                          string
	Keep, VerifyIDs, Calibrate, Strict                                    bool
	SyncInterval, SweepInterval                                           time.Duration
	MaxAttempts, PrefillUsers                                             int
	// API: the front door to price, "rest", "http" or "" for both.
	API string
	// apps: the apps of the config, one publishable key each (the HTTP door's authorizer).
	apps int
}

// doors are the front doors --api asks to price.
func (o options) doors() []FrontDoor {
	switch o.API {
	case string(DoorREST):
		return []FrontDoor{DoorREST}
	case string(DoorHTTP):
		return []FrontDoor{DoorHTTP}
	}
	return []FrontDoor{DoorREST, DoorHTTP}
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./infra/cmd/loadtest [flags]   (make loadtest)\n\n"+
			"Drives the pipeline with a synthetic app population, measures it end to end and models its\n"+
			"cost per million events on AWS. Without --url it runs its own dev stack (make dev's binary).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.URL, "url", "", "ingest API of a running stack (e.g. http://127.0.0.1:3000); default: start a dev stack")
	fs.StringVar(&o.DevDir, "dev-dir", "", "measure the running dev stack whose "+devenv.EndpointsFile+" is in this folder (make dev: "+devenv.Dir+"); the flags below override what it says")
	fs.StringVar(&o.APIKey, "api-key", "", "API key (default: the app's dev_value in --config)")
	fs.StringVar(&o.SandboxURL, "sandbox-url", "", "Meta sandbox of the running stack (with --url)")
	fs.StringVar(&o.KinesisURL, "kinesis-endpoint", "", "Kinesis endpoint of the running stack (with --url)")
	fs.StringVar(&o.DynamoURL, "dynamodb-endpoint", "", "DynamoDB endpoint of the running stack (with --url)")
	fs.StringVar(&o.LogDir, "log-dir", "", "log folder of the running stack, for its metrics.log (with --url)")
	fs.StringVar(&o.Stream, "stream", "", "stream name (default "+devenv.Stream+", or the --dev-dir stack's)")
	fs.StringVar(&o.Table, "table", "", "state table name (default "+devenv.StateTable+", or the --dev-dir stack's)")
	fs.StringVar(&o.Config, "config", "infra/config/apps.json", "app config (the first app is the one loaded)")
	fs.Float64Var(&o.Rate, "rate", TargetEventsPerSecond, "target rate, events per second")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to send")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 2*time.Minute, "how long to wait after sending for everything to reach Meta")
	fs.IntVar(&o.EventsPerRequest, "events-per-request", 20, "events per request (1-500)")
	fs.IntVar(&o.Senders, "senders", 64, "concurrent senders (connections)")
	fs.IntVar(&o.Users, "users", 100_000, "population size")
	fs.Float64Var(&o.ZipfS, "zipf-s", 1.1, "Zipf exponent of user activity (> 1)")
	fs.Float64Var(&o.ZipfV, "zipf-v", 10, "Zipf offset (>= 1; larger flattens the heaviest users)")
	fs.Float64Var(&o.ConsentRate, "consent", 0.93, "share of users who granted ads_personalization")
	fs.StringVar(&o.Shape, "shape", string(ShapeDevice), "request shape: device (one user per request) or mixed")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the population and the event draws")
	fs.StringVar(&o.Out, "out", "", "write the report as JSON to this file (e.g. loadtest.json)")
	fs.StringVar(&o.WorkDir, "work-dir", "", "folder for the dev stack's build and logs (default: a temporary folder, removed at the end)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work folder (dev stack logs) at the end")
	fs.BoolVar(&o.VerifyIDs, "verify-ids", false, "read every event Meta accepted and check each expected event_id arrived (slow after big runs)")
	fs.BoolVar(&o.Calibrate, "calibrate", true, "time the forwarder and updater by replaying stream records after the run")
	fs.BoolVar(&o.Strict, "strict", false, "exit 3 when a target fails")
	fs.DurationVar(&o.SyncInterval, "sync-interval", 5*time.Second, "audience sync interval of the dev stack started here (with --url: the stack's AUDIENCE_SYNC_INTERVAL)")
	fs.DurationVar(&o.SweepInterval, "sweep-interval", 5*time.Second, "segment sweep interval of the dev stack started here")
	fs.IntVar(&o.MaxAttempts, "max-attempts", 4, "sends of one request at most (429, 5xx, retryable events)")
	fs.StringVar(&o.API, "api", "", "front door to price: rest (API keys, usage plans), http (-c api=http: authorizer, rate limiter) or both (default)")
	fs.IntVar(&o.PrefillUsers, "prefill-users", -1, "before measuring, give the first N users (the most active) five days of history, so the state table is not empty; -1: 10,000 with a dev stack started here, 0 with --url")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.API == "both" {
		o.API = ""
	}
	if o.PrefillUsers == -1 {
		o.PrefillUsers = 0
		if o.URL == "" && o.DevDir == "" {
			o.PrefillUsers = min(defaultPrefillUsers, o.Users)
		}
	}
	switch {
	case o.Rate <= 0:
		return o, errors.New("--rate must be positive")
	case o.Duration <= 0:
		return o, errors.New("--duration must be positive")
	case o.Senders < 1:
		return o, errors.New("--senders must be at least 1")
	case o.ConsentRate < 0 || o.ConsentRate > 1:
		return o, errors.New("--consent is a share between 0 and 1")
	case o.API != "" && o.API != string(DoorREST) && o.API != string(DoorHTTP):
		return o, fmt.Errorf("--api %q: want rest, http or both", o.API)
	case o.MaxAttempts < 1:
		return o, errors.New("--max-attempts must be at least 1")
	case o.PrefillUsers < -1 || o.PrefillUsers > o.Users:
		return o, errors.New("--prefill-users must be between 0 and --users")
	case o.URL != "" && o.SandboxURL == "" && o.DevDir == "":
		return o, errors.New("--url needs --sandbox-url: the end-to-end rate is what reaches the Meta sandbox")
	}
	return o, nil
}

// useRunningDevStack fills what the flags left empty from the endpoints file of the dev stack
// in o.DevDir, so the run measures that stack as with --url; then the dev stack's defaults.
func (o *options) useRunningDevStack() error {
	if o.DevDir != "" {
		e, err := devenv.ReadEndpoints(o.DevDir)
		if err != nil {
			return fmt.Errorf("--dev-dir: %w", err)
		}
		for _, f := range []struct {
			dst *string
			val string
		}{{&o.URL, e.APIURL}, {&o.APIKey, e.APIKey}, {&o.SandboxURL, e.MetaSandboxURL}, {&o.KinesisURL, e.Kinesis.Endpoint},
			{&o.DynamoURL, e.DynamoDB.Endpoint}, {&o.LogDir, e.LogDir}, {&o.Stream, e.Stream}, {&o.Table, e.Table}} {
			if *f.dst == "" {
				*f.dst = f.val
			}
		}
		if o.SandboxURL == "" {
			return fmt.Errorf("--dev-dir: the dev stack at %s runs no Meta sandbox (META_GRAPH_URL): pass --sandbox-url", e.APIURL)
		}
	}
	if o.Stream == "" {
		o.Stream = devenv.Stream
	}
	if o.Table == "" {
		o.Table = devenv.StateTable
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(2)
		}
		return
	}
	rep, err := Run(ctx, o, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
	if o.Strict && !rep.Passed() {
		os.Exit(3)
	}
}

// Run does one load test and prints its report on stdout (progress on stderr).
func Run(ctx context.Context, o options, stdout io.Writer, stderr *os.File) (*Report, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(o.Config) {
		o.Config = filepath.Join(root, o.Config)
	}
	if err := o.useRunningDevStack(); err != nil {
		return nil, err
	}
	apps, err := env.LoadApps(o.Config)
	if err != nil {
		return nil, err
	}
	app := &apps.Apps[0]
	o.apps = len(apps.Apps)
	var platforms []string
	for _, p := range app.Platforms {
		platforms = append(platforms, string(p))
	}
	runID := "lt-" + randomHex(4)

	rep := &Report{Settings: Settings{
		Mode: "devstack", RunID: runID, Rate: o.Rate, Duration: o.Duration.String(), EventsPerRequest: o.EventsPerRequest,
		Senders: o.Senders, Users: o.Users, ZipfS: o.ZipfS, ZipfV: o.ZipfV, ConsentRate: o.ConsentRate, Shape: o.Shape,
		Seed: o.Seed, API: apiName(o.API), PrefillUsers: o.PrefillUsers, CPUs: runtime.NumCPU(), StartedAt: time.Now().UTC().Format(time.RFC3339),
	}}
	pop := &Population{Size: o.Users, S: o.ZipfS, V: o.ZipfV, ConsentRate: o.ConsentRate, Seed: o.Seed, Platforms: platforms}
	gen, err := NewGenerator(pop, o.EventsPerRequest, RequestShape(o.Shape), runID)
	if err != nil {
		return nil, err
	}

	workDir := o.WorkDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "retarget-loadtest-"); err != nil {
			return nil, err
		}
		if !o.Keep {
			defer os.RemoveAll(workDir)
		}
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}

	cpu := &cpuMeter{}
	if o.APIKey == "" {
		o.APIKey = app.APIKey.DevValue
	}
	ep := Endpoints{API: strings.TrimSuffix(o.URL, "/"), APIKey: o.APIKey, App: app.ID, Sandbox: strings.TrimSuffix(o.SandboxURL, "/"),
		Kinesis: o.KinesisURL, DynamoDB: o.DynamoURL}
	logDir := o.LogDir
	var stack *Stack
	if o.URL == "" {
		fmt.Fprintln(stderr, "loadtest: building and starting the dev stack...")
		bin, err := BuildDevstack(ctx, root, workDir)
		if err != nil {
			return nil, err
		}
		logDir = filepath.Join(workDir, "logs")
		stderrFile, err := os.Create(filepath.Join(workDir, "devstack.stderr"))
		if err != nil {
			return nil, err
		}
		defer stderrFile.Close()
		stack, err = StartStack(ctx, StackOptions{Root: root, Binary: bin, ConfigFile: o.Config, DevDir: workDir, LogDir: logDir,
			SyncInterval: o.SyncInterval, SweepInterval: o.SweepInterval, Stderr: stderrFile})
		if err != nil {
			return nil, err
		}
		defer func() {
			if stack != nil {
				stack.Stop(30 * time.Second)
			}
		}()
		ep = stack.Endpoints
		cpu.add("devstack", stack.PID)
		cpu.add("kinesalite", stack.KinesisPID)
		cpu.add("dynalite", stack.DynamoPID)
	} else {
		rep.Settings.Mode = "url"
	}
	cpu.add("loadtest", os.Getpid())
	rep.Endpoints = ep

	client := NewHTTPClient(o.Senders)
	sandbox := &Sandbox{URL: ep.Sandbox, Client: &http.Client{Timeout: 5 * time.Minute}}
	driver := &Driver{URL: ep.API, Key: ep.APIKey, Gen: gen, Rate: o.Rate, Length: o.Duration, Senders: o.Senders,
		Client: client, MaxAttempts: o.MaxAttempts, KeepIDs: o.VerifyIDs}
	if o.PrefillUsers > 0 {
		if logDir == "" {
			return nil, errors.New("--prefill-users needs the stack's logs (--log-dir with --url) to know when the history is applied")
		}
		fmt.Fprintf(stderr, "loadtest: prefilling the history of %s users...\n", thousands(float64(o.PrefillUsers)))
		start := time.Now()
		if driver.KnownUsers, err = Prefill(ctx, driver, o.PrefillUsers, logDir, sandbox, o.SyncInterval, 10*time.Minute); err != nil {
			return nil, err
		}
		rep.Note("prefilled %s users with 5 days of history (install, 3 app opens) in %.0f s before measuring", thousands(float64(o.PrefillUsers)), time.Since(start).Seconds())
		driver.progress.sent.Store(0)
		driver.progress.accepted.Store(0)
	}
	before, err := sandbox.Stats(ctx)
	if err != nil {
		return nil, err
	}
	sandbox.Skip = before.Entries
	var metrics *Metrics
	if logDir != "" {
		metrics = NewMetrics(logDir, o.URL != "" || o.PrefillUsers > 0)
	} else {
		rep.Note("no --log-dir: the functions' metrics (PutRecords calls, DynamoDB activity, handler time, log volume) are not measured")
	}

	// Send and drain, with the progress display, the CPU meter and the probes running.
	var (
		draining atomic.Bool
		expected atomic.Int64
	)
	started := time.Now()
	poll := &metaPoller{sandbox: sandbox}
	progress := NewProgress(stderr, func() ProgressStatus {
		phase := "sending"
		if draining.Load() {
			phase = "draining"
		}
		return ProgressStatus{Phase: phase, Elapsed: time.Since(started), Total: o.Duration,
			Sent: driver.progress.sent.Load(), Accepted: driver.progress.accepted.Load(), AtMeta: poll.delivered.Load(), Expected: expected.Load()}
	})
	pollCtx, stopPoll := context.WithCancel(ctx)
	go poll.run(pollCtx)
	progress.Start()
	cpu.start()
	stopProbes := startProbes(ctx, ep, o.Stream, o.Table)
	res := driver.Run(ctx)
	rep.Probes = stopProbes()
	sendEnd := time.Now()
	rep.Client = res
	var (
		atEnd, final SandboxStats
		drained      bool
	)
	if ctx.Err() == nil {
		atEnd, err = sandbox.Stats(ctx) // what Meta had when sending stopped
		expected.Store(int64(res.Consented))
		draining.Store(true)
	}
	if ctx.Err() == nil && err == nil {
		final, drained, err = waitForDrain(ctx, sandbox, metrics, res, sendEnd.Add(o.DrainTimeout), &poll.delivered)
	}
	drainEnd := time.Now()
	stopPoll()
	progress.Stop()
	rep.CPU = cpu.stop()
	if ctx.Err() != nil {
		return nil, errors.New("interrupted: stopping the dev stack, no report")
	}
	if err != nil {
		return nil, err
	}
	noteOtherCPU(rep, o.URL != "")
	if metrics != nil {
		if err := metrics.Update(); err != nil {
			rep.Errors = append(rep.Errors, "reading the logs: "+err.Error())
		}
	}
	rep.Sandbox = final
	measure(rep, res, atEnd, final, metrics, sendEnd, drainEnd, drained)
	if tl, err := sandbox.Timeline(ctx, res.Start); err == nil {
		rep.Throughput.MetaPerSecond = tl
	}
	if o.VerifyIDs {
		rep.IDs = verifyIDs(ctx, sandbox, runID, res.IDs, rep)
	}

	// After the run: item sizes, record sizes, handler times, then the model.
	items, calib := readBack(ctx, rep, o, ep, workDir, runID, app.ID)
	var singleIngest float64
	if logDir != "" {
		singleIngest = measureSingleEventIngest(ctx, driver, gen, logDir, 30)
	}
	model(rep, res, metrics, items, calib, singleIngest, o)
	rep.CheckTargets()

	if stack != nil {
		err := stack.Stop(30 * time.Second)
		stack = nil
		rep.Stack = &StackShutdown{StoppedCleanly: err == nil}
		if err != nil {
			rep.Stack.Error = err.Error()
			rep.Errors = append(rep.Errors, "dev stack shutdown: "+err.Error())
		}
		if b, err := os.ReadFile(filepath.Join(workDir, "devstack.stderr")); err == nil && len(b) > 0 {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			rep.Note("the dev stack wrote %d warning/error lines on stderr; first: %s", len(lines), lines[0])
		}
	}
	if o.Keep {
		rep.Note("work folder kept: %s", workDir)
	}
	rep.Print(stdout)
	if o.Out != "" {
		if err := rep.WriteJSON(o.Out); err != nil {
			return rep, err
		}
		fmt.Fprintf(stdout, "\nreport written to %s\n", o.Out)
	}
	return rep, nil
}

// waitForDrain polls until every consented event reached Meta (or a dead letter) and the
// updater read every accepted event, or deadline passes. delivered is kept current for the
// progress display.
func waitForDrain(ctx context.Context, sandbox *Sandbox, metrics *Metrics, res DriveResult, deadline time.Time, delivered *atomic.Int64) (SandboxStats, bool, error) {
	for {
		final, err := sandbox.Stats(ctx)
		if err != nil {
			return final, false, err
		}
		delivered.Store(int64(final.EventsDelivered))
		var dead, updaterEvents float64
		if metrics != nil {
			metrics.Update()
			dead = metrics.Get(FnForwarder, "EventsDeadLettered")
			updaterEvents = metrics.UpdaterEvents()
		}
		metaDone := final.EventsDelivered+int(dead) >= res.Consented
		updaterDone := metrics == nil || int(updaterEvents) >= res.Accepted
		if metaDone && updaterDone {
			return final, true, nil
		}
		if time.Now().After(deadline) {
			return final, false, nil
		}
		select {
		case <-ctx.Done():
			return final, false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// noteOtherCPU remarks on CPU the pipeline did not get: other processes (not with --url,
// where the stack itself is among them), interrupts, the hypervisor.
func noteOtherCPU(rep *Report, url bool) {
	for _, c := range rep.CPU {
		if c.PID != 0 || c.Cores <= 0.2 || url && c.Process == "other processes" {
			continue
		}
		detail := ""
		if c.Detail != "" {
			detail = " (" + c.Detail + ")"
		}
		rep.Note("%s used %.2f cores during the run%s: CPU the pipeline did not get", c.Process, c.Cores, detail)
	}
}

// readBack reads what the run left: user items of the state table, and stream records, which
// it also replays to time the forwarder and the updater (when --calibrate).
func readBack(ctx context.Context, rep *Report, o options, ep Endpoints, workDir, runID, app string) (ItemSample, *Calibration) {
	var items ItemSample
	if ep.DynamoDB != "" {
		s, err := sampleUserItems(ctx, ep.DynamoDB, o.Table, app, 1000)
		if err != nil {
			rep.Errors = append(rep.Errors, "state table: "+err.Error())
		} else {
			items, rep.Items = s, &s
		}
	}
	switch {
	case o.Calibrate && ep.Kinesis != "" && ep.DynamoDB != "":
		c, err := Calibrate(ctx, CalibrateOptions{Endpoints: ep, Stream: o.Stream, ConfigFile: o.Config, WorkDir: workDir, RunID: runID,
			ForwarderBatch: int(rep.Hops.ForwarderRecordsPerInv + 0.5), UpdaterBatch: int(rep.Hops.UpdaterRecordsPerInv + 0.5), Repeats: 5})
		if err != nil {
			rep.Errors = append(rep.Errors, "calibration: "+err.Error())
			return items, nil
		}
		rep.Calibrate, rep.Stream = &c, &c.Stream
		return items, &c
	case ep.Kinesis != "":
		if recs, err := sampleStream(ctx, ep.Kinesis, o.Stream, 2000, runID); err == nil {
			s := sizeOf(recs)
			rep.Stream = &s
		}
	}
	return items, nil
}

// metaPoller keeps the delivered count fresh for the progress display.
type metaPoller struct {
	sandbox   *Sandbox
	delivered atomic.Int64
}

func (p *metaPoller) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if st, err := p.sandbox.Stats(ctx); err == nil {
				p.delivered.Store(int64(st.EventsDelivered))
			}
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// apiName is --api for the report: "both" when empty.
func apiName(api string) string {
	if api == "" {
		return "both"
	}
	return api
}

//go:build linux

package samlocal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/infra/stack"
	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/handlers/insights"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/lambdatest"
)

// stackID is infra/main.go's: it names the template, cdk.out/Retarget.template.json.
const stackID = "Retarget"

// Local values of the secrets. devPepper is make dev's public pepper (infra/cmd/devstack): the user
// keys in the Kinesis fixtures are made with it, so users-api finds the users that
// segment-updater stored from them.
const (
	devPepper     = "dev-pepper-not-a-secret-0123456789"
	metaToken     = "samlocal-sandbox-token-0123"
	metaAppSecret = "samlocal-sandbox-app-secret"
)

// goFunctions maps each function folder (functions/<name>, events/<name>) to its construct in
// the stack. The test takes the logical ids from these constructs, as CDK computes them, rather
// than from guesses at the template: a function the stack adds and this map misses fails the
// test, and so does a folder under functions/ that no function of the template runs.
func goFunctions(s *stack.RetargetStack) map[string]*stack.GoFunction {
	return map[string]*stack.GoFunction{
		stack.IngestFunctionName:           s.Ingest.Ingest,
		stack.CapiForwarderFunctionName:    s.Forwarder.Function,
		stack.SegmentUpdaterFunctionName:   s.Segments.Updater,
		stack.UsersAPIFunctionName:         s.Segments.Reader,
		stack.SegmentSweeperFunctionName:   s.Segments.Sweeper,
		stack.AudienceSyncFunctionName:     s.AudienceSync.Function,
		stack.InsightsFunctionName:         s.Insights.Function,
		stack.ArchiveTransformFunctionName: s.Archive.Transform,
		stack.ArchivePurgeFunctionName:     s.ArchivePurge.Function,
	}
}

// fixture is one event file of events/<fn>/ and what the function must answer to it.
type fixture struct {
	file string
	want func(t *testing.T, l *localStack, answer []byte)
}

// step runs one function with its fixtures. before and after look at or prepare the local
// resources the answers depend on; needs names the earlier functions whose writes the answers
// depend on (the step is skipped when one of them failed).
type step struct {
	function      string
	needs         []string
	before, after func(t *testing.T, l *localStack)
	fixtures      []fixture
}

// pipeline lists every function with every one of its fixtures, in the order events flow
// through the stack: the functions share one stream, one table and one Meta sandbox, so
// users-api, the sweeper and the audience sync see what segment-updater stored. Run the
// test whole: a function's subtest depends on the earlier ones it needs.
var pipeline = []step{
	{
		function: stack.IngestFunctionName,
		fixtures: []fixture{
			{"valid-batch.json", apiAnswer(202, ingestAnswer(ingesttest.WantAccepted(4)))},
			{"partly-invalid-batch.json", apiAnswer(202, ingestAnswer(ingesttest.WantAccepted(2, 1, 2)))},
			{"missing-key.json", apiAnswer(401, errorBody("missing or unknown API key"))},
			{"server-events.json", apiAnswer(202, ingestAnswer(ingesttest.WantAccepted(2)))},
			{"oversized-batch.json", apiAnswer(413, errorBody("more than 500 events"))},
			{"health.json", apiAnswer(200, ingestAnswer(func(t *testing.T, a ingesttest.Answer) {
				if a.Status != "ok" {
					t.Errorf("status %q, want ok", a.Status)
				}
			}))},
		},
		// 4 events of the valid batch, the 2 valid ones of the partly invalid batch and the 2
		// server-sent ones.
		after: streamHolds(8),
	},
	{
		function: stack.CapiForwarderFunctionName,
		fixtures: []fixture{
			// The 4th record has no consent: it never reaches Meta.
			{"batch.json", batchAnswer(metaAccepted(0, "01", "02", "03"))},
			// Records 1 and 4 are good; 2 and 3 are dead letters, not batch failures.
			{"bad-records.json", batchAnswer(metaAccepted(3, "01", "02"), deadLetters("undecodable", "unsupported_version"))},
		},
	},
	{
		function: stack.SegmentUpdaterFunctionName,
		fixtures: []fixture{
			// Both consenting users installed minutes ago; u-777 gave no consent: no segment.
			{"batch.json", batchAnswer(usersStored(map[user][]string{
				{identity.KindAppUserID, "u-123"}:     {"new_installer"},
				{identity.KindAnonID, "install-41d2"}: {"new_installer"},
				{identity.KindAppUserID, "u-777"}:     nil,
			}))},
		},
	},
	{
		function: stack.UsersAPIFunctionName,
		needs:    []string{stack.SegmentUpdaterFunctionName},
		fixtures: []fixture{
			{"known-user.json", apiAnswer(200, readAnswer("u-123", "new_installer"))},
			{"unknown-user.json", apiAnswer(404, errorBody("unknown user"))},
			{"missing-key.json", apiAnswer(401, errorBody("missing or unknown API key"))},
			// The key without an IAM caller: a method deployed without IAM authorisation.
			{"no-iam-caller.json", apiAnswer(403, errorBody("AWS IAM"))},
			// A token signed with an algorithm the app's identity provider does not use (HS256):
			// refused before any key is fetched, so the answer needs no network.
			{"me-segments.json", apiAnswer(401, errorBody("invalid end-user token"))},
		},
	},
	{
		function: stack.SegmentSweeperFunctionName,
		needs:    []string{stack.SegmentUpdaterFunctionName},
		// Nobody is due minutes after the updater ran: the test moves u-123's due time a minute
		// into the past, as if its next possible flip had come. The sweep re-evaluates it
		// (nothing flips yet) and sets its next due time, in the future.
		before: makeDue(user{identity.KindAppUserID, "u-123"}),
		fixtures: []fixture{
			{"scheduled.json", result(`{"Users":1,"Changes":0,"Failed":0,"Enrolled":0,"EnrolmentsLost":0,"Complete":true,"Published":0,"PublishFailed":0}`)},
		},
		after: dueMoved(user{identity.KindAppUserID, "u-123"}),
	},
	{
		function: stack.AudienceSyncFunctionName,
		needs:    []string{stack.SegmentUpdaterFunctionName, stack.SegmentSweeperFunctionName},
		fixtures: []fixture{
			// The updater's two joins of new_installer (u-123 and install-41d2), uploaded to the
			// audience the sync creates and marked synced.
			{"scheduled.json", result(`2`, audienceSize("New installers", 2))},
		},
	},
	{
		function: stack.InsightsFunctionName,
		needs:    []string{stack.AudienceSyncFunctionName},
		fixtures: []fixture{
			// The sync created New installers and its holdout audience; the sandbox gave the
			// audience an ad set that excludes the holdout: one managed ad set, pulled, clean.
			{"scheduled.json", insightsAnswer("sample-shop", 1)},
			{"on-demand.json", insightsAnswer("sample-shop", 1)},
		},
	},
	{
		function: stack.ArchiveTransformFunctionName,
		fixtures: []fixture{
			// Two stream records of the forwarder's batch and one cut short.
			{"batch.json", archiveAnswer(2, 1)},
		},
	},
	{
		function: stack.ArchivePurgeFunctionName,
		fixtures: []fixture{
			// No fixture erased anyone: nothing is pending, so the run queries the table's
			// pending purges and answers without an S3 call (S3 has no stand-in here; its
			// endpoint is a closed loopback port, so a call would fail the run).
			{"scheduled.json", result(`{"Done":0,"Waiting":0,"Failed":0,"Files":0,"Rows":0,"Rewrites":0}`)},
		},
	},
}

// archiveAnswer checks the archive transformation's answer to Firehose: ok rows, each with its
// app and day partition keys, and failed records ProcessingFailed (never dropped).
func archiveAnswer(ok, failed int) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, _ *localStack, answer []byte) {
		var a struct {
			Records []struct {
				Result   string `json:"result"`
				Metadata *struct {
					PartitionKeys map[string]string `json:"partitionKeys"`
				} `json:"metadata"`
			} `json:"records"`
		}
		if err := json.Unmarshal(answer, &a); err != nil {
			t.Fatalf("answer %s: %v", answer, err)
		}
		got := map[string]int{}
		for _, r := range a.Records {
			got[r.Result]++
			if r.Result == "Ok" && (r.Metadata == nil || r.Metadata.PartitionKeys["app"] != "sample-shop" || r.Metadata.PartitionKeys["day"] == "") {
				t.Errorf("ok record without its partition keys: %s", answer)
			}
		}
		if got["Ok"] != ok || got["ProcessingFailed"] != failed || len(a.Records) != ok+failed {
			t.Errorf("results %v, want %d Ok and %d ProcessingFailed: %s", got, ok, failed, answer)
		}
	}
}

// insightsAnswer checks the insights function's summary: the one app, its ad account pulled
// with adsets managed ad sets and no contamination.
func insightsAnswer(app string, adsets int) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, _ *localStack, answer []byte) {
		t.Helper()
		var sum insights.Summary
		if err := json.Unmarshal(answer, &sum); err != nil {
			t.Fatalf("answer %s: %v", answer, err)
		}
		if len(sum.Apps) != 1 || sum.Apps[0].App != app || len(sum.Apps[0].Accounts) != 1 || len(sum.Apps[0].Contaminated) != 0 {
			t.Fatalf("summary %s, want app %s with one account and nothing contaminated", answer, app)
		}
		if a := sum.Apps[0].Accounts[0]; a.AdSets != adsets || a.Stopped != "" || a.Currency == "" {
			t.Errorf("account %+v, want %d managed ad sets pulled", a, adsets)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close() // stops the jsii kernel (a node process) the synth started
	os.Exit(code)
}

// TestSAMLocalInvoke does what `sam local invoke -t cdk.out/Retarget.template.json <logical id>
// -e events/<fn>/<fixture>` does for every function of the stack and every fixture, against
// local stand-ins of the stack's resources. See the package documentation.
func TestSAMLocalInvoke(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	rie := lambdatest.RIEBinary(t)
	kinesalite := emulators.StartForTest(t, emulators.Kinesis)
	dynalite := emulators.StartForTest(t, emulators.DynamoDB)
	cfg, err := env.LoadApps(filepath.Join(root, "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}

	names := functionFolders(t, root)
	functionsDir := hostFunctionsDir(t, names)
	outdir := t.TempDir()
	began := time.Now()
	byLogicalID := synth(t, root, outdir, functionsDir, cfg)
	t.Logf("synth: %s", time.Since(began).Round(100*time.Millisecond))

	tpl, err := readTemplate(filepath.Join(outdir, stackID+".template.json"))
	if err != nil {
		t.Fatal(err)
	}
	fns, err := lambdaFunctions(tpl, outdir, byLogicalID)
	if err != nil {
		t.Fatal(err)
	}
	byName := checkCoverage(t, root, fns, names, functionsDir)

	l := newLocalStack(t, rie, tpl, cfg, kinesalite, dynalite)
	failed := map[string]bool{}
	for _, st := range pipeline {
		fn := byName[st.function]
		ok := t.Run(st.function, func(t *testing.T) {
			for _, need := range st.needs {
				if failed[need] {
					t.Skipf("%s failed: its answers depend on what %s stores", need, need)
				}
			}
			l.run(t, root, fn, st)
		})
		failed[st.function] = !ok
	}
}

// functionFolders lists functions/, one folder per function (the Makefile's FUNCTIONS).
func functionFolders(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// hostFunctionsDir returns a folder holding <name>/bootstrap for every function, built for the
// host: HOST_BUILD_DIR (`make build-host`) when set, else a temporary folder the test builds.
func hostFunctionsDir(t *testing.T, names []string) string {
	t.Helper()
	if dir := os.Getenv("HOST_BUILD_DIR"); dir != "" {
		for _, name := range names {
			lambdatest.Bootstrap(t, name) // fails the test if one is missing
		}
		return dir
	}
	dir := t.TempDir()
	for _, name := range names {
		bin := lambdatest.Bootstrap(t, name)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(bin, filepath.Join(dir, name, "bootstrap")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// synth synthesises the stack into outdir as `cdk synth` does (cdk.json's context, asset and
// path metadata on, as the CDK CLI sets them), from the bootstraps of functionsDir, and returns
// the function folder of each Lambda function by logical id.
func synth(t *testing.T, root, outdir, functionsDir string, cfg *appconfig.Config) map[string]string {
	t.Helper()
	appContext := cdkContext(t, filepath.Join(root, "cdk.json"))
	// What makes the CDK write the aws:asset:path / aws:asset:property metadata SAM reads.
	appContext["aws:cdk:enable-asset-metadata"] = true
	appContext["aws:cdk:enable-path-metadata"] = true

	names := map[string]string{}
	func() {
		// Constructs panic on bad input (jsii errors included).
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("synth: %v", r)
			}
		}()
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir), Context: &appContext})
		s := stack.NewRetargetStack(app, stackID, &stack.RetargetStackProps{
			Config:          cfg,
			FunctionsDir:    functionsDir,
			SegmentsEnabled: true,
			ArchiveEnabled:  true,
		})
		app.Synth(nil)
		for name, fn := range goFunctions(s) {
			id := s.Stack.GetLogicalId(fn.Function.Node().DefaultChild().(awscdk.CfnElement))
			names[*id] = name
		}
	}()
	return names
}

// cdkContext returns the "context" of cdk.json, which the CDK CLI hands the app: the feature
// flags shape the template (logical ids included).
func cdkContext(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if doc.Context == nil {
		doc.Context = map[string]any{}
	}
	return doc.Context
}

// checkCoverage fails the test unless every function folder is exactly one function of the
// template whose code is that folder's bootstrap, with fixtures in events/<name>/, each of them
// with an expectation in pipeline. It returns the functions by name.
func checkCoverage(t *testing.T, root string, fns []lambdaFunction, names []string, functionsDir string) map[string]lambdaFunction {
	t.Helper()
	byName := map[string]lambdaFunction{}
	for _, fn := range fns {
		if other, dup := byName[fn.Name]; dup {
			t.Errorf("functions %s and %s both run %s", other.LogicalID, fn.LogicalID, fn.Name)
		}
		byName[fn.Name] = fn
		// The mapping comes from the constructs; the asset proves it: synth staged this
		// function's own binary.
		if !sameContent(t, fn.Bootstrap(), filepath.Join(functionsDir, fn.Name, "bootstrap")) {
			t.Errorf("function %s: its asset's bootstrap is not the one of functions/%s", fn.LogicalID, fn.Name)
		}
	}
	for _, name := range names {
		if name == stack.KeyAuthorizerFunctionName {
			continue // only the HTTP API front door (-c api=http) declares it; its handler's tests cover it
		}
		if _, ok := byName[name]; !ok {
			t.Errorf("functions/%s: no Lambda function of the template runs it", name)
		}
	}
	inPipeline := map[string]bool{}
	for _, st := range pipeline {
		inPipeline[st.function] = true
		if _, ok := byName[st.function]; !ok {
			t.Errorf("pipeline: %s is not a function of the template", st.function)
			continue
		}
		dir := filepath.Join(root, "events", st.function)
		files, err := fixtures(dir)
		if err != nil || len(files) == 0 {
			t.Errorf("function %s: no fixtures in events/%s (%v)", st.function, st.function, err)
			continue
		}
		var expected []string
		for _, fx := range st.fixtures {
			expected = append(expected, fx.file)
		}
		sort.Strings(expected)
		if !slices.Equal(files, expected) {
			t.Errorf("events/%s holds %q but the test expects answers to %q: give every fixture an expectation in pipeline",
				st.function, files, expected)
		}
	}
	for name := range byName {
		if !inPipeline[name] {
			t.Errorf("function %s: not in the test's pipeline (add it with its fixtures)", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return byName
}

// sameContent reports whether two files hold the same bytes.
func sameContent(t *testing.T, a, b string) bool {
	t.Helper()
	sum := func(path string) [sha256.Size]byte {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		return [sha256.Size]byte(h.Sum(nil))
	}
	return sum(a) == sum(b)
}

// localStack holds the local stand-ins of the stack's resources, shared by every function.
type localStack struct {
	rie      string
	cfg      *appconfig.Config
	kinesis  *kinesis.Client
	dynamo   *dynamodb.Client
	sandbox  *metasandbox.Sandbox
	pseudo   *identity.Pseudonymizer
	letters  string            // the dead-letter file of DEAD_LETTER_QUEUE_URL
	streams  map[string]string // local stream name by logical id
	tables   map[string]string // local table name by logical id
	endpoint []string          // AWS_ENDPOINT_URL_* of the emulators
	standIns *standIns
	// dueVersion is the version of the user makeDue made due.
	dueVersion int64
}

func newLocalStack(t *testing.T, rie string, tpl *cfnTemplate, cfg *appconfig.Config, kinesalite, dynalite *emulators.Process) *localStack {
	t.Helper()
	ctx := context.Background()
	kCfg, err := emulators.AWSConfig(ctx, kinesalite.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	dCfg, err := emulators.AWSConfig(ctx, dynalite.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	datasets, accounts := cfg.MetaIDs()
	sandbox, graphURL, err := metasandbox.Start(metasandbox.Config{AccessToken: metaToken, AppSecret: metaAppSecret,
		Datasets: datasets, AdAccounts: accounts, RemovalMinSize: -1,
		// An ad set per treated audience, excluding its holdout audience, as in make dev.
		Ads: metasandbox.AdsConfig{AutoAdSets: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sandbox.Close() })
	pseudo, err := identity.NewPseudonymizer([]byte(devPepper))
	if err != nil {
		t.Fatal(err)
	}
	l := &localStack{
		rie:     rie,
		cfg:     cfg,
		kinesis: kinesis.NewFromConfig(kCfg),
		dynamo:  dynamodb.NewFromConfig(dCfg),
		sandbox: sandbox,
		pseudo:  pseudo,
		letters: filepath.Join(t.TempDir(), "dead-letters.jsonl"),
		streams: map[string]string{},
		tables:  map[string]string{},
		endpoint: []string{
			"AWS_ENDPOINT_URL_KINESIS=" + kinesalite.Endpoint,
			"AWS_ENDPOINT_URL_DYNAMODB=" + dynalite.Endpoint,
			// No S3 emulator: a call fails at once instead of leaving the machine.
			"AWS_ENDPOINT_URL_S3=http://127.0.0.1:9",
		},
	}
	l.standIns = &standIns{
		tpl: tpl,
		refs: map[string]func(string, cfnResource) (string, error){
			"AWS::Kinesis::Stream":       func(id string, _ cfnResource) (string, error) { return l.stream(id) },
			"AWS::DynamoDB::GlobalTable": func(id string, _ cfnResource) (string, error) { return l.table(id) }, // TableV2
			// The archive bucket's name only: the purge calls S3 only for a pending erasure.
			"AWS::S3::Bucket": func(id string, _ cfnResource) (string, error) { return strings.ToLower(id), nil },
			// The key id API Gateway puts in requestContext.identity.apiKeyId: the fixtures
			// carry "<key name>-key-id" (see events/ingest/env.json).
			"AWS::ApiGateway::ApiKey": func(id string, r cfnResource) (string, error) {
				name, _ := r.Properties["Name"].(string)
				if name == "" {
					return "", fmt.Errorf("API key %s has no Name", id)
				}
				return name + "-key-id", nil
			},
		},
		// No Secrets Manager or SQS emulator here: the functions' local fallbacks (make dev's).
		replaced: map[string]replacement{
			env.PepperSecretID: {RefType: "AWS::SecretsManager::Secret", Vars: []string{env.Pepper + "=" + devPepper}},
			env.MetaSecretID: {RefType: "AWS::SecretsManager::Secret", Vars: []string{
				env.AccessToken + "=" + metaToken, env.AppSecret + "=" + metaAppSecret}},
			env.DeadLetterQueueURL: {RefType: "AWS::SQS::Queue", Vars: []string{env.DeadLetterFile + "=" + l.letters}},
			// No EventBridge emulator either: without a bus the sweeper publishes nothing (the
			// publisher and the dev bus are tested in shared/app/publish and make dev).
			env.EventBusName: {RefType: "AWS::Events::EventBus"},
		},
		overrides: map[string]func(lambdaFunction, string) (string, error){
			env.ConfigFile: taskRootPath,
			env.GraphURL:   graphURLOverride(graphURL),
		},
	}
	return l
}

// stream creates the kinesalite stream standing in for the stream id, once.
func (l *localStack) stream(id string) (string, error) {
	if name, ok := l.streams[id]; ok {
		return name, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kinesisstream.EnsureStream(ctx, l.kinesis, id, 2); err != nil {
		return "", err
	}
	l.streams[id] = id
	return id, nil
}

// table creates the dynalite table standing in for the table id, once.
func (l *localStack) table(id string) (string, error) {
	if name, ok := l.tables[id]; ok {
		return name, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dynamostate.CreateTable(ctx, l.dynamo, id); err != nil {
		return "", err
	}
	l.tables[id] = id
	return id, nil
}

// run starts fn's staged bootstrap under the emulator with its local environment and sends it
// the step's fixtures.
func (l *localStack) run(t *testing.T, root string, fn lambdaFunction, st step) {
	vars, err := l.standIns.environment(fn)
	if err != nil {
		t.Fatal(err)
	}
	env := append(lambdatest.AWSEnv(t), l.endpoint...)
	env = append(env, runtimeEnv(fn)...)
	env = append(env, vars...)
	url := lambdatest.Start(t, l.rie, fn.Bootstrap(), env)
	if st.before != nil {
		st.before(t, l)
	}
	for _, fx := range st.fixtures {
		t.Run(fx.file, func(t *testing.T) {
			t.Logf("sam local invoke -t cdk.out/%s.template.json %s -e events/%s/%s", stackID, fn.LogicalID, fn.Name, fx.file)
			raw, err := os.ReadFile(filepath.Join(root, "events", fn.Name, fx.file))
			if err != nil {
				t.Fatal(err)
			}
			answer := lambdatest.Invoke(t, url, freshEvent(t, raw, time.Now()))
			var failed struct {
				ErrorMessage string `json:"errorMessage"`
				ErrorType    string `json:"errorType"`
			}
			if bytes.HasPrefix(answer, []byte("{")) && json.Unmarshal(answer, &failed) == nil && failed.ErrorMessage != "" {
				t.Fatalf("function error %s: %s", failed.ErrorType, failed.ErrorMessage)
			}
			fx.want(t, l, answer)
		})
	}
	if st.after != nil && !t.Failed() {
		st.after(t, l)
	}
}

// freshEvent returns the fixture with its event times moved to just before now, keeping their
// spacing: the fixtures are fixed in time, and the functions refuse or age out old events
// (ingest after 7 days, Meta after 7 days, segments by their windows). SAM sends a fixture as
// it is; that is the one difference. Scheduled payloads go as they are (the handlers do not
// read scheduled_time).
func freshEvent(t *testing.T, raw []byte, now time.Time) any {
	t.Helper()
	var probe struct {
		HTTPMethod string `json:"httpMethod"`
		Records    []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	switch {
	case probe.HTTPMethod != "":
		var req events.APIGatewayProxyRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			t.Fatal(err)
		}
		req.Body = ingesttest.RefreshEventTimes(t, req.Body, now)
		return req
	case len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:kinesis":
		var ev events.KinesisEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		refreshKinesisTimes(&ev, now)
		return ev
	}
	return json.RawMessage(raw)
}

// refreshKinesisTimes shifts the times of every record (event time and received_at of the
// envelopes that decode, every event of a version 2 record, arrival time of all) so that the
// latest event time is a minute before now. A record keeps its envelope version; records that
// do not decode stay as they are otherwise.
func refreshKinesisTimes(ev *events.KinesisEvent, now time.Time) {
	var latest int64
	decoded := make([][]envelope.Record, len(ev.Records))
	for i := range ev.Records {
		if recs, err := envelope.Decode(ev.Records[i].Kinesis.Data); err == nil {
			decoded[i] = recs
			for _, rec := range recs {
				latest = max(latest, rec.Event.Time)
			}
		}
	}
	if latest == 0 {
		return
	}
	shift := now.Add(-time.Minute).Unix() - latest
	for i := range ev.Records {
		k := &ev.Records[i].Kinesis
		k.ApproximateArrivalTimestamp = events.SecondsEpochTime{Time: k.ApproximateArrivalTimestamp.Add(time.Duration(shift) * time.Second)}
		recs := decoded[i]
		if recs == nil {
			continue
		}
		for j := range recs {
			recs[j].Event.Time += shift
			recs[j].ReceivedAt += shift * 1000
		}
		if recs[0].V == 1 {
			k.Data = envelope.AppendV1(nil, &recs[0])
		} else {
			k.Data = envelope.AppendGroup(nil, recs)
		}
	}
}

// Expectations.

// apiAnswer checks an API Gateway proxy response: its status code, a JSON body, an error
// message for errors, and then the body with check.
func apiAnswer(status int, check func(t *testing.T, l *localStack, body []byte)) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, l *localStack, answer []byte) {
		t.Helper()
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(answer, &resp); err != nil || resp.StatusCode == 0 {
			t.Fatalf("not an API Gateway proxy response: %s", answer)
		}
		if resp.StatusCode != status {
			t.Fatalf("statusCode %d, want %d; body %s", resp.StatusCode, status, resp.Body)
		}
		if ct := resp.Headers["Content-Type"]; ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		if !json.Valid([]byte(resp.Body)) {
			t.Fatalf("body is not JSON: %q", resp.Body)
		}
		check(t, l, []byte(resp.Body))
	}
}

// ingestAnswer checks an ingest API body.
func ingestAnswer(check func(*testing.T, ingesttest.Answer)) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, _ *localStack, body []byte) {
		t.Helper()
		var a ingesttest.Answer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		check(t, a)
	}
}

// errorBody checks an error body {"error": "..."} whose message contains want.
func errorBody(want string) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, _ *localStack, body []byte) {
		t.Helper()
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, want) {
			t.Errorf("body %s, want an error containing %q", body, want)
		}
	}
}

// readAnswer checks a users-api body: the user and exactly these segments.
func readAnswer(appUserID string, segments ...string) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, _ *localStack, body []byte) {
		t.Helper()
		var r struct {
			AppUserID string   `json:"app_user_id"`
			Segments  []string `json:"segments"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		if r.AppUserID != appUserID || r.Segments == nil || !slices.Equal(r.Segments, segments) {
			t.Errorf("body %s, want app_user_id %q and segments %q", body, appUserID, segments)
		}
	}
}

// batchAnswer checks a Kinesis partial batch response without failures (nothing to retry),
// then runs the checks.
func batchAnswer(checks ...func(*testing.T, *localStack)) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, l *localStack, answer []byte) {
		t.Helper()
		dec := json.NewDecoder(bytes.NewReader(answer))
		dec.DisallowUnknownFields()
		var resp events.KinesisEventResponse
		if err := dec.Decode(&resp); err != nil || resp.BatchItemFailures == nil {
			t.Fatalf("not a Kinesis partial batch response: %s", answer)
		}
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("batchItemFailures %+v, want none", resp.BatchItemFailures)
		}
		for _, check := range checks {
			check(t, l)
		}
	}
}

// result checks a scheduled function's result: this JSON value exactly; then the checks.
func result(want string, checks ...func(*testing.T, *localStack)) func(*testing.T, *localStack, []byte) {
	return func(t *testing.T, l *localStack, answer []byte) {
		t.Helper()
		var got, w any
		if err := json.Unmarshal(answer, &got); err != nil {
			t.Fatalf("answer %s: %v", answer, err)
		}
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("result %s, want %s", answer, want)
		}
		for _, check := range checks {
			check(t, l)
		}
	}
}

// eventIDPrefix is the event id of the fixtures but its last two digits.
const eventIDPrefix = "2b0a7c2e-7f0e-4b8e-9d51-0000000000"

// metaAccepted checks the events Meta accepted since the first `from`: these ids (suffixes).
func metaAccepted(from int, suffixes ...string) func(*testing.T, *localStack) {
	return func(t *testing.T, l *localStack) {
		t.Helper()
		acc := l.sandbox.Accepted()
		if len(acc) < from {
			t.Fatalf("Meta accepted %d events, want more than %d", len(acc), from)
		}
		var got []string
		for _, a := range acc[from:] {
			got = append(got, strings.TrimPrefix(a.EventID, eventIDPrefix))
			if a.TestEventCode != l.cfg.Apps[0].Meta.TestEventCode {
				t.Errorf("event %s: test_event_code %q, want the config's", a.EventID, a.TestEventCode)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, suffixes) {
			t.Errorf("Meta accepted events %q (id suffixes), want %q", got, suffixes)
		}
	}
}

// deadLetters checks the reasons of every dead letter so far, in order.
func deadLetters(reasons ...string) func(*testing.T, *localStack) {
	return func(t *testing.T, l *localStack) {
		t.Helper()
		letters, err := deadletters.ReadFile(l.letters)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range letters {
			got = append(got, d.Reason)
		}
		if !slices.Equal(got, reasons) {
			t.Errorf("dead letters %q, want %q", got, reasons)
		}
	}
}

// streamHolds checks the number of events on the stream (one per record, or several of one
// user per version 2 record) and that the records are envelopes keyed by their user.
func streamHolds(n int) func(*testing.T, *localStack) {
	return func(t *testing.T, l *localStack) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stream := only(t, "stream", l.streams)
		records, err := kinesisstream.NewTailer(l.kinesis, stream, kinesisstream.TrimHorizon).Drain(ctx)
		if err != nil {
			t.Fatal(err)
		}
		events := 0
		for _, r := range records {
			recs, err := envelope.Decode(r.Data)
			if err != nil || r.PartitionKey != recs[0].UserKey {
				t.Errorf("record %s: %v (not an envelope keyed by its user?)", r.SequenceNumber, err)
			}
			events += max(1, len(recs))
		}
		if events != n {
			t.Errorf("%d events in %d records on the stream, want %d events", events, len(records), n)
		}
	}
}

// user names a user by one of its identifiers, as a fixture does.
type user struct {
	kind identity.IDKind
	id   string
}

// store is the segment store on the stand-in of the state table.
func (l *localStack) store(t *testing.T) *dynamostate.Store {
	t.Helper()
	return dynamostate.New(l.dynamo, only(t, "table", l.tables), dynamostate.Options{})
}

// only returns the one local resource of a kind the template references (the stack has one
// stream and one table).
func only(t *testing.T, kind string, byID map[string]string) string {
	t.Helper()
	if len(byID) != 1 {
		t.Fatalf("%d local %ss (%v), want one", len(byID), kind, byID)
	}
	return slices.Collect(maps.Values(byID))[0]
}

// userRecord reads a user of the first app from the state table.
func (l *localStack) userRecord(t *testing.T, u user) (rec recordView, found bool) {
	t.Helper()
	app := l.cfg.Apps[0].ID
	r, found, err := l.store(t).GetUser(context.Background(), app, l.pseudo.UserKey(app, u.kind, u.id))
	if err != nil {
		t.Fatal(err)
	}
	return recordView{r.Segments, r.Version, r.DueAt}, found
}

// recordView is what the checks read of a stored user.
type recordView struct {
	Segments []string
	Version  int64
	DueAt    int64
}

// usersStored checks that each user is stored with exactly these segments.
func usersStored(want map[user][]string) func(*testing.T, *localStack) {
	return func(t *testing.T, l *localStack) {
		t.Helper()
		for u, segs := range want {
			rec, found := l.userRecord(t, u)
			if !found {
				t.Errorf("user %s %s: not stored", u.kind, u.id)
				continue
			}
			if !slices.Equal(rec.Segments, segs) {
				t.Errorf("user %s %s: segments %q, want %q", u.kind, u.id, rec.Segments, segs)
			}
		}
	}
}

// makeDue sets the user's due time a minute in the past (a versioned write, as the functions
// do).
func makeDue(u user) func(*testing.T, *localStack) {
	return func(t *testing.T, l *localStack) {
		t.Helper()
		app := l.cfg.Apps[0].ID
		store := l.store(t)
		ctx := context.Background()
		rec, found, err := store.GetUser(ctx, app, l.pseudo.UserKey(app, u.kind, u.id))
		if err != nil || !found {
			t.Fatalf("user %s %s: found %v, %v", u.kind, u.id, found, err)
		}
		rec.DueAt = time.Now().Add(-time.Minute).Unix()
		rec.Version++
		if err := store.PutUser(ctx, rec); err != nil {
			t.Fatal(err)
		}
		l.dueVersion = rec.Version
	}
}

// dueMoved checks that the sweep rewrote the user made due: a new version, due in the future.
func dueMoved(u user) func(*testing.T, *localStack) {
	return func(t *testing.T, l *localStack) {
		t.Helper()
		rec, found := l.userRecord(t, u)
		if !found || rec.Version != l.dueVersion+1 || rec.DueAt <= time.Now().Unix() {
			t.Errorf("user %s %s after the sweep: found %v, version %d, due at %d; want version %d, due in the future",
				u.kind, u.id, found, rec.Version, rec.DueAt, l.dueVersion+1)
		}
	}
}

// audienceSize checks the members of the sandbox's audience of that name and of its holdout
// audience together: the segment's users, whichever arm they were assigned to.
func audienceSize(name string, size int) func(*testing.T, *localStack) {
	return func(t *testing.T, l *localStack) {
		t.Helper()
		var names []string
		found, total := false, 0
		for _, a := range l.sandbox.Audiences() {
			names = append(names, a.Name)
			switch a.Name {
			case name:
				found = true
				total += a.Size
			case name + appconfig.HoldoutNameSuffix:
				total += a.Size
			}
		}
		if !found {
			t.Errorf("no audience %q in the sandbox (audiences %q)", name, names)
		} else if total != size {
			t.Errorf("audience %q and its holdout audience: %d members, want %d", name, total, size)
		}
	}
}

package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/appconfig"
)

// twoApps is the config the stack under test is built from.
const twoApps = `{
  "version": 1,
  "apps": [
    {"id": "shop-ios", "platforms": ["ios"], "api_key": {"name": "shop-ios-key"},
     "meta": {"dataset_id": "111", "ad_account_id": "act_1"}},
    {"id": "game", "platforms": ["ios", "android"], "api_key": {"name": "game-key", "dev_value": "dev-game-key"},
     "meta": {"dataset_id": "222", "ad_account_id": "act_2"}}
  ]
}`

// One jsii kernel, one app and one template for the whole package: starting the kernel costs
// seconds, synthesising a stack about one more.
var (
	testConfig *appconfig.Config
	testApp    awscdk.App
	testStack  *RetargetStack
	template   assertions.Template
	templ      map[string]any // template as plain Go values, for checks the matchers can't express
)

func TestMain(m *testing.M) {
	code, err := setUp(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stack tests:", err)
		code = 1
	}
	jsii.Close()
	os.Exit(code)
}

func setUp(m *testing.M) (code int, err error) {
	testConfig, err = appconfig.Parse([]byte(twoApps))
	if err != nil {
		return 1, err
	}
	tmp, err := os.MkdirTemp("", "retarget-stack-test-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmp)
	functionsDir := filepath.Join(tmp, "functions")
	if err := os.MkdirAll(filepath.Join(functionsDir, IngestFunctionName), 0o755); err != nil {
		return 1, err
	}
	if err := os.WriteFile(filepath.Join(functionsDir, IngestFunctionName, bootstrapFile), []byte("dummy bootstrap"), 0o644); err != nil {
		return 1, err
	}
	flags, err := featureFlags("../../cdk.json")
	if err != nil {
		return 1, err
	}

	// Construct panics (jsii errors included) would kill the binary without a word.
	defer func() {
		if r := recover(); r != nil {
			code, err = 1, fmt.Errorf("building the stack: %v", r)
		}
	}()
	testApp = awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(tmp, "cdk.out")), Context: &flags})
	testStack = NewRetargetStack(testApp, "Retarget", &RetargetStackProps{
		Config:       testConfig,
		FunctionsDir: functionsDir,
	})
	template = assertions.Template_FromStack(testStack.Stack, nil)
	raw, err := json.Marshal(template.ToJSON())
	if err != nil {
		return 1, err
	}
	if err := json.Unmarshal(raw, &templ); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

// featureFlags returns the feature flags of cdk.json, so the tests see the template the CLI
// synthesises. Deployment settings (config, stage) are left out: tests choose their own.
func featureFlags(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	flags := map[string]any{}
	for k, v := range doc.Context {
		if strings.HasPrefix(k, "@aws-cdk") {
			flags[k] = v
		}
	}
	return flags, nil
}

// check runs a jsii assertion: a failed one panics, which would stop the whole test binary.
func check(t *testing.T, assertion func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%v", r)
		}
	}()
	assertion()
}

// logicalID returns the template id of an L2 construct's main resource.
func logicalID(c constructs.IConstruct) string {
	return *testStack.GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

func ref(c constructs.IConstruct) map[string]any {
	return map[string]any{"Ref": logicalID(c)}
}

func getAtt(c constructs.IConstruct, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{logicalID(c), attr}}
}

// resources returns the template's resources of one type, by logical id.
func resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	all, _ := templ["Resources"].(map[string]any)
	for id, r := range all {
		if r, ok := r.(map[string]any); ok && r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

func ingestEnv(t *testing.T) map[string]any {
	t.Helper()
	fn := templ["Resources"].(map[string]any)[logicalID(testStack.Ingest.Ingest.Function)].(map[string]any)
	vars, ok := fn["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if !ok {
		t.Fatal("ingest function has no environment variables")
	}
	return vars
}

func TestStackResources(t *testing.T) {
	stream := testStack.Events.Stream
	secret := testStack.Pepper.Secret
	ingest := testStack.Ingest
	fn := ingest.Ingest.Function

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"stream is on-demand and KMS-encrypted", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::Kinesis::Stream"), jsii.Number(1)) })
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Kinesis::Stream"), map[string]any{
					"StreamModeDetails":    map[string]any{"StreamMode": "ON_DEMAND"},
					"StreamEncryption":     map[string]any{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
					"RetentionPeriodHours": 24,
					"ShardCount":           assertions.Match_Absent(),
				})
			})
		}},
		{"dev stack deletes its stream and logs", func(t *testing.T) {
			check(t, func() {
				template.HasResource(jsii.String("AWS::Kinesis::Stream"), map[string]any{"DeletionPolicy": "Delete"})
			})
			check(t, func() {
				template.AllResources(jsii.String("AWS::Logs::LogGroup"), map[string]any{"DeletionPolicy": "Delete"})
			})
		}},
		{"ingest function is provided.al2023 arm64 with JSON logs and tracing", func(t *testing.T) {
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Runtime":       "provided.al2023",
					"Architectures": []any{"arm64"},
					"Handler":       "bootstrap",
					"MemorySize":    256,
					"Timeout":       10,
					"TracingConfig": map[string]any{"Mode": "Active"},
					"LoggingConfig": map[string]any{
						"LogFormat":           "JSON",
						"ApplicationLogLevel": "INFO",
						"LogGroup":            ref(ingest.Ingest.LogGroup),
					},
				})
			})
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 30})
			})
		}},
		{"ingest environment is the contract", func(t *testing.T) {
			vars := ingestEnv(t)
			want := map[string]any{
				EnvEventStreamName:  ref(stream),
				EnvPepperSecretID:   ref(secret), // Ref of a secret is its ARN, never its value
				EnvAppConfigFile:    "/var/task/config.json",
				EnvLogLevel:         "info",
				EnvMetricsNamespace: "Retarget",
				EnvAPIKeyAppIDs:     vars[EnvAPIKeyAppIDs],
			}
			if _, ok := vars[EnvAPIKeyAppIDs]; !ok {
				t.Errorf("%s missing", EnvAPIKeyAppIDs)
			}
			gotJSON, _ := json.Marshal(vars)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("environment\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if strings.Contains(string(gotJSON), "resolve:secretsmanager") || strings.Contains(string(gotJSON), "SecretString") {
				t.Errorf("environment carries a secret value: %s", gotJSON)
			}
		}},
		{"API_KEY_APP_IDS maps each key id to its app", func(t *testing.T) {
			got := renderJoin(t, ingestEnv(t)[EnvAPIKeyAppIDs])
			var mapping map[string]string
			if err := json.Unmarshal([]byte(got), &mapping); err != nil {
				t.Fatalf("%s is not a JSON object once resolved: %v\n%s", EnvAPIKeyAppIDs, err, got)
			}
			want := map[string]string{}
			for _, app := range testConfig.Apps {
				want["<"+logicalID(ingest.ApiKeys[app.ID])+">"] = app.ID
			}
			if fmt.Sprint(mapping) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v", EnvAPIKeyAppIDs, mapping, want)
			}
		}},
		{"function may put records on the stream only and read the pepper", func(t *testing.T) {
			streamArn := getAtt(stream, "Arn")
			var putRecords, readSecret bool
			for id, policy := range resources("AWS::IAM::Policy") {
				doc := policy["Properties"].(map[string]any)["PolicyDocument"].(map[string]any)
				for _, s := range doc["Statement"].([]any) {
					st := s.(map[string]any)
					actions := strings.Join(asStrings(st["Action"]), " ")
					if !strings.Contains(actions, "kinesis:") && !strings.Contains(actions, "secretsmanager:") {
						continue
					}
					if fmt.Sprint(st["Resource"]) == "*" || strings.Contains(actions, "*") {
						t.Errorf("policy %s: wildcard in %v", id, st)
					}
					if strings.Contains(actions, "kinesis:GetRecords") || strings.Contains(actions, "kinesis:Delete") {
						t.Errorf("policy %s: producer can do more than write: %v", id, actions)
					}
					if strings.Contains(actions, "kinesis:PutRecords") {
						putRecords = true
						if fmt.Sprint(st["Resource"]) != fmt.Sprint(streamArn) {
							t.Errorf("policy %s: PutRecords on %v, want %v", id, st["Resource"], streamArn)
						}
					}
					if strings.Contains(actions, "secretsmanager:GetSecretValue") {
						readSecret = true
						if fmt.Sprint(st["Resource"]) != fmt.Sprint(ref(secret)) {
							t.Errorf("policy %s: GetSecretValue on %v, want %v", id, st["Resource"], ref(secret))
						}
					}
				}
			}
			if !putRecords {
				t.Error("no policy allows kinesis:PutRecords")
			}
			if !readSecret {
				t.Error("no policy allows secretsmanager:GetSecretValue")
			}
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
					"Roles": []any{ref(fn.Role())},
				})
			})
		}},
		{"routes: POST /v1/events with key, GET /v1/health without", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::Method"), jsii.Number(2)) })
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{
					"PathPart": "events", "ParentId": ref(ingest.EventsResource.ParentResource()),
				})
			})
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{
					"PathPart": "v1", "ParentId": getAtt(ingest.Api, "RootResourceId"),
				})
			})
			proxy := map[string]any{"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST"}
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
					"HttpMethod": "POST", "ResourceId": ref(ingest.EventsResource),
					"ApiKeyRequired": true, "Integration": proxy,
				})
			})
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
					"HttpMethod": "GET", "ResourceId": ref(ingest.HealthResource),
					"ApiKeyRequired": false, "Integration": proxy,
				})
			})
			if p := *ingest.EventsResource.Path(); p != "/v1/events" {
				t.Errorf("events path %s", p)
			}
			if p := *ingest.HealthResource.Path(); p != "/v1/health" {
				t.Errorf("health path %s", p)
			}
		}},
		{"API: regional, compressed, traced, access logs without IPs, no account role", func(t *testing.T) {
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::RestApi"), map[string]any{
					"EndpointConfiguration":  map[string]any{"Types": []any{"REGIONAL"}},
					"MinimumCompressionSize": 1024,
					"BinaryMediaTypes":       assertions.Match_Absent(),
				})
			})
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Stage"), map[string]any{
					"StageName":      "dev",
					"TracingEnabled": true,
					"AccessLogSetting": map[string]any{
						"DestinationArn": assertions.Match_AnyValue(),
						"Format":         assertions.Match_StringLikeRegexp(jsii.String(`apiKeyId`)),
					},
				})
			})
			for id, st := range resources("AWS::ApiGateway::Stage") {
				dest, _ := json.Marshal(st["Properties"].(map[string]any)["AccessLogSetting"].(map[string]any)["DestinationArn"])
				if !strings.Contains(string(dest), `"`+logicalID(ingest.AccessLogs)+`"`) {
					t.Errorf("stage %s logs to %s, not the access log group", id, dest)
				}
			}
			if strings.Contains(accessLogFormat, "sourceIp") || strings.Contains(accessLogFormat, "userAgent") {
				t.Error("access log format carries personal data")
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.ReplaceAll(accessLogFormat, "$context.error.messageString", `"x"`)), &line); err != nil {
				t.Errorf("access log format is not JSON: %v", err)
			}
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::Account"), jsii.Number(0)) })
		}},
		{"one key, usage plan and plan key per app", func(t *testing.T) {
			n := jsii.Number(float64(len(testConfig.Apps)))
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::ApiKey"), n) })
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::UsagePlan"), n) })
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::UsagePlanKey"), n) })
			for _, app := range testConfig.Apps {
				key, plan := ingest.ApiKeys[app.ID], ingest.UsagePlans[app.ID]
				if key == nil || plan == nil {
					t.Fatalf("app %s: no key or plan", app.ID)
				}
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::ApiGateway::ApiKey"), map[string]any{
						"Name": app.APIKey.Name, "Enabled": true, "Value": assertions.Match_Absent(),
					})
				})
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
						"Throttle":  map[string]any{"RateLimit": DefaultRateLimit, "BurstLimit": DefaultBurstLimit},
						"ApiStages": []any{map[string]any{"ApiId": ref(ingest.Api), "Stage": ref(ingest.Api.DeploymentStage())}},
					})
				})
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlanKey"), map[string]any{
						"KeyId": ref(key), "UsagePlanId": ref(plan), "KeyType": "API_KEY",
					})
				})
			}
		}},
		{"pepper secret is generated and retained", func(t *testing.T) {
			check(t, func() {
				template.HasResource(jsii.String("AWS::SecretsManager::Secret"), map[string]any{
					"DeletionPolicy":      "Retain",
					"UpdateReplacePolicy": "Retain",
					"Properties": map[string]any{
						"GenerateSecretString": map[string]any{"PasswordLength": PepperLength, "ExcludePunctuation": true},
						"SecretString":         assertions.Match_Absent(),
					},
				})
			})
		}},
		{"outputs", func(t *testing.T) {
			for _, name := range []string{OutputApiUrl, OutputEventStreamName, OutputPepperSecretArn} {
				check(t, func() { template.HasOutput(jsii.String(name), map[string]any{}) })
			}
			check(t, func() {
				template.HasOutput(jsii.String(OutputEventStreamName), map[string]any{"Value": ref(stream)})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputPepperSecretArn), map[string]any{"Value": ref(secret)})
			})
			if n := len(templ["Outputs"].(map[string]any)); n != 3 {
				t.Errorf("%d outputs, want 3", n)
			}
		}},
		{"code asset holds the bootstrap and the validated config", func(t *testing.T) {
			dir := ingest.Ingest.AssetDir
			info, err := os.Stat(filepath.Join(dir, bootstrapFile))
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm()&0o111 == 0 {
				t.Errorf("bootstrap mode %v is not executable", info.Mode())
			}
			staged, err := appconfig.Load(filepath.Join(dir, configFile))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(staged, testConfig.ForDeployment()) {
				t.Errorf("staged config %+v, want %+v", staged, testConfig.ForDeployment())
			}
			for _, a := range staged.Apps {
				if a.APIKey.DevValue != "" {
					t.Errorf("app %s: dev API key shipped to the deployed function", a.ID)
				}
			}
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Code": map[string]any{"S3Key": assertions.Match_StringLikeRegexp(jsii.String(`^[0-9a-f]{64}\.zip$`))},
				})
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// renderJoin turns a resolved {"Fn::Join": ["", [...]]} into a string, writing each Ref as
// <LogicalId>.
func renderJoin(t *testing.T, v any) string {
	t.Helper()
	if s, ok := v.(string); ok {
		return s
	}
	join, ok := v.(map[string]any)["Fn::Join"].([]any)
	if !ok || len(join) != 2 || join[0] != "" {
		t.Fatalf("not an Fn::Join with an empty separator: %v", v)
	}
	var b strings.Builder
	for _, part := range join[1].([]any) {
		switch p := part.(type) {
		case string:
			b.WriteString(p)
		case map[string]any:
			r, ok := p["Ref"].(string)
			if !ok {
				t.Fatalf("unexpected part %v", p)
			}
			b.WriteString("<" + r + ">")
		default:
			t.Fatalf("unexpected part %v", p)
		}
	}
	return b.String()
}

func asStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
		return out
	}
	return nil
}

func TestInvalidInputFailsClearly(t *testing.T) {
	const badApp = `{"version": 1, "apps": [
	  {"id": "Bad_App", "platforms": ["ios", "web"], "api_key": {"name": "k"},
	   "meta": {"dataset_id": "1", "ad_account_id": "1"}}]}`
	_, err := appconfig.Parse([]byte(badApp))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{`apps[0] ("Bad_App").id`, `platforms[1]: "web" is not a platform`, "meta.ad_account_id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// A config built in code skips Parse: the stack validates it again.
	invalid := &appconfig.Config{Version: 1, Apps: []appconfig.App{{ID: "Bad_App"}}}
	tests := []struct {
		name  string
		props *RetargetStackProps
		want  string
	}{
		{"no props", nil, "Config is required"},
		{"invalid app", &RetargetStackProps{Config: invalid}, `retarget stack: app config: apps[0] ("Bad_App").id`},
		{"bad stage", &RetargetStackProps{Config: testConfig, Stage: "Prod!"}, `stage "Prod!"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolveProps(tt.props)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("resolveProps: %v, want an error containing %q", err, tt.want)
			}
		})
	}

	t.Run("stack panics with the error before creating anything", func(t *testing.T) {
		defer func() {
			r := recover()
			err, ok := r.(error)
			if !ok || !strings.Contains(err.Error(), "Bad_App") {
				t.Errorf("panic %v, want the config error", r)
			}
			if c := testApp.Node().TryFindChild(jsii.String("Invalid")); c != nil {
				t.Errorf("a failed stack left %s in the app", *c.Node().Path())
			}
		}()
		NewRetargetStack(testApp, "Invalid", &RetargetStackProps{Config: invalid})
	})
}

func TestAPIKeyAppIDsFitLambdaEnvironment(t *testing.T) {
	cfg := &appconfig.Config{Version: 1}
	for i := 0; i < 200; i++ {
		cfg.Apps = append(cfg.Apps, appconfig.App{ID: fmt.Sprintf("app-number-%03d", i)})
	}
	if n := apiKeyAppIDsSize(cfg); n <= maxAPIKeyAppIDsSize {
		t.Errorf("200 apps estimated at %d bytes, want above the %d limit", n, maxAPIKeyAppIDsSize)
	}
	if n, want := apiKeyAppIDsSize(testConfig), len(`{"0123456789":"shop-ios","0123456789":"game"}`); n < want {
		t.Errorf("estimate %d below the real size %d", n, want)
	}
}

func TestStageFunctionAssetWithoutBuild(t *testing.T) {
	dir := t.TempDir()
	err := StageFunctionAsset(filepath.Join(dir, "nothing-built"), IngestFunctionName, testConfig, filepath.Join(dir, "stage"))
	if !errors.Is(err, ErrBootstrapMissing) {
		t.Fatalf("err = %v, want ErrBootstrapMissing", err)
	}
	if !regexp.MustCompile("run `make build` first.*nothing-built/ingest/bootstrap").MatchString(err.Error()) {
		t.Errorf("error %q should tell to run make build and name the missing file", err)
	}
}

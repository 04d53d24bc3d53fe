package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
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

	// A second stack of the same app (CDK refuses new constructs after the first synth): prod
	// stage, imported Meta secret, pinned API version, reserved forwarder concurrency, segment
	// state with its settings overridden.
	prodStack    *RetargetStack
	prodTemplate assertions.Template
	prodTempl    map[string]any

	// A third one, the dev stack with the segment state enabled and its defaults.
	segStack    *RetargetStack
	segTemplate assertions.Template
	segTempl    map[string]any

	// A fourth one with every operational option on (opsConfig: per-app throttle and quota,
	// audiences; WAF, alarm e-mail, the API Gateway CloudWatch role), for alarms_test.go.
	opsConfig   *appconfig.Config
	opsStack    *RetargetStack
	opsTemplate assertions.Template
	opsTempl    map[string]any
)

// Segment settings of the prod stack under test.
const (
	prodUserTTLDays                 = 30
	prodSweepIntervalMinutes        = 10
	prodAudienceSyncIntervalMinutes = 15
)

// prodMetaSecretArn is the Meta secret the prod stack imports.
const prodMetaSecretArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:retarget/meta-AbCdEf"

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
	if opsConfig, err = appconfig.Parse([]byte(opsApps)); err != nil {
		return 1, err
	}
	tmp, err := os.MkdirTemp("", "retarget-stack-test-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmp)
	functionsDir := filepath.Join(tmp, "functions")
	for _, fn := range []string{IngestFunctionName, CapiForwarderFunctionName,
		SegmentUpdaterFunctionName, SegmentSweeperFunctionName, UsersAPIFunctionName, AudienceSyncFunctionName} {
		if err := os.MkdirAll(filepath.Join(functionsDir, fn), 0o755); err != nil {
			return 1, err
		}
		if err := os.WriteFile(filepath.Join(functionsDir, fn, bootstrapFile), []byte("dummy bootstrap"), 0o644); err != nil {
			return 1, err
		}
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
	prodStack = NewRetargetStack(testApp, "Prod", &RetargetStackProps{
		Config:                       testConfig,
		FunctionsDir:                 functionsDir,
		Stage:                        ProdStage,
		MetaSecretArn:                prodMetaSecretArn,
		MetaAPIVersion:               "v27.0",
		ForwarderReservedConcurrency: 4,
		SegmentsEnabled:              true,
		UserTTLDays:                  prodUserTTLDays,
		SweepIntervalMinutes:         prodSweepIntervalMinutes,
		AudienceSyncIntervalMinutes:  prodAudienceSyncIntervalMinutes,
		ErasureAuditDays:             365,
	})
	segStack = NewRetargetStack(testApp, "Segments", &RetargetStackProps{
		Config:          testConfig,
		FunctionsDir:    functionsDir,
		SegmentsEnabled: true,
	})
	opsStack = NewRetargetStack(testApp, "Ops", &RetargetStackProps{
		Config:                   opsConfig,
		FunctionsDir:             functionsDir,
		Stage:                    "staging",
		SegmentsEnabled:          true,
		WafRateLimit:             opsWafRateLimit,
		AlarmEmail:               opsAlarmEmail,
		ApiGatewayCloudWatchRole: true,
		StreamShards:             opsStreamShards,
	})
	AddNagChecks(testApp)
	template = assertions.Template_FromStack(testStack.Stack, nil)
	if templ, err = plainTemplate(template); err != nil {
		return 1, err
	}
	prodTemplate = assertions.Template_FromStack(prodStack.Stack, nil)
	if prodTempl, err = plainTemplate(prodTemplate); err != nil {
		return 1, err
	}
	segTemplate = assertions.Template_FromStack(segStack.Stack, nil)
	if segTempl, err = plainTemplate(segTemplate); err != nil {
		return 1, err
	}
	opsTemplate = assertions.Template_FromStack(opsStack.Stack, nil)
	if opsTempl, err = plainTemplate(opsTemplate); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

func plainTemplate(t assertions.Template) (map[string]any, error) {
	raw, err := json.Marshal(t.ToJSON())
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	return doc, json.Unmarshal(raw, &doc)
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

// logicalID returns the template id of an L2 construct's main resource (in its own stack).
func logicalID(c constructs.IConstruct) string {
	return *awscdk.Stack_Of(c).GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

func ref(c constructs.IConstruct) map[string]any {
	return map[string]any{"Ref": logicalID(c)}
}

func getAtt(c constructs.IConstruct, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{logicalID(c), attr}}
}

// resources returns the template's resources of one type, by logical id.
func resources(typ string) map[string]map[string]any {
	return resourcesIn(templ, typ)
}

// resourcesIn returns tpl's resources of one type, by logical id.
func resourcesIn(tpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	all, _ := tpl["Resources"].(map[string]any)
	for id, r := range all {
		if r, ok := r.(map[string]any); ok && r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

func ingestEnv(t *testing.T) map[string]any {
	t.Helper()
	return functionEnv(t, templ, testStack.Ingest.Ingest.Function)
}

// functionEnv returns the environment variables of a function in a template.
func functionEnv(t *testing.T, tpl map[string]any, fn awslambda.IFunction) map[string]any {
	t.Helper()
	id := *awscdk.Stack_Of(fn).GetLogicalId(fn.Node().DefaultChild().(awscdk.CfnElement))
	res, ok := tpl["Resources"].(map[string]any)[id].(map[string]any)
	if !ok {
		t.Fatalf("function %s not in the template", id)
	}
	vars, ok := res["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if !ok {
		t.Fatalf("function %s has no environment variables", id)
	}
	return vars
}

// statement is one IAM policy statement of a template, with its policy's logical id.
type statement struct {
	policy    string
	actions   []string
	resources []any
	raw       map[string]any
}

// roleStatements returns the statements of every AWS::IAM::Policy of tpl attached to role.
func roleStatements(tpl map[string]any, role awsiam.IRole) []statement {
	roleRef, _ := json.Marshal(map[string]any{"Ref": *awscdk.Stack_Of(role).GetLogicalId(role.Node().DefaultChild().(awscdk.CfnElement))})
	var out []statement
	all, _ := tpl["Resources"].(map[string]any)
	for id, r := range all {
		r, _ := r.(map[string]any)
		if r["Type"] != "AWS::IAM::Policy" {
			continue
		}
		props := r["Properties"].(map[string]any)
		roles, _ := json.Marshal(props["Roles"])
		if !strings.Contains(string(roles), string(roleRef)) {
			continue
		}
		for _, s := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := s.(map[string]any)
			res, ok := st["Resource"].([]any)
			if !ok {
				res = []any{st["Resource"]}
			}
			actions := asStrings(st["Action"])
			if ownLogWrites(actions) {
				continue // every function writes its own logs: TestFunctionRoles checks these
			}
			out = append(out, statement{policy: id, actions: actions, resources: res, raw: st})
		}
	}
	return out
}

// ownLogWrites reports whether actions are a function's log writes (GoFunction's role).
func ownLogWrites(actions []string) bool {
	for _, a := range actions {
		if a != "logs:CreateLogStream" && a != "logs:PutLogEvents" {
			return false
		}
	}
	return len(actions) > 0
}

// sameJSON compares two template values by their JSON form.
func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
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
		{"-c streamShards makes the stream provisioned", func(t *testing.T) {
			check(t, func() {
				opsTemplate.HasResourceProperties(jsii.String("AWS::Kinesis::Stream"), map[string]any{
					"StreamModeDetails": map[string]any{"StreamMode": "PROVISIONED"},
					"ShardCount":        opsStreamShards,
					"StreamEncryption":  map[string]any{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
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
				env.StreamName:       ref(stream),
				env.PepperSecretID:   ref(secret), // Ref of a secret is its ARN, never its value
				env.ConfigFile:       "/var/task/config.json",
				env.LogLevel:         "info",
				env.MetricsNamespace: "Retarget",
				env.APIKeyAppIDs:     vars[env.APIKeyAppIDs],
			}
			if _, ok := vars[env.APIKeyAppIDs]; !ok {
				t.Errorf("%s missing", env.APIKeyAppIDs)
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
			got := renderJoin(t, ingestEnv(t)[env.APIKeyAppIDs])
			var mapping map[string]string
			if err := json.Unmarshal([]byte(got), &mapping); err != nil {
				t.Fatalf("%s is not a JSON object once resolved: %v\n%s", env.APIKeyAppIDs, err, got)
			}
			want := map[string]string{}
			for _, app := range testConfig.Apps {
				want["<"+logicalID(ingest.ApiKeys[app.ID])+">"] = app.ID
			}
			if fmt.Sprint(mapping) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v", env.APIKeyAppIDs, mapping, want)
			}
		}},
		{"function may put records on the stream only and read the pepper", func(t *testing.T) {
			streamArn := getAtt(stream, "Arn")
			var putRecords, readSecret bool
			for _, st := range roleStatements(templ, fn.Role()) {
				id := st.policy
				actions := strings.Join(st.actions, " ")
				if strings.HasPrefix(actions, "xray:") {
					continue // tracing: PutTraceSegments and PutTelemetryRecords take no resource
				}
				if !strings.Contains(actions, "kinesis:") && !strings.Contains(actions, "secretsmanager:") {
					t.Errorf("policy %s: the ingest function may not %v", id, actions)
					continue
				}
				if fmt.Sprint(st.raw["Resource"]) == "*" || strings.Contains(actions, "*") {
					t.Errorf("policy %s: wildcard in %v", id, st.raw)
				}
				if strings.Contains(actions, "kinesis:GetRecords") || strings.Contains(actions, "kinesis:Delete") {
					t.Errorf("policy %s: producer can do more than write: %v", id, actions)
				}
				if strings.Contains(actions, "kinesis:PutRecords") {
					putRecords = true
					if fmt.Sprint(st.raw["Resource"]) != fmt.Sprint(streamArn) {
						t.Errorf("policy %s: PutRecords on %v, want %v", id, st.raw["Resource"], streamArn)
					}
				}
				if strings.Contains(actions, "secretsmanager:GetSecretValue") {
					readSecret = true
					if fmt.Sprint(st.raw["Resource"]) != fmt.Sprint(ref(secret)) {
						t.Errorf("policy %s: GetSecretValue on %v, want %v", id, st.raw["Resource"], ref(secret))
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
		{"routes: POST /v1/events with key, GET /v1/health and GET /v1/openapi.json without", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::Method"), jsii.Number(3)) })
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{"PathPart": "openapi.json"})
			})
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
					"HttpMethod": "GET", "ApiKeyRequired": false,
					"Integration": map[string]any{"Uri": map[string]any{"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{getAtt(ingest.Ingest.Function, "Arn")})}}},
				})
			})
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
			names := []string{OutputApiUrl, OutputEventStreamName, OutputPepperSecretArn,
				OutputMetaSecretArn, OutputDeadLetterQueueUrl, OutputEsmFailureQueueUrl, OutputAlarmTopicArn, OutputDashboardUrl}
			for _, name := range names {
				check(t, func() { template.HasOutput(jsii.String(name), map[string]any{}) })
			}
			check(t, func() {
				template.HasOutput(jsii.String(OutputEventStreamName), map[string]any{"Value": ref(stream)})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputPepperSecretArn), map[string]any{"Value": ref(secret)})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputMetaSecretArn), map[string]any{"Value": ref(testStack.Meta.Secret)})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputDeadLetterQueueUrl), map[string]any{"Value": ref(testStack.Forwarder.DeadLetters)})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputEsmFailureQueueUrl), map[string]any{"Value": ref(testStack.Forwarder.EsmFailures)})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputAlarmTopicArn), map[string]any{"Value": ref(testStack.Alarms.Topic)})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputDashboardUrl), map[string]any{"Value": map[string]any{"Fn::Join": []any{"", []any{
					"https://console.aws.amazon.com/cloudwatch/home?region=", map[string]any{"Ref": "AWS::Region"},
					"#dashboards:name=", ref(testStack.Alarms.Dashboard)}}}})
			})
			if n := len(templ["Outputs"].(map[string]any)); n != len(names) {
				t.Errorf("%d outputs, want %d", n, len(names))
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
			staged, err := env.LoadApps(filepath.Join(dir, configFile))
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

func TestCapiForwarder(t *testing.T) {
	f := testStack.Forwarder
	fn := f.Function.Function
	meta := testStack.Meta.Secret
	stream := testStack.Events.Stream

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"function is provided.al2023 arm64, 512 MB, 60 s, no reserved concurrency", func(t *testing.T) {
			// The dead-letter queue URL in the environment pins the match to the forwarder.
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Runtime":                      "provided.al2023",
					"Architectures":                []any{"arm64"},
					"Handler":                      "bootstrap",
					"MemorySize":                   ForwarderMemoryMiB,
					"Timeout":                      ForwarderTimeoutSeconds,
					"TracingConfig":                map[string]any{"Mode": "Active"},
					"ReservedConcurrentExecutions": assertions.Match_Absent(),
					"LoggingConfig": map[string]any{
						"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "LogGroup": ref(f.Function.LogGroup),
					},
					"Environment": map[string]any{"Variables": map[string]any{env.DeadLetterQueueURL: ref(f.DeadLetters)}},
				})
			})
		}},
		{"environment is the contract, without secret values", func(t *testing.T) {
			vars := functionEnv(t, templ, fn)
			want := map[string]any{
				env.ConfigFile:         "/var/task/config.json",
				env.LogLevel:           "info",
				env.MetricsNamespace:   "Retarget",
				env.GraphURL:           "https://graph.facebook.com",
				env.APIVersion:         "v26.0",
				env.MetaSecretID:       ref(meta), // Ref of a secret is its ARN
				env.DeadLetterQueueURL: ref(f.DeadLetters),
			}
			if !sameJSON(vars, want) {
				got, _ := json.Marshal(vars)
				w, _ := json.Marshal(want)
				t.Errorf("environment\n got %s\nwant %s", got, w)
			}
			raw, _ := json.Marshal(vars)
			for _, leak := range []string{"resolve:secretsmanager", "SecretString", "access_token", MetaAccessTokenPlaceholder} {
				if strings.Contains(string(raw), leak) {
					t.Errorf("environment carries %q: %s", leak, raw)
				}
			}
		}},
		{"defaults match the function's", func(t *testing.T) {
			pairs := [][2]string{
				{DefaultMetaGraphURL, metagraph.DefaultBaseURL},
				{DefaultMetaAPIVersion, metagraph.DefaultVersion},
			}
			for _, p := range pairs {
				if p[0] != p[1] {
					t.Errorf("stack sets %q, the forwarder expects %q", p[0], p[1])
				}
			}
			var doc map[string]string
			raw, _ := json.Marshal(runtime.Credentials{AccessToken: "t", AppSecret: "s"})
			if err := json.Unmarshal(raw, &doc); err != nil || doc[MetaAccessTokenKey] != "t" || doc[MetaAppSecretKey] != "s" {
				t.Errorf("secret keys %s/%s do not match the forwarder's document %s", MetaAccessTokenKey, MetaAppSecretKey, raw)
			}
			if DeadLetterMaxMessageBytes != deadletters.MaxMessageBytes {
				t.Errorf("queues take %d bytes, the dead-letter writer sends up to %d", DeadLetterMaxMessageBytes, deadletters.MaxMessageBytes)
			}
		}},
		{"event source mapping: partial failures, bisection, bounded retries and age", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(1)) })
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
					"FunctionName":                   ref(fn),
					"EventSourceArn":                 getAtt(stream, "Arn"),
					"StartingPosition":               "TRIM_HORIZON",
					"BatchSize":                      1000,
					"MaximumBatchingWindowInSeconds": 5,
					"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
					"BisectBatchOnFunctionError":     true,
					"MaximumRetryAttempts":           10000,
					"MaximumRecordAgeInSeconds":      21600,
					"ParallelizationFactor":          1,
					"DestinationConfig": map[string]any{
						"OnFailure": map[string]any{"Destination": getAtt(f.EsmFailures, "Arn")},
					},
				})
			})
		}},
		{"two queues, SSE and TLS only, kept 14 days, deleted with a dev stack", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(2)) })
			if logicalID(f.DeadLetters) == logicalID(f.EsmFailures) {
				t.Fatal("dead letters and mapping failures share a queue")
			}
			for _, q := range []constructs.IConstruct{f.DeadLetters, f.EsmFailures} {
				id := logicalID(q)
				res := resources("AWS::SQS::Queue")[id]
				if res == nil {
					t.Fatalf("queue %s not in the template", id)
				}
				props := res["Properties"].(map[string]any)
				if props["SqsManagedSseEnabled"] != true && props["KmsMasterKeyId"] == nil {
					t.Errorf("queue %s is not encrypted at rest: %v", id, props)
				}
				if props["MessageRetentionPeriod"] != float64(14*24*3600) {
					t.Errorf("queue %s keeps messages %v s, want 14 days", id, props["MessageRetentionPeriod"])
				}
				if props["MaximumMessageSize"] != float64(deadletters.MaxMessageBytes) {
					t.Errorf("queue %s takes %v bytes, want %d", id, props["MaximumMessageSize"], deadletters.MaxMessageBytes)
				}
				if res["DeletionPolicy"] != "Delete" {
					t.Errorf("dev queue %s has DeletionPolicy %v", id, res["DeletionPolicy"])
				}
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
						"Queues": []any{ref(q)},
						"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{map[string]any{
							"Effect":    "Deny",
							"Action":    "sqs:*",
							"Principal": map[string]any{"AWS": "*"},
							"Resource":  getAtt(q, "Arn"),
							"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
						}})},
					})
				})
			}
		}},
		{"function may read the stream, the Meta secret and send to its queues, nothing else", func(t *testing.T) {
			queues := []any{getAtt(f.DeadLetters, "Arn"), getAtt(f.EsmFailures, "Arn")}
			seen := map[string]bool{}
			for _, st := range roleStatements(templ, fn.Role()) {
				if st.raw["Effect"] != "Allow" {
					continue
				}
				for _, a := range st.actions {
					seen[a] = true
					service, _, _ := strings.Cut(a, ":")
					if strings.Contains(a, "*") {
						t.Errorf("policy %s: wildcard action %s", st.policy, a)
					}
					switch service {
					case "xray": // tracing: PutTraceSegments and PutTelemetryRecords take no resource
						if a != "xray:PutTraceSegments" && a != "xray:PutTelemetryRecords" {
							t.Errorf("policy %s: unexpected %s", st.policy, a)
						}
					case "kinesis":
						if !strings.HasPrefix(a, "kinesis:Get") && !strings.HasPrefix(a, "kinesis:Describe") &&
							!strings.HasPrefix(a, "kinesis:List") && a != "kinesis:SubscribeToShard" {
							t.Errorf("policy %s: consumer may %s", st.policy, a)
						}
						if !sameJSON(st.resources, []any{getAtt(stream, "Arn")}) {
							t.Errorf("policy %s: %s on %v, want the stream only", st.policy, a, st.resources)
						}
					case "secretsmanager":
						if a != "secretsmanager:GetSecretValue" && a != "secretsmanager:DescribeSecret" {
							t.Errorf("policy %s: secret access %s beyond reading", st.policy, a)
						}
						if !sameJSON(st.resources, []any{ref(meta)}) {
							t.Errorf("policy %s: %s on %v, want the Meta secret only", st.policy, a, st.resources)
						}
					case "sqs":
						if a != "sqs:SendMessage" && a != "sqs:GetQueueAttributes" && a != "sqs:GetQueueUrl" {
							t.Errorf("policy %s: queue access %s beyond sending", st.policy, a)
						}
						// The mapping's on-failure destination is written with the function's role.
						for _, r := range st.resources {
							if !sameJSON(r, queues[0]) && !sameJSON(r, queues[1]) {
								t.Errorf("policy %s: %s on %v, want the dead-letter or mapping-failure queue", st.policy, a, r)
							}
						}
					default:
						t.Errorf("policy %s: the forwarder may not %s", st.policy, a)
					}
				}
			}
			for _, a := range []string{"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream",
				"kinesis:ListShards", "secretsmanager:GetSecretValue", "sqs:SendMessage"} {
				if !seen[a] {
					t.Errorf("the forwarder may not %s", a)
				}
			}
			sendsToDLQ := false
			for _, st := range roleStatements(templ, fn.Role()) {
				if slices.Contains(st.actions, "sqs:SendMessage") && slices.ContainsFunc(st.resources, func(r any) bool { return sameJSON(r, queues[0]) }) {
					sendsToDLQ = true
				}
			}
			if !sendsToDLQ {
				t.Error("the forwarder may not send to its dead-letter queue")
			}
			// Nothing else reads the Meta credentials or writes to the queues.
			for _, st := range roleStatements(templ, testStack.Ingest.Ingest.Function.Role()) {
				for _, r := range st.resources {
					if sameJSON(r, ref(meta)) || sameJSON(r, queues[0]) || sameJSON(r, queues[1]) {
						t.Errorf("ingest policy %s reaches %v", st.policy, r)
					}
				}
			}
		}},
		{"Meta secret is retained and holds no token in the template", func(t *testing.T) {
			id := logicalID(meta)
			res := resources("AWS::SecretsManager::Secret")[id]
			if res == nil {
				t.Fatalf("Meta secret %s not in the template", id)
			}
			if res["DeletionPolicy"] != "Retain" || res["UpdateReplacePolicy"] != "Retain" {
				t.Errorf("Meta secret policies %v/%v, want Retain", res["DeletionPolicy"], res["UpdateReplacePolicy"])
			}
			props := res["Properties"].(map[string]any)
			if _, ok := props["SecretString"]; ok {
				t.Error("Meta secret has a literal SecretString")
			}
			gen, _ := props["GenerateSecretString"].(map[string]any)
			if gen["GenerateStringKey"] != MetaAppSecretKey {
				t.Errorf("generated key %v, want %s", gen["GenerateStringKey"], MetaAppSecretKey)
			}
			var tmpl map[string]string
			if err := json.Unmarshal([]byte(fmt.Sprint(gen["SecretStringTemplate"])), &tmpl); err != nil ||
				!reflect.DeepEqual(tmpl, map[string]string{MetaAccessTokenKey: MetaAccessTokenPlaceholder}) {
				t.Errorf("secret template %v, want only the placeholder token", gen["SecretStringTemplate"])
			}
			// Meta access tokens start with EAA and run to ~200 characters.
			raw, _ := json.Marshal(templ)
			if m := regexp.MustCompile(`EAA[A-Za-z0-9]{30,}`).Find(raw); m != nil {
				t.Errorf("template carries something like a Meta token: %.12s...", m)
			}
		}},
		{"code asset holds the forwarder bootstrap and the validated config", func(t *testing.T) {
			if !strings.HasSuffix(f.Function.AssetDir, string(filepath.Separator)+CapiForwarderFunctionName) {
				t.Errorf("asset dir %s", f.Function.AssetDir)
			}
			for _, name := range []string{bootstrapFile, configFile} {
				if _, err := os.Stat(filepath.Join(f.Function.AssetDir, name)); err != nil {
					t.Error(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestProdForwarderWithExistingSecret checks the prod stack: imported Meta secret, pinned API
// version, reserved concurrency, queues retained.
func TestProdForwarderWithExistingSecret(t *testing.T) {
	const secretArn = prodMetaSecretArn
	tpl, doc, fn := prodTemplate, prodTempl, prodStack.Forwarder.Function.Function
	vars := functionEnv(t, doc, fn)
	if vars[env.MetaSecretID] != secretArn || vars[env.APIVersion] != "v27.0" {
		t.Errorf("%s=%v %s=%v, want the imported ARN and v27.0", env.MetaSecretID, vars[env.MetaSecretID], env.APIVersion, vars[env.APIVersion])
	}
	check(t, func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"ReservedConcurrentExecutions": 4, "Timeout": ForwarderTimeoutSeconds,
		})
	})
	// Only the pepper is created; the Meta secret is imported.
	check(t, func() { tpl.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(1)) })
	readsSecret := false
	for _, st := range roleStatements(doc, fn.Role()) {
		if slices.Contains(st.actions, "secretsmanager:GetSecretValue") {
			readsSecret = sameJSON(st.resources, []any{secretArn})
		}
	}
	if !readsSecret {
		t.Errorf("the forwarder may not read %s", secretArn)
	}
	check(t, func() {
		tpl.AllResources(jsii.String("AWS::SQS::Queue"), map[string]any{"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
	})
	check(t, func() {
		tpl.HasOutput(jsii.String(OutputMetaSecretArn), map[string]any{"Value": secretArn})
	})
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
		{"plain http graph url", &RetargetStackProps{Config: testConfig, MetaGraphURL: "http://graph.facebook.com"}, `meta graph url "http://graph.facebook.com" must be an https URL`},
		{"graph url with query", &RetargetStackProps{Config: testConfig, MetaGraphURL: "https://graph.facebook.com/?x=1"}, "without query"},
		{"bad api version", &RetargetStackProps{Config: testConfig, MetaAPIVersion: "26.0"}, `meta api version "26.0" must look like v26.0`},
		{"negative reserved concurrency", &RetargetStackProps{Config: testConfig, ForwarderReservedConcurrency: -1}, "reserved concurrency -1"},
		{"fractional reserved concurrency", &RetargetStackProps{Config: testConfig, ForwarderReservedConcurrency: 1.5}, "reserved concurrency 1.5"},
		{"negative user ttl", &RetargetStackProps{Config: testConfig, UserTTLDays: -1}, "user ttl days -1 must be a positive whole number"},
		{"fractional sweep interval", &RetargetStackProps{Config: testConfig, SweepIntervalMinutes: 2.5}, "sweep interval minutes 2.5 must be a positive whole number"},
		{"negative audience sync interval", &RetargetStackProps{Config: testConfig, AudienceSyncIntervalMinutes: -5}, "audience sync interval minutes -5 must be a positive whole number"},
		{"fractional stream shards", &RetargetStackProps{Config: testConfig, StreamShards: 2.5}, "stream shards 2.5 must be 0 (on-demand) or a whole number in 1..500"},
		{"too many stream shards", &RetargetStackProps{Config: testConfig, StreamShards: 501}, "stream shards 501 must be"},
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

// segTableArn is the state table's ARN and dueIndexArn its due index's, as the templates
// write them.
func segTableArn(s *SegmentState) any { return getAtt(s.Table, "Arn") }

func dueIndexArn(s *SegmentState) any {
	return map[string]any{"Fn::Join": []any{"", []any{segTableArn(s), "/index/due"}}}
}

// allowedActions maps each action a role may perform in tpl to the resources it may perform
// it on; it fails the test on Deny statements and conditions, which these roles never carry.
func allowedActions(t *testing.T, tpl map[string]any, role awsiam.IRole) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, st := range roleStatements(tpl, role) {
		if st.raw["Effect"] != "Allow" || st.raw["Condition"] != nil {
			t.Errorf("policy %s: unexpected statement %v", st.policy, st.raw)
			continue
		}
		for _, a := range st.actions {
			out[a] = append(out[a], st.resources...)
		}
	}
	return out
}

func TestSegmentState(t *testing.T) {
	s := segStack.Segments
	if s == nil {
		t.Fatal("SegmentsEnabled stack has no Segments")
	}
	stream := segStack.Events.Stream
	pepper := segStack.Pepper.Secret
	tableName := ref(s.Table)

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"table: pk/sk, pending and due indexes, TTL, on-demand, PITR, AWS-managed key", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::DynamoDB::GlobalTable"), jsii.Number(1)) })
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(0)) })
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::DynamoDB::GlobalTable"), map[string]any{
					"KeySchema": []any{
						map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
						map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
					},
					"AttributeDefinitions": []any{
						map[string]any{"AttributeName": "pk", "AttributeType": "S"},
						map[string]any{"AttributeName": "sk", "AttributeType": "S"},
						map[string]any{"AttributeName": "pendingPk", "AttributeType": "S"},
						map[string]any{"AttributeName": "dueBucket", "AttributeType": "S"},
						map[string]any{"AttributeName": "dueAt", "AttributeType": "N"},
					},
					"GlobalSecondaryIndexes": []any{
						map[string]any{
							"IndexName": "pending",
							"KeySchema": []any{
								map[string]any{"AttributeName": "pendingPk", "KeyType": "HASH"},
								map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
							},
							"Projection": map[string]any{"ProjectionType": "ALL"},
						},
						map[string]any{
							"IndexName": "due",
							"KeySchema": []any{
								map[string]any{"AttributeName": "dueBucket", "KeyType": "HASH"},
								map[string]any{"AttributeName": "dueAt", "KeyType": "RANGE"},
							},
							"Projection": map[string]any{"ProjectionType": "KEYS_ONLY"},
						},
					},
					"BillingMode":                        "PAY_PER_REQUEST",
					"WriteProvisionedThroughputSettings": assertions.Match_Absent(),
					"TimeToLiveSpecification":            map[string]any{"AttributeName": "expiresAt", "Enabled": true},
					"SSESpecification":                   map[string]any{"SSEEnabled": true, "SSEType": "KMS"},
					"TableName":                          assertions.Match_Absent(),
					"Replicas": []any{assertions.Match_ObjectLike(&map[string]any{
						"Region":                           map[string]any{"Ref": "AWS::Region"},
						"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
						"DeletionProtectionEnabled":        false,
						"SSESpecification":                 assertions.Match_Absent(), // AWS-managed: no key per replica
					})},
				})
			})
			// The adapter spells these names too: a rename here is a rename there.
			names := []string{StateTablePartitionKey, StateTableSortKey, StateTableTTLAttribute, PendingIndexName,
				PendingIndexPartitionKey, PendingIndexSortKey, DueIndexName, DueIndexPartitionKey, DueIndexSortKey}
			if got := strings.Join(names, " "); got != "pk sk expiresAt pending pendingPk sk due dueBucket dueAt" {
				t.Errorf("schema names %s", got)
			}
		}},
		{"dev table is deleted with the stack", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::DynamoDB::GlobalTable")[logicalID(s.Table)]
			if res["DeletionPolicy"] != "Delete" || res["UpdateReplacePolicy"] != "Delete" {
				t.Errorf("dev table policies %v/%v, want Delete", res["DeletionPolicy"], res["UpdateReplacePolicy"])
			}
		}},
		{"functions: provided.al2023 arm64, sizes, environment contract", func(t *testing.T) {
			common := map[string]any{env.ConfigFile: "/var/task/config.json", env.LogLevel: "info", env.MetricsNamespace: "Retarget"}
			with := func(extra map[string]any) map[string]any {
				m := map[string]any{}
				for k, v := range common {
					m[k] = v
				}
				for k, v := range extra {
					m[k] = v
				}
				return m
			}
			ingestKeys := functionEnv(t, segTempl, segStack.Ingest.Ingest.Function)[env.APIKeyAppIDs]
			fns := []struct {
				name            string
				fn              *GoFunction
				memory, timeout float64
				env             map[string]any
			}{
				{"updater", s.Updater, 512, 60, with(map[string]any{
					"STATE_TABLE_NAME": tableName, "USER_TTL_DAYS": "400",
				})},
				{"sweeper", s.Sweeper, 256, 300, with(map[string]any{
					"STATE_TABLE_NAME": tableName, "SWEEP_LOOKBACK_HOURS": "48", "USER_TTL_DAYS": "400",
				})},
				{"read", s.Reader, 256, 10, with(map[string]any{
					"STATE_TABLE_NAME": tableName, "PEPPER_SECRET_ID": ref(pepper), "API_KEY_APP_IDS": ingestKeys,
					"USER_TTL_DAYS": "400", "ERASURE_TOMBSTONE_DAYS": "30", "ERASURE_AUDIT_DAYS": "1095",
				})},
			}
			for _, f := range fns {
				t.Run(f.name, func(t *testing.T) {
					res := resourcesIn(segTempl, "AWS::Lambda::Function")[logicalID(f.fn.Function)]
					if res == nil {
						t.Fatalf("%s not in the template", f.name)
					}
					props := res["Properties"].(map[string]any)
					want := map[string]any{
						"Runtime": "provided.al2023", "Architectures": []any{"arm64"}, "Handler": "bootstrap",
						"MemorySize": f.memory, "Timeout": f.timeout, "TracingConfig": map[string]any{"Mode": "Active"},
						"LoggingConfig": map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "LogGroup": ref(f.fn.LogGroup)},
					}
					for k, v := range want {
						if !sameJSON(props[k], v) {
							t.Errorf("%s = %v, want %v", k, props[k], v)
						}
					}
					if _, ok := props["ReservedConcurrentExecutions"]; ok {
						t.Error("reserved concurrency set")
					}
					if vars := functionEnv(t, segTempl, f.fn.Function); !sameJSON(vars, f.env) {
						got, _ := json.Marshal(vars)
						w, _ := json.Marshal(f.env)
						t.Errorf("environment\n got %s\nwant %s", got, w)
					}
				})
			}
			if ingestKeys == nil {
				t.Error("the ingest function has no API_KEY_APP_IDS to share")
			}
			for _, name := range []string{SegmentUpdaterFunctionName, SegmentSweeperFunctionName, UsersAPIFunctionName} {
				if _, err := os.Stat(filepath.Join(filepath.Dir(s.Updater.AssetDir), name, bootstrapFile)); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}},
		{"updater mapping: the forwarder's safety settings, batches of 500", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(2)) })
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
					"FunctionName":                   ref(s.Updater.Function),
					"EventSourceArn":                 getAtt(stream, "Arn"),
					"StartingPosition":               "TRIM_HORIZON",
					"BatchSize":                      500,
					"MaximumBatchingWindowInSeconds": 5,
					"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
					"BisectBatchOnFunctionError":     true,
					"MaximumRetryAttempts":           10000,
					"MaximumRecordAgeInSeconds":      21600,
					"ParallelizationFactor":          1,
					"DestinationConfig": map[string]any{
						"OnFailure": map[string]any{"Destination": getAtt(s.EsmFailures, "Arn")},
					},
				})
			})
		}},
		{"queues of their own: SSE, TLS only, deleted with a dev stack", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(5)) })
			f := segStack.Forwarder
			ids := map[string]bool{}
			for _, q := range []constructs.IConstruct{f.DeadLetters, f.EsmFailures, s.EsmFailures, s.SweepDeadLetters, segStack.AudienceSync.DeadLetters} {
				ids[logicalID(q)] = true
			}
			if len(ids) != 5 {
				t.Fatalf("segment queues shared with the forwarder or each other: %v", ids)
			}
			for _, q := range []constructs.IConstruct{s.EsmFailures, s.SweepDeadLetters, segStack.AudienceSync.DeadLetters} {
				id := logicalID(q)
				res := resourcesIn(segTempl, "AWS::SQS::Queue")[id]
				if res == nil {
					t.Fatalf("queue %s not in the template", id)
				}
				props := res["Properties"].(map[string]any)
				if props["SqsManagedSseEnabled"] != true {
					t.Errorf("queue %s is not encrypted at rest: %v", id, props)
				}
				if props["MessageRetentionPeriod"] != float64(14*24*3600) {
					t.Errorf("queue %s keeps messages %v s, want 14 days", id, props["MessageRetentionPeriod"])
				}
				if res["DeletionPolicy"] != "Delete" {
					t.Errorf("dev queue %s has DeletionPolicy %v", id, res["DeletionPolicy"])
				}
				check(t, func() {
					segTemplate.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
						"Queues": []any{ref(q)},
						"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{map[string]any{
							"Effect":    "Deny",
							"Action":    "sqs:*",
							"Principal": map[string]any{"AWS": "*"},
							"Resource":  getAtt(q, "Arn"),
							"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
						}})},
					})
				})
			}
		}},
		{"sweep schedule: every 5 minutes, retries, dead letters, input", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(2)) })
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
					"ScheduleExpression":         "rate(5 minutes)",
					"ScheduleExpressionTimezone": "Etc/UTC",
					"State":                      "ENABLED",
					"FlexibleTimeWindow":         map[string]any{"Mode": "OFF"},
					"Target": map[string]any{
						"Arn":              getAtt(s.Sweeper.Function, "Arn"),
						"RoleArn":          assertions.Match_AnyValue(),
						"Input":            `{"source":"schedule","scheduled_time":"<aws.scheduler.scheduled-time>"}`,
						"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
						"DeadLetterConfig": map[string]any{"Arn": getAtt(s.SweepDeadLetters, "Arn")},
					},
				})
			})
			var doc map[string]any
			if err := json.Unmarshal([]byte(SweepInput), &doc); err != nil || doc["source"] != "schedule" {
				t.Errorf("sweep input %s: %v", SweepInput, err)
			}
		}},
		{"scheduler role may invoke the sweeper and send to its dead letters, nothing else", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(s.SweepSchedule)]
			roleArn, _ := res["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)
			if len(roleArn) != 2 {
				t.Fatalf("schedule role %v", res)
			}
			roleRef, _ := json.Marshal(map[string]any{"Ref": roleArn[0]})
			fnArn := getAtt(s.Sweeper.Function, "Arn")
			seen := map[string]bool{}
			for id, p := range resourcesIn(segTempl, "AWS::IAM::Policy") {
				props := p["Properties"].(map[string]any)
				roles, _ := json.Marshal(props["Roles"])
				if !strings.Contains(string(roles), string(roleRef)) {
					continue
				}
				for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					st := st.(map[string]any)
					res, ok := st["Resource"].([]any)
					if !ok {
						res = []any{st["Resource"]}
					}
					a := fmt.Sprint(st["Action"])
					seen[a] = true
					switch a {
					case "lambda:InvokeFunction":
						want := []any{fnArn, map[string]any{"Fn::Join": []any{"", []any{fnArn, ":*"}}}}
						if !sameJSON(res, want) {
							t.Errorf("policy %s: invoke on %v, want the sweeper (and its versions)", id, res)
						}
					case "sqs:SendMessage":
						if !sameJSON(res, []any{getAtt(s.SweepDeadLetters, "Arn")}) {
							t.Errorf("policy %s: send to %v, want the sweep dead letters", id, res)
						}
					default:
						t.Errorf("policy %s: the scheduler may %s", id, a)
					}
				}
			}
			if !seen["lambda:InvokeFunction"] || !seen["sqs:SendMessage"] {
				t.Errorf("the scheduler role may only %v", seen)
			}
		}},
		{"route: GET /v1/users/{app_user_id}/segments with the API key, Lambda proxy", func(t *testing.T) {
			if p := *s.ReadMethod.Resource().Path(); p != "/v1/users/{app_user_id}/segments" {
				t.Errorf("read path %s", p)
			}
			// POST events, GET health, GET openapi.json, and the users routes: GET segments, PUT
			// consent, DELETE user.
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::ApiGateway::Method"), jsii.Number(6)) })
			for _, m := range []struct {
				method awsapigateway.Method
				verb   string
				path   string
			}{{s.ConsentMethod, "PUT", "/v1/users/{app_user_id}/consent"}, {s.ErasureMethod, "DELETE", "/v1/users/{app_user_id}"}} {
				if p := *m.method.Resource().Path(); p != m.path {
					t.Errorf("%s path %s, want %s", m.verb, p, m.path)
				}
				check(t, func() {
					segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
						"HttpMethod": m.verb, "ResourceId": ref(m.method.Resource()), "ApiKeyRequired": true,
						"Integration": map[string]any{
							"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST",
							"Uri": map[string]any{"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{getAtt(s.Reader.Function, "Arn")})}},
						},
					})
				})
			}
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
					"HttpMethod":     "GET",
					"ResourceId":     ref(s.ReadMethod.Resource()),
					"ApiKeyRequired": true,
					"Integration": map[string]any{
						"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST",
						"Uri": map[string]any{"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{getAtt(s.Reader.Function, "Arn")})}},
					},
				})
			})
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{
					"PathPart": "{app_user_id}", "ParentId": ref(s.ReadMethod.Resource().ParentResource().ParentResource()),
				})
			})
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), map[string]any{
					"Action": "lambda:InvokeFunction", "FunctionName": getAtt(s.Reader.Function, "Arn"),
					"Principal": "apigateway.amazonaws.com",
				})
			})
			// The apps' usage plans cover the stage, so the same keys open this route.
			ingest := segStack.Ingest
			for _, app := range testConfig.Apps {
				check(t, func() {
					segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
						"UsagePlanName": app.APIKey.Name,
						"ApiStages":     []any{map[string]any{"ApiId": ref(ingest.Api), "Stage": ref(ingest.Api.DeploymentStage())}},
					})
				})
			}
			check(t, func() {
				segTemplate.ResourceCountIs(jsii.String("AWS::ApiGateway::ApiKey"), jsii.Number(float64(len(testConfig.Apps))))
			})
		}},
		{"updater: read the stream, Get/Put/BatchWrite the table, send mapping failures; no Scan or Query", func(t *testing.T) {
			got := allowedActions(t, segTempl, s.Updater.Function.Role())
			for a, res := range got {
				service, _, _ := strings.Cut(a, ":")
				switch {
				case strings.Contains(a, "*"):
					t.Errorf("wildcard action %s", a)
				case service == "xray":
				case service == "dynamodb":
					if a != "dynamodb:GetItem" && a != "dynamodb:PutItem" && a != "dynamodb:BatchWriteItem" && a != "dynamodb:BatchGetItem" {
						t.Errorf("the updater may %s", a)
					}
					if !sameJSON(res, []any{segTableArn(s)}) {
						t.Errorf("%s on %v, want the table only", a, res)
					}
				case service == "kinesis":
					if !strings.HasPrefix(a, "kinesis:Get") && !strings.HasPrefix(a, "kinesis:Describe") &&
						!strings.HasPrefix(a, "kinesis:List") && a != "kinesis:SubscribeToShard" {
						t.Errorf("consumer may %s", a)
					}
					if !sameJSON(res, []any{getAtt(stream, "Arn")}) {
						t.Errorf("%s on %v, want the stream only", a, res)
					}
				case service == "sqs":
					if a != "sqs:SendMessage" && a != "sqs:GetQueueAttributes" && a != "sqs:GetQueueUrl" {
						t.Errorf("queue access %s beyond sending", a)
					}
					if !sameJSON(res, []any{getAtt(s.EsmFailures, "Arn")}) {
						t.Errorf("%s on %v, want the mapping's failure queue only", a, res)
					}
				default:
					t.Errorf("the updater may %s", a)
				}
			}
			for _, a := range []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "kinesis:GetRecords", "sqs:SendMessage"} {
				if got[a] == nil {
					t.Errorf("the updater may not %s", a)
				}
			}
		}},
		{"sweeper: Query the due index only, Get/Put/BatchWrite the table", func(t *testing.T) {
			got := allowedActions(t, segTempl, s.Sweeper.Function.Role())
			want := map[string][]any{
				"dynamodb:Query":           {dueIndexArn(s)},
				"dynamodb:GetItem":         {segTableArn(s)},
				"dynamodb:PutItem":         {segTableArn(s)},
				"dynamodb:BatchWriteItem":  {segTableArn(s)},
				"sqs:SendMessage":          {getAtt(s.SweepDeadLetters, "Arn")}, // failed async runs
				"xray:PutTraceSegments":    {"*"},
				"xray:PutTelemetryRecords": {"*"},
			}
			if !sameJSON(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("sweeper permissions\n got %s\nwant %s", g, w)
			}
		}},
		{"users function: item reads and writes on the table (no Query, no Scan, no delete) and read the pepper", func(t *testing.T) {
			got := allowedActions(t, segTempl, s.Reader.Function.Role())
			want := map[string][]any{
				"dynamodb:GetItem":              {segTableArn(s)},
				"dynamodb:PutItem":              {segTableArn(s)},
				"dynamodb:BatchWriteItem":       {segTableArn(s)},
				"dynamodb:BatchGetItem":         {segTableArn(s)},
				"secretsmanager:GetSecretValue": {ref(pepper)},
				"secretsmanager:DescribeSecret": {ref(pepper)},
				"xray:PutTraceSegments":         {"*"},
				"xray:PutTelemetryRecords":      {"*"},
			}
			if !sameJSON(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("read permissions\n got %s\nwant %s", g, w)
			}
		}},
		{"no role reaches the table but the segment functions', the sync's and the forwarder's (consent reads), none may Scan", func(t *testing.T) {
			mine := map[string]bool{}
			for _, g := range []*GoFunction{s.Updater, s.Sweeper, s.Reader, segStack.AudienceSync.Function, segStack.Forwarder.Function} {
				mine[logicalID(g.Function.Role())] = true
			}
			tableID := logicalID(s.Table)
			for id, p := range resourcesIn(segTempl, "AWS::IAM::Policy") {
				raw, _ := json.Marshal(p)
				if strings.Contains(string(raw), "dynamodb:Scan") || strings.Contains(string(raw), `"dynamodb:*"`) {
					t.Errorf("policy %s allows a scan", id)
				}
				if !strings.Contains(string(raw), `"`+tableID+`"`) {
					continue
				}
				roles, _ := p["Properties"].(map[string]any)["Roles"].([]any)
				for _, r := range roles {
					if !mine[fmt.Sprint(r.(map[string]any)["Ref"])] {
						t.Errorf("policy %s gives %v access to the table", id, r)
					}
				}
			}
		}},
		{"output StateTableName", func(t *testing.T) {
			check(t, func() { segTemplate.HasOutput(jsii.String(OutputStateTableName), map[string]any{"Value": tableName}) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestSegmentStateDisabledByDefault: without SegmentsEnabled the template holds nothing of it.
func TestSegmentStateDisabledByDefault(t *testing.T) {
	if testStack.Segments != nil || testStack.AudienceSync != nil {
		t.Fatal("default stack has Segments or AudienceSync")
	}
	for typ, n := range map[string]float64{
		"AWS::DynamoDB::GlobalTable":      0,
		"AWS::DynamoDB::Table":            0,
		"AWS::Scheduler::Schedule":        0,
		"AWS::Scheduler::ScheduleGroup":   0,
		"AWS::Lambda::EventSourceMapping": 1,
		"AWS::SQS::Queue":                 2,
		"AWS::ApiGateway::Method":         3,
		"AWS::Lambda::Function":           2,
	} {
		check(t, func() { template.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
	}
	raw, _ := json.Marshal(templ)
	for _, s := range []string{`"Segments`, `"AudienceSync`, "STATE_TABLE_NAME", "dynamodb:", "scheduler.amazonaws.com", OutputStateTableName} {
		if i := strings.Index(string(raw), s); i >= 0 {
			t.Errorf("default template mentions %q: ...%s...", s, raw[max(0, i-80):min(len(raw), i+80)])
		}
	}
}

// TestProdSegmentState checks the prod stack's table protection and the overridden settings.
func TestProdSegmentState(t *testing.T) {
	s := prodStack.Segments
	if s == nil {
		t.Fatal("prod stack has no Segments")
	}
	check(t, func() {
		prodTemplate.HasResource(jsii.String("AWS::DynamoDB::GlobalTable"), map[string]any{
			"DeletionPolicy":      "Retain",
			"UpdateReplacePolicy": "Retain",
			"Properties": map[string]any{"Replicas": []any{assertions.Match_ObjectLike(&map[string]any{
				"DeletionProtectionEnabled":        true,
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			})}},
		})
	})
	check(t, func() {
		prodTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
			"ScheduleExpression": fmt.Sprintf("rate(%d minutes)", prodSweepIntervalMinutes),
		})
	})
	for _, fn := range []*GoFunction{s.Updater, s.Sweeper} {
		if v := functionEnv(t, prodTempl, fn.Function)[env.UserTTLDays]; v != fmt.Sprint(prodUserTTLDays) {
			t.Errorf("%s = %v, want %d", env.UserTTLDays, v, prodUserTTLDays)
		}
	}
	check(t, func() {
		prodTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
			"ScheduleExpression": fmt.Sprintf("rate(%d minutes)", prodAudienceSyncIntervalMinutes),
			"Target":             assertions.Match_ObjectLike(&map[string]any{"Arn": getAtt(prodStack.AudienceSync.Function.Function, "Arn")}),
		})
	})
	// The imported Meta secret and the pinned API version reach the sync as they reach the forwarder.
	syncEnv := functionEnv(t, prodTempl, prodStack.AudienceSync.Function.Function)
	if syncEnv[env.MetaSecretID] != prodMetaSecretArn || syncEnv[env.APIVersion] != "v27.0" {
		t.Errorf("prod audience sync env %v", syncEnv)
	}
	for _, q := range []constructs.IConstruct{s.EsmFailures, s.SweepDeadLetters, prodStack.AudienceSync.DeadLetters} {
		res := resourcesIn(prodTempl, "AWS::SQS::Queue")[*prodStack.GetLogicalId(q.Node().DefaultChild().(awscdk.CfnElement))]
		if res["DeletionPolicy"] != "Retain" {
			t.Errorf("prod queue %s has DeletionPolicy %v", *q.Node().Path(), res["DeletionPolicy"])
		}
	}
}

func TestAudienceSync(t *testing.T) {
	a := segStack.AudienceSync
	if a == nil {
		t.Fatal("SegmentsEnabled stack has no AudienceSync")
	}
	s := segStack.Segments
	meta := segStack.Meta.Secret
	fnArn := getAtt(a.Function.Function, "Arn")

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"function: provided.al2023 arm64, 512 MB, 10 min, reserved concurrency 1, environment contract", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::Lambda::Function")[logicalID(a.Function.Function)]
			if res == nil {
				t.Fatal("audience sync not in the template")
			}
			props := res["Properties"].(map[string]any)
			want := map[string]any{
				"Runtime": "provided.al2023", "Architectures": []any{"arm64"}, "Handler": "bootstrap",
				"MemorySize": 512, "Timeout": 600, "ReservedConcurrentExecutions": 1,
				"TracingConfig": map[string]any{"Mode": "Active"},
				"LoggingConfig": map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "LogGroup": ref(a.Function.LogGroup)},
			}
			for k, v := range want {
				if !sameJSON(props[k], v) {
					t.Errorf("%s = %v, want %v", k, props[k], v)
				}
			}
			wantEnv := map[string]any{
				"STATE_TABLE_NAME":  ref(s.Table),
				"APP_CONFIG_FILE":   "/var/task/config.json",
				"META_GRAPH_URL":    "https://graph.facebook.com",
				"META_API_VERSION":  "v26.0",
				"META_SECRET_ID":    ref(meta),
				"LOG_LEVEL":         "info",
				"METRICS_NAMESPACE": "Retarget",
			}
			if vars := functionEnv(t, segTempl, a.Function.Function); !sameJSON(vars, wantEnv) {
				g, _ := json.Marshal(vars)
				w, _ := json.Marshal(wantEnv)
				t.Errorf("environment\n got %s\nwant %s", g, w)
			}
			// Same secret as the forwarder's.
			if fwd := functionEnv(t, segTempl, segStack.Forwarder.Function.Function)[env.MetaSecretID]; !sameJSON(fwd, ref(meta)) {
				t.Errorf("forwarder META_SECRET_ID %v, want the same secret", fwd)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(a.Function.AssetDir), AudienceSyncFunctionName, bootstrapFile)); err != nil {
				t.Error(err)
			}
		}},
		{"schedule: every 5 minutes, retries, dead letters, input", func(t *testing.T) {
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
					"ScheduleExpression":         "rate(5 minutes)",
					"ScheduleExpressionTimezone": "Etc/UTC",
					"State":                      "ENABLED",
					"FlexibleTimeWindow":         map[string]any{"Mode": "OFF"},
					"Target": map[string]any{
						"Arn":              fnArn,
						"RoleArn":          assertions.Match_AnyValue(),
						"Input":            `{"source":"schedule","scheduled_time":"<aws.scheduler.scheduled-time>"}`,
						"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
						"DeadLetterConfig": map[string]any{"Arn": getAtt(a.DeadLetters, "Arn")},
					},
				})
			})
			res := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(a.Schedule)]
			if target, _ := res["Properties"].(map[string]any)["Target"].(map[string]any); !sameJSON(target["Arn"], fnArn) {
				t.Errorf("the sync schedule targets %v", target["Arn"])
			}
		}},
		{"scheduler role may invoke the sync and send to its dead letters, nothing else", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(a.Schedule)]
			roleArn, _ := res["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)
			if len(roleArn) != 2 {
				t.Fatalf("schedule role %v", res)
			}
			sweepRes := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(s.SweepSchedule)]
			if sameJSON(sweepRes["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"], res["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"]) {
				t.Error("the sync and the sweep share a scheduler role")
			}
			roleRef, _ := json.Marshal(map[string]any{"Ref": roleArn[0]})
			seen := map[string]bool{}
			for id, p := range resourcesIn(segTempl, "AWS::IAM::Policy") {
				props := p["Properties"].(map[string]any)
				roles, _ := json.Marshal(props["Roles"])
				if !strings.Contains(string(roles), string(roleRef)) {
					continue
				}
				for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					st := st.(map[string]any)
					res, ok := st["Resource"].([]any)
					if !ok {
						res = []any{st["Resource"]}
					}
					act := fmt.Sprint(st["Action"])
					seen[act] = true
					switch act {
					case "lambda:InvokeFunction":
						want := []any{fnArn, map[string]any{"Fn::Join": []any{"", []any{fnArn, ":*"}}}}
						if !sameJSON(res, want) {
							t.Errorf("policy %s: invoke on %v, want the sync (and its versions)", id, res)
						}
					case "sqs:SendMessage":
						if !sameJSON(res, []any{getAtt(a.DeadLetters, "Arn")}) {
							t.Errorf("policy %s: send to %v, want the sync dead letters", id, res)
						}
					default:
						t.Errorf("policy %s: the scheduler may %s", id, act)
					}
				}
			}
			if !seen["lambda:InvokeFunction"] || !seen["sqs:SendMessage"] {
				t.Errorf("the scheduler role may only %v", seen)
			}
		}},
		{"dead letters: SSE, TLS only, 14 days, deleted with a dev stack", func(t *testing.T) {
			id := logicalID(a.DeadLetters)
			res := resourcesIn(segTempl, "AWS::SQS::Queue")[id]
			if res == nil {
				t.Fatalf("queue %s not in the template", id)
			}
			props := res["Properties"].(map[string]any)
			if props["SqsManagedSseEnabled"] != true {
				t.Errorf("queue %s is not encrypted at rest: %v", id, props)
			}
			if props["MessageRetentionPeriod"] != float64(14*24*3600) {
				t.Errorf("queue %s keeps messages %v s, want 14 days", id, props["MessageRetentionPeriod"])
			}
			if res["DeletionPolicy"] != "Delete" {
				t.Errorf("dev queue %s has DeletionPolicy %v", id, res["DeletionPolicy"])
			}
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
					"Queues": []any{ref(a.DeadLetters)},
					"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{map[string]any{
						"Effect":    "Deny",
						"Action":    "sqs:*",
						"Principal": map[string]any{"AWS": "*"},
						"Resource":  getAtt(a.DeadLetters, "Arn"),
						"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
					}})},
				})
			})
		}},
		{"permissions: Query the table and the pending index (not the due index), item actions on the table, read the Meta secret", func(t *testing.T) {
			got := allowedActions(t, segTempl, a.Function.Function.Role())
			pendingIndexArn := map[string]any{"Fn::Join": []any{"", []any{segTableArn(s), "/index/pending"}}}
			want := map[string][]any{
				"dynamodb:Query":                {segTableArn(s), pendingIndexArn},
				"dynamodb:GetItem":              {segTableArn(s)},
				"dynamodb:PutItem":              {segTableArn(s)},
				"dynamodb:DeleteItem":           {segTableArn(s)},
				"dynamodb:UpdateItem":           {segTableArn(s)},
				"dynamodb:BatchWriteItem":       {segTableArn(s)},
				"sqs:SendMessage":               {getAtt(a.DeadLetters, "Arn")}, // failed async runs
				"secretsmanager:GetSecretValue": {ref(meta)},
				"xray:PutTraceSegments":         {"*"},
				"xray:PutTelemetryRecords":      {"*"},
			}
			if !sameJSON(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("audience sync permissions\n got %s\nwant %s", g, w)
			}
			if got["dynamodb:Scan"] != nil {
				t.Error("the audience sync may Scan")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
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

// opsApps has one app with its own usage plan settings, two audiences (one with defaults) and
// two channels (one with auth and both events, one with the defaults and a body).
const opsApps = `{
  "version": 1,
  "apps": [
    {"id": "shop", "platforms": ["ios"],
     "api_key": {"name": "shop-key", "rate_limit": 50, "burst_limit": 100, "quota_per_day": 200000},
     "meta": {"dataset_id": "111", "ad_account_id": "act_1"},
     "reporting_currency": "USD",
     "segments": [
       {"id": "cart_abandoner", "when": [{"not_followed": {"event": "AddToCart", "by": ["Purchase"], "after": "1h", "until": "7d"}}]},
       {"id": "vip", "when": [{"value": {"attribute": "lifetime_value", "at_least": 200}}]}
     ],
     "audiences": [
       {"segment": "cart_abandoner", "name": "Cart abandoners", "create": true},
       {"segment": "vip", "name": "Top spenders", "create": true, "value_based": true}
     ],
     "measurement": {"target_cost_per_incremental_reengagement": 4.5, "alarm_days": 2},
     "channel_cooldown": "24h",
     "channels": [
       {"id": "push", "type": "webhook", "url": "https://push.example.com/hooks/retarget",
        "segments": ["cart_abandoner"], "events": ["joined", "left"], "rate_per_second": 50,
        "auth": {"header": "Authorization", "secret_name": "retarget/push", "dev_value": "Bearer dev-push-token"}},
       {"id": "crm", "type": "webhook", "url": "https://crm.example.com/in", "segments": ["vip", "cart_abandoner"],
        "body": "{\"user\": \"<$.detail.user_key>\", \"segment\": \"<$.detail.segment>\", \"again\": \"<$.detail.user_key>\", \"event\": <aws.events.event.json>}"}
     ]},
    {"id": "game", "platforms": ["android"], "api_key": {"name": "game-key"},
     "meta": {"dataset_id": "222", "ad_account_id": "act_2"}}
  ]
}`

// httpApps is the config of the HTTP door's stack: two apps with end-user tokens from one
// issuer (the native JWT authorizer fits), one without.
const httpApps = `{
  "version": 1,
  "apps": [
    {"id": "shop", "platforms": ["ios"], "api_key": {"name": "shop-key", "rate_limit": 50, "burst_limit": 100},
     "meta": {"dataset_id": "111", "ad_account_id": "act_1"},
     "auth": {"end_user": {"issuer": "https://securetoken.google.com/acme", "audiences": ["acme-shop"],
              "jwks_url": "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"}}},
    {"id": "game", "platforms": ["android"], "api_key": {"name": "game-key"},
     "meta": {"dataset_id": "222", "ad_account_id": "act_2"},
     "auth": {"end_user": {"issuer": "https://securetoken.google.com/acme", "audiences": ["acme-game", "acme-shop"],
              "jwks_url": "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"}}},
    {"id": "tool", "platforms": ["ios"], "api_key": {"name": "tool-key"},
     "meta": {"dataset_id": "333", "ad_account_id": "act_3"}}
  ]
}`

const (
	opsWafRateLimit = 3000
	opsAlarmEmail   = "oncall@example.com"
	opsStreamShards = 4
)

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
	// audiences; WAF, alarm e-mail, the API Gateway CloudWatch role, a provisioned stream).
	opsConfig   *appconfig.Config
	opsStack    *RetargetStack
	opsTemplate assertions.Template
	opsTempl    map[string]any

	// A fifth one behind the HTTP API front door (-c api=http), with the segment state.
	httpConfig   *appconfig.Config
	httpStack    *RetargetStack
	httpTemplate assertions.Template
	httpTempl    map[string]any
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
	if httpConfig, err = appconfig.Parse([]byte(httpApps)); err != nil {
		return 1, err
	}
	tmp, err := os.MkdirTemp("", "retarget-stack-test-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmp)
	functionsDir := filepath.Join(tmp, "functions")
	for _, fn := range []string{IngestFunctionName, CapiForwarderFunctionName,
		SegmentUpdaterFunctionName, SegmentSweeperFunctionName, UsersAPIFunctionName, AudienceSyncFunctionName, InsightsFunctionName, ArchiveTransformFunctionName, ArchivePurgeFunctionName, KeyAuthorizerFunctionName} {
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
	testFunctionsDir, testFlags = functionsDir, flags

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
		MetaCAPIVersion:              "v25.0",
		MetaMarketingVersion:         "v27.0",
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
		// A literal region, as when the CLI knows it: ARNs then carry it instead of a token
		// (cdk-nag suppressions by ARN must match both forms).
		StackProps:               awscdk.StackProps{Env: &awscdk.Environment{Region: jsii.String("eu-west-1")}},
		Config:                   opsConfig,
		FunctionsDir:             functionsDir,
		Stage:                    "staging",
		SegmentsEnabled:          true,
		WafRateLimit:             opsWafRateLimit,
		AlarmEmail:               opsAlarmEmail,
		ApiGatewayCloudWatchRole: true,
		StreamShards:             opsStreamShards,
	})
	httpStack = NewRetargetStack(testApp, "Http", &RetargetStackProps{
		Config:          httpConfig,
		FunctionsDir:    functionsDir,
		SegmentsEnabled: true,
		Api:             ApiHTTP,
		SystemLogLevel:  "WARN",
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
	httpTemplate = assertions.Template_FromStack(httpStack.Stack, nil)
	if httpTempl, err = plainTemplate(httpTemplate); err != nil {
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

// TestStackResources checks what the stack decides for every construct: the stage's removal
// policy and the outputs.
func TestStackResources(t *testing.T) {
	stream := testStack.Events.Stream
	secret := testStack.Pepper.Secret

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"dev stack deletes its stream and logs", func(t *testing.T) {
			check(t, func() {
				template.HasResource(jsii.String("AWS::Kinesis::Stream"), map[string]any{"DeletionPolicy": "Delete"})
			})
			check(t, func() {
				template.AllResources(jsii.String("AWS::Logs::LogGroup"), map[string]any{"DeletionPolicy": "Delete"})
			})
		}},
		{"outputs", func(t *testing.T) {
			names := []string{OutputApiUrl, OutputEventStreamName, OutputPepperSecretArn,
				OutputMetaSecretArn, OutputDeadLetterQueueUrl, OutputEsmFailureQueueUrl, OutputAlarmTopicArn, OutputDashboardUrl, OutputBackendPolicyArn,
				OutputMetaCapiVersion, OutputMetaMarketingVersion}
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
				template.HasOutput(jsii.String(OutputMetaCapiVersion), map[string]any{"Value": DefaultMetaCAPIVersion})
			})
			check(t, func() {
				template.HasOutput(jsii.String(OutputMetaMarketingVersion), map[string]any{"Value": DefaultMetaMarketingVersion})
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
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
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
		{"bad capi version", &RetargetStackProps{Config: testConfig, MetaCAPIVersion: "v26"}, `meta api version "v26" must look like v26.0`},
		{"bad marketing version", &RetargetStackProps{Config: testConfig, MetaMarketingVersion: "27.0"}, `meta api version "27.0" must look like v26.0`},
		{"negative reserved concurrency", &RetargetStackProps{Config: testConfig, ForwarderReservedConcurrency: -1}, "reserved concurrency -1"},
		{"fractional reserved concurrency", &RetargetStackProps{Config: testConfig, ForwarderReservedConcurrency: 1.5}, "reserved concurrency 1.5"},
		{"negative user ttl", &RetargetStackProps{Config: testConfig, UserTTLDays: -1}, "user ttl days -1 must be a positive whole number"},
		{"fractional sweep interval", &RetargetStackProps{Config: testConfig, SweepIntervalMinutes: 2.5}, "sweep interval minutes 2.5 must be a positive whole number"},
		{"negative audience sync interval", &RetargetStackProps{Config: testConfig, AudienceSyncIntervalMinutes: -5}, "audience sync interval minutes -5 must be a positive whole number"},
		{"fractional stream shards", &RetargetStackProps{Config: testConfig, StreamShards: 2.5}, "stream shards 2.5 must be 0 (on-demand) or a whole number in 1..500"},
		{"too many stream shards", &RetargetStackProps{Config: testConfig, StreamShards: 501}, "stream shards 501 must be"},
		{"unknown front door", &RetargetStackProps{Config: testConfig, Api: "graphql"}, `api "graphql" must be "rest"`},
		{"unknown system log level", &RetargetStackProps{Config: testConfig, SystemLogLevel: "ERROR"}, `system log level "ERROR" must be INFO`},
		{"WAF on the HTTP door", &RetargetStackProps{Config: testConfig, Api: ApiHTTP, WafRateLimit: 1000}, "WAF cannot be attached to an HTTP API"},
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

// The deprecated single version is the fallback of both settings; each new one wins over it.
func TestMetaVersionsResolve(t *testing.T) {
	for _, c := range []struct {
		props           RetargetStackProps
		capi, marketing string
	}{
		{RetargetStackProps{Config: testConfig}, DefaultMetaCAPIVersion, DefaultMetaMarketingVersion},
		{RetargetStackProps{Config: testConfig, MetaAPIVersion: "v25.0"}, "v25.0", "v25.0"},
		{RetargetStackProps{Config: testConfig, MetaAPIVersion: "v25.0", MetaMarketingVersion: "v27.0"}, "v25.0", "v27.0"},
		{RetargetStackProps{Config: testConfig, MetaCAPIVersion: "v24.0", MetaMarketingVersion: "v26.0"}, "v24.0", "v26.0"},
	} {
		p, err := resolveProps(&c.props)
		if err != nil || p.MetaCAPIVersion != c.capi || p.MetaMarketingVersion != c.marketing {
			t.Errorf("resolveProps(%+v) = %s, %s, %v; want %s, %s", c.props, p.MetaCAPIVersion, p.MetaMarketingVersion, err, c.capi, c.marketing)
		}
	}
}

// -c systemLogLevel=WARN reaches every function (Lambda's platform records dropped); the default
// leaves Lambda's INFO.
func TestSystemLogLevel(t *testing.T) {
	for name, tc := range map[string]struct {
		tpl  map[string]any
		want string
	}{"default": {templ, ""}, "WARN": {httpTempl, "WARN"}} {
		t.Run(name, func(t *testing.T) {
			n := 0
			for id, r := range templateResources(tc.tpl) {
				if r["Type"] != "AWS::Lambda::Function" {
					continue
				}
				n++
				props, _ := r["Properties"].(map[string]any)
				lc, _ := props["LoggingConfig"].(map[string]any)
				if got, _ := lc["SystemLogLevel"].(string); got != tc.want {
					t.Errorf("%s: SystemLogLevel %q, want %q", id, got, tc.want)
				}
				if lc["LogFormat"] != "JSON" {
					t.Errorf("%s: LogFormat %v, want JSON", id, lc["LogFormat"])
				}
			}
			if n < 2 {
				t.Fatalf("%d functions in the template", n)
			}
		})
	}
}

func templateResources(tpl map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	res, _ := tpl["Resources"].(map[string]any)
	for id, r := range res {
		if m, ok := r.(map[string]any); ok {
			out[id] = m
		}
	}
	return out
}

package stack

import (
	"errors"
	"fmt"
	"math"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Defaults of the per-app usage plans.
const (
	DefaultRateLimit  = 500
	DefaultBurstLimit = 1000
)

// IngestFunctionName is the function's folder under functions/ and under the build directory.
const IngestFunctionName = "ingest"

// IngestApiProps configures the ingest API.
type IngestApiProps struct {
	// Config is the validated app config: one API key and usage plan per app.
	Config *appconfig.Config
	// FunctionsDir holds ingest/bootstrap (see GoFunctionProps).
	FunctionsDir string
	// StageName is the API Gateway stage, the first path segment of the URL.
	StageName string
	// Stream receives the accepted events; the function gets write access only.
	Stream awskinesis.IStream
	// PepperSecret keys the pseudonymous user ids; the function gets read access.
	PepperSecret awssecretsmanager.ISecret
	// RateLimit (requests per second) and BurstLimit of each app's usage plan unless the app's
	// api_key sets its own; default 500/1000.
	RateLimit, BurstLimit float64
	// WafRateLimit, when not 0, puts a WAF web ACL in front of the stage that blocks a client
	// IP sending more than this many requests in 5 minutes (10..2,000,000,000), plus AWS's
	// known-bad-inputs rules. Off by default (see infra/docs/deploy.md for the trade-off).
	WafRateLimit float64
	// LogRetention of the function's and the access logs; defaults to one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy of both log groups; defaults to RETAIN.
	LogRemovalPolicy awscdk.RemovalPolicy
	// Api is the front door, ApiRest (default) or ApiHTTP. With ApiHTTP this declares only the
	// ingest function: no REST API, keys or plans (NewHttpFrontDoor puts the HTTP API in front).
	Api string
	// CloudWatchRole makes the stack set the account-wide API Gateway CloudWatch Logs role,
	// which access logging needs. Off by default: it is one setting per account and region, so
	// a stack should only own it when nothing else does (see infra/docs/deploy.md).
	CloudWatchRole bool
}

// IngestApi is the public REST API with the ingest function, one API key and usage plan per
// app, and the body validator and model of the event routes. Its methods are declared by
// ApiRoutes from the access table, once every function behind them exists.
type IngestApi struct {
	constructs.Construct
	// Api is the REST API; Api.DeploymentStage() is its stage.
	Api awsapigateway.RestApi
	// StageName is the stage's name (IngestApiProps.StageName), as a plain string.
	StageName string
	// Ingest is the ingest function with its log group.
	Ingest *GoFunction
	// V1Resource is /v1, the parent of every route.
	V1Resource awsapigateway.Resource
	// BodyValidator and EventsBodyModel check the body of the event routes ({"events":
	// [...]}) before the function runs.
	BodyValidator   awsapigateway.RequestValidator
	EventsBodyModel awsapigateway.Model
	// ApiKeyAppIDs is the value of API_KEY_APP_IDS, {"<key id>": "<app id>"} (resolved at
	// deploy time): every function behind a route taking the key finds its caller's app with it.
	ApiKeyAppIDs *string
	// ApiKeys and UsagePlans are keyed by app id.
	ApiKeys    map[string]awsapigateway.ApiKey
	UsagePlans map[string]awsapigateway.UsagePlan
	// AccessLogs receives the stage's access logs.
	AccessLogs awslogs.LogGroup
	// Latency is the API's latency metric (REST or HTTP API), for the dashboard.
	Latency func(*awscloudwatch.MetricOptions) awscloudwatch.Metric
}

// NewIngestApi declares the API, the ingest function, the per-app keys and plans, and grants
// the function what it needs.
func NewIngestApi(scope constructs.Construct, id string, props *IngestApiProps) *IngestApi {
	if props == nil || props.Config == nil || props.Stream == nil || props.PepperSecret == nil || props.StageName == "" {
		panic(errors.New("ingest api: Config, Stream, PepperSecret and StageName are required"))
	}
	rate, burst := props.RateLimit, props.BurstLimit
	if rate == 0 {
		rate = DefaultRateLimit
	}
	if burst == 0 {
		burst = DefaultBurstLimit
	}
	retention, removal := logDefaults(props.LogRetention, props.LogRemovalPolicy)
	if n := apiKeyAppIDsSize(props.Config); n > maxAPIKeyAppIDsSize {
		panic(fmt.Errorf("ingest api: %s would take about %d bytes for %d apps; Lambda allows 4 KB for all environment variables together",
			env.APIKeyAppIDs, n, len(props.Config.Apps)))
	}
	c := constructs.NewConstruct(scope, jsii.String(id))

	// Keys first: the function's environment maps their ids to app ids.
	keys := make(map[string]awsapigateway.ApiKey, len(props.Config.Apps))
	keyAppIDs := make(map[string]any, len(props.Config.Apps))
	for _, app := range props.Config.Apps {
		if props.Api == ApiHTTP {
			break // no API Gateway keys: the HTTP door's key secrets name the apps
		}
		key := awsapigateway.NewApiKey(c, jsii.String("ApiKey-"+app.ID), &awsapigateway.ApiKeyProps{
			ApiKeyName:  jsii.String(app.APIKey.Name),
			Description: jsii.String(fmt.Sprintf("Ingest key of app %s", app.ID)),
			Enabled:     jsii.Bool(true),
		})
		keys[app.ID] = key
		keyAppIDs[*key.KeyId()] = app.ID
	}

	// ToJsonString resolves the key id tokens (used as object keys) at deploy time.
	keyAppIDsJSON := awscdk.Stack_Of(c).ToJsonString(keyAppIDs, nil)

	ingest := NewGoFunction(c, "Ingest", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         IngestFunctionName,
		Config:       props.Config,
		Description:  "Validates, pseudonymises and batches app events into the event stream",
		Environment: map[string]*string{
			env.StreamName:     props.Stream.StreamName(),
			env.PepperSecretID: props.PepperSecret.SecretArn(),
			env.APIKeyAppIDs:   keyAppIDsJSON,
		},
		LogRetention:       retention,
		LogRemovalPolicy:   removal,
		NoAsyncDeadLetters: "invoked only synchronously by API Gateway: the caller gets the error; there is no asynchronous invocation to dead-letter",
	})
	props.Stream.GrantWrite(ingest.Function)
	props.PepperSecret.GrantRead(ingest.Function, nil)
	if props.Api == ApiHTTP {
		return &IngestApi{Construct: c, StageName: props.StageName, Ingest: ingest, ApiKeyAppIDs: keyAppIDsJSON}
	}

	accessLogs := awslogs.NewLogGroup(c, jsii.String("AccessLogs"), &awslogs.LogGroupProps{
		Retention:     retention,
		RemovalPolicy: removal,
	})
	// Every method of the stage is throttled at the sum of the apps' plans (capped at API
	// Gateway's default account limits): no app's plan can be starved by the stage, and a
	// request without a key (health) cannot exceed it either.
	stageRate, stageBurst := 0.0, 0.0
	for _, app := range props.Config.Apps {
		r, b := appThrottle(app, rate, burst)
		stageRate, stageBurst = stageRate+r, stageBurst+b
	}
	stageRate, stageBurst = math.Min(stageRate, appconfig.MaxRateLimit), math.Min(stageBurst, appconfig.MaxBurstLimit)
	// Execution logs (errors only, never bodies) need the account's API Gateway CloudWatch
	// role: only when this stack sets it; access logs are on either way.
	loggingLevel := awsapigateway.MethodLoggingLevel_OFF
	if props.CloudWatchRole {
		loggingLevel = awsapigateway.MethodLoggingLevel_ERROR
	}
	api := awsapigateway.NewRestApi(c, jsii.String("Api"), &awsapigateway.RestApiProps{
		Description: jsii.String("retarget ingest API"),
		// Regional: mobile clients reach it directly; put CloudFront in front if needed.
		EndpointTypes:  &[]awsapigateway.EndpointType{awsapigateway.EndpointType_REGIONAL},
		CloudWatchRole: jsii.Bool(props.CloudWatchRole),
		// Compress responses above 1 KiB (rejection lists can be long); requests are the
		// client's business: API Gateway accepts up to 10 MB, the function enforces 1 MiB.
		MinCompressionSize: awscdk.Size_Kibibytes(jsii.Number(1)),
		ApiKeySourceType:   awsapigateway.ApiKeySourceType_HEADER,
		DeployOptions: &awsapigateway.StageOptions{
			StageName:            jsii.String(props.StageName),
			TracingEnabled:       jsii.Bool(true),
			AccessLogDestination: awsapigateway.NewLogGroupLogDestination(accessLogs),
			AccessLogFormat:      awsapigateway.AccessLogFormat_Custom(jsii.String(accessLogFormat)),
			ThrottlingRateLimit:  jsii.Number(stageRate),
			ThrottlingBurstLimit: jsii.Number(stageBurst),
			LoggingLevel:         loggingLevel,
			DataTraceEnabled:     jsii.Bool(false),
		},
	})
	stage := api.DeploymentStage()
	if props.CloudWatchRole {
		suppress(api.Node().FindChild(jsii.String("CloudWatchRole")), false, nagRule{id: "AwsSolutions-IAM4",
			appliesTo: []string{"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"},
			reason:    "the account-wide API Gateway logging role (asked for with -c apiGatewayCloudWatchRole=true) writes the logs of every API of the account and region: AWS's policy for exactly that role"})
	}
	suppress(stage, false, nagRule{id: "Serverless-APIGWStructuredLogging",
		reason: "the access log format is JSON at runtime: $context.error.messageString is substituted as an already quoted and escaped JSON string (API Gateway docs), which the rule's literal JSON.parse of the template cannot know"})
	if !props.CloudWatchRole {
		suppress(stage, false, nagRule{id: "AwsSolutions-APIG6",
			reason: "execution logging needs the account-wide API Gateway CloudWatch role, one setting per account and region that this stack sets only when asked (-c apiGatewayCloudWatchRole=true, which also turns on ERROR-level execution logs); every request is in the JSON access logs"})
	}
	if props.WafRateLimit == 0 {
		suppress(stage, false, nagRule{id: "AwsSolutions-APIG3",
			reason: "WAF is opt-in (-c wafRateLimit=<requests per 5 minutes per IP>): every route but health needs an app's API key, each key has its usage-plan throttle and the stage a global one; a web ACL adds a fixed monthly cost that dominates the pipeline's per-event cost at low volume"})
	} else {
		newWebACL(c, "Waf", stage, props.WafRateLimit)
	}

	// RestApi adds an "Endpoint" output of its own; the stack exports the URL as ApiUrl.
	api.Node().TryRemoveChild(jsii.String("Endpoint"))

	a := &IngestApi{
		Construct:    c,
		Api:          api,
		Latency:      api.MetricLatency,
		StageName:    props.StageName,
		Ingest:       ingest,
		V1Resource:   api.Root().AddResource(jsii.String("v1"), nil),
		ApiKeyAppIDs: keyAppIDsJSON,
		AccessLogs:   accessLogs,
	}
	// The body's basic shape is checked before the function runs; everything else (event
	// rules, 1 MiB, 500 events) by the function, with field-level errors.
	bodyModel := api.AddModel(jsii.String("EventsBody"), &awsapigateway.ModelOptions{
		ContentType: jsii.String("application/json"),
		ModelName:   jsii.String("EventsBody"),
		Description: jsii.String(`{"events": [ {...}, ... ]}: an array of event objects`),
		Schema: &awsapigateway.JsonSchema{
			Schema:   awsapigateway.JsonSchemaVersion_DRAFT4,
			Type:     awsapigateway.JsonSchemaType_OBJECT,
			Required: jsii.Strings("events"),
			Properties: &map[string]*awsapigateway.JsonSchema{
				// No length bounds: an empty array, more than 500 events or more than 1 MiB
				// are the function's to refuse, with the contract's 400 and 413 answers.
				"events": {
					Type:  awsapigateway.JsonSchemaType_ARRAY,
					Items: &awsapigateway.JsonSchema{Type: awsapigateway.JsonSchemaType_OBJECT},
				},
			},
		},
	})
	validator := api.AddRequestValidator(jsii.String("BodyValidator"), &awsapigateway.RequestValidatorOptions{
		RequestValidatorName: jsii.String("body"),
		ValidateRequestBody:  jsii.Bool(true),
		// No parameter is declared required, so this checks nothing today; it keeps any
		// required header or query parameter a route declares later enforced at the gateway.
		ValidateRequestParameters: jsii.Bool(true),
	})
	// Its answer keeps the API's error shape (400 {"error": ...}, as the function answers).
	api.AddGatewayResponse(jsii.String("BadRequestBody"), &awsapigateway.GatewayResponseOptions{
		Type:       awsapigateway.ResponseType_BAD_REQUEST_BODY(),
		StatusCode: jsii.String("400"),
		Templates: &map[string]*string{
			"application/json": jsii.String(appevent.BodyShapeResponse()),
		},
	})
	a.BodyValidator, a.EventsBodyModel = validator, bodyModel

	// A usage plan covers the whole stage: every keyed route, present and future, shares the
	// app's key and throttle.
	plans := make(map[string]awsapigateway.UsagePlan, len(props.Config.Apps))
	for _, app := range props.Config.Apps {
		r, b := appThrottle(app, rate, burst)
		var quota *awsapigateway.QuotaSettings
		if q := app.APIKey.QuotaPerDay; q > 0 {
			quota = &awsapigateway.QuotaSettings{Limit: jsii.Number(float64(q)), Period: awsapigateway.Period_DAY}
		}
		plan := awsapigateway.NewUsagePlan(c, jsii.String("UsagePlan-"+app.ID), &awsapigateway.UsagePlanProps{
			Name:        jsii.String(app.APIKey.Name),
			Description: jsii.String(fmt.Sprintf("Throttle of app %s", app.ID)),
			Throttle: &awsapigateway.ThrottleSettings{
				RateLimit:  jsii.Number(r),
				BurstLimit: jsii.Number(b),
			},
			Quota: quota,
			ApiStages: &[]*awsapigateway.UsagePlanPerApiStage{{
				Api:   api,
				Stage: api.DeploymentStage(),
			}},
		})
		plan.AddApiKey(keys[app.ID], nil)
		plans[app.ID] = plan
	}

	a.ApiKeys, a.UsagePlans = keys, plans
	return a
}

// appThrottle is the app's usage plan throttle: its api_key settings, else the defaults.
func appThrottle(app appconfig.App, rate, burst float64) (float64, float64) {
	r, b := rate, burst
	if app.APIKey.RateLimit > 0 {
		r = float64(app.APIKey.RateLimit)
	}
	if app.APIKey.BurstLimit > 0 {
		b = float64(app.APIKey.BurstLimit)
	}
	return r, b
}

// lambdaProxy hands the whole request to fn (events.APIGatewayProxyRequest) and its answer
// back as the response.
func lambdaProxy(fn awslambda.IFunction) awsapigateway.Integration {
	return awsapigateway.NewLambdaIntegration(fn, &awsapigateway.LambdaIntegrationOptions{Proxy: jsii.Bool(true)})
}

// maxAPIKeyAppIDsSize leaves room for the other variables within Lambda's 4 KB limit.
const maxAPIKeyAppIDsSize = 3072

// apiKeyAppIDsSize estimates the length of API_KEY_APP_IDS: API Gateway key ids are 10
// characters; each entry adds quotes, a colon and a comma.
func apiKeyAppIDsSize(cfg *appconfig.Config) int {
	n := 2
	for _, app := range cfg.Apps {
		n += 10 + len(app.ID) + 6
	}
	return n
}

// accessLogFormat is the stage's JSON access log line. It leaves out the caller's IP address
// and user agent (personal data that nothing here needs) and keeps the API key id, which names
// the app. $context.error.messageString comes quoted and escaped by API Gateway.
const accessLogFormat = `{"requestId":"$context.requestId","requestTime":"$context.requestTimeEpoch",` +
	`"httpMethod":"$context.httpMethod","resourcePath":"$context.resourcePath","status":"$context.status",` +
	`"responseLength":"$context.responseLength","responseLatency":"$context.responseLatency",` +
	`"integrationLatency":"$context.integration.latency","integrationStatus":"$context.integration.status",` +
	`"apiKeyId":"$context.identity.apiKeyId","errorType":"$context.error.responseType",` +
	`"errorMessage":$context.error.messageString,"xrayTraceId":"$context.xrayTraceId"}`

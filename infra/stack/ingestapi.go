package stack

import (
	"errors"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/appconfig"
)

// Environment of the ingest function (a contract with functions/ingest).
const (
	// EnvEventStreamName is the name of the Kinesis stream the events go to.
	EnvEventStreamName = "EVENT_STREAM_NAME"
	// EnvPepperSecretID is the ARN of the Secrets Manager secret holding the pepper.
	EnvPepperSecretID = "PEPPER_SECRET_ID"
	// EnvAPIKeyAppIDs is a JSON object mapping each API Gateway key id to its app id; the
	// function reads the key id from requestContext.identity.apiKeyId.
	EnvAPIKeyAppIDs = "API_KEY_APP_IDS"
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
	// RateLimit (requests per second) and BurstLimit of each app's usage plan; default 500/1000.
	RateLimit, BurstLimit float64
	// LogRetention of the function's and the access logs; defaults to one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy of both log groups; defaults to RETAIN.
	LogRemovalPolicy awscdk.RemovalPolicy
	// CloudWatchRole makes the stack set the account-wide API Gateway CloudWatch Logs role,
	// which access logging needs. Off by default: it is one setting per account and region, so
	// a stack should only own it when nothing else does (see infra/README.md).
	CloudWatchRole bool
}

// IngestApi is the public REST API (`POST /v1/events` with an API key, `GET /v1/health`
// without) in front of the ingest function, with one API key and usage plan per app. Other
// constructs add their keyed routes with AddKeyedRoute.
type IngestApi struct {
	constructs.Construct
	// Api is the REST API; Api.DeploymentStage() is its stage.
	Api awsapigateway.RestApi
	// Ingest is the ingest function with its log group.
	Ingest *GoFunction
	// V1Resource is /v1, the parent of every route.
	V1Resource awsapigateway.Resource
	// EventsResource is /v1/events and HealthResource is /v1/health.
	EventsResource, HealthResource awsapigateway.Resource
	// ApiKeyAppIDs is the value of API_KEY_APP_IDS, {"<key id>": "<app id>"} (resolved at
	// deploy time): every function behind a keyed route finds its caller's app with it.
	ApiKeyAppIDs *string
	// ApiKeys and UsagePlans are keyed by app id.
	ApiKeys    map[string]awsapigateway.ApiKey
	UsagePlans map[string]awsapigateway.UsagePlan
	// AccessLogs receives the stage's access logs.
	AccessLogs awslogs.LogGroup
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
			EnvAPIKeyAppIDs, n, len(props.Config.Apps)))
	}
	c := constructs.NewConstruct(scope, jsii.String(id))

	// Keys first: the function's environment maps their ids to app ids.
	keys := make(map[string]awsapigateway.ApiKey, len(props.Config.Apps))
	keyAppIDs := make(map[string]any, len(props.Config.Apps))
	for _, app := range props.Config.Apps {
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
			EnvEventStreamName: props.Stream.StreamName(),
			EnvPepperSecretID:  props.PepperSecret.SecretArn(),
			EnvAPIKeyAppIDs:    keyAppIDsJSON,
		},
		LogRetention:     retention,
		LogRemovalPolicy: removal,
	})
	props.Stream.GrantWrite(ingest.Function)
	props.PepperSecret.GrantRead(ingest.Function, nil)

	accessLogs := awslogs.NewLogGroup(c, jsii.String("AccessLogs"), &awslogs.LogGroupProps{
		Retention:     retention,
		RemovalPolicy: removal,
	})
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
		},
	})

	// RestApi adds an "Endpoint" output of its own; the stack exports the URL as ApiUrl.
	api.Node().TryRemoveChild(jsii.String("Endpoint"))

	a := &IngestApi{
		Construct:    c,
		Api:          api,
		Ingest:       ingest,
		V1Resource:   api.Root().AddResource(jsii.String("v1"), nil),
		ApiKeyAppIDs: keyAppIDsJSON,
		AccessLogs:   accessLogs,
	}
	a.AddKeyedRoute("POST", "events", ingest.Function)
	a.EventsResource = a.V1Resource.ResourceForPath(jsii.String("events"))
	a.HealthResource = a.V1Resource.AddResource(jsii.String("health"), nil)
	a.HealthResource.AddMethod(jsii.String("GET"), lambdaProxy(ingest.Function), &awsapigateway.MethodOptions{
		ApiKeyRequired: jsii.Bool(false),
	})

	// A usage plan covers the whole stage: every keyed route, present and future, shares the
	// app's key and throttle.
	plans := make(map[string]awsapigateway.UsagePlan, len(props.Config.Apps))
	for _, app := range props.Config.Apps {
		plan := awsapigateway.NewUsagePlan(c, jsii.String("UsagePlan-"+app.ID), &awsapigateway.UsagePlanProps{
			Name:        jsii.String(app.APIKey.Name),
			Description: jsii.String(fmt.Sprintf("Throttle of app %s", app.ID)),
			Throttle: &awsapigateway.ThrottleSettings{
				RateLimit:  jsii.Number(rate),
				BurstLimit: jsii.Number(burst),
			},
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

// AddKeyedRoute routes httpMethod /v1/<path> (e.g. "users/{app_user_id}/segments") to fn
// through a Lambda proxy integration, with an API key required: the apps' keys and usage plans
// apply as they do to POST /v1/events, and fn finds the caller's app from
// requestContext.identity.apiKeyId with ApiKeyAppIDs.
func (a *IngestApi) AddKeyedRoute(httpMethod, path string, fn awslambda.IFunction) awsapigateway.Method {
	return a.V1Resource.ResourceForPath(jsii.String(path)).AddMethod(jsii.String(httpMethod), lambdaProxy(fn), &awsapigateway.MethodOptions{
		ApiKeyRequired: jsii.Bool(true),
	})
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

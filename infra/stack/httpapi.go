package stack

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Front doors of the stack (RetargetStackProps.Api, -c api=...): see infra/docs/front-door.md.
const (
	// ApiRest is the REST API with API keys, usage plans and the optional WAF (the default).
	ApiRest = "rest"
	// ApiHTTP is the HTTP API: a Lambda key authorizer, IAM, the native JWT authorizer where the
	// apps allow it, and the per-app limit in the ingest function.
	ApiHTTP = "http"
)

// KeyAuthorizerFunctionName is the key authorizer's folder under functions/.
const KeyAuthorizerFunctionName = "key-authorizer"

// Settings of the key authorizer; the handler (shared/handlers/keyauthorizer) names the same.
const (
	KeyAuthorizerIdentitySource = "$request.header.x-api-key"
	KeyAuthorizerCacheSeconds   = 300
	KeyAuthorizerMemoryMiB      = 128
)

// Attributes of the rate counter table (shared/adapters/ratecounter).
const (
	RateTablePartitionKey = "pk"
	RateTableTTLAttribute = "expires_at"
)

// OutputAppKeySecrets names each app's key secret (HTTP door only): {"<app>": "<secret arn>"}.
const OutputAppKeySecrets = "AppKeySecrets"

// jwtAlgorithms are the signature algorithms API Gateway's JWT authorizer verifies (RSA).
var jwtAlgorithms = []string{"RS256", "RS384", "RS512"}

// EndUserJWT is how the HTTP door authorises the /v1/me routes. API Gateway's JWT authorizer
// takes one issuer and one audience list per route, a route has one authorizer, and the /v1/me
// paths are shared by every app: the native authorizer fits only when every app with end-user
// tokens has the same issuer and signs with RSA. Then Native is true and Issuer and Audiences
// (the union of the apps') configure it; otherwise the routes take the key authorizer and the
// users function checks the token, as behind the REST door (Why says which app prevents it).
// The users function verifies the token in both cases: it also matches the token's audience to
// the key's app.
type EndUserJWT struct {
	Native    bool
	Issuer    string
	Audiences []string
	Why       string
}

// EndUserJWTFor decides the /v1/me authorisation of cfg's apps.
func EndUserJWTFor(cfg *appconfig.Config) EndUserJWT {
	var out EndUserJWT
	for _, app := range cfg.Apps {
		eu := app.Auth.EndUser
		if eu == nil {
			continue
		}
		if out.Issuer != "" && eu.Issuer != out.Issuer {
			return EndUserJWT{Why: fmt.Sprintf("apps have different end-user issuers (%s: %s, another: %s): one JWT authorizer takes one issuer", app.ID, eu.Issuer, out.Issuer)}
		}
		for _, alg := range eu.Algs() {
			if !slices.Contains(jwtAlgorithms, alg) {
				return EndUserJWT{Why: fmt.Sprintf("app %s accepts %s tokens: API Gateway's JWT authorizer verifies RSA signatures only", app.ID, alg)}
			}
		}
		out.Issuer = eu.Issuer
		for _, a := range eu.Audiences {
			if !slices.Contains(out.Audiences, a) {
				out.Audiences = append(out.Audiences, a)
			}
		}
	}
	if out.Issuer == "" {
		return EndUserJWT{Why: "no app has end-user tokens (auth.end_user): the /v1/me routes answer 404"}
	}
	slices.Sort(out.Audiences)
	out.Native = true
	return out
}

// HttpFrontDoorProps configures the HTTP API front door.
type HttpFrontDoorProps struct {
	Config       *appconfig.Config
	FunctionsDir string
	StageName    string
	// Ingest is the ingest function (IngestApi.Ingest); UsersAPI the users function, nil
	// without the segment state.
	Ingest   *GoFunction
	UsersAPI awslambda.Function
	// RateLimit and BurstLimit: the defaults of IngestApiProps (each app's api_key wins).
	RateLimit, BurstLimit float64
	LogRetention          awslogs.RetentionDays
	LogRemovalPolicy      awscdk.RemovalPolicy
}

// HttpFrontDoor is the HTTP API in front of the same functions and routes as the REST API.
type HttpFrontDoor struct {
	constructs.Construct
	Api   awsapigatewayv2.HttpApi
	Stage awsapigatewayv2.HttpStage
	// Routes by RouteKey(method, path).
	Routes map[string]awsapigatewayv2.HttpRoute
	// KeyAuthorizer maps x-api-key to the app; KeySecrets hold each app's accepted keys.
	KeyAuthorizer *GoFunction
	KeySecrets    map[string]awssecretsmanager.Secret
	// RateTable holds the per-app request counts of the ingest function's limit.
	RateTable awsdynamodb.TableV2
	// EndUser says how the /v1/me routes are authorised.
	EndUser EndUserJWT
	// BackendPolicy allows execute-api:Invoke on exactly the IAM routes of the stage.
	BackendPolicy          awsiam.ManagedPolicy
	BackendPolicyResources []*string
	AccessLogs             awslogs.LogGroup
}

// NewHttpFrontDoor declares the HTTP API, its authorizers, the key secrets, the key authorizer
// and the rate table, and gives the functions behind it what they need to read.
func NewHttpFrontDoor(scope constructs.Construct, id string, props *HttpFrontDoorProps) *HttpFrontDoor {
	if props == nil || props.Config == nil || props.Ingest == nil || props.StageName == "" {
		panic(errors.New("http front door: Config, Ingest and StageName are required"))
	}
	retention, removal := logDefaults(props.LogRetention, props.LogRemovalPolicy)
	c := constructs.NewConstruct(scope, jsii.String(id))
	d := &HttpFrontDoor{Construct: c, Routes: map[string]awsapigatewayv2.HttpRoute{},
		KeySecrets: map[string]awssecretsmanager.Secret{}, EndUser: EndUserJWTFor(props.Config)}

	// One secret per app: {"key": "<generated>"}; "sha256": [...] adds keys by digest only.
	secretArns := map[string]any{}
	for _, app := range props.Config.Apps {
		s := awssecretsmanager.NewSecret(c, jsii.String("AppKey-"+app.ID), &awssecretsmanager.SecretProps{
			Description: jsii.String(fmt.Sprintf(`Publishable key of app %s (x-api-key): {"key": "...", "sha256": ["<hex digest of another accepted key>"]}`, app.ID)),
			GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
				SecretStringTemplate: jsii.String("{}"),
				GenerateStringKey:    jsii.String("key"),
				PasswordLength:       jsii.Number(40),
				ExcludePunctuation:   jsii.Bool(true),
				IncludeSpace:         jsii.Bool(false),
			},
			// The key ships in the app's builds: deleting it with a stack would lock them out.
			RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
		})
		suppress(s, false, nagRule{id: "AwsSolutions-SMG4",
			reason: "a publishable app key ships inside the app's builds: a rotation is a release of the app, done by adding the next key's SHA-256 to the secret's sha256 list first (infra/docs/front-door.md), never by a schedule"})
		d.KeySecrets[app.ID] = s
		secretArns[app.ID] = *s.SecretArn()
	}
	secretsJSON := awscdk.Stack_Of(c).ToJsonString(secretArns, nil)
	grantKeys := func(fn awslambda.IFunction) {
		for _, app := range props.Config.Apps {
			d.KeySecrets[app.ID].GrantRead(fn, nil)
		}
	}

	d.KeyAuthorizer = NewGoFunction(c, "KeyAuthorizer", &GoFunctionProps{
		FunctionsDir:       props.FunctionsDir,
		Name:               KeyAuthorizerFunctionName,
		Config:             props.Config,
		Description:        "Maps a request's x-api-key to its app for the HTTP API (cached by API Gateway per key)",
		Environment:        map[string]*string{env.AppKeySecrets: secretsJSON},
		MemoryMiB:          KeyAuthorizerMemoryMiB,
		LogRetention:       retention,
		LogRemovalPolicy:   removal,
		NoAsyncDeadLetters: "invoked only synchronously by API Gateway as an authorizer: a failure is the caller's 500; there is no asynchronous invocation to dead-letter",
	})
	grantKeys(d.KeyAuthorizer.Function)
	props.Ingest.Function.AddEnvironment(jsii.String(env.AppKeySecrets), secretsJSON, nil)
	grantKeys(props.Ingest.Function)
	if props.UsersAPI != nil {
		props.UsersAPI.AddEnvironment(jsii.String(env.AppKeySecrets), secretsJSON, nil)
		grantKeys(props.UsersAPI)
	}

	// Counts only, disposable: no backup, deleted with the stack.
	d.RateTable = awsdynamodb.NewTableV2(c, jsii.String("RateTable"), &awsdynamodb.TablePropsV2{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(RateTablePartitionKey), Type: awsdynamodb.AttributeType_STRING},
		Billing:             awsdynamodb.Billing_OnDemand(nil),
		Encryption:          awsdynamodb.TableEncryptionV2_AwsManagedKey(),
		TimeToLiveAttribute: jsii.String(RateTableTTLAttribute),
		RemovalPolicy:       awscdk.RemovalPolicy_DESTROY,
	})
	suppress(d.RateTable, false, nagRule{id: "AwsSolutions-DDB3",
		reason: "the table holds request counts per app and 10-second window that expire within the hour: nothing to recover"})
	props.Ingest.Function.AddEnvironment(jsii.String(env.RateTableName), d.RateTable.TableName(), nil)
	allowTable(props.Ingest.Function, []string{"dynamodb:UpdateItem"}, d.RateTable.TableArn())

	// The stage's throttle: the sum of the apps' limits, as the REST stage's.
	rate, burst := props.RateLimit, props.BurstLimit
	if rate == 0 {
		rate = DefaultRateLimit
	}
	if burst == 0 {
		burst = DefaultBurstLimit
	}
	stageRate, stageBurst := 0.0, 0.0
	for _, app := range props.Config.Apps {
		r, b := appThrottle(app, rate, burst)
		stageRate, stageBurst = stageRate+r, stageBurst+b
	}
	stageRate, stageBurst = math.Min(stageRate, appconfig.MaxRateLimit), math.Min(stageBurst, appconfig.MaxBurstLimit)

	d.AccessLogs = awslogs.NewLogGroup(c, jsii.String("AccessLogs"), &awslogs.LogGroupProps{Retention: retention, RemovalPolicy: removal})
	d.Api = awsapigatewayv2.NewHttpApi(c, jsii.String("Api"), &awsapigatewayv2.HttpApiProps{
		Description:        jsii.String("retarget ingest API (HTTP API front door)"),
		CreateDefaultStage: jsii.Bool(false),
	})
	d.Stage = d.Api.AddStage(jsii.String("Stage"), &awsapigatewayv2.HttpStageOptions{
		StageName:  jsii.String(props.StageName),
		AutoDeploy: jsii.Bool(true),
		Throttle:   &awsapigatewayv2.ThrottleSettings{RateLimit: jsii.Number(stageRate), BurstLimit: jsii.Number(stageBurst)},
	})
	cfnStage := d.Stage.Node().DefaultChild().(awsapigatewayv2.CfnStage)
	cfnStage.SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: d.AccessLogs.LogGroupArn(),
		Format:         jsii.String(httpAccessLogFormat),
	})

	keyAuth := awsapigatewayv2authorizers.NewHttpLambdaAuthorizer(jsii.String("KeyAuthorizer"), d.KeyAuthorizer.Function,
		&awsapigatewayv2authorizers.HttpLambdaAuthorizerProps{
			AuthorizerName:  jsii.String("app-key"),
			IdentitySource:  jsii.Strings(KeyAuthorizerIdentitySource),
			ResponseTypes:   &[]awsapigatewayv2authorizers.HttpLambdaResponseType{awsapigatewayv2authorizers.HttpLambdaResponseType_SIMPLE},
			ResultsCacheTtl: awscdk.Duration_Seconds(jsii.Number(KeyAuthorizerCacheSeconds)),
		})
	var endUserAuth awsapigatewayv2.IHttpRouteAuthorizer = keyAuth
	if d.EndUser.Native {
		endUserAuth = awsapigatewayv2authorizers.NewHttpJwtAuthorizer(jsii.String("EndUserJwt"), jsii.String(d.EndUser.Issuer),
			&awsapigatewayv2authorizers.HttpJwtAuthorizerProps{
				AuthorizerName: jsii.String("end-user"),
				JwtAudience:    jsii.Strings(d.EndUser.Audiences...),
			})
	}
	iamAuth := awsapigatewayv2authorizers.NewHttpIamAuthorizer()
	noAuth := awsapigatewayv2.NewHttpNoneAuthorizer()

	integrations := map[string]awsapigatewayv2.HttpRouteIntegration{}
	integration := func(name string, fn awslambda.IFunction) awsapigatewayv2.HttpRouteIntegration {
		if i, ok := integrations[name]; ok {
			return i
		}
		// Payload 1.0: the handlers read the REST proxy event unchanged (resource, identity
		// of IAM callers, requestContext.authorizer.app).
		i := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String(name+"Integration"), fn,
			&awsapigatewayv2integrations.HttpLambdaIntegrationProps{PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_1_0()})
		integrations[name] = i
		return i
	}

	var wildcards []string
	for _, route := range access.Routes {
		var fn awslambda.IFunction
		switch route.Function {
		case access.FunctionIngest:
			fn = props.Ingest.Function
		case access.FunctionUsersAPI:
			if props.UsersAPI == nil {
				continue
			}
			fn = props.UsersAPI
		default:
			panic(fmt.Errorf("http front door: %s %s is served by %q, which the stack does not declare", route.Method, route.Path, route.Function))
		}
		key := RouteKey(route.Method, route.Path)
		var auth awsapigatewayv2.IHttpRouteAuthorizer
		switch route.Credential {
		case access.Public:
			if _, ok := publicReasons[key]; !ok {
				panic(fmt.Errorf("http front door: public route %s has no stated reason (publicReasons)", key))
			}
			auth = noAuth
		case access.AppKey:
			auth = keyAuth
		case access.EndUser:
			auth = endUserAuth
		case access.IAM:
			auth = iamAuth
			path := pathParameter.ReplaceAllString(route.Path, "*")
			d.BackendPolicyResources = append(d.BackendPolicyResources,
				d.Api.ArnForExecuteApi(jsii.String(route.Method), jsii.String(path), jsii.String(props.StageName)))
			if path != route.Path {
				wildcards = append(wildcards, "/^Resource::arn:[^/]*:execute-api:[^/]+:<[A-Za-z0-9]+>"+
					regexp.QuoteMeta("/"+props.StageName+"/"+route.Method+path)+"$/")
			}
		default:
			panic(fmt.Errorf("http front door: %s has credential %v, which the stack cannot declare", key, route.Credential))
		}
		routes := d.Api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(route.Path),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod(route.Method)},
			Integration: integration(route.Function, fn),
			Authorizer:  auth,
		})
		d.Routes[key] = (*routes)[0]
		if route.Credential == access.Public {
			why := publicReasons[key]
			suppress(d.Routes[key], false, nagRule{id: "AwsSolutions-APIG4", reason: why}, nagRule{id: "AwsSolutions-COG4", reason: why})
		}
	}

	d.BackendPolicy = awsiam.NewManagedPolicy(c, jsii.String("BackendPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String(fmt.Sprintf("Calls the IAM (SigV4) routes of the retarget HTTP API, stage %s: attach to an app backend's role", props.StageName)),
		Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("execute-api:Invoke"),
			Resources: &d.BackendPolicyResources,
		})},
	})
	if len(wildcards) > 0 {
		suppress(d.BackendPolicy, true, nagRule{id: "AwsSolutions-IAM5", appliesTo: wildcards,
			reason: "execute-api:Invoke on single routes of this API and stage; the * in each is the route's {app_user_id} path parameter: a backend acts for any user of its apps, and SigV4 identifies it"})
	}
	return d
}

// httpAccessLogFormat is the HTTP stage's JSON access log line: as the REST one, without the
// caller's IP and user agent, with the app the key authorizer found instead of a key id.
const httpAccessLogFormat = `{"requestId":"$context.requestId","requestTime":"$context.requestTimeEpoch",` +
	`"httpMethod":"$context.httpMethod","routeKey":"$context.routeKey","status":"$context.status",` +
	`"responseLength":"$context.responseLength","responseLatency":"$context.responseLatency",` +
	`"integrationLatency":"$context.integrationLatency","integrationStatus":"$context.integrationStatus",` +
	`"app":"$context.authorizer.app","authorizerError":"$context.authorizer.error",` +
	`"errorMessage":"$context.error.message"}`

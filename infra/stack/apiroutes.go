package stack

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/access"
)

// ApiRoutesProps configures the API's methods.
type ApiRoutesProps struct {
	// Api is the REST API with its ingest function, body validator and model.
	Api *IngestApi
	// UsersAPI serves the users-api routes (/v1/users/..., /v1/me...); nil leaves them out, as
	// a stack without the segment state has none.
	UsersAPI awslambda.IFunction
}

// ApiRoutes declares every method of the API from the access table (access.Routes): each
// route's credential becomes its authorization type and API key requirement, its function
// the Lambda proxy behind it. It also declares the managed policy an app's backend needs to
// call the IAM routes.
type ApiRoutes struct {
	constructs.Construct
	// Methods by RouteKey(method, path), path as in the access table.
	Methods map[string]awsapigateway.Method
	// BackendPolicy allows execute-api:Invoke on exactly the IAM routes of the stage: attach
	// it to the role of the app's backend (or an operator's), which then signs with SigV4.
	BackendPolicy awsiam.ManagedPolicy
	// BackendPolicyResources are the policy's resources, one per IAM route.
	BackendPolicyResources []*string
}

// RouteKey names a route in ApiRoutes.Methods: "GET /v1/health".
func RouteKey(method, path string) string { return method + " " + path }

// eventsBodyRoutes take {"events": [...]}: API Gateway checks that shape before the function
// runs (see IngestApi.EventsBodyModel).
var eventsBodyRoutes = map[string]bool{
	RouteKey("POST", access.PathEvents):       true,
	RouteKey("POST", access.PathServerEvents): true,
}

// publicReasons says why each public route takes no credential; a public route missing here
// fails the synth, so none becomes public without a stated reason.
var publicReasons = map[string]string{
	RouteKey("GET", access.PathHealth):  "GET /v1/health is public by design (load balancers and uptime checks call it without a key); it answers {\"status\":\"ok\"} and reads nothing",
	RouteKey("GET", access.PathOpenAPI): "GET /v1/openapi.json is public by design: the API's published description (embedded in the function), no data",
}

// Why the cdk-nag authorizer rules (AwsSolutions-APIG4: an authorizer; AwsSolutions-COG4: a
// Cognito user pool authorizer) do not fit a route, by credential.
const (
	appKeyAuthReason  = "the caller is a mobile app, not a signed-in person: the route requires the app's API key (x-api-key), which names the app (the function derives the app from the key id, never from the body) and carries the app's usage plan, as event collectors' write keys do; users are identified by pseudonymous keys, not authenticated. The key is not authorisation: it only lets an app send events"
	endUserAuthReason = "the route requires the app's API key (naming the app and its usage plan) and an end-user token (Authorization: Bearer <JWT> from the app's own identity provider, not Cognito), which the users-api function verifies against the provider's JWKS (asymmetric algorithms only, exact issuer and audience, expiry) and answers 401 without; it reaches only the token's own user. Verified in the function rather than by a Lambda authorizer: no authorizer invocation per cache miss, and the same code works behind an HTTP API"
	iamAuthReason     = "the route is authorised by AWS IAM (SigV4, service execute-api): the callers are the app's backend, operators and the CLI, AWS principals allowed by the stack's BackendPolicy, not Cognito users"
)

// pathParameter is an API Gateway path parameter ({app_user_id}).
var pathParameter = regexp.MustCompile(`\{[^}/]+\}`)

// NewApiRoutes declares each route of access.Routes whose function is present, and the
// backend policy over the IAM routes among them.
func NewApiRoutes(scope constructs.Construct, id string, props *ApiRoutesProps) *ApiRoutes {
	if props == nil || props.Api == nil {
		panic(errors.New("api routes: Api is required"))
	}
	api := props.Api
	c := constructs.NewConstruct(scope, jsii.String(id))
	stage := api.StageName

	r := &ApiRoutes{Construct: c, Methods: make(map[string]awsapigateway.Method, len(access.Routes))}
	var wildcards []string // cdk-nag findings of the policy's path parameters, as /regex/
	for _, route := range access.Routes {
		var fn awslambda.IFunction
		switch route.Function {
		case access.FunctionIngest:
			fn = api.Ingest.Function
		case access.FunctionUsersAPI:
			if props.UsersAPI == nil {
				continue // no segment state: no users routes
			}
			fn = props.UsersAPI
		default:
			panic(fmt.Errorf("api routes: %s %s is served by %q, which the stack does not declare", route.Method, route.Path, route.Function))
		}
		key := RouteKey(route.Method, route.Path)
		opts := &awsapigateway.MethodOptions{
			ApiKeyRequired:    jsii.Bool(route.Credential.NeedsAppKey()),
			AuthorizationType: awsapigateway.AuthorizationType_NONE,
		}
		if route.Credential == access.IAM {
			opts.AuthorizationType = awsapigateway.AuthorizationType_IAM
		}
		if eventsBodyRoutes[key] {
			opts.RequestValidator = api.BodyValidator
			opts.RequestModels = &map[string]awsapigateway.IModel{"application/json": api.EventsBodyModel}
		}
		m := api.Api.Root().ResourceForPath(jsii.String(route.Path)).AddMethod(jsii.String(route.Method), lambdaProxy(fn), opts)
		r.Methods[key] = m

		switch route.Credential {
		case access.Public:
			why, ok := publicReasons[key]
			if !ok {
				panic(fmt.Errorf("api routes: public route %s has no stated reason (publicReasons)", key))
			}
			suppress(m, false, nagRule{id: "AwsSolutions-APIG4", reason: why}, nagRule{id: "AwsSolutions-COG4", reason: why})
		case access.AppKey:
			suppress(m, false, nagRule{id: "AwsSolutions-APIG4", reason: appKeyAuthReason}, nagRule{id: "AwsSolutions-COG4", reason: appKeyAuthReason})
		case access.EndUser:
			// No API Gateway authorizer on purpose: the users-api function verifies the token
			// itself. A Lambda authorizer would cost an extra invocation per cache miss (and
			// its cache keys on the token, so nearly every user misses once), and REST's native
			// JWT authorizer does not exist; in the function, the same verification works
			// unchanged behind an HTTP API. The API key still names the app and its plan.
			suppress(m, false, nagRule{id: "AwsSolutions-APIG4", reason: endUserAuthReason}, nagRule{id: "AwsSolutions-COG4", reason: endUserAuthReason})
		case access.IAM:
			// AWS_IAM satisfies APIG4; only the Cognito rule remains.
			suppress(m, false, nagRule{id: "AwsSolutions-COG4", reason: iamAuthReason})
			path := pathParameter.ReplaceAllString(route.Path, "*")
			r.BackendPolicyResources = append(r.BackendPolicyResources,
				api.Api.ArnForExecuteApi(jsii.String(route.Method), jsii.String(path), jsii.String(stage)))
			if path != route.Path {
				// The finding names the API by its logical id, <IngestApi...>; partition, region and
				// account are tokens in the tests and literal values when the CLI knows them.
				wildcards = append(wildcards, "/^Resource::arn:[^/]*:execute-api:[^/]+:<[A-Za-z0-9]+>"+
					regexp.QuoteMeta("/"+stage+"/"+route.Method+path)+"$/")
			}
		default:
			panic(fmt.Errorf("api routes: %s has credential %v, which the stack cannot declare", key, route.Credential))
		}
	}

	// IAM's "*" in a resource also spans "/": DELETE .../v1/users/* covers every DELETE below
	// /v1/users, of which there is one route. The stage is in the ARN, so the policy of a dev
	// stack does not open prod.
	r.BackendPolicy = awsiam.NewManagedPolicy(c, jsii.String("BackendPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String(fmt.Sprintf("Calls the IAM (SigV4) routes of the retarget API, stage %s: attach to an app backend's role", stage)),
		Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("execute-api:Invoke"),
			Resources: &r.BackendPolicyResources,
		})},
	})
	if len(wildcards) > 0 {
		suppress(r.BackendPolicy, true, nagRule{id: "AwsSolutions-IAM5", appliesTo: wildcards,
			reason: "execute-api:Invoke on single routes of this API and stage; the * in each is the route's {app_user_id} path parameter: a backend acts for any user of its apps, and SigV4 identifies it"})
	}
	return r
}

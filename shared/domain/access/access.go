// Package access is the API's authorisation model: every route, the function that serves it and
// the credential it takes. The stack declares each method from this table, the dev stack's
// gateway enforces it, the OpenAPI document's security requirements are checked against it, and
// the authorisation matrix test walks it.
//
// Three callers, three credentials:
//   - the mobile app holds a publishable app key (x-api-key): it may only send events;
//   - the signed-in end user holds, besides the app key, a token (a JWT) from the app's own
//     identity provider: it reaches its own user, nobody else's (/v1/me);
//   - the app's backend, operators and the CLI sign with AWS IAM (SigV4): the privileged routes.
//     They send the app key too: the key names the app (and its usage plan), SigV4 says who
//     calls.
package access

// Credential is what a route takes.
type Credential int

// The credentials.
const (
	// Public routes take nothing.
	Public Credential = iota
	// AppKey routes take the app's publishable key (x-api-key).
	AppKey
	// EndUser routes take the app key and an end-user token (Authorization: Bearer <JWT>).
	EndUser
	// IAM routes take a SigV4 signature (service execute-api) and the app key.
	IAM
)

func (c Credential) String() string {
	switch c {
	case Public:
		return "public"
	case AppKey:
		return "app key"
	case EndUser:
		return "app key + end-user token"
	case IAM:
		return "IAM (SigV4) + app key"
	}
	return "unknown"
}

// NeedsAppKey reports whether the route takes the app key.
func (c Credential) NeedsAppKey() bool { return c != Public }

// Functions serving the routes (their folders under functions/).
const (
	FunctionIngest   = "ingest"
	FunctionUsersAPI = "users-api"
)

// Paths of API v1 (API Gateway resource templates).
const (
	PathEvents       = "/v1/events"
	PathServerEvents = "/v1/server/events"
	PathHealth       = "/v1/health"
	PathOpenAPI      = "/v1/openapi.json"
	PathUserSegments = "/v1/users/{app_user_id}/segments"
	PathUserConsent  = "/v1/users/{app_user_id}/consent"
	PathUser         = "/v1/users/{app_user_id}"
	PathMeSegments   = "/v1/me/segments"
	PathMeConsent    = "/v1/me/consent"
	PathMe           = "/v1/me"
	// PathReportsAudiences is the remarketing report of the key's app (measure.Report).
	PathReportsAudiences = "/v1/reports/audiences"
)

// Route is one method of the API.
type Route struct {
	Method     string
	Path       string
	Function   string
	Credential Credential
}

// Routes is every route of the API.
var Routes = []Route{
	{"POST", PathEvents, FunctionIngest, AppKey},
	{"POST", PathServerEvents, FunctionIngest, IAM},
	{"GET", PathHealth, FunctionIngest, Public},
	{"GET", PathOpenAPI, FunctionIngest, Public},
	{"GET", PathUserSegments, FunctionUsersAPI, IAM},
	{"PUT", PathUserConsent, FunctionUsersAPI, IAM},
	{"DELETE", PathUser, FunctionUsersAPI, IAM},
	{"GET", PathMeSegments, FunctionUsersAPI, EndUser},
	{"PUT", PathMeConsent, FunctionUsersAPI, EndUser},
	{"DELETE", PathMe, FunctionUsersAPI, EndUser},
	{"GET", PathReportsAudiences, FunctionUsersAPI, IAM},
}

// Find returns the route of a method and resource template.
func Find(method, path string) (Route, bool) {
	for _, r := range Routes {
		if r.Method == method && r.Path == path {
			return r, true
		}
	}
	return Route{}, false
}

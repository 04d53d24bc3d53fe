package apigw

import (
	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appkey"
)

// AuthorizerContextApp is the key of the app id in the context the HTTP API's key authorizer
// returns (shared/handlers/keyauthorizer).
const AuthorizerContextApp = "app"

// AuthorizerApp returns the app id the HTTP API's key authorizer put in the request context,
// or "". With integration payload 1.0 API Gateway passes the context as
// requestContext.authorizer.<key>; payload 2.0 nests it under "lambda", which is read too so
// that either integration setting works. Only API Gateway writes requestContext.authorizer (the
// REST door, which has no authorizer, sends none; a client cannot set it), so the app found
// there has been vouched for by the authorizer.
func AuthorizerApp(req events.APIGatewayProxyRequest) string {
	a := req.RequestContext.Authorizer
	if id, ok := a[AuthorizerContextApp].(string); ok {
		return id
	}
	if l, ok := a["lambda"].(map[string]any); ok {
		if id, ok := l[AuthorizerContextApp].(string); ok {
			return id
		}
	}
	return ""
}

// KeyRingApp finds the app of a request by its x-api-key among the accepted keys of ring
// (constant-time, see appkey): on the HTTP door, the routes that API Gateway authorises by IAM
// or by the end-user JWT authorizer, where no key authorizer ran.
func KeyRingApp(req events.APIGatewayProxyRequest, apps *appconfig.Config, ring *appkey.Ring) (*appconfig.App, bool) {
	if ring == nil {
		return nil, false
	}
	id, ok := ring.App(Header(req, HeaderAPIKey))
	if !ok {
		return nil, false
	}
	return apps.App(id)
}

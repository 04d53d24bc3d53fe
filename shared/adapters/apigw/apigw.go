// Package apigw is the API Gateway side of the HTTP handlers: reading a proxy request's
// headers and calling app, and writing JSON responses. Both API handlers (ingest and the users
// routes) answer through it, so every route speaks the same error shape.
package apigw

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// HeaderAPIKey is the header that carries the app's API key.
const HeaderAPIKey = "x-api-key"

// Header returns a request header, matching the name case-insensitively as HTTP does.
func Header(req events.APIGatewayProxyRequest, name string) string {
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	for k, v := range req.MultiValueHeaders {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Authenticate finds the app of a request: from the HTTP API key authorizer's context
// (AuthorizerApp), from the API key id that API Gateway validated (keyIDs), or, in dev, from the
// literal x-api-key (devKeys). Every keyed route uses it.
func Authenticate(req events.APIGatewayProxyRequest, apps *appconfig.Config, keyIDs, devKeys map[string]string) (*appconfig.App, bool) {
	id := AuthorizerApp(req)
	if keyID := req.RequestContext.Identity.APIKeyID; id == "" && keyID != "" {
		id = keyIDs[keyID]
	}
	if id == "" && len(devKeys) > 0 {
		if key := Header(req, HeaderAPIKey); key != "" {
			id = devKeys[key]
		}
	}
	if id == "" {
		return nil, false
	}
	return apps.App(id)
}

// IAMCaller returns who signed the request with AWS IAM: the caller's ARN, else its access key
// id, as API Gateway fills requestContext.identity for a method whose authorisation is AWS_IAM
// once the SigV4 signature checked out. ok is false when the request carries neither: the
// IAM routes refuse it (403) even though API Gateway should never let one through (defence in
// depth against a method deployed without IAM authorisation).
func IAMCaller(req events.APIGatewayProxyRequest) (caller string, ok bool) {
	id := req.RequestContext.Identity
	switch {
	case id.UserArn != "":
		return id.UserArn, true
	case id.AccessKey != "":
		return id.AccessKey, true
	}
	return "", false
}

// RequireIAM is the 403 an IAM route answers a request without an IAM caller.
func RequireIAM() events.APIGatewayProxyResponse {
	return Error(http.StatusForbidden, "this route takes AWS IAM credentials (SigV4, service execute-api) besides the API key")
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header (the scheme
// matched case-insensitively, RFC 9110); ok is false when the header is missing, of another
// scheme, or malformed (empty, or containing spaces).
func BearerToken(req events.APIGatewayProxyRequest) (token string, ok bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(Header(req, "Authorization")), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// JSON is a response with v as its JSON body. A value that cannot be encoded is a 500.
func JSON(status int, v any) events.APIGatewayProxyResponse {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	return events.APIGatewayProxyResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:       string(body),
	}
}

// Error is an error response {"error": msg}.
func Error(status int, msg string) events.APIGatewayProxyResponse {
	return JSON(status, map[string]string{"error": msg})
}

// MethodNotAllowed is a 405 naming the allowed methods in its message and Allow header.
func MethodNotAllowed(allow string) events.APIGatewayProxyResponse {
	r := Error(http.StatusMethodNotAllowed, "method not allowed; use "+allow)
	r.Headers["Allow"] = allow
	return r
}

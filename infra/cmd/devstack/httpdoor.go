package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// KeyAuthorizerFunc is a Lambda REQUEST authorizer of an HTTP API (payload format 2.0, simple
// responses): keyauthorizer.Handler.Handle.
type KeyAuthorizerFunc func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error)

// TokenVerifier checks an end-user token against an issuer (jwtverify.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, appID string, cfg *appconfig.EndUserAuth, token string) (string, error)
}

// HTTPDoor makes a Gateway stand in for the stack's HTTP API front door (`-c api=http`,
// infra/docs/front-door.md; the stack's construct is infra/stack/httpapi.go) instead of the
// REST API. Per route (access.Route.Credential), as the stack declares them:
//
//   - access.AppKey: the key authorizer. A request without x-api-key gets API Gateway's 401
//     {"message":"Unauthorized"} without an invocation; otherwise the answer cached for that key
//     value (the identity source) is used, or KeyAuthorizer is invoked and its answer cached for
//     CacheTTL, allowed or not. Denied: 403 {"message":"Forbidden"}; an authorizer error: 500.
//     Allowed: its context goes into requestContext.authorizer (payload 1.0), so the function
//     reads requestContext.authorizer.app.
//   - access.EndUser: the native JWT authorizer when EndUserJWT is set (a missing or invalid
//     bearer token: 401 {"message":"Unauthorized"}; a valid one: its claims in
//     requestContext.authorizer.claims), else the key authorizer.
//   - access.IAM: the SigV4 signature only (Gateway.SigV4): the app key is the function's to
//     look up.
//   - access.Public: nothing.
//
// There are no request models (the functions check the bodies) and no API keys or usage
// plans: the ingest function limits each app itself. A method and path that is no route gets
// API Gateway's 404 {"message":"Not Found"}: the stack declares no catch-all route.
type HTTPDoor struct {
	// KeyAuthorizer decides the key routes; nil refuses them (500, as a broken authorizer).
	KeyAuthorizer KeyAuthorizerFunc
	// CacheTTL is how long an answer serves the same key (the stack's 300 s); 0: no cache.
	CacheTTL time.Duration
	// EndUserJWT is the issuer, audiences, keys and algorithms of the /v1/me routes' JWT
	// authorizer (stack.EndUserJWTFor); nil: those routes take the key authorizer.
	EndUserJWT *appconfig.EndUserAuth
	// JWT verifies the tokens of EndUserJWT.
	JWT TokenVerifier
	// Now is the clock of the cache (default time.Now).
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedAnswer
	// invocations counts KeyAuthorizer calls (tests).
	invocations int
}

// cachedAnswer is the key authorizer's answer for one key value.
type cachedAnswer struct {
	resp    events.APIGatewayV2CustomAuthorizerSimpleResponse
	expires time.Time
}

// maxCachedKeys bounds the cache: past it, expired answers are dropped (a load test with
// random keys must not grow it forever).
const maxCachedKeys = 10000

// Answers of an HTTP API's authorizers and router.
const (
	msgUnauthorized = "Unauthorized"
	msgNotFound     = "Not Found"
	msgServerError  = "Internal Server Error"
)

// authorize checks route's credential on the HTTP door. It returns the authorizer context for
// requestContext.authorizer (nil when none), or the status of the refusal it wrote.
func (d *HTTPDoor) authorize(w http.ResponseWriter, r *http.Request, route access.Route, requestID string, at time.Time) (map[string]any, int) {
	switch route.Credential {
	case access.AppKey:
		return d.keyAuthorize(w, r, route, requestID, at)
	case access.EndUser:
		if d.EndUserJWT != nil {
			return d.jwtAuthorize(w, r)
		}
		return d.keyAuthorize(w, r, route, requestID, at)
	}
	return nil, 0 // IAM (checked by the Gateway) and Public
}

// keyAuthorize runs the key authorizer, or reuses its cached answer for the same key.
func (d *HTTPDoor) keyAuthorize(w http.ResponseWriter, r *http.Request, route access.Route, requestID string, at time.Time) (map[string]any, int) {
	values := r.Header.Values("x-api-key")
	if len(values) == 0 || strings.Join(values, "") == "" {
		// API Gateway refuses a request whose identity source is missing or empty itself.
		return nil, gatewayError(w, http.StatusUnauthorized, msgUnauthorized)
	}
	key := strings.Join(values, ",") // API Gateway's value of a repeated header
	resp, ok := d.cached(key)
	if !ok {
		if d.KeyAuthorizer == nil {
			return nil, gatewayError(w, http.StatusInternalServerError, msgServerError)
		}
		var err error
		resp, err = d.invokeAuthorizer(r.Context(), authorizerRequest(r, route, key, requestID, at))
		if err != nil {
			// Not cached: API Gateway caches answers, not failures.
			return nil, gatewayError(w, http.StatusInternalServerError, msgServerError)
		}
		d.store(key, resp)
	}
	if !resp.IsAuthorized {
		return nil, gatewayError(w, http.StatusForbidden, msgForbidden)
	}
	ctx := make(map[string]any, len(resp.Context))
	for k, v := range resp.Context {
		ctx[k] = v
	}
	return ctx, 0
}

// invokeAuthorizer calls the authorizer; a panic is an error, as for a function.
func (d *HTTPDoor) invokeAuthorizer(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (resp events.APIGatewayV2CustomAuthorizerSimpleResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("key authorizer panicked: %v", p)
		}
	}()
	d.mu.Lock()
	d.invocations++
	d.mu.Unlock()
	return d.KeyAuthorizer(ctx, req)
}

func (d *HTTPDoor) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *HTTPDoor) cached(key string) (events.APIGatewayV2CustomAuthorizerSimpleResponse, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.cache[key]
	if !ok || !d.now().Before(c.expires) {
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, false
	}
	return c.resp, true
}

func (d *HTTPDoor) store(key string, resp events.APIGatewayV2CustomAuthorizerSimpleResponse) {
	if d.CacheTTL <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if d.cache == nil {
		d.cache = map[string]cachedAnswer{}
	}
	if len(d.cache) >= maxCachedKeys {
		for k, c := range d.cache {
			if !now.Before(c.expires) {
				delete(d.cache, k)
			}
		}
	}
	if len(d.cache) < maxCachedKeys {
		d.cache[key] = cachedAnswer{resp: resp, expires: now.Add(d.CacheTTL)}
	}
}

// authorizerRequest is what API Gateway sends a REQUEST authorizer with payload format 2.0 and
// the identity source $request.header.x-api-key: header names lower-cased, repeated headers
// joined with commas.
func authorizerRequest(r *http.Request, route access.Route, key, requestID string, at time.Time) events.APIGatewayV2CustomAuthorizerV2Request {
	headers := make(map[string]string, len(r.Header)+1)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = make(map[string]string, len(q))
		for k, vs := range q {
			query[k] = strings.Join(vs, ",")
		}
	}
	sourceIP := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		sourceIP = host
	}
	routeKey := route.Method + " " + route.Path
	return events.APIGatewayV2CustomAuthorizerV2Request{
		Version:               "2.0",
		Type:                  "REQUEST",
		RouteArn:              "arn:aws:execute-api:us-east-1:123456789012:devstack/dev/" + route.Method + route.Path,
		IdentitySource:        []string{key},
		RouteKey:              routeKey,
		RawPath:               r.URL.Path,
		RawQueryString:        r.URL.RawQuery,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: routeKey, AccountID: "123456789012", Stage: "dev", RequestID: requestID, APIID: "devstack",
			DomainName: r.Host, Time: at.UTC().Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: at.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: sourceIP, UserAgent: r.UserAgent(),
			},
		},
	}
}

// jwtAuthorize is API Gateway's JWT authorizer: a bearer token signed by the issuer's keys,
// from its issuer, for one of its audiences, not expired. The claims go into the context.
func (d *HTTPDoor) jwtAuthorize(w http.ResponseWriter, r *http.Request) (map[string]any, int) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" || d.JWT == nil {
		w.Header().Set("WWW-Authenticate", "Bearer")
		return nil, gatewayError(w, http.StatusUnauthorized, msgUnauthorized)
	}
	if _, err := d.JWT.Verify(r.Context(), "", d.EndUserJWT, token); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return nil, gatewayError(w, http.StatusUnauthorized, msgUnauthorized)
	}
	claims := map[string]any{}
	if parts := strings.Split(token, "."); len(parts) == 3 {
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			json.Unmarshal(raw, &claims)
		}
	}
	return map[string]any{"claims": claims, "scopes": nil}, 0
}

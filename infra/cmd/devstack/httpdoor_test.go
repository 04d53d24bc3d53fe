package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/devissuer"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

const devConfig = "../../config/apps.dev.json"

// httpGateway is accessGateway with the HTTP door of the dev config (newHTTPDoor: the real key
// authorizer over the dev keys, the dev issuer's JWT authorizer) at a clock the test moves.
func httpGateway(t *testing.T, now *time.Time) (*httptest.Server, *[]invocation, *HTTPDoor) {
	t.Helper()
	// The dev issuer's keys, where the JWT authorizer fetches them.
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(devissuer.JWKS())
	}))
	t.Cleanup(jwks.Close)
	apps, err := env.LoadApps(devConfig)
	if err != nil {
		t.Fatal(err)
	}
	door, stop, err := newHTTPDoor(context.Background(), settings{ConfigFile: devConfig}, apps, jwks.URL+devissuer.JWKSPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	door.Now = func() time.Time { return *now }
	srv, calls := accessGateway(t, *now)
	g := srv.Config.Handler.(*Gateway)
	g.HTTP = door
	g.APIKeys = nil // the HTTP door has no API Gateway keys: the authorizer decides
	g.Models = map[string]func([]byte) bool{"POST " + access.PathEvents: func([]byte) bool { return false }}
	g.ModelError = `{"error":"model"}`
	g.SigV4.Now = func() time.Time { return *now }
	return srv, calls, door
}

func TestHTTPDoorEnforcesAccess(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	const key = "dev-api-key" // sample-shop's dev_value
	token, err := devissuer.Mint("sample-shop", "u-1", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	otherAud, err := devissuer.Mint("not-an-app", "u-1", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	unauthorized, forbidden, notFound := `{"message":"Unauthorized"}`, `{"message":"Forbidden"}`, `{"message":"Not Found"}`
	events := `{"events":[]}`
	tests := []struct {
		name       string
		req        gwRequest
		wantStatus int
		wantBody   string // the gateway's answer; "" when the function answers
		wantFn     string
		wantApp    string // requestContext.authorizer.app
		wantClaims bool   // requestContext.authorizer.claims (the JWT authorizer's)
		wantIAM    bool
	}{
		{name: "public route", req: gwRequest{method: "GET", path: "/v1/health"}, wantStatus: 200, wantFn: access.FunctionIngest},
		{name: "key route without a key", req: gwRequest{method: "POST", path: "/v1/events", body: events}, wantStatus: 401, wantBody: unauthorized},
		{name: "key route with an empty key", req: gwRequest{method: "POST", path: "/v1/events", body: events,
			after: func(r *http.Request) { r.Header.Set("x-api-key", "") }}, wantStatus: 401, wantBody: unauthorized},
		{name: "key route with an unknown key", req: gwRequest{method: "POST", path: "/v1/events", body: events, key: "guess"}, wantStatus: 403, wantBody: forbidden},
		// No request model on the HTTP door: the body reaches the function, whose check answers.
		{name: "key route with the key", req: gwRequest{method: "POST", path: "/v1/events", body: events, key: key}, wantStatus: 200,
			wantFn: access.FunctionIngest, wantApp: "sample-shop"},
		{name: "end-user route with a token", req: gwRequest{method: "GET", path: "/v1/me/segments", key: key, bearer: token}, wantStatus: 200,
			wantFn: access.FunctionUsersAPI, wantClaims: true},
		{name: "end-user route with a token, no key", req: gwRequest{method: "GET", path: "/v1/me/segments", bearer: token}, wantStatus: 200,
			wantFn: access.FunctionUsersAPI, wantClaims: true}, // the JWT authorizer only: the function wants the key
		{name: "end-user route without a token", req: gwRequest{method: "GET", path: "/v1/me/segments", key: key}, wantStatus: 401, wantBody: unauthorized},
		{name: "end-user route with a forged token", req: gwRequest{method: "GET", path: "/v1/me/segments", key: key, bearer: token[:len(token)-4] + "AAAA"},
			wantStatus: 401, wantBody: unauthorized},
		{name: "end-user route, token for another audience", req: gwRequest{method: "GET", path: "/v1/me/segments", key: key, bearer: otherAud},
			wantStatus: 401, wantBody: unauthorized},
		{name: "IAM route unsigned", req: gwRequest{method: "GET", path: "/v1/users/u-1/segments", key: key}, wantStatus: 403,
			wantBody: `{"message":"Missing Authentication Token"}`},
		// IAM only: the key is the function's to look up, the authorizer does not run.
		{name: "IAM route signed without a key", req: gwRequest{method: "GET", path: "/v1/users/u-1/segments", sign: true}, wantStatus: 200,
			wantFn: access.FunctionUsersAPI, wantIAM: true},
		{name: "server events signed with an unknown key", req: gwRequest{method: "POST", path: "/v1/server/events", body: events, key: "guess", sign: true},
			wantStatus: 200, wantFn: access.FunctionIngest, wantIAM: true},
		// No catch-all route on the HTTP API: its router answers.
		{name: "method without a route", req: gwRequest{method: "GET", path: "/v1/events", key: key}, wantStatus: 404, wantBody: notFound},
		{name: "path without a route", req: gwRequest{method: "GET", path: "/v2/x"}, wantStatus: 404, wantBody: notFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls, _ := httpGateway(t, &now)
			status, body := tc.req.do(t, srv, now)
			if status != tc.wantStatus || (tc.wantBody != "" && body != tc.wantBody) {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.wantStatus, tc.wantBody)
			}
			if tc.wantFn == "" {
				if len(*calls) > 0 {
					t.Fatalf("a refused request reached %s", (*calls)[0].function)
				}
				return
			}
			if len(*calls) != 1 || (*calls)[0].function != tc.wantFn {
				t.Fatalf("calls %v, want one to %s", *calls, tc.wantFn)
			}
			req := (*calls)[0].req
			if got := apigw.AuthorizerApp(req); got != tc.wantApp {
				t.Errorf("requestContext.authorizer.app %q, want %q (authorizer %v)", got, tc.wantApp, req.RequestContext.Authorizer)
			}
			claims, _ := req.RequestContext.Authorizer["claims"].(map[string]any)
			if tc.wantClaims != (claims != nil) || (claims != nil && claims["sub"] != "u-1") {
				t.Errorf("authorizer %v, want claims: %v", req.RequestContext.Authorizer, tc.wantClaims)
			}
			if got := req.RequestContext.Identity.UserArn != ""; got != tc.wantIAM {
				t.Errorf("IAM caller in the context: %v, want %v", got, tc.wantIAM)
			}
		})
	}
}

// The authorizer runs once per key value and cache period: a cached answer, allowed or not,
// serves that key only, and expires after 300 s.
func TestHTTPDoorCachesPerKey(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	srv, calls, door := httpGateway(t, &now)
	var (
		mu   sync.Mutex
		seen []string
	)
	real := door.KeyAuthorizer
	door.KeyAuthorizer = func(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
		mu.Lock()
		seen = append(seen, req.IdentitySource[0])
		mu.Unlock()
		if req.Version != "2.0" || req.Type != "REQUEST" || req.RouteKey != "POST /v1/events" || req.Headers["x-api-key"] != req.IdentitySource[0] {
			t.Errorf("authorizer request %+v", req)
		}
		return real(ctx, req)
	}
	post := func(key string) int {
		status, _ := gwRequest{method: "POST", path: "/v1/events", body: `{}`, key: key}.do(t, srv, now)
		return status
	}
	for _, step := range []struct {
		key        string
		after      time.Duration
		wantStatus int
		wantCalls  int // authorizer invocations so far
	}{
		{"dev-api-key", 0, 200, 1},
		{"dev-api-key", time.Minute, 200, 1},
		{"guess", 0, 403, 2},
		{"guess", time.Minute, 403, 2},                          // a denial is cached too
		{"dev-api-keY", 0, 403, 3},                              // another key: its own answer
		{"dev-api-key", 2*time.Minute + 59*time.Second, 200, 3}, // 299 s after the first answer
		{"dev-api-key", time.Second, 200, 4},                    // 300 s: expired, asked again
	} {
		now = now.Add(step.after)
		if got := post(step.key); got != step.wantStatus {
			t.Fatalf("%s at +%s: status %d, want %d", step.key, step.after, got, step.wantStatus)
		}
		if door.invocations != step.wantCalls {
			t.Fatalf("%s at +%s: %d authorizer invocations, want %d (keys %q)", step.key, step.after, door.invocations, step.wantCalls, seen)
		}
	}
	if len(*calls) != 4 {
		t.Errorf("%d function calls, want 4", len(*calls))
	}
}

// A failing authorizer is API Gateway's 500, and its failure is not cached.
func TestHTTPDoorAuthorizerFailure(t *testing.T) {
	now := time.Now().UTC()
	srv, calls, door := httpGateway(t, &now)
	fail := true
	real := door.KeyAuthorizer
	door.KeyAuthorizer = func(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
		if fail {
			panic("boom")
		}
		return real(ctx, req)
	}
	q := gwRequest{method: "POST", path: "/v1/events", body: `{}`, key: "dev-api-key"}
	if status, body := q.do(t, srv, now); status != 500 || body != `{"message":"Internal Server Error"}` || len(*calls) != 0 {
		t.Fatalf("got %d %s (%d calls), want 500 and no call", status, body, len(*calls))
	}
	fail = false
	if status, body := q.do(t, srv, now); status != 200 {
		t.Fatalf("after the failure: %d %s", status, body)
	}
}

// DEV_API_KEY replaces the first app's dev key in the authorizer's ring, as in the functions.
func TestNewHTTPDoorKeys(t *testing.T) {
	apps, err := env.LoadApps(devConfig)
	if err != nil {
		t.Fatal(err)
	}
	door, stop, err := newHTTPDoor(context.Background(), settings{ConfigFile: devConfig, APIKey: "my-own-key"}, apps, "http://127.0.0.1:1/jwks", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for key, want := range map[string]bool{"my-own-key": true, "dev-api-key": false} {
		resp, err := door.KeyAuthorizer(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{IdentitySource: []string{key}})
		if err != nil || resp.IsAuthorized != want {
			t.Errorf("key %q: authorized %v (%v), want %v", key, resp.IsAuthorized, err, want)
		}
	}
	if door.CacheTTL != 300*time.Second {
		t.Errorf("cache TTL %s, want 300 s", door.CacheTTL)
	}
}

func TestDevEndUserJWT(t *testing.T) {
	cfg := &appconfig.Config{Apps: []appconfig.App{{ID: "b"}, {ID: "a"}}}
	if got := devEndUserJWT(cfg, "http://x/jwks"); got != nil {
		t.Errorf("no app with end-user tokens: %+v, want nil (the key authorizer)", got)
	}
	cfg.Apps[0].Auth.EndUser = &appconfig.EndUserAuth{Issuer: "https://elsewhere", Algorithms: []string{"ES256"}}
	cfg.Apps[1].Auth.EndUser = &appconfig.EndUserAuth{Issuer: "https://other"}
	got := devEndUserJWT(cfg, "http://x/jwks")
	if got == nil || got.Issuer != devissuer.Issuer || strings.Join(got.Audiences, ",") != "a,b" || got.JWKSURL != "http://x/jwks" {
		t.Errorf("got %+v, want the dev issuer for audiences a,b", got)
	}
}

func TestFrontDoorSetting(t *testing.T) {
	envOf := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for v, want := range map[string]string{"": devenv.FrontDoorREST, "rest": devenv.FrontDoorREST, "http": devenv.FrontDoorHTTP} {
		s, err := parseSettings(nil, envOf(map[string]string{EnvFrontDoor: v}), io.Discard)
		if err != nil || s.FrontDoor != want {
			t.Errorf("%s=%q: %q, %v; want %q", EnvFrontDoor, v, s.FrontDoor, err, want)
		}
	}
	for _, v := range []string{"HTTP", "websocket", " http"} {
		if _, err := parseSettings(nil, envOf(map[string]string{EnvFrontDoor: v}), io.Discard); err == nil || !strings.Contains(err.Error(), EnvFrontDoor) {
			t.Errorf("%s=%q accepted: %v", EnvFrontDoor, v, err)
		}
	}
}

// The ingest function's config reaches DynamoDB (the rate counter) at dynalite and Kinesis at
// kinesalite; a shell's AWS_ENDPOINT_URL, which would defeat that, is refused.
func TestIngestAWSEndpoints(t *testing.T) {
	for _, v := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KINESIS"} {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)
	}
	kinesisCfg, err := emulators.AWSConfig(context.Background(), "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ingestAWS(kinesisCfg, "http://127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(dynamodb.NewFromConfig(cfg).Options().BaseEndpoint); got != "http://127.0.0.1:2" {
		t.Errorf("DynamoDB endpoint %q, want dynalite's", got)
	}
	if got := aws.ToString(kinesis.NewFromConfig(cfg).Options().BaseEndpoint); got != "http://127.0.0.1:1" {
		t.Errorf("Kinesis endpoint %q, want kinesalite's", got)
	}
	if len(kinesisCfg.ConfigSources) != 0 {
		t.Error("ingestAWS changed the config it was given")
	}
	os.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:3")
	if _, err := ingestAWS(kinesisCfg, "http://127.0.0.1:2"); err == nil || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL") {
		t.Errorf("AWS_ENDPOINT_URL set: %v", err)
	}
}

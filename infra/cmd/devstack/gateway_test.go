package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/sandbox/sigv4"
)

// capture returns a Gateway whose function records the request it got and answers resp.
func capture(resp events.APIGatewayProxyResponse, err error) (*Gateway, *events.APIGatewayProxyRequest) {
	var got events.APIGatewayProxyRequest
	g := &Gateway{
		Function: func(_ context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
			got = req
			return resp, err
		},
		// Public: these tests are about the translation; TestGatewayEnforcesAccess about access.
		Routes: []access.Route{
			{Method: "POST", Path: "/v1/events", Credential: access.Public},
			{Method: "GET", Path: "/v1/health", Credential: access.Public},
			{Method: "GET", Path: "/v1/users/{app_user_id}/segments", Credential: access.Public},
		},
		Stage:   "dev",
		Timeout: time.Second,
	}
	return g, &got
}

func TestGatewayTranslatesRequests(t *testing.T) {
	binary := []byte{0xff, 0xfe, 0x00, 'x'}
	tests := []struct {
		name         string
		method, url  string
		body         []byte
		headers      [][2]string
		wantResource string
		wantParams   map[string]string
		wantBody     string
		wantBase64   bool
		wantQuery    map[string]string
		wantMultiQ   map[string][]string
	}{
		{
			name: "events", method: "POST", url: "/v1/events", body: []byte(`{"events":[]}`),
			headers:      [][2]string{{"x-api-key", "k1"}, {"Content-Type", "application/json"}},
			wantResource: "/v1/events", wantBody: `{"events":[]}`,
		},
		{
			name: "health with query", method: "GET", url: "/v1/health?a=1&a=2&b=x",
			wantResource: "/v1/health",
			wantQuery:    map[string]string{"a": "2", "b": "x"},
			wantMultiQ:   map[string][]string{"a": {"1", "2"}, "b": {"x"}},
		},
		{
			name: "path parameter", method: "GET", url: "/v1/users/u-1/segments",
			wantResource: "/v1/users/{app_user_id}/segments", wantParams: map[string]string{"app_user_id": "u-1"},
		},
		{
			name: "unknown route goes to the function", method: "GET", url: "/v2/nothing/here",
			wantResource: "/{proxy+}", wantParams: map[string]string{"proxy": "v2/nothing/here"},
		},
		{
			name: "trailing segment is another route", method: "GET", url: "/v1/health/extra",
			wantResource: "/{proxy+}", wantParams: map[string]string{"proxy": "v1/health/extra"},
		},
		{
			name: "non-UTF-8 body is base64", method: "POST", url: "/v1/events", body: binary,
			wantResource: "/v1/events", wantBody: base64.StdEncoding.EncodeToString(binary), wantBase64: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, got := capture(events.APIGatewayProxyResponse{StatusCode: 200}, nil)
			r := httptest.NewRequest(tc.method, "http://127.0.0.1:3000"+tc.url, bytes.NewReader(tc.body))
			r.RemoteAddr = "127.0.0.1:54321"
			for _, h := range tc.headers {
				r.Header.Add(h[0], h[1])
			}
			r.Header.Add("X-Multi", "one")
			r.Header.Add("X-Multi", "two")
			w := httptest.NewRecorder()
			g.ServeHTTP(w, r)

			if w.Code != 200 {
				t.Fatalf("status %d, body %s", w.Code, w.Body)
			}
			if got.Resource != tc.wantResource || got.RequestContext.ResourcePath != tc.wantResource {
				t.Errorf("resource %q / %q, want %q", got.Resource, got.RequestContext.ResourcePath, tc.wantResource)
			}
			if !reflect.DeepEqual(got.PathParameters, tc.wantParams) {
				t.Errorf("path parameters %v, want %v", got.PathParameters, tc.wantParams)
			}
			if got.Path != r.URL.Path || got.HTTPMethod != tc.method || got.RequestContext.HTTPMethod != tc.method {
				t.Errorf("path %q method %q, want %q %q", got.Path, got.HTTPMethod, r.URL.Path, tc.method)
			}
			if got.Body != tc.wantBody || got.IsBase64Encoded != tc.wantBase64 {
				t.Errorf("body %q base64 %v, want %q %v", got.Body, got.IsBase64Encoded, tc.wantBody, tc.wantBase64)
			}
			if !reflect.DeepEqual(got.QueryStringParameters, tc.wantQuery) || !reflect.DeepEqual(got.MultiValueQueryStringParameters, tc.wantMultiQ) {
				t.Errorf("query %v / %v, want %v / %v", got.QueryStringParameters, got.MultiValueQueryStringParameters, tc.wantQuery, tc.wantMultiQ)
			}
			for _, h := range tc.headers {
				if v := header(got, h[0]); v != h[1] {
					t.Errorf("header %s = %q, want %q", h[0], v, h[1])
				}
			}
			if v := got.Headers["X-Multi"]; v != "two" {
				t.Errorf("headers[X-Multi] = %q, want the last value", v)
			}
			if v := got.MultiValueHeaders["X-Multi"]; !reflect.DeepEqual(v, []string{"one", "two"}) {
				t.Errorf("multiValueHeaders[X-Multi] = %q", v)
			}
			for name, want := range map[string]string{"Host": "127.0.0.1:3000", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Port": "3000", "X-Forwarded-Proto": "http"} {
				if v := got.Headers[name]; v != want {
					t.Errorf("headers[%s] = %q, want %q", name, v, want)
				}
			}
			rc := got.RequestContext
			if rc.Stage != "dev" || rc.Identity.SourceIP != "127.0.0.1" || rc.Identity.APIKeyID != "" || rc.Path != "/dev"+r.URL.Path {
				t.Errorf("request context %+v", rc)
			}
			if len(rc.RequestID) != 36 || w.Header().Get("X-Amzn-Requestid") != rc.RequestID {
				t.Errorf("request id %q, response header %q", rc.RequestID, w.Header().Get("X-Amzn-Requestid"))
			}
		})
	}
}

func header(req *events.APIGatewayProxyRequest, name string) string {
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func TestGatewayWritesResponses(t *testing.T) {
	tests := []struct {
		name       string
		resp       events.APIGatewayProxyResponse
		err        error
		panics     bool
		wantStatus int
		wantBody   string
		wantHeader map[string][]string
	}{
		{
			name: "json with merged headers",
			resp: events.APIGatewayProxyResponse{
				StatusCode:        202,
				Headers:           map[string]string{"Content-Type": "application/json", "Set-Cookie": "a=1"},
				MultiValueHeaders: map[string][]string{"Set-Cookie": {"a=1", "b=2"}},
				Body:              `{"accepted":1}`,
			},
			wantStatus: 202, wantBody: `{"accepted":1}`,
			wantHeader: map[string][]string{"Content-Type": {"application/json"}, "Set-Cookie": {"a=1", "b=2"}},
		},
		{
			name:       "base64 body is decoded",
			resp:       events.APIGatewayProxyResponse{StatusCode: 200, Body: base64.StdEncoding.EncodeToString([]byte("raw\xff")), IsBase64Encoded: true},
			wantStatus: 200, wantBody: "raw\xff",
		},
		{name: "function error is a 502", err: errors.New("boom"), wantStatus: 502, wantBody: `{"message":"Internal server error"}`},
		{name: "panic is a 502", panics: true, wantStatus: 502, wantBody: `{"message":"Internal server error"}`},
		{name: "no status code is a 502", resp: events.APIGatewayProxyResponse{Body: "x"}, wantStatus: 502, wantBody: `{"message":"Internal server error"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := capture(tc.resp, tc.err)
			if tc.panics {
				g.Function = func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
					panic("handler bug")
				}
			}
			var reported error
			g.Errors = func(_ string, err error) { reported = err }
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/v1/health", nil))
			if w.Code != tc.wantStatus || w.Body.String() != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Body, tc.wantStatus, tc.wantBody)
			}
			for k, want := range tc.wantHeader {
				if got := w.Header().Values(k); !reflect.DeepEqual(got, want) {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if (w.Code == 502) != (reported != nil) {
				t.Errorf("reported error %v for status %d", reported, w.Code)
			}
		})
	}
}

func TestGatewayBodyLimit(t *testing.T) {
	called := false
	g := &Gateway{Function: func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		called = true
		return events.APIGatewayProxyResponse{StatusCode: 200}, nil
	}}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("POST", "/v1/events", bytes.NewReader(make([]byte, MaxGatewayBody+1))))
	if w.Code != http.StatusRequestEntityTooLarge || called {
		t.Fatalf("status %d (function called: %v), want 413 from the gateway", w.Code, called)
	}
	w = httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("POST", "/v1/events", bytes.NewReader(make([]byte, MaxGatewayBody))))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d for a body of exactly the limit, want 200", w.Code)
	}
}

func TestGatewayInvocationOutlivesClient(t *testing.T) {
	var deadline time.Time
	var ctxErr error
	g := &Gateway{
		Timeout: 5 * time.Second,
		Function: func(ctx context.Context, _ events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
			deadline, _ = ctx.Deadline()
			ctxErr = ctx.Err()
			return events.APIGatewayProxyResponse{StatusCode: 200}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is already gone
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/health", nil).WithContext(ctx))
	if ctxErr != nil {
		t.Errorf("function context: %v, want it alive (Lambda does not cancel when the client leaves)", ctxErr)
	}
	if left := time.Until(deadline); left < 4*time.Second || left > 5*time.Second {
		t.Errorf("function deadline in %s, want ~5s (the function timeout)", left)
	}
}

func TestLoopbackAddr(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{in: "127.0.0.1:3000", want: "127.0.0.1:3000"},
		{in: "127.0.0.1:0", want: "127.0.0.1:0"},
		{in: "localhost:3000", want: "127.0.0.1:3000"},
		{in: "[::1]:3000", want: "[::1]:3000"},
		{in: "127.8.9.10:80", want: "127.8.9.10:80"},
		{in: ":3000", wantErr: "every network interface"},
		{in: "0.0.0.0:3000", wantErr: "every network interface"},
		{in: "[::]:3000", wantErr: "every network interface"},
		{in: "192.168.1.5:3000", wantErr: "loopback only"},
		{in: "example.com:3000", wantErr: "loopback only"},
		{in: "127.0.0.1", wantErr: "want host:port"},
		{in: "127.0.0.1:http", wantErr: "port must be a number"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := loopbackAddr(tc.in)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("loopbackAddr(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			case tc.wantErr == "" && (err != nil || got != tc.want):
				t.Fatalf("loopbackAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// accessGateway is a gateway over the API's routes (access.Routes) whose functions record what
// they got: the function's name and the request.
type invocation struct {
	function string
	req      events.APIGatewayProxyRequest
}

func accessGateway(t *testing.T, now time.Time) (*httptest.Server, *[]invocation) {
	t.Helper()
	var calls []invocation
	fn := func(name string) ProxyFunc {
		return func(_ context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
			calls = append(calls, invocation{name, req})
			return events.APIGatewayProxyResponse{StatusCode: 200, Body: `{}`}, nil
		}
	}
	s := settings{AdminAccessKeyID: devenv.AdminAccessKeyID, AdminSecretAccessKey: devenv.AdminSecretAccessKey}
	v := adminVerifier(s)
	v.Now = func() time.Time { return now }
	g := &Gateway{
		Function:  fn("fallback"),
		Functions: map[string]ProxyFunc{access.FunctionIngest: fn(access.FunctionIngest), access.FunctionUsersAPI: fn(access.FunctionUsersAPI)},
		Routes:    access.Routes,
		APIKeys:   map[string]bool{"dev-api-key": true},
		SigV4:     v,
		Stage:     "dev",
		Timeout:   time.Second,
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv, &calls
}

// gwRequest is one request to accessGateway.
type gwRequest struct {
	method, path, body string
	key, bearer        string
	// sign signs with the dev admin credentials (or secret) at signedAt (default now).
	sign     bool
	secret   string
	signedAt time.Time
	// after changes the request once signed.
	after func(*http.Request)
}

func (q gwRequest) do(t *testing.T, srv *httptest.Server, now time.Time) (int, string) {
	t.Helper()
	req, err := http.NewRequest(q.method, srv.URL+q.path, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	if q.body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if q.key != "" {
		req.Header.Set("x-api-key", q.key)
	}
	if q.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+q.bearer)
	}
	if q.sign {
		secret, at := q.secret, q.signedAt
		if secret == "" {
			secret = devenv.AdminSecretAccessKey
		}
		if at.IsZero() {
			at = now
		}
		sum := sha256.Sum256([]byte(q.body))
		creds := aws.Credentials{AccessKeyID: devenv.AdminAccessKeyID, SecretAccessKey: secret}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), sigv4.Service, devenv.APIRegion, at); err != nil {
			t.Fatal(err)
		}
	}
	if q.after != nil {
		q.after(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestGatewayEnforcesAccess(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	const key = "dev-api-key"
	forbidden := `{"message":"Forbidden"}`
	missingToken := `{"message":"Missing Authentication Token"}`
	badSignature := `{"message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}`
	ago := now.Add(-6 * time.Minute).Format(sigv4.TimeFormat)
	expired := `{"message":"Signature expired: ` + ago + ` is now earlier than ` + now.Add(-5*time.Minute).Format(sigv4.TimeFormat) +
		` (` + now.Format(sigv4.TimeFormat) + ` - 5 min.)"}`
	tests := []struct {
		name       string
		req        gwRequest
		wantStatus int
		wantBody   string // the gateway's answer; "" when the function answers
		wantFn     string
		wantIAM    bool // requestContext.identity names the dev admin
	}{
		{name: "public route without credentials", req: gwRequest{method: "GET", path: "/v1/health"}, wantStatus: 200, wantFn: access.FunctionIngest},
		{name: "app key route without a key", req: gwRequest{method: "POST", path: "/v1/events", body: `{"events":[]}`}, wantStatus: 403, wantBody: forbidden},
		{name: "app key route with an unknown key", req: gwRequest{method: "POST", path: "/v1/events", body: `{"events":[]}`, key: "guess"}, wantStatus: 403, wantBody: forbidden},
		{name: "app key route with the key", req: gwRequest{method: "POST", path: "/v1/events", body: `{"events":[]}`, key: key}, wantStatus: 200, wantFn: access.FunctionIngest},
		{name: "end-user route without a key", req: gwRequest{method: "GET", path: "/v1/me/segments", bearer: "jwt"}, wantStatus: 403, wantBody: forbidden},
		{name: "end-user route with key and token", req: gwRequest{method: "GET", path: "/v1/me/segments", key: key, bearer: "jwt"}, wantStatus: 200, wantFn: access.FunctionUsersAPI},
		{name: "IAM route with a key only", req: gwRequest{method: "GET", path: "/v1/users/u-1/segments", key: key}, wantStatus: 403, wantBody: missingToken},
		{name: "IAM route with an end-user token", req: gwRequest{method: "GET", path: "/v1/users/u-1/segments", key: key, bearer: "jwt"}, wantStatus: 403, wantBody: `{"message":"` + msgIncompleteSignature + `"}`},
		{name: "IAM route signed without a key", req: gwRequest{method: "GET", path: "/v1/users/u-1/segments", sign: true}, wantStatus: 403, wantBody: forbidden},
		{name: "IAM route signed with the wrong secret", req: gwRequest{method: "GET", path: "/v1/users/u-1/segments", key: key, sign: true, secret: "guess"}, wantStatus: 403, wantBody: badSignature},
		{name: "IAM route signed 6 minutes ago", req: gwRequest{method: "GET", path: "/v1/users/u-1/segments", key: key, sign: true, signedAt: now.Add(-6 * time.Minute)}, wantStatus: 403, wantBody: expired},
		{name: "IAM route with a tampered body", req: gwRequest{method: "POST", path: "/v1/server/events", body: `{"events":[1]}`, key: key, sign: true,
			after: func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`{"events":[2]}`)) }}, wantStatus: 403, wantBody: badSignature},
		{name: "IAM route signed, with the key", req: gwRequest{method: "GET", path: "/v1/users/u%20x/segments?x=1", key: key, sign: true}, wantStatus: 200, wantFn: access.FunctionUsersAPI, wantIAM: true},
		{name: "server events signed, with the key", req: gwRequest{method: "POST", path: "/v1/server/events", body: `{"events":[]}`, key: key, sign: true}, wantStatus: 200, wantFn: access.FunctionIngest, wantIAM: true},
		{name: "consent signed, with the key", req: gwRequest{method: "PUT", path: "/v1/users/u-1/consent", body: `{"ads_personalization":true}`, key: key, sign: true}, wantStatus: 200, wantFn: access.FunctionUsersAPI, wantIAM: true},
		// No route for the method: the function answers (405), as the dev stack always did.
		{name: "method without a route", req: gwRequest{method: "GET", path: "/v1/events"}, wantStatus: 200, wantFn: access.FunctionIngest},
		{name: "path without a route", req: gwRequest{method: "GET", path: "/v2/x"}, wantStatus: 200, wantFn: "fallback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := accessGateway(t, now)
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
			id := (*calls)[0].req.RequestContext.Identity
			want := events.APIGatewayRequestIdentity{SourceIP: id.SourceIP, UserAgent: id.UserAgent}
			if tc.wantIAM {
				want.AccessKey, want.UserArn, want.Caller, want.User, want.AccountID = devenv.AdminAccessKeyID, devenv.AdminUserARN, devenv.AdminCaller, devenv.AdminCaller, "000000000000"
			}
			if id != want {
				t.Errorf("identity %+v, want %+v", id, want)
			}
		})
	}
}

// Every route of the API reaches its function once its credential is given.
func TestGatewayServesEveryRoute(t *testing.T) {
	now := time.Now().UTC()
	for _, rt := range access.Routes {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			srv, calls := accessGateway(t, now)
			q := gwRequest{method: rt.Method, path: strings.ReplaceAll(rt.Path, "{app_user_id}", "u-1")}
			if rt.Credential.NeedsAppKey() {
				q.key = "dev-api-key"
			}
			q.sign = rt.Credential == access.IAM
			if status, body := q.do(t, srv, now); status != 200 {
				t.Fatalf("status %d %s", status, body)
			}
			if len(*calls) != 1 || (*calls)[0].function != rt.Function || (*calls)[0].req.Resource != rt.Path {
				t.Fatalf("calls %+v, want one to %s for %s", *calls, rt.Function, rt.Path)
			}
		})
	}
}

// ViaJSON hands the function its request as JSON, as the Lambda runtime does, and brings back
// its answer and its errors unchanged.
func TestViaJSON(t *testing.T) {
	req := events.APIGatewayProxyRequest{Resource: "/v1/events", Path: "/v1/events", HTTPMethod: "POST",
		Headers: map[string]string{"x-api-key": "k"}, Body: `{"events":[{"event_name":"a\"b<&>"}]}`,
		RequestContext: events.APIGatewayProxyRequestContext{RequestID: "r-1", Identity: events.APIGatewayRequestIdentity{APIKeyID: "id"}}}
	var got events.APIGatewayProxyRequest
	want := events.APIGatewayProxyResponse{StatusCode: 202, Headers: map[string]string{"Content-Type": "application/json"}, Body: `{"accepted":1}`}
	fn := ViaJSON(apigw.ProxyHandler(func(_ context.Context, r events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		got = r
		if r.Path == "/fail" {
			return events.APIGatewayProxyResponse{}, errors.New("boom")
		}
		return want, nil
	}))
	resp, err := fn(context.Background(), req)
	if err != nil || !reflect.DeepEqual(resp, want) || !reflect.DeepEqual(got, req) {
		t.Fatalf("got %+v, %v for %+v\nwant %+v for %+v", resp, err, got, want, req)
	}
	req.Path = "/fail"
	if _, err := fn(context.Background(), req); err == nil || err.Error() != "boom" {
		t.Fatalf("error %v, want boom", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// capture returns a Gateway whose function records the request it got and answers resp.
func capture(resp events.APIGatewayProxyResponse, err error) (*Gateway, *events.APIGatewayProxyRequest) {
	var got events.APIGatewayProxyRequest
	g := &Gateway{
		Function: func(_ context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
			got = req
			return resp, err
		},
		Routes:  []string{"/v1/events", "/v1/health", "/v1/users/{app_user_id}/segments"},
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

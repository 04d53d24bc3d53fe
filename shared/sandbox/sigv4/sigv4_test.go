package sigv4

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testKey    = "AKIDTEST"
	testSecret = "test-secret"
	testARN    = "arn:aws:iam::000000000000:user/test-admin"
)

var signedAt = time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)

// verified is what the test server's verifier said about one request.
type verified struct {
	id  Identity
	err error
}

// server verifies every request it gets with a verifier whose clock reads now.
func server(t *testing.T, now time.Time) (*httptest.Server, chan verified) {
	t.Helper()
	v := &Verifier{
		Credentials: map[string]Credential{testKey: {SecretAccessKey: testSecret, UserARN: testARN, Caller: "AIDATEST"}},
		Now:         func() time.Time { return now },
	}
	got := make(chan verified, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		id, err := v.Verify(r.Context(), r, body)
		got <- verified{id, err}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// signed is a request signed by the SDK's signer as an SDK client signs it.
type signed struct {
	method, path string
	body         string
	headers      map[string]string
	// key, secret, region, service, at default to the test credentials, us-east-1,
	// execute-api and signedAt.
	key, secret, region, service string
	at                           time.Time
	contentSHA                   bool // send X-Amz-Content-Sha256 (signed)
	// after changes the request once signed (tampering).
	after func(r *http.Request)
}

func (s signed) request(t *testing.T, base string) *http.Request {
	t.Helper()
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	at := s.at
	if at.IsZero() {
		at = signedAt
	}
	req, err := http.NewRequest(s.method, base+s.path, strings.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	if s.body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256([]byte(s.body))
	hash := hex.EncodeToString(sum[:])
	if s.contentSHA {
		req.Header.Set(HeaderContentSHA256, hash)
	}
	creds := aws.Credentials{AccessKeyID: or(s.key, testKey), SecretAccessKey: or(s.secret, testSecret)}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, or(s.service, Service), or(s.region, DefaultRegion), at); err != nil {
		t.Fatal(err)
	}
	if s.after != nil {
		s.after(req)
	}
	return req
}

func send(t *testing.T, srv *httptest.Server, got chan verified, req *http.Request) verified {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return <-got
}

func TestVerifyAcceptsWhatTheSDKSigns(t *testing.T) {
	tests := []struct {
		name string
		req  signed
		now  time.Time
	}{
		{name: "GET with a query string", req: signed{method: "GET", path: "/v1/users/u-1/segments?b=2&a=1&a=0&empty=&sp=a%20b"}},
		{name: "PUT with a body", req: signed{method: "PUT", path: "/v1/users/u-1/consent", body: `{"ads_personalization":true}`,
			headers: map[string]string{"Content-Type": "application/json", "x-api-key": "dev-api-key"}}},
		{name: "POST with X-Amz-Content-Sha256", req: signed{method: "POST", path: "/v1/server/events", body: `{"events":[]}`, contentSHA: true}},
		{name: "path parameter that needs escaping", req: signed{method: "GET", path: "/v1/users/a%2Fb%20c%C3%A9~!*'()/segments"}},
		{name: "DELETE without a body", req: signed{method: "DELETE", path: "/v1/users/%E2%9C%93"}},
		{name: "unsigned headers added later are ignored", req: signed{method: "GET", path: "/v1/health",
			after: func(r *http.Request) {
				r.Header.Set("X-Forwarded-For", "10.0.0.1")
				r.Header.Set("User-Agent", "other")
			}}},
		{name: "signed 4 minutes ago", now: signedAt.Add(4 * time.Minute), req: signed{method: "GET", path: "/v1/health"}},
		{name: "signed 4 minutes ahead", now: signedAt.Add(-4 * time.Minute), req: signed{method: "GET", path: "/v1/health"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = signedAt.Add(time.Second)
			}
			srv, got := server(t, now)
			v := send(t, srv, got, tc.req.request(t, srv.URL))
			if v.err != nil {
				t.Fatalf("refused: %v", v.err)
			}
			if want := (Identity{AccessKeyID: testKey, UserARN: testARN, Caller: "AIDATEST"}); v.id != want {
				t.Errorf("identity %+v, want %+v", v.id, want)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	setAuth := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", v) }
	}
	put := signed{method: "PUT", path: "/v1/users/u-1/consent", body: `{"ads_personalization":true}`}
	tests := []struct {
		name string
		req  signed
		now  time.Time
		want error
	}{
		{"no Authorization", signed{method: "GET", path: "/v1/health", after: func(r *http.Request) { r.Header.Del("Authorization") }}, time.Time{}, ErrMissing},
		{"bearer token", signed{method: "GET", path: "/v1/health", after: setAuth("Bearer abc")}, time.Time{}, ErrMalformed},
		{"no Signature", signed{method: "GET", path: "/v1/health",
			after: setAuth("AWS4-HMAC-SHA256 Credential=" + testKey + "/20260309/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date")}, time.Time{}, ErrMalformed},
		{"short credential", signed{method: "GET", path: "/v1/health",
			after: setAuth("AWS4-HMAC-SHA256 Credential=" + testKey + "/20260309/us-east-1, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("0", 64))}, time.Time{}, ErrMalformed},
		{"no X-Amz-Date", signed{method: "GET", path: "/v1/health", after: func(r *http.Request) { r.Header.Del(HeaderDate) }}, time.Time{}, ErrMalformed},
		{"unknown access key", signed{method: "GET", path: "/v1/health", key: "AKIDOTHER"}, time.Time{}, ErrUnknownKey},
		{"wrong service", signed{method: "GET", path: "/v1/health", service: "s3"}, time.Time{}, ErrService},
		{"wrong region", signed{method: "GET", path: "/v1/health", region: "eu-west-1"}, time.Time{}, ErrRegion},
		{"credential date is not X-Amz-Date's", signed{method: "GET", path: "/v1/health",
			after: func(r *http.Request) { r.Header.Set(HeaderDate, signedAt.Add(24*time.Hour).Format(TimeFormat)) }}, signedAt.Add(24 * time.Hour), ErrDate},
		{"signed 6 minutes ago", signed{method: "GET", path: "/v1/health"}, signedAt.Add(6 * time.Minute), ErrExpired},
		{"signed 6 minutes ahead", signed{method: "GET", path: "/v1/health"}, signedAt.Add(-6 * time.Minute), ErrExpired},
		{"wrong secret", signed{method: "GET", path: "/v1/health", secret: "guess"}, time.Time{}, ErrSignature},
		{"X-Amz-Date moved within the day", signed{method: "GET", path: "/v1/health",
			after: func(r *http.Request) { r.Header.Set(HeaderDate, signedAt.Add(time.Minute).Format(TimeFormat)) }}, time.Time{}, ErrSignature},
		{"tampered body", withAfter(put, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"ads_personalization":false}`))
			r.ContentLength = int64(len(`{"ads_personalization":false}`))
		}), time.Time{}, ErrSignature},
		{"tampered body under X-Amz-Content-Sha256", withAfter(signed{method: put.method, path: put.path, body: put.body, contentSHA: true}, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"ads_personalization":false}`))
			r.ContentLength = int64(len(`{"ads_personalization":false}`))
		}), time.Time{}, ErrPayloadHash},
		{"other path", signed{method: "GET", path: "/v1/users/u-1/segments", after: func(r *http.Request) { r.URL.Path = "/v1/users/u-2/segments" }}, time.Time{}, ErrSignature},
		{"other query", signed{method: "GET", path: "/v1/health?a=1", after: func(r *http.Request) { r.URL.RawQuery = "a=2" }}, time.Time{}, ErrSignature},
		{"other method", signed{method: "GET", path: "/v1/users/u-1", after: func(r *http.Request) { r.Method = "DELETE" }}, time.Time{}, ErrSignature},
		{"signed header changed", signed{method: "GET", path: "/v1/health", headers: map[string]string{"x-api-key": "k1"},
			after: func(r *http.Request) { r.Header.Set("x-api-key", "k2") }}, time.Time{}, ErrSignature},
		{"signed header dropped", signed{method: "GET", path: "/v1/health", headers: map[string]string{"x-api-key": "k1"},
			after: func(r *http.Request) { r.Header.Del("x-api-key") }}, time.Time{}, ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = signedAt
			}
			srv, got := server(t, now)
			v := send(t, srv, got, tc.req.request(t, srv.URL))
			if !errors.Is(v.err, tc.want) {
				t.Fatalf("error %v, want %v", v.err, tc.want)
			}
			for _, other := range []error{ErrMissing, ErrMalformed, ErrUnknownKey, ErrService, ErrRegion, ErrDate, ErrExpired, ErrPayloadHash, ErrSignature} {
				if other != tc.want && errors.Is(v.err, other) {
					t.Errorf("error %v also matches %v", v.err, other)
				}
			}
			if v.id != (Identity{}) {
				t.Errorf("identity %+v for a refused request", v.id)
			}
		})
	}
}

func withAfter(s signed, f func(*http.Request)) signed {
	s.after = f
	return s
}

func TestVerifyDefaultsToUSEast1(t *testing.T) {
	v := &Verifier{Credentials: map[string]Credential{testKey: {SecretAccessKey: testSecret}}, Region: "eu-west-1", Now: func() time.Time { return signedAt }}
	req := signed{method: "GET", path: "/v1/health"}.request(t, "http://127.0.0.1:3000")
	if _, err := v.Verify(context.Background(), req, nil); !errors.Is(err, ErrRegion) {
		t.Errorf("us-east-1 signature against an eu-west-1 verifier: %v, want ErrRegion", err)
	}
	v.Region = ""
	if _, err := v.Verify(context.Background(), req, nil); err != nil {
		t.Errorf("us-east-1 signature against the default region: %v", err)
	}
}

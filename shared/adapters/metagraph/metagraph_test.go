package metagraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

const (
	testToken  = "access-token-234"
	testSecret = "appsecret-123"
	testProof  = "cdfcbc87edc90f8123cd3797a0d6f6f7eedf63d97038a15d1693d297f653d7f2"
)

func TestAppSecretProof(t *testing.T) {
	if got := AppSecretProof(testSecret, testToken); got != testProof {
		t.Fatalf("AppSecretProof = %s, want %s", got, testProof)
	}
}

// captured is what the fake Graph API saw of one request.
type captured struct {
	method, path, rawQuery, contentType string
	body                                []byte
}

// graph is a fake Graph API that records requests and answers with a scripted handler.
type graph struct {
	mu   sync.Mutex
	reqs []captured
	srv  *httptest.Server
}

func newGraph(t *testing.T, answer http.HandlerFunc) *graph {
	t.Helper()
	g := &graph{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.reqs = append(g.reqs, captured{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), b})
		g.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *graph) last(t *testing.T) captured {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.reqs) == 0 {
		t.Fatal("no request reached the fake Graph API")
	}
	return g.reqs[len(g.reqs)-1]
}

func newClient(t *testing.T, g *graph, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: g.srv.URL, AccessToken: testToken, AppSecret: testSecret, HTTPClient: g.srv.Client()}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func events(n int) []json.RawMessage {
	ev := make([]json.RawMessage, n)
	for i := range ev {
		ev[i] = json.RawMessage(fmt.Sprintf(`{"event_name":"Purchase","event_id":"e%d","action_source":"app"}`, i))
	}
	return ev
}

func TestSendEventsSuccess(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App-Usage", `{"call_count":28,"total_time":25,"total_cputime":71}`)
		fmt.Fprint(w, `{"events_received":3,"messages":["hello"],"fbtrace_id":"ABC123"}`)
	})
	c := newClient(t, g, func(c *Config) { c.PartnerAgent = "retarget-1.0" })
	ev := events(3)
	ack, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1234", Events: ev, TestEventCode: "TEST42"})
	if err != nil {
		t.Fatal(err)
	}
	if ack.EventsReceived != 3 || ack.FBTraceID != "ABC123" || len(ack.Messages) != 1 || ack.Messages[0] != "hello" || ack.UsagePct != 71 {
		t.Fatalf("ack = %+v", ack)
	}

	req := g.last(t)
	if req.method != http.MethodPost || req.path != "/"+DefaultVersion+"/1234/events" {
		t.Fatalf("request %s %s", req.method, req.path)
	}
	if req.contentType != "application/json" {
		t.Fatalf("content type %q", req.contentType)
	}
	var body struct {
		Data          []json.RawMessage `json:"data"`
		AccessToken   string            `json:"access_token"`
		Proof         string            `json:"appsecret_proof"`
		TestEventCode string            `json:"test_event_code"`
		PartnerAgent  string            `json:"partner_agent"`
	}
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	if body.AccessToken != testToken || body.Proof != testProof || body.TestEventCode != "TEST42" || body.PartnerAgent != "retarget-1.0" {
		t.Fatalf("body fields = %+v", body)
	}
	if len(body.Data) != 3 {
		t.Fatalf("data has %d events", len(body.Data))
	}
	for i := range ev {
		if string(body.Data[i]) != string(ev[i]) {
			t.Fatalf("event %d changed: %s != %s", i, body.Data[i], ev[i])
		}
	}
}

func TestOptionalFieldsOmitted(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"events_received":1,"messages":[],"fbtrace_id":"T"}`)
	})
	c := newClient(t, g, func(c *Config) { c.AppSecret = ""; c.Version = "v99.0"; c.BaseURL += "/" })
	if _, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "77", Events: events(1)}); err != nil {
		t.Fatal(err)
	}
	req := g.last(t)
	if req.path != "/v99.0/77/events" {
		t.Fatalf("path %s", req.path)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"appsecret_proof", "test_event_code", "partner_agent"} {
		if _, ok := body[k]; ok {
			t.Errorf("body has %s without a value configured: %s", k, req.body)
		}
	}
}

func TestFormEncoded(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"events_received":2,"fbtrace_id":"T"}`)
	})
	c := newClient(t, g, func(c *Config) { c.FormEncoded = true })
	ev := events(2)
	if _, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: ev}); err != nil {
		t.Fatal(err)
	}
	req := g.last(t)
	if req.contentType != "application/x-www-form-urlencoded" {
		t.Fatalf("content type %q", req.contentType)
	}
	v, err := url.ParseQuery(string(req.body))
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("access_token") != testToken || v.Get("appsecret_proof") != testProof {
		t.Fatalf("form = %v", v)
	}
	if want := "[" + string(ev[0]) + "," + string(ev[1]) + "]"; v.Get("data") != want {
		t.Fatalf("data = %s, want %s", v.Get("data"), want)
	}
}

// TestTokenNeverInURL checks the token is not in the URL of a call, and not in the text of any
// error, whatever happened to the call.
func TestTokenNeverInURL(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.String(), testToken) || strings.Contains(r.RequestURI, testToken) {
			t.Errorf("token in URL %s", r.RequestURI)
		}
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190,"fbtrace_id":"X"}}`)
	})
	for _, form := range []bool{false, true} {
		c := newClient(t, g, func(c *Config) { c.FormEncoded = form })
		_, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
		if err == nil || strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testProof) {
			t.Fatalf("err = %v", err)
		}
		if req := g.last(t); strings.Contains(req.rawQuery, testToken) || strings.Contains(req.path, testToken) {
			t.Fatalf("token in URL %s?%s", req.path, req.rawQuery)
		}
	}

	// A connection error names the URL: it must not carry the token either.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c := New(Config{BaseURL: dead.URL, AccessToken: testToken, AppSecret: testSecret})
	_, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
	if err == nil || strings.Contains(err.Error(), testToken) {
		t.Fatalf("err = %v", err)
	}
}

func metaError(code, subcode int, transient bool) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": "msg", "type": "OAuthException", "code": code, "error_subcode": subcode,
		"is_transient": transient, "error_user_title": "Title", "error_user_msg": "User message",
		"fbtrace_id": "TRACE",
	}})
	return string(b)
}

func TestClassification(t *testing.T) {
	type tc struct {
		name   string
		status int
		body   string
		want   ports.CAPIErrorClass
	}
	cases := []tc{
		{"code 1", 500, metaError(1, 0, false), ports.CAPITransient},
		{"code 2", 503, metaError(2, 0, false), ports.CAPITransient},
		{"is_transient", 400, metaError(12345, 0, true), ports.CAPITransient},
		{"code 100 but is_transient", 400, metaError(100, 0, true), ports.CAPITransient},
		{"http 500 no body", 500, "", ports.CAPITransient},
		{"http 502 html", 502, "<html>Bad gateway</html>", ports.CAPITransient},
		{"http 503 unknown code", 503, metaError(999, 0, false), ports.CAPITransient},
		{"code 368", 400, metaError(368, 1390008, false), ports.CAPIBlocked},
		{"code 100", 400, metaError(100, 0, false), ports.CAPIInvalidParameter},
		{"wrong appsecret_proof is a credentials problem", 400,
			`{"error":{"message":"Invalid appsecret_proof provided in the API argument","type":"OAuthException","code":100,"error_user_title":"Title","error_user_msg":"User message","fbtrace_id":"TRACE"}}`, ports.CAPIAuth},
		{"code 100 subcode 2804016", 400, metaError(100, 2804016, false), ports.CAPIInvalidParameter},
		{"code 100 subcode 2804019", 400, metaError(100, 2804019, false), ports.CAPIInvalidParameter},
		{"http 429 no envelope", 429, "slow down", ports.CAPIRateLimited},
		{"http 400 garbage", 400, "garbage{", ports.CAPIUnknown},
		{"http 404 no envelope", 404, "{}", ports.CAPIUnknown},
		{"http 200 garbage", 200, "garbage{", ports.CAPIUnknown},
		{"http 200 with error envelope", 200, metaError(190, 0, false), ports.CAPIAuth},
		{"code 99 unlisted", 400, metaError(99, 0, false), ports.CAPIUnknown},
		{"code 300 unlisted", 400, metaError(300, 0, false), ports.CAPIUnknown},
	}
	for _, c := range []int{4, 17, 32, 341, 613} {
		cases = append(cases, tc{fmt.Sprintf("code %d", c), 400, metaError(c, 0, false), ports.CAPIRateLimited})
	}
	for c := 80000; c <= 80014; c++ {
		cases = append(cases, tc{fmt.Sprintf("code %d", c), 400, metaError(c, 0, true), ports.CAPIRateLimited})
	}
	cases = append(cases, tc{"code 79999", 400, metaError(79999, 0, false), ports.CAPIUnknown},
		tc{"code 80015", 400, metaError(80015, 0, false), ports.CAPIUnknown})
	for _, c := range []int{190, 102, 10, 200, 250, 299} {
		cases = append(cases, tc{fmt.Sprintf("code %d", c), 400, metaError(c, 0, false), ports.CAPIAuth})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				fmt.Fprint(w, c.body)
			})
			_, err := newClient(t, g, nil).SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(2)})
			var ce *ports.CAPIError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *ports.CAPIError", err, err)
			}
			if ce.Class != c.want || ce.HTTPStatus != c.status {
				t.Fatalf("class %s http %d, want %s http %d (%v)", ce.Class, ce.HTTPStatus, c.want, c.status, err)
			}
			if strings.HasPrefix(c.body, `{"error"`) {
				if ce.Meta.Code == 0 || ce.Meta.FBTraceID != "TRACE" || ce.Meta.ErrorUserTitle != "Title" || ce.Meta.ErrorUserMsg != "User message" {
					t.Fatalf("meta fields not kept: %+v", ce.Meta)
				}
			}
		})
	}
}

func TestMetaFieldsKept(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804016,
			"is_transient":false,"error_user_title":"User Parameter Not Hashed","error_user_msg":"em must be hashed","fbtrace_id":"AbC"}}`)
	})
	_, err := newClient(t, g, nil).SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
	var ce *ports.CAPIError
	if !errors.As(err, &ce) {
		t.Fatal(err)
	}
	want := ports.MetaError{Message: "Invalid parameter", Type: "OAuthException", Code: 100, Subcode: 2804016,
		ErrorUserTitle: "User Parameter Not Hashed", ErrorUserMsg: "em must be hashed", FBTraceID: "AbC"}
	if ce.Meta != want {
		t.Fatalf("meta = %+v\nwant  %+v", ce.Meta, want)
	}
	if !strings.Contains(err.Error(), "100/2804016") || !strings.Contains(err.Error(), "AbC") {
		t.Fatalf("error text %q lacks code or trace", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := newClient(t, g, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
	took := time.Since(start)
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.Class != ports.CAPITransient || ce.HTTPStatus != 0 {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v does not wrap context.DeadlineExceeded", err)
	}
	if took > 5*time.Second {
		t.Fatalf("timeout of 100ms took %v", took)
	}
}

func TestConnectionRefused(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c := New(Config{BaseURL: dead.URL, AccessToken: testToken})
	_, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.Class != ports.CAPITransient || ce.Err == nil {
		t.Fatalf("err = %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		class ports.CAPIErrorClass
		want  error
	}{
		{"no token", Config{}, ports.CAPIAuth, ErrNoToken},
		{"relative base URL", Config{AccessToken: "t", BaseURL: "not a url"}, ports.CAPIUnknown, ErrBadBaseURL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg).SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
			var ce *ports.CAPIError
			if !errors.As(err, &ce) || ce.Class != c.class || !errors.Is(err, c.want) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := New(Config{AccessToken: "t"})
	if c.endpoint != DefaultBaseURL+"/"+DefaultVersion+"/" || c.timeout != DefaultTimeout || c.proof != "" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestBadDatasetID(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) { t.Error("request sent") })
	c := newClient(t, g, nil)
	for _, id := range []string{"", "1/../2", "1?x=y"} {
		_, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: id, Events: events(1)})
		var ce *ports.CAPIError
		if !errors.As(err, &ce) || ce.Class != ports.CAPIInvalidParameter {
			t.Fatalf("dataset %q: err = %v", id, err)
		}
	}
}

func TestParseUsage(t *testing.T) {
	h := http.Header{}
	h.Set("X-App-Usage", `{"call_count":28,"total_time":25,"total_cputime":12}`)
	h.Set("X-Ad-Account-Usage", `{"acc_id_util_pct":9.67,"reset_time_duration":120,"ads_api_access_tier":"standard_access"}`)
	h.Set("X-Business-Use-Case-Usage", `{"112130216863063":[{"type":"pages","call_count":100,"total_cputime":25,"total_time":25,"estimated_time_to_regain_access":19}],
		"999":[{"type":"ads_management","call_count":3,"total_cputime":40,"total_time":5,"estimated_time_to_regain_access":0}]}`)
	u := ParseUsage(h)
	want := Usage{AppPct: 28, AdAccountPct: 9.67, BusinessPct: 100, RegainAfter: 19 * time.Minute}
	if u != want {
		t.Fatalf("usage = %+v, want %+v", u, want)
	}
	if u.MaxPct() != 100 {
		t.Fatalf("MaxPct = %v", u.MaxPct())
	}

	cases := []struct {
		name   string
		header map[string]string
		want   Usage
	}{
		{"none", nil, Usage{}},
		{"garbage ignored", map[string]string{"X-App-Usage": "{nope", "X-Ad-Account-Usage": "42", "X-Business-Use-Case-Usage": "[]"}, Usage{}},
		{"ad account reset only", map[string]string{"X-Ad-Account-Usage": `{"acc_id_util_pct":100,"reset_time_duration":45}`},
			Usage{AdAccountPct: 100, RegainAfter: 45 * time.Second}},
		{"app cputime highest", map[string]string{"X-App-Usage": `{"call_count":1,"total_time":2,"total_cputime":93.5}`}, Usage{AppPct: 93.5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.header {
				h.Set(k, v)
			}
			if got := ParseUsage(h); got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestRateLimitRetryAfter(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    time.Duration
	}{
		{"business use case minutes", map[string]string{"X-Business-Use-Case-Usage": `{"1":[{"type":"ads_management","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":3}]}`}, 3 * time.Minute},
		{"ad account seconds", map[string]string{"X-Ad-Account-Usage": `{"acc_id_util_pct":100,"reset_time_duration":40}`}, 40 * time.Second},
		{"longest wins", map[string]string{"X-Ad-Account-Usage": `{"acc_id_util_pct":100,"reset_time_duration":400}`,
			"X-Business-Use-Case-Usage": `{"1":[{"type":"x","call_count":100,"estimated_time_to_regain_access":2}]}`}, 400 * time.Second},
		{"retry-after header", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"unknown", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range c.headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(400)
				fmt.Fprint(w, metaError(80004, 2446079, true))
			})
			_, err := newClient(t, g, nil).SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "1", Events: events(1)})
			var ce *ports.CAPIError
			if !errors.As(err, &ce) || ce.Class != ports.CAPIRateLimited {
				t.Fatalf("err = %v", err)
			}
			if ce.RetryAfter != c.want {
				t.Fatalf("RetryAfter = %v, want %v", ce.RetryAfter, c.want)
			}
			if len(c.headers) > 0 && c.headers["Retry-After"] == "" && ce.UsagePct != 100 {
				t.Fatalf("UsagePct = %v, want 100", ce.UsagePct)
			}
		})
	}
}

func BenchmarkBody(b *testing.B) {
	c := New(Config{AccessToken: testToken, AppSecret: testSecret})
	req := ports.CAPIRequest{DatasetID: "1", Events: events(1000)}
	b.ReportAllocs()
	for b.Loop() {
		c.body(req)
	}
}

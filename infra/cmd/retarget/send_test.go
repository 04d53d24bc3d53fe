package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/sigv4"
	"github.com/retarget-dev/retarget/shared/testkit/memstream"
)

// ingestAPI serves the real ingest function (shared/handlers/ingestapi) over HTTP, as the dev stack's
// gateway does, with the sample config, the dev pepper and the dev key, writing to an
// in-memory stream. It records the events of every request.
type ingestAPI struct {
	url    string
	stream *memstream.Stream
	mu     sync.Mutex
	sizes  []int // events per request
	bytes  []int // body bytes per request
}

func startIngestAPI(t *testing.T) *ingestAPI {
	t.Helper()
	cfg := loadSampleConfig(t)
	pseudo, err := identity.NewPseudonymizer([]byte(devPepper))
	if err != nil {
		t.Fatal(err)
	}
	api := &ingestAPI{stream: memstream.New()}
	h, err := ingestapi.New(ingestapi.Config{
		Apps: cfg, Parser: appevent.NewParser(pseudo),
		Publisher: stream.NewPublisher(api.stream, stream.Options{}),
		DevKeys:   ingestapi.DevKeys(cfg, ""),
		Now:       func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var batch struct {
			Events []json.RawMessage `json:"events"`
		}
		json.Unmarshal(body, &batch)
		api.mu.Lock()
		api.sizes, api.bytes = append(api.sizes, len(batch.Events)), append(api.bytes, len(body))
		api.mu.Unlock()
		resp, err := h.Handle(r.Context(), events.APIGatewayProxyRequest{
			Resource: r.URL.Path, Path: r.URL.Path, HTTPMethod: r.Method, Body: string(body),
			Headers: map[string]string{"x-api-key": r.Header.Get("x-api-key"), "Content-Type": r.Header.Get("Content-Type")},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	api.url = srv.URL
	return api
}

func TestSendSamplesToTheIngestFunction(t *testing.T) {
	api := startIngestAPI(t)
	h := newHarness(t)
	h.env["DEV_API_ADDR"] = strings.TrimPrefix(api.url, "http://") // the dev stack's address; key dev-api-key
	out := h.mustRun(exitOK, "send", "--sample", "1200", "--seed", "7")

	if got := fieldValue(t, out, "requests"); got != "3" {
		t.Errorf("requests = %s, want 3 (500 + 500 + 200)", got)
	}
	for name, want := range map[string]string{"events": "1200", "accepted": "1200", "rejected": "0", "not sent": "0", "retries": "0"} {
		if got := fieldValue(t, out, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if fmt.Sprint(api.sizes) != "[500 500 200]" {
		t.Errorf("events per request %v, want [500 500 200]", api.sizes)
	}
	recs := api.stream.Records()
	if n := streamEvents(t, recs); n != 1200 {
		t.Fatalf("%d events on the stream, want 1200", n)
	}
	users := map[string]bool{}
	for _, r := range recs {
		users[r.PartitionKey] = true
	}
	if len(users) != sampleUserCount(1200) {
		t.Errorf("%d users, want %d", len(users), sampleUserCount(1200))
	}
	// Not a terminal: one plain line at the end, no bar.
	wantContains(t, h.stderr.String(), "send: 1200 events, 1200 accepted, 3 requests, 0 retries")
	wantNotContains(t, h.stderr.String(), "\r", "[#")

	// JSON, and a fresh run: new event_ids, so the stream takes them all again.
	h.mustRun(exitOK, "send", "--sample", "30", "--json", "--url", api.url+"/", "--key", "dev-api-key")
	var sum sendSummary
	h.decodeJSON(&sum)
	if sum.URL != api.url+"/v1/events" || sum.Requests != 1 || sum.Events != 30 || sum.Accepted != 30 || sum.Rejected != 0 || len(sum.Rejections) != 0 {
		t.Errorf("summary %+v", sum)
	}
	if n := streamEvents(t, api.stream.Records()); n != 1230 {
		t.Errorf("%d events after the second run, want 1230", n)
	}
}

// streamEvents counts the events of stream records (a record holds a user's events of one
// request).
func streamEvents(t *testing.T, recs []ports.StreamRecord) int {
	t.Helper()
	n := 0
	for _, r := range recs {
		evs, err := envelope.Decode(r.Data)
		if err != nil {
			t.Fatalf("record: %v", err)
		}
		n += len(evs)
	}
	return n
}

func TestSendFileReportsRejectionsByFieldAndReason(t *testing.T) {
	api := startIngestAPI(t)
	at := testNow.Add(-time.Hour).Unix()
	ev := func(id, extra string) string {
		return fmt.Sprintf(`{"event_id":%q,"event_name":"fb_mobile_add_to_cart","event_time":%d,"user":{"app_user_id":"u-1"%s},`+
			`"device":{"platform":"android","os_version":"14"},"consent":{"ads_personalization":true}}`, id, at, extra)
	}
	lines := []string{
		ev("e-1", ""),
		"",
		ev("e-2", `,"email":"not-an-email"`),
		`this is not json`,
		ev("e-3", `,"email":"also bad"`),
		ev("e-4", ""),
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)

	h := newHarness(t)
	out := h.mustRun(exitFailure, "send", "--file", path, "--url", api.url)
	for name, want := range map[string]string{"requests": "1", "events": "5", "accepted": "2", "rejected": "3", "retries": "0"} {
		if got := fieldValue(t, out, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if row := tableRow(t, out, "2", "user.email"); !strings.Contains(strings.Join(row, " "), "not an email") {
		t.Errorf("email row %q", row)
	}
	tableRow(t, out, "1", "line", "4", "not", "a", "JSON", "object")
	wantContains(t, h.stderr.String(), "retarget send: 3 of 5 events not accepted")
	wantNotContains(t, out, "not-an-email", "also bad") // the API never echoes values, nor do we

	// The same file from stdin, as JSON.
	data, _ := os.ReadFile(path)
	h.stdin = string(data)
	h.mustRun(exitFailure, "send", "--file", "-", "--url", api.url, "--json")
	var sum sendSummary
	h.decodeJSON(&sum)
	if sum.Accepted != 2 || sum.Rejected != 3 || len(sum.Rejections) != 2 || sum.Rejections[0].Events != 2 || sum.Rejections[0].Field != "user.email" {
		t.Errorf("summary %+v", sum)
	}
}

// scripted is an API that answers each request with the next scripted answer, and records the
// event_ids of every request.
type scripted struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter, ids []string)
	ids     [][]string
	bodies  []int
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var batch struct {
		Events []struct {
			ID string `json:"event_id"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, "bad body", http.StatusInternalServerError)
		return
	}
	var ids []string
	for _, e := range batch.Events {
		ids = append(ids, e.ID)
	}
	s.mu.Lock()
	n := len(s.ids)
	s.ids, s.bodies = append(s.ids, ids), append(s.bodies, len(body))
	s.mu.Unlock()
	if n < len(s.answers) {
		s.answers[n](w, ids)
		return
	}
	accepted(w, ids)
}

func accepted(w http.ResponseWriter, ids []string) {
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"accepted":%d,"rejected":[]}`, len(ids))
}

func status(code int, body string) func(http.ResponseWriter, []string) {
	return func(w http.ResponseWriter, _ []string) {
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func startScripted(t *testing.T, answers ...func(http.ResponseWriter, []string)) (*scripted, string) {
	s := &scripted{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func writeEvents(t *testing.T, n int, pad int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"event_id":"e-%d","event_name":"x","pad":%q}`+"\n", i, strings.Repeat("p", pad))
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSendRetriesThrottlingAndUnavailabilityWithTheSameEventIDs(t *testing.T) {
	api, url := startScripted(t,
		status(http.StatusTooManyRequests, `{"message":"Too Many Requests"}`),
		status(http.StatusServiceUnavailable, `{"accepted":0,"rejected":[`+
			`{"index":0,"event_id":"e-0","retryable":true,"errors":[{"field":"events[0]","reason":"not stored, retry"}]},`+
			`{"index":1,"event_id":"e-1","errors":[{"field":"events[1].user.email","reason":"not an email address"}]},`+
			`{"index":2,"event_id":"e-2","retryable":true,"errors":[{"field":"events[2]","reason":"not stored, retry"}]}]}`),
	)
	h := newHarness(t)
	out := h.mustRun(exitFailure, "send", "--file", writeEvents(t, 3, 0), "--url", url)
	if got := fmt.Sprint(api.ids); got != "[[e-0 e-1 e-2] [e-0 e-1 e-2] [e-0 e-2]]" {
		t.Errorf("event_ids per request %s: want the whole batch again after 429, only the retryable ones after 503", got)
	}
	for name, want := range map[string]string{"requests": "3", "accepted": "2", "rejected": "1", "not sent": "0", "retries": "2"} {
		if got := fieldValue(t, out, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	tableRow(t, out, "1", "user.email", "not", "an", "email", "address")
}

func TestSendNeverRetriesOtherClientErrors(t *testing.T) {
	api, url := startScripted(t, status(http.StatusRequestEntityTooLarge, `{"error":"request body exceeds 1 MiB"}`))
	h := newHarness(t)
	out := h.mustRun(exitFailure, "send", "--file", writeEvents(t, 3, 0), "--url", url)
	if len(api.ids) != 1 || fieldValue(t, out, "retries") != "0" || fieldValue(t, out, "rejected") != "3" {
		t.Errorf("%d requests; summary:\n%s", len(api.ids), out)
	}
	tableRow(t, out, "3", "(request)", "HTTP", "413:", "request", "body", "exceeds", "1", "MiB")
}

func TestSendStopsWhenTheKeyIsRefused(t *testing.T) {
	api := startIngestAPI(t)
	h := newHarness(t)
	out := h.mustRun(exitFailure, "send", "--sample", "1200", "--url", api.url, "--key", "not-the-key")
	if len(api.sizes) != 1 {
		t.Errorf("%d requests after a 401, want 1", len(api.sizes))
	}
	if got := fieldValue(t, out, "not sent"); got != "501" { // the refused batch and the event read after it
		t.Errorf("not sent = %s, want 501", got)
	}
	wantContains(t, h.stderr.String(), "retarget send: the API refused the key (HTTP 401: missing or unknown API key (header x-api-key)): check --key and --url")
}

func TestSendGivesUpAfterItsRetries(t *testing.T) {
	bare503 := status(http.StatusServiceUnavailable, "<html>Service Unavailable</html>")
	api, url := startScripted(t, bare503, bare503, bare503, bare503)
	h := newHarness(t)
	out := h.mustRun(exitFailure, "send", "--file", writeEvents(t, 2, 0), "--url", url, "--retries", "2")
	if len(api.ids) != 3 {
		t.Errorf("%d requests, want 3 (1 + 2 retries)", len(api.ids))
	}
	if fieldValue(t, out, "not sent") != "2" || !strings.Contains(fieldValue(t, out, "last failure"), "gave up after 2 retries (HTTP 503: <html>Service Unavailable</html>)") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestSendBatchesByCountAndBytes(t *testing.T) {
	t.Run("501 small events: 500 + 1", func(t *testing.T) {
		api, url := startScripted(t)
		h := newHarness(t)
		h.mustRun(exitOK, "send", "--file", writeEvents(t, 501, 10), "--url", url)
		if len(api.ids) != 2 || len(api.ids[0]) != 500 || len(api.ids[1]) != 1 {
			t.Errorf("batches of %d and %d events", len(api.ids[0]), len(api.ids[len(api.ids)-1]))
		}
	})
	t.Run("300 KB events: 3 per MiB", func(t *testing.T) {
		api, url := startScripted(t)
		h := newHarness(t)
		h.mustRun(exitOK, "send", "--file", writeEvents(t, 7, 300_000), "--url", url)
		var sizes []int
		for i, ids := range api.ids {
			sizes = append(sizes, len(ids))
			if api.bodies[i] > appevent.MaxBodyBytes {
				t.Errorf("request %d has %d bytes, over 1 MiB", i, api.bodies[i])
			}
		}
		if fmt.Sprint(sizes) != "[3 3 1]" {
			t.Errorf("events per request %v, want [3 3 1]", sizes)
		}
	})
	t.Run("an event over 1 MiB is not sent", func(t *testing.T) {
		api, url := startScripted(t)
		h := newHarness(t)
		out := h.mustRun(exitFailure, "send", "--file", writeEvents(t, 1, 1<<20), "--url", url)
		if len(api.ids) != 0 {
			t.Errorf("%d requests", len(api.ids))
		}
		tableRow(t, out, "1", "line", "1", "event", "larger")
	})
}

func TestSendDrawsAProgressBarOnATerminal(t *testing.T) {
	_, url := startScripted(t)
	h := newHarness(t)
	h.tty = true
	h.mustRun(exitOK, "send", "--file", writeEvents(t, 20, 0), "--url", url)
	wantContains(t, h.stderr.String(), "\r[##############################] 20/20 events, 1 requests, 0 retries")
}

func TestSendInterrupted(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // never answers in time
	}))
	defer srv.Close()
	defer close(release)
	var stdout, stderr strings.Builder
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	defer time.AfterFunc(200*time.Millisecond, cancel).Stop() // Ctrl-C, as signal.NotifyContext cancels
	if code := c.run(ctx, []string{"send", "--sample", "5", "--url", srv.URL}); code != exitFailure {
		t.Fatalf("exit %d", code)
	}
	wantContains(t, stderr.String(), "retarget send: interrupted: the last request's events may or may not be stored; sending them again is safe (same event_ids)")
	if got := fieldValue(t, stdout.String(), "not sent"); got != "5" {
		t.Errorf("not sent = %s:\n%s", got, stdout.String())
	}
}

func TestSendBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no source", []string{"send"}, exitUsage, "give either --sample N or --file PATH"},
		{"both sources", []string{"send", "--sample", "3", "--file", "x.jsonl"}, exitUsage, "give either --sample N or --file PATH"},
		{"bad url", []string{"send", "--sample", "3", "--url", "ftp://example.com"}, exitUsage, `--url "ftp://example.com": want an http(s) URL`},
		{"no key for a remote API", []string{"send", "--sample", "3", "--url", "https://example.com/prod"}, exitUsage, "no API key: pass --key or set RETARGET_API_KEY"},
		{"bad platform", []string{"send", "--sample", "3", "--platforms", "web"}, exitUsage, `--platforms: "web" is not ios or android`},
		{"missing file", []string{"send", "--file", "no-such-file.jsonl"}, exitFailure, "retarget send: events file: open no-such-file.jsonl: no such file or directory"},
		{"stray argument", []string{"send", "--sample", "3", "extra"}, exitUsage, `unexpected arguments ["extra"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if code := h.run(tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, h.stderr.String())
			}
			wantContains(t, h.stderr.String(), tc.msg)
		})
	}
}

func TestEventsURL(t *testing.T) {
	c := &cli{getenv: func(string) string { return "" }}
	for in, want := range map[string]string{
		"":                                    "http://127.0.0.1:3000/v1/events",
		"http://127.0.0.1:3001":               "http://127.0.0.1:3001/v1/events",
		"https://x.execute-api.aws.com/prod/": "https://x.execute-api.aws.com/prod/v1/events",
		"https://x.example/prod/v1/events":    "https://x.example/prod/v1/events",
	} {
		if got, err := c.eventsURL(in); err != nil || got != want {
			t.Errorf("eventsURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// signedAPI answers POST /v1/server/events as the dev stack's gateway would: it verifies the
// SigV4 signature (shared/sandbox/sigv4) against one access key at testNow and records what
// each request carried.
type signedAPI struct {
	url  string
	mu   sync.Mutex
	hits []signedHit
}

type signedHit struct {
	path, key string
	caller    sigv4.Identity
	err       error
}

func startSignedAPI(t *testing.T, accessKey, secret string) *signedAPI {
	t.Helper()
	v := &sigv4.Verifier{
		Credentials: map[string]sigv4.Credential{accessKey: {SecretAccessKey: secret, UserARN: devenv.AdminUserARN}},
		Region:      devenv.APIRegion,
		Now:         func() time.Time { return testNow },
	}
	api := &signedAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, err := v.Verify(r.Context(), r, body)
		api.mu.Lock()
		api.hits = append(api.hits, signedHit{r.URL.Path, r.Header.Get("x-api-key"), id, err})
		api.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"message":"The request signature we calculated does not match the signature you provided."}`)
			return
		}
		var batch struct {
			Events []json.RawMessage `json:"events"`
		}
		json.Unmarshal(body, &batch)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"accepted": %d, "rejected": []}`, len(batch.Events))
	}))
	t.Cleanup(srv.Close)
	api.url = srv.URL
	return api
}

func TestSendServerSignsWithSigV4(t *testing.T) {
	t.Run("make dev: the dev admin credentials of the endpoints file", func(t *testing.T) {
		api := startSignedAPI(t, "AKIDFROMFILE", "secret-from-file")
		h := newHarness(t)
		h.wd = devRepo(t, &devenv.Endpoints{PID: os.Getpid(), APIURL: api.url, APIKey: "dev-api-key",
			Credentials: devenv.Credentials{AdminAccessKeyID: "AKIDFROMFILE", AdminSecretAccessKey: "secret-from-file", APIRegion: devenv.APIRegion}})
		out := h.mustRun(exitOK, "send", "--server", "--sample", "600") // two requests, each signed
		if got := fieldValue(t, out, "accepted"); got != "600" {
			t.Errorf("accepted %s, want 600", got)
		}
		if len(api.hits) != 2 {
			t.Fatalf("%d requests, want 2", len(api.hits))
		}
		for _, hit := range api.hits {
			if hit.err != nil || hit.path != "/v1/server/events" || hit.key != "dev-api-key" || hit.caller.AccessKeyID != "AKIDFROMFILE" {
				t.Errorf("request %+v: want POST /v1/server/events with the key, signed by AKIDFROMFILE", hit)
			}
		}
	})

	t.Run("loopback URL: the public dev admin credentials", func(t *testing.T) {
		api := startSignedAPI(t, devenv.AdminAccessKeyID, devenv.AdminSecretAccessKey)
		h := newHarness(t)
		h.mustRun(exitOK, "send", "--server", "--sample", "3", "--url", api.url)
		if len(api.hits) != 1 || api.hits[0].err != nil || api.hits[0].caller.UserARN != devenv.AdminUserARN {
			t.Errorf("hits %+v, want one signed by the dev admin", api.hits)
		}
	})

	t.Run("a wrong secret is refused and said so", func(t *testing.T) {
		api := startSignedAPI(t, devenv.AdminAccessKeyID, devenv.AdminSecretAccessKey)
		h := newHarness(t)
		h.env[devenv.EnvAdminSecretAccessKey] = "not-the-secret"
		h.mustRun(exitFailure, "send", "--server", "--sample", "3", "--url", api.url)
		if len(api.hits) != 1 || !errors.Is(api.hits[0].err, sigv4.ErrSignature) {
			t.Errorf("hits %+v, want one refused for its signature", api.hits)
		}
		wantContains(t, h.stderr.String(), "the API refused the request (HTTP 403", "the dev admin credentials ("+devenv.AdminAccessKeyID+")")
	})

	t.Run("without --server: /v1/events, unsigned", func(t *testing.T) {
		api := startSignedAPI(t, devenv.AdminAccessKeyID, devenv.AdminSecretAccessKey)
		h := newHarness(t)
		h.mustRun(exitFailure, "send", "--sample", "3", "--url", api.url)
		if len(api.hits) != 1 || api.hits[0].path != "/v1/events" || !errors.Is(api.hits[0].err, sigv4.ErrMissing) {
			t.Errorf("hits %+v, want one unsigned request to /v1/events", api.hits)
		}
	})
}

// Against a deployed stack, --server signs with the SDK's default credential chain, for the
// region of the execute-api host.
func TestSendServerSignerForAStack(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMCHAIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-from-chain")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	c := &cli{getenv: func(string) string { return "" }, now: func() time.Time { return testNow }}
	for endpoint, region := range map[string]string{
		"https://abc123.execute-api.eu-west-1.amazonaws.com/prod/v1/server/events": "eu-west-1",
		"https://api.example.com/v1/server/events":                                 "us-east-1",
	} {
		s, err := c.apiSigner(context.Background(), endpoint)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := s.creds.Retrieve(context.Background())
		if err != nil || creds.AccessKeyID != "AKIDFROMCHAIN" || s.region != region {
			t.Errorf("%s: signer with %q in %s (%v), want AKIDFROMCHAIN in %s", endpoint, creds.AccessKeyID, s.region, err, region)
		}
	}
}

package ingestapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstream"
)

// fixtureNow is shortly after the event times in events/ingest/*.json.
var fixtureNow = time.Date(2026, 11, 28, 12, 20, 0, 0, time.UTC)

type harness struct {
	stream  *memstream.Stream
	logs    *bytes.Buffer
	metrics *bytes.Buffer
	handler *Handler
	invoke  func(t *testing.T, payload []byte) events.APIGatewayProxyResponse
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	apps, err := env.LoadApps(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	pseudo, err := identity.NewPseudonymizer([]byte("handler-test-pepper-0123"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{stream: memstream.New(), logs: &bytes.Buffer{}, metrics: &bytes.Buffer{}}
	cfg := Config{
		Apps:   apps,
		Parser: appevent.NewParser(pseudo),
		Publisher: stream.NewPublisher(h.stream, stream.Options{
			MaxAttempts: 3,
			Sleep:       func(context.Context, time.Duration) error { return nil },
		}),
		// As events/ingest/env.json maps the fixtures' API key id.
		KeyIDs:  map[string]string{"sample-shop-key-id": "sample-shop"},
		DevKeys: DevKeys(apps, ""),
		Logger:  observability.NewLogger(h.logs, "debug"),
		Metrics: observability.NewEmitter(h.metrics, "Test"),
		// One EMF document per request: these tests read a request's metrics right after it
		// (metrics_test.go runs the instance-wide aggregation).
		MetricsInterval: -1,
		Now:             func() time.Time { return fixtureNow },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	handler, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.handler = handler
	// Drive the handler with raw JSON exactly as the Lambda runtime does.
	lh := handler
	h.invoke = func(t *testing.T, payload []byte) events.APIGatewayProxyResponse {
		t.Helper()
		out, err := lh.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatalf("invoke: %v", err)
		}
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("response: %v", err)
		}
		if resp.Headers["Content-Type"] != "application/json" {
			t.Fatalf("content type %q", resp.Headers["Content-Type"])
		}
		return resp
	}
	return h
}

// streamEvents decodes every record on the stream, in order, checking each event's user key is
// its record's partition key.
func (h *harness) streamEvents(t *testing.T) []envelope.Record {
	t.Helper()
	var out []envelope.Record
	for _, rec := range h.stream.Records() {
		evs, err := envelope.Decode(rec.Data)
		if err != nil {
			t.Fatalf("record does not decode: %v\n%s", err, rec.Data)
		}
		for _, e := range evs {
			if e.UserKey != rec.PartitionKey {
				t.Fatalf("partition key %q, event key %q", rec.PartitionKey, e.UserKey)
			}
		}
		out = append(out, evs...)
	}
	return out
}

// withRequest edits a fixture's proxy request.
func withRequest(t *testing.T, payload []byte, edit func(*events.APIGatewayProxyRequest)) []byte {
	t.Helper()
	var req events.APIGatewayProxyRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		t.Fatal(err)
	}
	edit(&req)
	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// response is any POST /v1/events answer: about the events, or {"error": ...}.
type response struct {
	EventsResponse
	Error string `json:"error"`
}

func decode(t *testing.T, resp events.APIGatewayProxyResponse) response {
	t.Helper()
	var r response
	if err := json.Unmarshal([]byte(resp.Body), &r); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	return r
}

// piiInFixtures are raw personal values sent by events/ingest/valid-batch.json.
var piiInFixtures = []string{"Mary.Major@Example.com", "mary.major@example.com", "555-1212", "6505551212",
	"Mary", "Major", "1990-04-12", "19900412", "Menlo Park", "94025", "Jürgen", "Müller", "München",
	"151 23456789", "no-consent@example.com", "u-123", "u-777"}

func TestValidBatchLandsOnTheStreamWithoutPII(t *testing.T) {
	h := newHarness(t, nil)
	resp := h.invoke(t, ingesttest.FixtureJSON(t, "valid-batch.json"))
	r := decode(t, resp)
	if resp.StatusCode != 202 || r.Accepted != 4 || len(r.Rejected) != 0 {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
	}
	for _, rec := range h.stream.Records() {
		for _, pii := range piiInFixtures {
			if bytes.Contains(rec.Data, []byte(pii)) || strings.Contains(rec.PartitionKey, pii) {
				t.Errorf("raw %q on the stream: %s", pii, rec.Data)
			}
		}
	}
	evs := h.streamEvents(t)
	if len(evs) != 4 {
		t.Fatalf("%d events on the stream, want 4", len(evs))
	}
	for _, env := range evs {
		if env.App != "sample-shop" || env.V != envelope.Version {
			t.Errorf("app %q, version %d", env.App, env.V)
		}
		if env.Event.Name == "level_up_5" && env.Event.User != (envelope.User{}) {
			t.Errorf("event without consent kept identifiers: %+v", env)
		}
	}
	for _, pii := range piiInFixtures {
		if strings.Contains(h.logs.String(), pii) || strings.Contains(h.metrics.String(), pii) {
			t.Errorf("raw %q in logs or metrics", pii)
		}
	}
	if !strings.Contains(h.metrics.String(), `"EventsAccepted":4`) {
		t.Errorf("no EventsAccepted metric: %s", h.metrics.String())
	}
}

func TestPartlyInvalidBatchReportsEachErrorByIndexAndField(t *testing.T) {
	h := newHarness(t, nil)
	resp := h.invoke(t, ingesttest.FixtureJSON(t, "partly-invalid-batch.json"))
	r := decode(t, resp)
	if resp.StatusCode != 202 || r.Accepted != 2 || len(r.Rejected) != 2 || r.Rejected[0].Index != 1 || r.Rejected[1].Index != 2 {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
	}
	fields := map[string]bool{}
	for _, rej := range r.Rejected {
		for _, e := range rej.Errors {
			fields[e.Field] = true
			if e.Reason == "" {
				t.Errorf("%s: empty reason", e.Field)
			}
		}
	}
	for _, f := range []string{"events[1].event_name", "events[1].user.email", "events[1].custom_data.currency",
		"events[1].consent.advertiser_tracking_enabled", "events[2].event_time", "events[2].user", "events[2].device.platform"} {
		if !fields[f] {
			t.Errorf("no error for %s in %s", f, resp.Body)
		}
	}
	if n := len(h.streamEvents(t)); n != 2 {
		t.Fatalf("%d events on the stream, want the 2 valid ones", n)
	}
	if !strings.Contains(h.metrics.String(), `"Reason":"type"`) && !strings.Contains(h.metrics.String(), `"Reason":"invalid"`) {
		t.Errorf("no per-reason metric: %s", h.metrics.String())
	}
}

func TestStatusCodes(t *testing.T) {
	tests := []struct {
		name    string
		payload func(t *testing.T) []byte
		mutate  func(*Config)
		status  int
		body    string
	}{
		{"health needs no key", func(t *testing.T) []byte { return ingesttest.FixtureJSON(t, "health.json") }, nil, 200, `{"status":"ok"}`},
		{"missing key", func(t *testing.T) []byte { return ingesttest.FixtureJSON(t, "missing-key.json") }, nil, 401, "API key"},
		{"unknown key", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
				r.Headers["x-api-key"] = "wrong-key-123"
				r.RequestContext.Identity.APIKeyID = "unknown-key-id"
			})
		}, nil, 401, "API key"},
		{"dev keys off in a deployed function", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
				r.RequestContext.Identity.APIKeyID = "" // only the literal dev key is left
			})
		},
			func(c *Config) { c.DevKeys = nil }, 401, "API key"},
		{"API Gateway key id maps to the app", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
				delete(r.Headers, "x-api-key")
				delete(r.MultiValueHeaders, "x-api-key")
				r.RequestContext.Identity.APIKeyID = "sample-shop-key-id"
			})
		}, func(c *Config) { c.DevKeys = nil }, 202, `"accepted":4`},
		{"header name is case-insensitive", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
				r.Headers = map[string]string{"X-Api-Key": "dev-api-key"}
				r.MultiValueHeaders = nil
			})
		}, nil, 202, `"accepted":4`},
		{"501 events", func(t *testing.T) []byte { return ingesttest.FixtureJSON(t, "oversized-batch.json") }, nil, 413, "more than 500 events"},
		{"body over 1 MiB", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
				r.Body = `{"events":[` + strings.Repeat(" ", appevent.MaxBodyBytes) + `]}`
			})
		}, nil, 413, "1 MiB"},
		{"unreadable JSON", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) { r.Body = `{"events":[{]` })
		}, nil, 400, "invalid JSON"},
		{"nothing valid", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) { r.Body = `{"events":[{"event_id":"x"}]}` })
		}, nil, 400, `"accepted":0`},
		{"base64 body", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) {
				r.Body = base64.StdEncoding.EncodeToString([]byte(r.Body))
				r.IsBase64Encoded = true
			})
		}, nil, 202, `"accepted":4`},
		{"wrong method", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) { r.HTTPMethod = "GET" })
		}, nil, 405, "POST"},
		{"unknown route", func(t *testing.T) []byte {
			return withRequest(t, ingesttest.FixtureJSON(t, "valid-batch.json"), func(r *events.APIGatewayProxyRequest) { r.Resource, r.Path = "/v2/events", "/v2/events" })
		}, nil, 404, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mutate)
			resp := h.invoke(t, tt.payload(t))
			if resp.StatusCode != tt.status || !strings.Contains(resp.Body, tt.body) {
				t.Fatalf("got %d %s, want %d ...%s...", resp.StatusCode, resp.Body, tt.status, tt.body)
			}
		})
	}
}

func TestStreamFailures(t *testing.T) {
	t.Run("nothing written: 503, every event retryable", func(t *testing.T) {
		h := newHarness(t, nil)
		h.stream.SetFault(func(int, int, ports.StreamRecord) string { return "ProvisionedThroughputExceededException" })
		resp := h.invoke(t, ingesttest.FixtureJSON(t, "valid-batch.json"))
		r := decode(t, resp)
		if resp.StatusCode != 503 || resp.Headers["Retry-After"] == "" || r.Accepted != 0 || len(r.Rejected) != 4 {
			t.Fatalf("got %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
		}
		for i, rej := range r.Rejected {
			if !rej.Retryable || rej.Index != i || rej.EventID == "" || !strings.Contains(rej.Errors[0].Reason, "retry with the same event_id") {
				t.Fatalf("rejection %d: %+v", i, rej)
			}
		}
	})
	t.Run("some written: 202 with the rest retryable, in index order", func(t *testing.T) {
		h := newHarness(t, nil)
		// The event at request index 3 never gets in, whatever the attempt; index 0 does.
		h.stream.SetFault(func(_, _ int, rec ports.StreamRecord) string {
			if bytes.Contains(rec.Data, []byte("2b0a7c2e-7f0e-4b8e-9d51-000000000003")) {
				return "InternalFailure"
			}
			return ""
		})
		resp := h.invoke(t, ingesttest.FixtureJSON(t, "partly-invalid-batch.json"))
		r := decode(t, resp)
		if resp.StatusCode != 202 || r.Accepted != 1 || len(r.Rejected) != 3 {
			t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
		}
		for i, want := range []struct {
			index     int
			retryable bool
		}{{1, false}, {2, false}, {3, true}} {
			if r.Rejected[i].Index != want.index || r.Rejected[i].Retryable != want.retryable {
				t.Fatalf("rejected[%d] = %+v, want index %d retryable %v", i, r.Rejected[i], want.index, want.retryable)
			}
		}
		if !strings.Contains(h.logs.String(), `"unwritten":1`) {
			t.Errorf("unwritten events not logged: %s", h.logs.String())
		}
	})
}

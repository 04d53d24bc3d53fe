package ingestapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// discard is a stream that accepts every record and keeps none (a benchmark runs millions of
// requests).
type discard struct{ records int }

func (d *discard) PutRecords(_ context.Context, records []ports.StreamRecord) ([]ports.PutResult, error) {
	d.records += len(records)
	return make([]ports.PutResult, len(records)), nil
}

// BenchmarkHandle measures the ingest function per request as the Lambda runtime drives it:
// the API Gateway proxy event as JSON in, the key check, parse, validate, hash and encode, the
// stream publish (to a stream that discards) and the response as JSON out. It is also the
// workload `make pgo` profiles for the ingest binary's profile-guided build
// (functions/ingest/default.pgo).
//
//   - device-20: the shape the mobile SDKs send, 20 events of one install (one user object).
//   - server-100: a server-side batch of 100 events of 37 users with full personal data, as
//     BenchmarkParse100/distinct-users in shared/domain/appevent.
//   - server-100-reflection: the same request read by the runtime's reflection handler
//     (lambda.Start(h.Handle) instead of lambda.Start(h)), for comparison.
func BenchmarkHandle(b *testing.B) {
	fixture := ingesttest.FixtureJSON(b, "valid-batch.json")
	var req events.APIGatewayProxyRequest
	if err := json.Unmarshal(fixture, &req); err != nil {
		b.Fatal(err)
	}
	var body struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal([]byte(req.Body), &body); err != nil {
		b.Fatal(err)
	}
	first := body.Events[0]
	now := time.Unix(int64(first["event_time"].(float64)), 0).Add(time.Minute)
	names := []string{"fb_mobile_activate_app", "fb_mobile_content_view", "fb_mobile_add_to_cart", "fb_mobile_purchase"}
	event := func(i, user int) map[string]any {
		e := map[string]any{}
		for k, v := range first {
			e[k] = v
		}
		e["event_id"] = fmt.Sprintf("9f1c2d3e-0000-4000-8000-%012d", i)
		e["event_name"] = names[i%len(names)]
		e["custom_data"] = map[string]any{"value": 12.5, "currency": "usd", "content_ids": []any{"sku-1"},
			"contents": []any{map[string]any{"id": "sku-1", "quantity": 1, "item_price": 12.5}}}
		if user >= 0 {
			u := map[string]any{}
			for k, v := range first["user"].(map[string]any) {
				u[k] = v
			}
			u["app_user_id"] = fmt.Sprintf("u-%d", user)
			u["email"] = fmt.Sprintf("user%d@example.com", user)
			e["user"] = u
		}
		return e
	}
	for _, bc := range []struct {
		name       string
		n          int
		user       func(i int) int // -1: the fixture's user
		reflection bool
	}{
		{"device-20", 20, func(int) int { return -1 }, false},
		{"server-100", 100, func(i int) int { return i % 37 }, false},
		{"server-100-reflection", 100, func(i int) int { return i % 37 }, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			evs := make([]map[string]any, bc.n)
			for i := range evs {
				evs[i] = event(i, bc.user(i))
			}
			raw, err := json.Marshal(map[string]any{"events": evs})
			if err != nil {
				b.Fatal(err)
			}
			r := req
			r.Body = string(raw)
			payload, err := json.Marshal(r)
			if err != nil {
				b.Fatal(err)
			}
			sink := &discard{}
			invoke := benchHandler(b, sink, now, bc.reflection)
			check := func() {
				var resp events.APIGatewayProxyResponse
				out, err := invoke.Invoke(context.Background(), payload)
				if err == nil {
					err = json.Unmarshal(out, &resp)
				}
				if err != nil || resp.StatusCode != 202 {
					b.Fatalf("setup: %v %d %s", err, resp.StatusCode, resp.Body)
				}
				var got EventsResponse
				if err := json.Unmarshal([]byte(resp.Body), &got); err != nil || got.Accepted != bc.n {
					b.Fatalf("setup: %v %s", err, resp.Body)
				}
			}
			check()
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := invoke.Invoke(context.Background(), payload); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(bc.n), "ns/event")
			check()
		})
	}
}

func benchHandler(b *testing.B, sink *discard, now time.Time, reflection bool) lambda.Handler {
	b.Helper()
	apps, err := env.LoadApps(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		b.Fatal(err)
	}
	pseudo, err := identity.NewPseudonymizer([]byte("handler-bench-pepper-0123"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(Config{
		Apps:      apps,
		Parser:    appevent.NewParser(pseudo),
		Publisher: stream.NewPublisher(sink, stream.Options{MaxAttempts: 3}),
		KeyIDs:    map[string]string{"sample-shop-key-id": "sample-shop"},
		Logger:    observability.NewLogger(io.Discard, "info"),
		Metrics:   observability.NewEmitter(io.Discard, "Bench"),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		b.Fatal(err)
	}
	if reflection {
		return lambda.NewHandler(h.Handle)
	}
	return h
}

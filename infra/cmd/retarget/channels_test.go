package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
)

// channelConfig writes the sample config with a channel "push" (joins of cart_abandoner) on its
// first app.
func channelConfig(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	app := doc["apps"].([]any)[0].(map[string]any)
	app["channels"] = []any{map[string]any{"id": "push", "type": "webhook", "url": "https://push.example.com/hook",
		"segments": []string{"cart_abandoner"}, "events": []string{"left", "joined"},
		"auth": map[string]any{"header": "Authorization", "secret_name": "retarget/push"}}}
	delete(doc, "$schema")
	b, _ := json.Marshal(doc)
	path := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestChannelsTestThroughTheDevBus(t *testing.T) {
	var got devenv.ChannelTestRequest
	answer := devenv.ChannelTestResult{EventID: "test-1", DetailType: "Segment Left", Segment: "cart_abandoner", Outcome: "delivered", Status: 200, Attempt: 1}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != devenv.ChannelsTestPath {
			http.NotFound(w, r)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		json.NewEncoder(w).Encode(answer)
	}))
	defer srv.Close()
	h := newHarness(t)
	h.env[envAPIURL] = srv.URL
	out := h.mustRun(exitOK, "channels", "test", "push", "--config", channelConfig(t))
	if got.App != "sample-shop" || got.Channel != "push" {
		t.Fatalf("dev stack asked for %+v", got)
	}
	wantContains(t, out, "channel push delivered Segment Left cart_abandoner status=200 attempt=1")

	answer = devenv.ChannelTestResult{DetailType: "Segment Left", Segment: "cart_abandoner", Outcome: "dead-lettered", Status: 400, Attempt: 1}
	h.mustRun(exitFailure, "channels", "test", "push", "--config", channelConfig(t))
	wantContains(t, h.stderr.String(), "not delivered", devenv.ChannelDeadLettersFile)

	h.mustRun(exitFailure, "channels", "test", "nope", "--config", channelConfig(t))
	wantContains(t, h.stderr.String(), `no app has a channel "nope"`)
	delete(h.env, envAPIURL)
	h.mustRun(exitFailure, "channels", "test", "push", "--config", channelConfig(t))
	wantContains(t, h.stderr.String(), "no dev stack")
}

func TestChannelsTestPutsEventsOnTheStackBus(t *testing.T) {
	var target string
	var input struct {
		Entries []struct {
			EventBusName, Source, DetailType, Detail string
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target = r.Header.Get("X-Amz-Target")
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &input)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write([]byte(`{"FailedEntryCount":0,"Entries":[{"EventId":"11111111-2222-3333-4444-555555555555"}]}`))
	}))
	defer srv.Close()
	h := newHarness(t)
	h.env["AWS_ENDPOINT_URL_"+serviceEventBridge] = srv.URL
	h.env[envEventBus] = "retarget-prod-segments"
	h.mustRun(exitOK, "channels", "test", "push", "--app", "sample-shop", "--json", "--config", channelConfig(t))
	var view channelsTestView
	h.decodeJSON(&view)
	if target != "AWSEvents.PutEvents" || len(input.Entries) != 1 {
		t.Fatalf("target %q, entries %+v", target, input.Entries)
	}
	e := input.Entries[0]
	if e.EventBusName != "retarget-prod-segments" || e.Source != "retarget" || e.DetailType != "Segment Left" {
		t.Fatalf("entry %+v", e)
	}
	var detail map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if detail["app"] != "sample-shop" || detail["segment"] != "cart_abandoner" || detail["reason"] != "test" ||
		len(detail["channels"].([]any)) != 1 || detail["channels"].([]any)[0] != "push" {
		t.Fatalf("detail %v", detail)
	}
	if view.EventID != "11111111-2222-3333-4444-555555555555" || view.Bus != "retarget-prod-segments" {
		t.Fatalf("view %+v", view)
	}
}

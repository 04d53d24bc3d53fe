//go:build unix

package devstack

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// recordingWebhook is a channel's receiver on loopback: it answers its first failFirst
// requests with 503, then 200, and records every request.
type recordingWebhook struct {
	mu        sync.Mutex
	failFirst int
	requests  []webhookRequest
}

type webhookRequest struct {
	Header http.Header
	Body   []byte
	Status int
}

func (w *recordingWebhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	status := http.StatusOK
	if len(w.requests) < w.failFirst {
		status = http.StatusServiceUnavailable
	}
	w.requests = append(w.requests, webhookRequest{Header: r.Header.Clone(), Body: body, Status: status})
	rw.WriteHeader(status)
}

// delivered returns the bodies answered 200, decoded.
func (w *recordingWebhook) delivered(t *testing.T) []map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, r := range w.requests {
		if r.Status != http.StatusOK {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			t.Fatalf("a delivery is not JSON: %s", r.Body)
		}
		out = append(out, doc)
	}
	return out
}

func (w *recordingWebhook) all() []webhookRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookRequest(nil), w.requests...)
}

// channelsConfig is apps.dev.json with two channels on the first app: "push" (no body: the
// EventBridge event itself; joins and leaves of cart_abandoner) and "crm" (a body template;
// joins only) whose webhook fails 3 times before it answers.
func channelsConfig(t *testing.T, root, pushURL, crmURL string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "infra", "config", "apps.dev.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	app := doc["apps"].([]any)[0].(map[string]any)
	app["channels"] = []any{
		map[string]any{"id": "push", "type": "webhook", "url": pushURL, "segments": []string{"cart_abandoner"},
			"events": []string{"joined", "left"},
			"auth":   map[string]any{"header": "Authorization", "secret_name": "retarget/push", "dev_value": "Bearer dev-push-token"}},
		map[string]any{"id": "crm", "type": "webhook", "url": crmURL, "segments": []string{"cart_abandoner"},
			"auth": map[string]any{"header": "X-Crm-Key", "secret_name": "retarget/crm", "dev_value": "dev-crm-key"},
			"body": `{"user": "<$.detail.user_key>", "segment": "<$.detail.segment>", "event": <$.detail-type>, "change": "<$.detail.change_id>"}`},
	}
	delete(doc, "$schema")
	path := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(path, mustMarshal(t, doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestChannelsEndToEnd: a user with an add-to-cart 2 hours ago and no purchase reaches a
// local webhook as exactly one Segment Joined for cart_abandoner within a sweep, with the
// configured header; a purchase then sends Segment Left; a webhook that fails 3 times still
// receives its delivery (the dev bus's 5 attempts); no delivery holds raw personal data.
func TestChannelsEndToEnd(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	push, crm := &recordingWebhook{}, &recordingWebhook{failFirst: 3}
	pushSrv, crmSrv := httptest.NewServer(push), httptest.NewServer(crm)
	defer pushSrv.Close()
	defer crmSrv.Close()
	config := channelsConfig(t, root, pushSrv.URL, crmSrv.URL)
	const sweep = 500 * time.Millisecond
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false", "-config="+config,
		"AUDIENCE_SYNC_INTERVAL=1h", "INSIGHTS_INTERVAL=1h", "SEGMENT_SWEEP_INTERVAL="+sweep.String())
	api := ds.ready(t)
	defer ds.stop(t, syscall.SIGTERM, 30*time.Second)

	client := &http.Client{Timeout: 15 * time.Second}
	user := fmt.Sprintf("cart-%d", time.Now().UnixNano())
	email := user + "@example.com"
	post := func(id, name string, at time.Time) {
		t.Helper()
		e := map[string]any{
			"event_id": id, "event_name": name, "event_time": at.Unix(),
			"user":    map[string]any{"app_user_id": user, "email": email},
			"device":  map[string]any{"platform": "android", "os_version": "14"},
			"consent": map[string]any{"ads_personalization": true},
		}
		if name == "fb_mobile_purchase" {
			e["custom_data"] = map[string]any{"value": 12.5, "currency": "USD"}
		}
		body := mustMarshal(t, map[string]any{"events": []any{e}})
		req, _ := http.NewRequest(http.MethodPost, api+"/v1/events", strings.NewReader(string(body)))
		req.Header.Set("x-api-key", "dev-api-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/events: %d", resp.StatusCode)
		}
	}
	// deliveries of detail-type dt for cart_abandoner at the push webhook (the event itself).
	pushed := func(dt string) []map[string]any {
		var out []map[string]any
		for _, d := range push.delivered(t) {
			detail, _ := d["detail"].(map[string]any)
			if d["detail-type"] == dt && detail["segment"] == "cart_abandoner" {
				out = append(out, d)
			}
		}
		return out
	}
	eventually := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", within, what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	start := time.Now()
	post(user+"-cart", "fb_mobile_add_to_cart", start.Add(-2*time.Hour))
	// Within one sweep of the change being recorded: the updater records it within its 1 s
	// batching window, the publisher runs after the next sweep.
	eventually("Segment Joined at the push webhook", 2*time.Second+2*sweep, func() bool { return len(pushed("Segment Joined")) > 0 })
	t.Logf("joined delivered %s after the add-to-cart", time.Since(start).Round(time.Millisecond))
	time.Sleep(4 * sweep) // more sweeps: still exactly one
	joined := pushed("Segment Joined")
	if len(joined) != 1 {
		t.Fatalf("%d Segment Joined deliveries, want exactly 1: %v", len(joined), joined)
	}
	ev := joined[0]
	detail := ev["detail"].(map[string]any)
	if ev["source"] != "retarget" || detail["app"] != "sample-shop" || detail["change_id"] == "" || detail["user_key"] == "" {
		t.Fatalf("joined event %v", ev)
	}
	if _, ok := detail["app_user_id"]; ok {
		t.Fatalf("app_user_id in the event of an app that does not share it: %v", ev)
	}
	for _, r := range push.all() {
		if r.Header.Get("Authorization") != "Bearer dev-push-token" {
			t.Fatalf("push delivery without the configured header: %v", r.Header)
		}
	}
	userKey := detail["user_key"].(string)
	lineRe := regexp.MustCompile(`^channel push delivered Segment Joined cart_abandoner user=` + regexp.QuoteMeta(userKey[:8]) + ` status=200 attempt=1$`)
	ds.waitFor(t, lineRe, 5*time.Second)

	// The crm webhook fails 3 times (503): the 4th attempt delivers the rendered body.
	eventually("the crm delivery after 3 failures", 20*time.Second, func() bool { return len(crm.delivered(t)) > 0 })
	crmReqs := crm.all()
	if len(crmReqs) != 4 || crmReqs[3].Status != http.StatusOK {
		t.Fatalf("crm webhook saw %d requests, want 3 failures and a success", len(crmReqs))
	}
	wantCRM := fmt.Sprintf(`{"user": %q, "segment": "cart_abandoner", "event": "Segment Joined", "change": %q}`, userKey, detail["change_id"])
	if string(crmReqs[3].Body) != wantCRM || crmReqs[3].Header.Get("X-Crm-Key") != "dev-crm-key" {
		t.Fatalf("crm delivery %s %v, want %s", crmReqs[3].Body, crmReqs[3].Header, wantCRM)
	}
	ds.waitFor(t, regexp.MustCompile(`^channel crm delivered Segment Joined cart_abandoner user=\S+ status=200 attempt=4$`), 5*time.Second)

	// A purchase: the user leaves; push (joined and left) gets Segment Left, crm (joined) not.
	post(user+"-buy", "fb_mobile_purchase", time.Now())
	eventually("Segment Left at the push webhook", 2*time.Second+2*sweep, func() bool { return len(pushed("Segment Left")) > 0 })
	time.Sleep(4 * sweep)
	left := pushed("Segment Left")
	if len(left) != 1 || left[0]["detail"].(map[string]any)["user_key"] != userKey {
		t.Fatalf("Segment Left deliveries %v", left)
	}
	if n := len(crm.all()); n != 4 {
		t.Fatalf("crm webhook got %d requests, want the 4 of the join only", n)
	}
	if _, err := os.Stat(filepath.Join(ds.logDir, devenv.ChannelDeadLettersFile)); !os.IsNotExist(err) {
		t.Fatalf("dead letters written though every delivery succeeded: %v", err)
	}

	// retarget channels test's route: a test event through the dev bus, answered once delivered.
	resp, err := client.Post(api+devenv.ChannelsTestPath, "application/json", strings.NewReader(`{"app": "sample-shop", "channel": "push"}`))
	if err != nil {
		t.Fatal(err)
	}
	var res devenv.ChannelTestResult
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || res.Outcome != "delivered" || res.Status != 200 || res.DetailType != "Segment Joined" {
		t.Fatalf("channel test: %d %+v", resp.StatusCode, res)
	}
	if last := push.delivered(t); last[len(last)-1]["detail"].(map[string]any)["reason"] != "test" {
		t.Fatalf("the test event did not reach the push webhook: %v", last[len(last)-1])
	}

	// No raw personal data in any request either webhook saw.
	needles := []piiNeedle{
		{user: user, field: "email", form: "raw", text: strings.ToLower(email)},
		{user: user, field: "app_user_id", form: "raw", text: strings.ToLower(user)},
	}
	s := newPIIScanner(needles, nil)
	for i, r := range append(push.all(), crm.all()...) {
		s.scanDocument("channel delivery", fmt.Sprintf("request %d", i), r.Body)
		for name, vs := range r.Header {
			s.leaf("channel delivery", fmt.Sprintf("request %d header %s", i, name), "", strings.Join(vs, ","), 0)
		}
	}
	if len(s.findings) > 0 {
		t.Fatalf("raw personal data in channel deliveries: %v", s.findings)
	}
}

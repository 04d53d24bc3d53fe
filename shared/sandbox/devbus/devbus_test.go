package devbus

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/channels"
	"github.com/retarget-dev/retarget/shared/ports"
)

// webhook records requests and answers with the statuses in fail first, then 200.
type webhook struct {
	mu       sync.Mutex
	bodies   []string
	headers  []http.Header
	fail     []int
	requests atomic.Int32
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	n := int(w.requests.Add(1))
	if n <= len(w.fail) {
		rw.WriteHeader(w.fail[n-1])
		return
	}
	w.bodies = append(w.bodies, string(body))
	w.headers = append(w.headers, r.Header.Clone())
}

func newBus(t *testing.T, url, body string, events []string, reports *[]Delivery) (*Bus, string) {
	t.Helper()
	dl := filepath.Join(t.TempDir(), "channel-dead-letters.jsonl")
	cfg := &appconfig.Config{Apps: []appconfig.App{{ID: "shop", Channels: []appconfig.Channel{{
		ID: "push", Type: "webhook", URL: url, Segments: []string{"cart_abandoner"}, Events: events, Body: body,
		Auth: &appconfig.ChannelAuth{Header: "X-Push-Token", SecretName: "retarget/push", DevValue: "dev-push-token"},
	}}}}}
	var mu sync.Mutex
	b, err := New(cfg, Options{DeadLetters: dl, BackoffBase: time.Millisecond, BackoffMax: 4 * time.Millisecond,
		Report: func(d Delivery) { mu.Lock(); *reports = append(*reports, d); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, dl
}

func event(joined bool, chans ...string) ports.SegmentEvent {
	return ports.SegmentEvent{ChangeID: "c-1", App: "shop", Segment: "cart_abandoner", UserKey: "k1abcdefghij",
		Joined: joined, At: "2024-05-01T10:00:00.000Z", Reason: ports.ReasonTime, StateVersion: 3, Channels: chans}
}

func TestDeliversRenderedBodyWithHeader(t *testing.T) {
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	var reports []Delivery
	b, dl := newBus(t, srv.URL, `{"user": "<$.detail.user_key>", "event": <$.detail-type>}`, nil, &reports)
	if failed, err := b.Publish(context.Background(), []ports.SegmentEvent{event(true, "push")}); err != nil || failed != nil {
		t.Fatalf("publish: %v %v", failed, err)
	}
	b.Wait()
	if len(hook.bodies) != 1 || hook.bodies[0] != `{"user": "k1abcdefghij", "event": "Segment Joined"}` {
		t.Fatalf("bodies %q", hook.bodies)
	}
	h := hook.headers[0]
	if h.Get("X-Push-Token") != "dev-push-token" || h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("User-Agent") != UserAgent {
		t.Fatalf("headers %v", h)
	}
	if len(reports) != 1 || reports[0].Outcome != Delivered || reports[0].Status != 200 || reports[0].Attempt != 1 ||
		reports[0].DetailType != "Segment Joined" || reports[0].Channel != "push" {
		t.Fatalf("reports %+v", reports)
	}
	if _, err := os.Stat(dl); !os.IsNotExist(err) {
		t.Fatalf("dead letters written: %v", err)
	}
}

func TestRulesMatch(t *testing.T) {
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	var reports []Delivery
	b, _ := newBus(t, srv.URL, "", []string{"joined"}, &reports)
	// Not routed to the channel by the publisher; a left event on a joined-only channel; another app.
	other := event(true, "push")
	other.App = "other"
	if _, err := b.Publish(context.Background(), []ports.SegmentEvent{event(true), event(false, "push"), other}); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	if n := hook.requests.Load(); n != 0 {
		t.Fatalf("%d deliveries, want none", n)
	}
	if _, err := b.Publish(context.Background(), make([]ports.SegmentEvent, 11)); err == nil {
		t.Fatal("11 entries taken")
	}
	// Without a body the request is the EventBridge event.
	if _, err := b.Publish(context.Background(), []ports.SegmentEvent{event(true, "other-channel", "push")}); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	var got map[string]any
	if err := json.Unmarshal([]byte(hook.bodies[0]), &got); err != nil {
		t.Fatal(err)
	}
	if got["source"] != "retarget" || got["detail-type"] != "Segment Joined" || got["detail"].(map[string]any)["user_key"] != "k1abcdefghij" {
		t.Fatalf("event body %v", got)
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	hook := &webhook{fail: []int{500, 429, 503}}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	var reports []Delivery
	b, dl := newBus(t, srv.URL, "", nil, &reports)
	b.Publish(context.Background(), []ports.SegmentEvent{event(true, "push")})
	b.Wait()
	if len(hook.bodies) != 1 || hook.requests.Load() != 4 {
		t.Fatalf("%d requests, %d delivered", hook.requests.Load(), len(hook.bodies))
	}
	if len(reports) != 4 || reports[3].Outcome != Delivered || reports[3].Attempt != 4 || reports[0].Outcome != Retrying || reports[0].Status != 500 {
		t.Fatalf("reports %+v", reports)
	}
	if _, err := os.Stat(dl); !os.IsNotExist(err) {
		t.Fatal("dead letter written for a delivered event")
	}
}

func TestDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		attempts int
	}{{"retried until the last attempt", 502, DefaultAttempts}, {"not retried", 400, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			hook := &webhook{fail: []int{tc.status, tc.status, tc.status, tc.status, tc.status, tc.status}}
			srv := httptest.NewServer(hook)
			defer srv.Close()
			var reports []Delivery
			b, dl := newBus(t, srv.URL, "", nil, &reports)
			b.Publish(context.Background(), []ports.SegmentEvent{event(true, "push")})
			b.Wait()
			if n := int(hook.requests.Load()); n != tc.attempts {
				t.Fatalf("%d attempts, want %d", n, tc.attempts)
			}
			last := reports[len(reports)-1]
			if last.Outcome != DeadLettered || last.Attempt != tc.attempts {
				t.Fatalf("last report %+v", last)
			}
			f, err := os.Open(dl)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			var lines []deadLetter
			for sc.Scan() {
				var l deadLetter
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, l)
			}
			if len(lines) != 1 || lines[0].Channel != "push" || lines[0].Attributes["RETRY_ATTEMPTS"] != itoa(tc.attempts-1) ||
				lines[0].Attributes["ERROR_CODE"] != "HTTP_"+itoa(tc.status) {
				t.Fatalf("dead letters %+v", lines)
			}
			var ev struct {
				DetailType string `json:"detail-type"`
			}
			if json.Unmarshal(lines[0].Event, &ev); ev.DetailType != "Segment Joined" {
				t.Fatalf("dead-lettered event %s", lines[0].Event)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestCompileRefusesBadBody(t *testing.T) {
	cfg := &appconfig.Config{Apps: []appconfig.App{{ID: "shop", Channels: []appconfig.Channel{{ID: "push", Body: `{"a": <segment>}`}}}}}
	if _, err := New(cfg, Options{}); err == nil {
		t.Fatal("bad body taken")
	}
}

// TestChannelWithoutAuthSendsItsID: a channel without auth sends the header the stack's
// connection sends for it (an EventBridge connection must have an authorization).
func TestChannelWithoutAuthSendsItsID(t *testing.T) {
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	cfg := &appconfig.Config{Apps: []appconfig.App{{ID: "shop", Channels: []appconfig.Channel{{
		ID: "crm", Type: "webhook", URL: srv.URL, Segments: []string{"cart_abandoner"}}}}}}
	b, err := New(cfg, Options{DeadLetters: filepath.Join(t.TempDir(), "dl.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if _, err := b.Publish(context.Background(), []ports.SegmentEvent{event(true, "crm")}); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	if len(hook.headers) != 1 || hook.headers[0].Get(channels.NoAuthHeader) != "crm" {
		t.Fatalf("headers %v, want %s: crm", hook.headers, channels.NoAuthHeader)
	}
}

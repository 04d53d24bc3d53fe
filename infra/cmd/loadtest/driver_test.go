package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeAPI answers POST /v1/events with answer(attempt of this body's first event id, events).
type fakeAPI struct {
	mu       sync.Mutex
	seen     map[string]int // first event id -> posts
	arrivals []time.Time
	bodies   [][]string // event ids of each post
	answer   func(attempt int, ids []string) (status int, body string)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("x-api-key") != "k" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var req struct {
		Events []struct {
			ID string `json:"event_id"`
		} `json:"events"`
	}
	json.Unmarshal(raw, &req)
	var ids []string
	for _, e := range req.Events {
		ids = append(ids, e.ID)
	}
	f.mu.Lock()
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	key := ""
	if len(ids) > 0 {
		key = ids[len(ids)-1] // the last event is in every resend below
	}
	f.seen[key]++
	attempt := f.seen[key]
	f.arrivals = append(f.arrivals, time.Now())
	f.bodies = append(f.bodies, ids)
	f.mu.Unlock()
	status, body := f.answer(attempt, ids)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func accepted(n int) string { return fmt.Sprintf(`{"accepted":%d,"rejected":[]}`, n) }

func newTestDriver(t *testing.T, api *fakeAPI, rate float64, length time.Duration) *Driver {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	gen, err := NewGenerator(testPopulation(sampleApp(t)), 20, ShapeDevice, "lt-drv")
	if err != nil {
		t.Fatal(err)
	}
	return &Driver{URL: srv.URL, Key: "k", Gen: gen, Rate: rate, Length: length, Senders: 4, Client: NewHTTPClient(4), MaxAttempts: 3, KeepIDs: true}
}

func TestDriverPacesAndCounts(t *testing.T) {
	api := &fakeAPI{answer: func(_ int, ids []string) (int, string) { return http.StatusAccepted, accepted(len(ids)) }}
	d := newTestDriver(t, api, 2000, 500*time.Millisecond)
	res := d.Run(context.Background())
	if res.Generated != 1000 || res.Accepted != 1000 || res.Requests != 50 || res.Retries != 0 || res.ByStatus[202] != 50 {
		t.Fatalf("result %+v", res)
	}
	if len(res.LatencyMs) != 50 || res.Users == 0 || res.Users > 50 || res.Consented == 0 || len(res.IDs) != res.Consented {
		t.Errorf("latencies %d, users %d, consented %d, ids %d", len(res.LatencyMs), res.Users, res.Consented, len(res.IDs))
	}
	// Open loop at 100 requests per second: spread over the half second, not in one burst.
	spread := api.arrivals[len(api.arrivals)-1].Sub(api.arrivals[0])
	if spread < 400*time.Millisecond || spread > 700*time.Millisecond {
		t.Errorf("50 requests arrived over %s, want about 490ms", spread)
	}
	sum := 0
	for _, n := range res.AcceptedPerSecond {
		sum += n
	}
	if sum != res.Accepted {
		t.Errorf("accepted per second %v sum to %d, want %d", res.AcceptedPerSecond, sum, res.Accepted)
	}
}

func TestDriverResendsWhatMayBeResent(t *testing.T) {
	api := &fakeAPI{answer: func(attempt int, ids []string) (int, string) {
		switch {
		case len(ids) == 20 && attempt == 1:
			// Event 1 is refused for good, events 2 and 19 could not be stored: send them again.
			return http.StatusAccepted, `{"accepted":17,"rejected":[
				{"index":1,"event_id":"x","errors":[{"field":"events[1].user.email","reason":"not an email address"}]},
				{"index":2,"event_id":"y","retryable":true,"errors":[{"field":"events[2]","reason":"not stored"}]},
				{"index":19,"event_id":"z","retryable":true,"errors":[{"field":"events[19]","reason":"not stored"}]}]}`
		case attempt == 2:
			return http.StatusServiceUnavailable, `{"accepted":0,"rejected":[
				{"index":0,"retryable":true,"errors":[]},{"index":1,"retryable":true,"errors":[]}]}`
		default:
			return http.StatusAccepted, accepted(len(ids))
		}
	}}
	d := newTestDriver(t, api, 20, 900*time.Millisecond) // one request of 20 events
	res := d.Run(context.Background())
	if res.Generated != 20 || res.Accepted != 19 || res.Rejected != 1 || res.Lost != 0 || res.Requests != 3 || res.Retries != 2 {
		t.Fatalf("result %+v", res)
	}
	if res.RejectReasons["events[1].user.email: not an email address"] != 1 || res.ByStatus[503] != 1 {
		t.Errorf("reasons %v, statuses %v", res.RejectReasons, res.ByStatus)
	}
	// The resends carry exactly the events to resend, with their event_ids.
	first := api.bodies[0]
	for i, b := range api.bodies[1:] {
		if len(b) != 2 || b[0] != first[2] || b[1] != first[19] {
			t.Errorf("resend %d: %q, want %q and %q", i+1, b, first[2], first[19])
		}
	}
}

func TestDriverGivesUp(t *testing.T) {
	api := &fakeAPI{answer: func(int, []string) (int, string) { return http.StatusBadGateway, `{"message":"Internal server error"}` }}
	d := newTestDriver(t, api, 20, 900*time.Millisecond)
	d.MaxAttempts = 2
	res := d.Run(context.Background())
	if res.Accepted != 0 || res.Lost != 20 || res.Requests != 2 || res.ByStatus[502] != 2 {
		t.Errorf("result %+v", res)
	}

	// A body refused as a whole (400 without per-event errors) is not sent again.
	api.answer = func(int, []string) (int, string) { return http.StatusBadRequest, `{"error":"unreadable JSON"}` }
	d = newTestDriver(t, api, 20, 900*time.Millisecond)
	res = d.Run(context.Background())
	if res.Rejected != 20 || res.Requests != 1 || res.RejectReasons["request: unreadable JSON"] != 1 {
		t.Errorf("result %+v", res)
	}
}

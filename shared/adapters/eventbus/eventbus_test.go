package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/retarget-dev/retarget/shared/ports"
)

// putEventsServer answers PutEvents as EventBridge does (JSON 1.1), refusing the entries whose
// detail names a user in refuse, and records every request's entries. The SDK's own client
// talks to it, so the request and answer shapes are the real ones.
type putEventsServer struct {
	mu     sync.Mutex
	calls  [][]entry
	refuse map[string]bool
	status int
}

type entry struct {
	Source, DetailType, Detail, EventBusName string
}

func (s *putEventsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents" {
		http.Error(w, "unexpected target "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct{ Entries []entry }
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, in.Entries)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if s.status != 0 {
		w.WriteHeader(s.status)
		fmt.Fprint(w, `{"__type":"InternalException","message":"down"}`)
		return
	}
	type result struct {
		EventId      string `json:",omitempty"`
		ErrorCode    string `json:",omitempty"`
		ErrorMessage string `json:",omitempty"`
	}
	out := struct {
		FailedEntryCount int
		Entries          []result
	}{}
	for i, e := range in.Entries {
		var d ports.SegmentEvent
		_ = json.Unmarshal([]byte(e.Detail), &d)
		if s.refuse[d.UserKey] {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, result{ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded"})
			continue
		}
		out.Entries = append(out.Entries, result{EventId: fmt.Sprintf("id-%d", i)})
	}
	_ = json.NewEncoder(w).Encode(out)
}

func newBus(t *testing.T, srv *putEventsServer) *Bus {
	t.Helper()
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	client := eventbridge.New(eventbridge.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(ts.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
	})
	b, err := New(client, "retarget-bus")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func events(n int) []ports.SegmentEvent {
	out := make([]ports.SegmentEvent, n)
	for i := range out {
		out[i] = ports.SegmentEvent{ChangeID: fmt.Sprintf("c%d", i), App: "shop", Segment: "cart", UserKey: fmt.Sprintf("u-%d", i),
			Joined: i%2 == 0, At: "2026-03-10T12:00:00.000Z", Reason: ports.ReasonEvents, StateVersion: 1, Channels: []string{}}
	}
	return out
}

func TestPublishEntries(t *testing.T) {
	srv := &putEventsServer{}
	b := newBus(t, srv)
	evs := events(23)
	failed, err := b.Publish(context.Background(), evs)
	if err != nil || len(failed) != 0 {
		t.Fatalf("Publish = %v, %v", failed, err)
	}
	var sizes []int
	for _, c := range srv.calls {
		sizes = append(sizes, len(c))
	}
	if !slices.Equal(sizes, []int{10, 10, 3}) {
		t.Fatalf("PutEvents calls of %v entries; want 10, 10, 3", sizes)
	}
	e := srv.calls[0][1]
	if e.Source != ports.EventSource || e.DetailType != ports.DetailTypeLeft || e.EventBusName != "retarget-bus" {
		t.Errorf("entry = %+v", e)
	}
	if srv.calls[0][0].DetailType != ports.DetailTypeJoined {
		t.Errorf("a join's detail-type %q", srv.calls[0][0].DetailType)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil || d["change_id"] != "c1" || d["user_key"] != "u-1" || d["at"] != "2026-03-10T12:00:00.000Z" {
		t.Errorf("detail %s (%v)", e.Detail, err)
	}
}

func TestPublishReportsRefusedEntries(t *testing.T) {
	srv := &putEventsServer{refuse: map[string]bool{"u-3": true, "u-12": true}}
	b := newBus(t, srv)
	failed, err := b.Publish(context.Background(), events(15))
	if err != nil || !slices.Equal(failed, []int{3, 12}) {
		t.Fatalf("Publish = %v, %v; want [3 12] refused", failed, err)
	}
}

func TestPublishCallFailure(t *testing.T) {
	srv := &putEventsServer{status: http.StatusInternalServerError}
	b := newBus(t, srv)
	failed, err := b.Publish(context.Background(), events(3))
	if err == nil || !slices.Equal(failed, []int{0, 1, 2}) {
		t.Fatalf("Publish against a failing bus = %v, %v; want every entry failed and an error", failed, err)
	}
}

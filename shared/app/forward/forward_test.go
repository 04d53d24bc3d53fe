package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
)

// call is what the fake sender saw of one request.
type call struct {
	n       int // 0-based call number
	at      time.Time
	dataset string
	test    string
	ids     []string
	payload [][]byte // copies of the event bytes
}

// fakeSender plays Meta. Requests carrying a poison event id are refused as a whole (as Meta
// refuses a request with one invalid event); the others follow script, if set, else succeed.
type fakeSender struct {
	mu     sync.Mutex
	calls  []call
	poison map[string]*ports.CAPIError
	script func(n int, c call) (ports.CAPIAck, error)
	clock  *fakeClock
	hold   time.Duration // how long each call takes (real time)

	inFlight, maxInFlight atomic.Int32
}

func (s *fakeSender) SendEvents(ctx context.Context, req ports.CAPIRequest) (ports.CAPIAck, error) {
	if n := s.inFlight.Add(1); n > s.maxInFlight.Load() {
		for {
			m := s.maxInFlight.Load()
			if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
	}
	defer s.inFlight.Add(-1)
	if s.hold > 0 {
		time.Sleep(s.hold)
	}

	c := call{dataset: req.DatasetID, test: req.TestEventCode}
	if s.clock != nil {
		c.at = s.clock.Now()
	}
	var refusal *ports.CAPIError
	for _, e := range req.Events {
		var ev struct {
			ID string `json:"event_id"`
		}
		if err := json.Unmarshal(e, &ev); err != nil {
			panic(err)
		}
		c.ids = append(c.ids, ev.ID)
		c.payload = append(c.payload, bytes.Clone(e))
		if p := s.poison[ev.ID]; p != nil && refusal == nil {
			refusal = p
		}
	}
	s.mu.Lock()
	c.n = len(s.calls)
	s.calls = append(s.calls, c)
	s.mu.Unlock()

	if refusal != nil {
		e := *refusal
		return ports.CAPIAck{}, &e
	}
	if s.script != nil {
		return s.script(c.n, c)
	}
	return ports.CAPIAck{EventsReceived: len(req.Events), FBTraceID: fmt.Sprintf("trace-%d", c.n)}, nil
}

func (s *fakeSender) requests() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

type fakeDLQ struct {
	mu    sync.Mutex
	sends [][]ports.DeadLetter
	err   error
}

func (q *fakeDLQ) Send(ctx context.Context, letters []ports.DeadLetter) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sends = append(q.sends, letters)
	return q.err
}

func (q *fakeDLQ) letters() []ports.DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	var all []ports.DeadLetter
	for _, s := range q.sends {
		all = append(all, s...)
	}
	return all
}

// fakeClock is a clock that only moves when the code under test sleeps.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// opts returns deterministic options: fake clock and sleep, jitter fixed at half the ceiling.
func opts(c *fakeClock) Options {
	return Options{Sleep: c.Sleep, Now: c.Now, Rand: func() float64 { return 0.5 }}
}

func makeItems(n int, dataset, test string) []Item {
	items := make([]Item, n)
	for i := range items {
		id := fmt.Sprintf("ev-%04d", i)
		items[i] = Item{
			Index: i, ShardID: "shardId-000000000001", SequenceNumber: fmt.Sprintf("4960%08d", i),
			App: "shop", DatasetID: dataset, TestEventCode: test, EventID: id, EventName: "Purchase",
			Payload: json.RawMessage(fmt.Sprintf(`{"event_name":"Purchase","event_time":1800000000,"event_id":%q,"action_source":"app"}`, id)),
			Record:  []byte(fmt.Sprintf(`{"envelope":%q}`, id)),
		}
	}
	return items
}

func indexes(items []Item) []int {
	idx := make([]int, len(items))
	for i, it := range items {
		idx[i] = it.Index
	}
	return idx
}

func invalidParam(subcode int) *ports.CAPIError {
	return &ports.CAPIError{Class: ports.CAPIInvalidParameter, HTTPStatus: 400, Meta: ports.MetaError{
		Message: "Invalid parameter", Type: "OAuthException", Code: 100, Subcode: subcode,
		ErrorUserTitle: "User Parameter Not Hashed", ErrorUserMsg: "em must be a SHA-256 hash", FBTraceID: "TRACE-100",
	}}
}

func capiErr(class ports.CAPIErrorClass, code int) *ports.CAPIError {
	return &ports.CAPIError{Class: class, HTTPStatus: 400, Meta: ports.MetaError{Code: code, Message: "m", FBTraceID: "T"}}
}

func TestChunksOf1000(t *testing.T) {
	s := &fakeSender{}
	items := makeItems(2500, "ds1", "")
	out := New(s, &fakeDLQ{}, Options{}).Forward(context.Background(), items)

	if out.Requests != 3 || len(out.Delivered) != 2500 || len(out.Failed)+len(out.DeadLettered) != 0 {
		t.Fatalf("requests %d delivered %d failed %d dead %d", out.Requests, len(out.Delivered), len(out.Failed), len(out.DeadLettered))
	}
	if !slices.Equal(out.Delivered, indexes(items)) {
		t.Fatal("Delivered is not every index, sorted")
	}
	if len(out.FBTraceIDs) != 3 || out.Retries != 0 || out.Bisections != 0 || out.ReceivedMismatch != 0 {
		t.Fatalf("outcome %+v", out)
	}
	reqs := s.requests()
	sizes := map[int]int{}
	var seen []string
	slices.SortFunc(reqs, func(a, b call) int { return cmpID(a.ids[0], b.ids[0]) })
	for _, r := range reqs {
		sizes[len(r.ids)]++
		seen = append(seen, r.ids...)
	}
	if sizes[1000] != 2 || sizes[500] != 1 {
		t.Fatalf("request sizes %v", sizes)
	}
	for i, id := range seen {
		if id != items[i].EventID {
			t.Fatalf("stream order not kept at %d: %s", i, id)
		}
	}
}

func cmpID(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestByteCap(t *testing.T) {
	s := &fakeSender{}
	items := makeItems(50, "ds", "")
	size := len(items[0].Payload) + 1
	big := makeItems(1, "ds", "")[0]
	big.Index, big.EventID = 50, "ev-big"
	big.Payload = json.RawMessage(fmt.Sprintf(`{"event_id":"ev-big","pad":%q}`, bytes.Repeat([]byte("x"), 20*size)))
	items = append(items[:25], append([]Item{big}, items[25:]...)...)

	out := New(s, &fakeDLQ{}, Options{MaxRequestBytes: 10 * size}).Forward(context.Background(), items)
	if len(out.Delivered) != 51 {
		t.Fatalf("delivered %d", len(out.Delivered))
	}
	for _, r := range s.requests() {
		n := 0
		for _, p := range r.payload {
			n += len(p) + 1
		}
		if n > 10*size && len(r.ids) != 1 {
			t.Fatalf("request of %d events and %d bytes exceeds the cap", len(r.ids), n)
		}
		if slices.Contains(r.ids, "ev-big") && len(r.ids) != 1 {
			t.Fatalf("oversized event shares a request: %v", r.ids)
		}
	}
	// 25 events -> 10+10+5, the big one alone, 25 -> 10+10+5.
	if out.Requests != 7 {
		t.Fatalf("requests %d, want 7", out.Requests)
	}
}

func TestPoisonEventIsolated(t *testing.T) {
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			clock := newClock()
			items := makeItems(1000, "ds", "")
			s := &fakeSender{poison: map[string]*ports.CAPIError{"ev-0377": invalidParam(2804016)}}
			q := &fakeDLQ{}
			o := opts(clock)
			o.Concurrency = conc
			out := New(s, q, o).Forward(context.Background(), items)

			if !slices.Equal(out.DeadLettered, []int{377}) || len(out.Delivered) != 999 || len(out.Failed) != 0 {
				t.Fatalf("dead %v delivered %d failed %v", out.DeadLettered, len(out.Delivered), out.Failed)
			}
			depth := bits.Len(uint(1000 - 1)) // ceil(log2(1000)) = 10 splits on the path to one event
			if out.Bisections != 2*depth || out.Requests != 1+2*depth || out.Retries != 0 {
				t.Fatalf("bisections %d requests %d retries %d, want %d, %d, 0", out.Bisections, out.Requests, out.Retries, 2*depth, 1+2*depth)
			}
			if len(q.sends) != 1 {
				t.Fatalf("%d DLQ calls, want 1", len(q.sends))
			}
			dl := q.letters()[0]
			want := ports.DeadLetter{
				App: "shop", EventID: "ev-0377", EventName: "Purchase", Consumer: "capi-forwarder",
				Reason: ReasonInvalidParameter, Meta: &invalidParam(2804016).Meta, Attempts: 1 + depth,
				ShardID: "shardId-000000000001", SequenceNumber: items[377].SequenceNumber,
				FailedAt: clock.Now().UnixMilli(), Record: items[377].Record,
			}
			if dl.Detail == "" || !bytes.Contains([]byte(dl.Detail), []byte("2804016")) || !bytes.Contains([]byte(dl.Detail), []byte("User Parameter Not Hashed")) {
				t.Fatalf("detail %q", dl.Detail)
			}
			dl.Detail = ""
			if !reflect.DeepEqual(dl, want) {
				t.Fatalf("dead letter\n got %+v %+v\nwant %+v %+v", dl, *dl.Meta, want, *want.Meta)
			}
			delivered := 0
			for _, r := range s.requests() {
				if !slices.Contains(r.ids, "ev-0377") {
					delivered += len(r.ids)
				}
			}
			if delivered != 999 {
				t.Fatalf("%d events accepted by the fake, want 999", delivered)
			}
		})
	}
}

func TestTwoPoisonEvents(t *testing.T) {
	items := makeItems(1000, "ds", "")
	s := &fakeSender{poison: map[string]*ports.CAPIError{"ev-0010": invalidParam(2804016), "ev-0900": invalidParam(2804019)}}
	q := &fakeDLQ{}
	out := New(s, q, opts(newClock())).Forward(context.Background(), items)
	if !slices.Equal(out.DeadLettered, []int{10, 900}) || len(out.Delivered) != 998 || len(out.Failed) != 0 {
		t.Fatalf("dead %v delivered %d failed %v", out.DeadLettered, len(out.Delivered), out.Failed)
	}
	if len(q.sends) != 1 || len(q.sends[0]) != 2 {
		t.Fatalf("DLQ calls %v", q.sends)
	}
	got := q.letters()
	if got[0].EventID != "ev-0010" || got[0].Meta.Subcode != 2804016 || got[1].EventID != "ev-0900" || got[1].Meta.Subcode != 2804019 {
		t.Fatalf("letters %+v", got)
	}
	// Both halves of the first split hold a poison: 2 + 2*9 per half.
	if out.Bisections != 38 {
		t.Fatalf("bisections %d, want 38", out.Bisections)
	}
}

func TestTransientThenSuccess(t *testing.T) {
	clock := newClock()
	items := makeItems(10, "ds", "")
	s := &fakeSender{script: func(n int, c call) (ports.CAPIAck, error) {
		if n < 2 {
			return ports.CAPIAck{}, &ports.CAPIError{Class: ports.CAPITransient, HTTPStatus: 503}
		}
		return ports.CAPIAck{EventsReceived: len(c.ids)}, nil
	}}
	o := opts(clock)
	o.BaseDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	out := New(s, &fakeDLQ{}, o).Forward(context.Background(), items)

	if len(out.Delivered) != 10 || out.Requests != 3 || out.Retries != 2 {
		t.Fatalf("delivered %d requests %d retries %d", len(out.Delivered), out.Requests, out.Retries)
	}
	// Full jitter with Rand = 0.5: half of 100ms, then half of 200ms.
	if got := clock.slept(); !slices.Equal(got, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}) {
		t.Fatalf("slept %v", got)
	}
	reqs := s.requests()
	for _, r := range reqs[1:] {
		for i := range r.payload {
			if !bytes.Equal(r.payload[i], reqs[0].payload[i]) || !bytes.Equal(r.payload[i], items[i].Payload) {
				t.Fatalf("payload %d changed between attempts:\n%s\n%s", i, reqs[0].payload[i], r.payload[i])
			}
		}
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	clock := newClock()
	start := clock.Now()
	items := makeItems(2000, "ds", "")
	var limited atomic.Bool
	s := &fakeSender{clock: clock, script: func(n int, c call) (ports.CAPIAck, error) {
		if limited.CompareAndSwap(false, true) {
			e := capiErr(ports.CAPIRateLimited, 80004)
			e.RetryAfter = 3 * time.Minute
			return ports.CAPIAck{}, e
		}
		return ports.CAPIAck{EventsReceived: len(c.ids)}, nil
	}}
	o := opts(clock)
	o.Concurrency = 1
	out := New(s, &fakeDLQ{}, o).Forward(context.Background(), items)

	if len(out.Delivered) != 2000 || out.Retries != 1 || out.Requests != 3 {
		t.Fatalf("delivered %d retries %d requests %d", len(out.Delivered), out.Retries, out.Requests)
	}
	slept := clock.slept()
	if len(slept) == 0 || slept[0] < 3*time.Minute {
		t.Fatalf("slept %v, want a first wait >= 3m", slept)
	}
	// Once Meta asked us to wait, no request of the call starts before the wait is over.
	for _, r := range s.requests()[1:] {
		if r.at.Sub(start) < 3*time.Minute {
			t.Fatalf("call %d started %v after the rate limit, before RetryAfter", r.n, r.at.Sub(start))
		}
	}
}

func TestRetriesExhausted(t *testing.T) {
	cases := []struct {
		class    ports.CAPIErrorClass
		requests int
	}{
		{ports.CAPITransient, 4},
		{ports.CAPIRateLimited, 4},
		{ports.CAPIUnknown, unknownAttempts},
	}
	for _, c := range cases {
		t.Run(c.class.String(), func(t *testing.T) {
			items := makeItems(5, "ds", "")
			s := &fakeSender{script: func(int, call) (ports.CAPIAck, error) { return ports.CAPIAck{}, capiErr(c.class, 1) }}
			o := opts(newClock())
			o.MaxAttempts = 4
			out := New(s, &fakeDLQ{}, o).Forward(context.Background(), items)
			if !slices.Equal(out.Failed, indexes(items)) || len(out.Delivered)+len(out.DeadLettered) != 0 {
				t.Fatalf("failed %v delivered %v dead %v", out.Failed, out.Delivered, out.DeadLettered)
			}
			if out.Requests != c.requests || out.Retries != c.requests-1 {
				t.Fatalf("requests %d retries %d, want %d, %d", out.Requests, out.Retries, c.requests, c.requests-1)
			}
			var e *ports.CAPIError
			if !errors.As(out.LastError, &e) || e.Class != c.class {
				t.Fatalf("LastError %v", out.LastError)
			}
		})
	}
}

func TestPlainErrorIsUnknown(t *testing.T) {
	s := &fakeSender{script: func(int, call) (ports.CAPIAck, error) { return ports.CAPIAck{}, errors.New("boom") }}
	out := New(s, &fakeDLQ{}, opts(newClock())).Forward(context.Background(), makeItems(3, "ds", ""))
	if len(out.Failed) != 3 || out.Requests != unknownAttempts {
		t.Fatalf("%+v", out)
	}
}

func TestDeadline(t *testing.T) {
	t.Run("backoff stops before the deadline", func(t *testing.T) {
		s := &fakeSender{script: func(int, call) (ports.CAPIAck, error) {
			return ports.CAPIAck{}, &ports.CAPIError{Class: ports.CAPITransient}
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		o := Options{MaxAttempts: 1000, BaseDelay: 20 * time.Millisecond, MaxDelay: 40 * time.Millisecond, DeadlineMargin: 50 * time.Millisecond}
		start := time.Now()
		out := New(s, &fakeDLQ{}, o).Forward(ctx, makeItems(20, "ds", ""))
		if took := time.Since(start); took > 300*time.Millisecond {
			t.Fatalf("Forward took %v, past the 300ms deadline", took)
		}
		if len(out.Failed) != 20 || out.Requests < 2 || ctx.Err() != nil {
			t.Fatalf("failed %d requests %d ctx %v", len(out.Failed), out.Requests, ctx.Err())
		}
	})
	t.Run("long RetryAfter fails at once", func(t *testing.T) {
		clock := newClock()
		s := &fakeSender{script: func(int, call) (ports.CAPIAck, error) {
			e := capiErr(ports.CAPIRateLimited, 17)
			e.RetryAfter = 10 * time.Minute
			return ports.CAPIAck{}, e
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o := Options{Sleep: clock.Sleep, DeadlineMargin: time.Second, Concurrency: 1}
		out := New(s, &fakeDLQ{}, o).Forward(ctx, makeItems(2000, "ds", ""))
		if len(out.Failed) != 2000 || out.Requests != 1 || len(clock.slept()) != 0 {
			t.Fatalf("failed %d requests %d slept %v", len(out.Failed), out.Requests, clock.slept())
		}
	})
	t.Run("cancelled before start", func(t *testing.T) {
		s := &fakeSender{}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		out := New(s, &fakeDLQ{}, Options{}).Forward(ctx, makeItems(10, "ds", ""))
		if len(out.Failed) != 10 || out.Requests != 0 {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("too close to the deadline to start", func(t *testing.T) {
		s := &fakeSender{}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		out := New(s, &fakeDLQ{}, Options{DeadlineMargin: 2 * time.Second}).Forward(ctx, makeItems(10, "ds", ""))
		if len(out.Failed) != 10 || out.Requests != 0 {
			t.Fatalf("%+v", out)
		}
	})
}

func TestAuthFailure(t *testing.T) {
	for _, code := range []int{190, 102, 10, 200, 294} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			items := makeItems(3000, "ds", "")
			// A poison event too: an auth failure must not produce dead letters.
			s := &fakeSender{
				poison: map[string]*ports.CAPIError{"ev-0002": invalidParam(0)},
				script: func(int, call) (ports.CAPIAck, error) { return ports.CAPIAck{}, capiErr(ports.CAPIAuth, code) },
			}
			q := &fakeDLQ{}
			o := opts(newClock())
			o.Concurrency = 1
			out := New(s, q, o).Forward(context.Background(), items)
			if !slices.Equal(out.Failed, indexes(items)) || len(out.DeadLettered) != 0 || len(q.sends) != 0 {
				t.Fatalf("failed %d dead %d DLQ calls %d", len(out.Failed), len(out.DeadLettered), len(q.sends))
			}
			if out.AuthFailure == nil || out.AuthFailure.Meta.Code != code || out.Retries != 0 {
				t.Fatalf("AuthFailure %v retries %d", out.AuthFailure, out.Retries)
			}
		})
	}
	t.Run("after some deliveries", func(t *testing.T) {
		items := makeItems(3000, "ds", "")
		s := &fakeSender{script: func(n int, c call) (ports.CAPIAck, error) {
			if n == 0 {
				return ports.CAPIAck{EventsReceived: len(c.ids)}, nil
			}
			return ports.CAPIAck{}, capiErr(ports.CAPIAuth, 190)
		}}
		o := opts(newClock())
		o.Concurrency = 1
		out := New(s, &fakeDLQ{}, o).Forward(context.Background(), items)
		if len(out.Delivered) != 1000 || len(out.Failed) != 2000 || out.Requests != 2 || out.AuthFailure == nil {
			t.Fatalf("delivered %d failed %d requests %d", len(out.Delivered), len(out.Failed), out.Requests)
		}
	})
}

func TestBlocked(t *testing.T) {
	items := makeItems(5, "ds", "")
	s := &fakeSender{script: func(int, call) (ports.CAPIAck, error) { return ports.CAPIAck{}, capiErr(ports.CAPIBlocked, 368) }}
	clock := newClock()
	out := New(s, &fakeDLQ{}, opts(clock)).Forward(context.Background(), items)
	if len(out.Failed) != 5 || out.Requests != 1 || out.Retries != 0 || out.Blocked == nil || len(clock.slept()) != 0 {
		t.Fatalf("%+v", out)
	}
}

func TestDatasetRefused(t *testing.T) {
	items := append(makeItems(1500, "missing", ""), makeItems(10, "ok", "")...)
	for i := range items {
		items[i].Index = i
	}
	s := &fakeSender{script: func(n int, c call) (ports.CAPIAck, error) {
		if c.dataset == "missing" {
			return ports.CAPIAck{}, invalidParam(subcodeObjectMissing)
		}
		return ports.CAPIAck{EventsReceived: len(c.ids)}, nil
	}}
	q := &fakeDLQ{}
	o := opts(newClock())
	o.Concurrency = 1
	out := New(s, q, o).Forward(context.Background(), items)
	if len(out.Failed) != 1500 || len(out.Delivered) != 10 || len(q.sends) != 0 || out.Bisections != 0 || out.DatasetFailure == nil {
		t.Fatalf("failed %d delivered %d DLQ %d bisections %d", len(out.Failed), len(out.Delivered), len(q.sends), out.Bisections)
	}
	if out.Requests != 2 {
		t.Fatalf("%d requests: the second chunk of a refused dataset should not be sent", out.Requests)
	}
}

func TestBisectionBudget(t *testing.T) {
	items := makeItems(1000, "ds", "")
	poison := map[string]*ports.CAPIError{}
	for _, it := range items {
		poison[it.EventID] = invalidParam(0)
	}
	q := &fakeDLQ{}
	o := opts(newClock())
	o.MaxBisectionRequests = 10
	out := New(&fakeSender{poison: poison}, q, o).Forward(context.Background(), items)
	if out.Bisections > 10 || out.Requests > 11 || len(out.Failed) != 1000 || len(q.sends) != 0 {
		t.Fatalf("bisections %d requests %d failed %d dead %d", out.Bisections, out.Requests, len(out.Failed), len(out.DeadLettered))
	}
}

func TestDLQFailure(t *testing.T) {
	items := makeItems(1000, "ds", "")
	s := &fakeSender{poison: map[string]*ports.CAPIError{"ev-0500": invalidParam(0)}}
	q := &fakeDLQ{err: errors.New("sqs unavailable")}
	out := New(s, q, opts(newClock())).Forward(context.Background(), items)
	if !slices.Equal(out.Failed, []int{500}) || len(out.DeadLettered) != 0 || len(out.Delivered) != 999 {
		t.Fatalf("failed %v dead %v delivered %d", out.Failed, out.DeadLettered, len(out.Delivered))
	}
	if out.DeadLetterErr == nil || len(q.sends) != 1 {
		t.Fatalf("DeadLetterErr %v, DLQ calls %d", out.DeadLetterErr, len(q.sends))
	}
}

func TestInvalidItemsNeverSent(t *testing.T) {
	items := makeItems(4, "ds", "")
	items[1].DatasetID = ""
	items[2].Payload = json.RawMessage(`{"event_id":"ev-0002",`)
	s := &fakeSender{}
	q := &fakeDLQ{}
	out := New(s, q, opts(newClock())).Forward(context.Background(), items)
	if !slices.Equal(out.Delivered, []int{0, 3}) || !slices.Equal(out.DeadLettered, []int{1, 2}) || out.Requests != 1 {
		t.Fatalf("%+v", out)
	}
	l := q.letters()
	if l[0].Reason != ReasonNoDataset || l[1].Reason != ReasonInvalidPayload || l[0].Attempts != 0 || l[1].Meta != nil {
		t.Fatalf("letters %+v", l)
	}
}

func TestGrouping(t *testing.T) {
	var items []Item
	keys := [][2]string{{"A", ""}, {"B", ""}, {"A", "TEST1"}, {"B", ""}, {"A", ""}}
	for i := range 50 {
		k := keys[i%len(keys)]
		it := makeItems(i+1, k[0], k[1])[i]
		items = append(items, it)
	}
	s := &fakeSender{}
	out := New(s, &fakeDLQ{}, Options{MaxEventsPerRequest: 15}).Forward(context.Background(), items)
	if len(out.Delivered) != 50 {
		t.Fatalf("delivered %d", len(out.Delivered))
	}
	byID := map[string]Item{}
	for _, it := range items {
		byID[it.EventID] = it
	}
	perKey := map[[2]string][]string{}
	reqs := s.requests()
	slices.SortFunc(reqs, func(a, b call) int { return cmpID(a.ids[0], b.ids[0]) })
	for _, r := range reqs {
		if len(r.ids) > 15 {
			t.Fatalf("request of %d events", len(r.ids))
		}
		k := [2]string{r.dataset, r.test}
		for _, id := range r.ids {
			if it := byID[id]; it.DatasetID != r.dataset || it.TestEventCode != r.test {
				t.Fatalf("%s of %s/%s sent in a %s/%s request", id, it.DatasetID, it.TestEventCode, r.dataset, r.test)
			}
		}
		perKey[k] = append(perKey[k], r.ids...)
	}
	// A/"" holds 20 events (2 requests), B/"" 20 (2), A/TEST1 10 (1); each in stream order.
	if out.Requests != 5 || len(perKey) != 3 {
		t.Fatalf("requests %d groups %v", out.Requests, perKey)
	}
	for k, ids := range perKey {
		if !slices.IsSorted(ids) {
			t.Fatalf("group %v out of stream order: %v", k, ids)
		}
	}
}

func TestConcurrencyBounded(t *testing.T) {
	s := &fakeSender{hold: 5 * time.Millisecond}
	out := New(s, &fakeDLQ{}, Options{MaxEventsPerRequest: 10, Concurrency: 3}).Forward(context.Background(), makeItems(300, "ds", ""))
	if len(out.Delivered) != 300 || out.Requests != 30 {
		t.Fatalf("delivered %d requests %d", len(out.Delivered), out.Requests)
	}
	if m := s.maxInFlight.Load(); m > 3 || m < 2 {
		t.Fatalf("max in flight %d, want 2..3", m)
	}

	// Bisection halves share the same bound.
	s = &fakeSender{hold: time.Millisecond, poison: map[string]*ports.CAPIError{"ev-0001": invalidParam(0), "ev-0600": invalidParam(0)}}
	out = New(s, &fakeDLQ{}, Options{Concurrency: 2}).Forward(context.Background(), makeItems(1000, "ds", ""))
	if len(out.DeadLettered) != 2 || s.maxInFlight.Load() > 2 {
		t.Fatalf("dead %v max in flight %d", out.DeadLettered, s.maxInFlight.Load())
	}
}

func TestReceivedMismatch(t *testing.T) {
	s := &fakeSender{script: func(n int, c call) (ports.CAPIAck, error) {
		return ports.CAPIAck{EventsReceived: len(c.ids) - 3, UsagePct: 87}, nil
	}}
	out := New(s, &fakeDLQ{}, Options{}).Forward(context.Background(), makeItems(1500, "ds", ""))
	if len(out.Delivered) != 1500 || out.ReceivedMismatch != 6 || out.UsagePct != 87 {
		t.Fatalf("delivered %d mismatch %d usage %v", len(out.Delivered), out.ReceivedMismatch, out.UsagePct)
	}
}

func TestEmpty(t *testing.T) {
	q := &fakeDLQ{}
	out := New(&fakeSender{}, q, Options{}).Forward(context.Background(), nil)
	if out.Requests != 0 || len(out.Delivered)+len(out.Failed)+len(out.DeadLettered) != 0 || len(q.sends) != 0 {
		t.Fatalf("%+v", out)
	}
}

// nopSender accepts everything without looking.
type nopSender struct{}

func (nopSender) SendEvents(_ context.Context, req ports.CAPIRequest) (ports.CAPIAck, error) {
	return ports.CAPIAck{EventsReceived: len(req.Events)}, nil
}

func BenchmarkForward1000(b *testing.B) {
	items := makeItems(1000, "ds", "")
	f := New(nopSender{}, &fakeDLQ{}, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out := f.Forward(ctx, items); len(out.Delivered) != 1000 {
			b.Fatal(out)
		}
	}
}

// The events of one stream record are items sharing its Index: Meta refusing one of them
// dead-letters that event alone, as a one-event record, and the Outcome lists the index once
// per item.
func TestPoisonEventOfAMultiEventRecord(t *testing.T) {
	recs := make([]envelope.Record, 3)
	for i := range recs {
		recs[i] = envelope.Record{V: 2, App: "shop", UserKey: "uk-1", ReceivedAt: 1_800_000_000_000,
			Event: envelope.Event{ID: fmt.Sprintf("ev-%04d", i), Name: "Purchase", Time: 1_800_000_000,
				Device: envelope.Device{Platform: "ios", OSVersion: "17"}}}
	}
	recs[1].Event.Device.OSVersion = "18" // its own device: written in the event
	data := envelope.AppendGroup(nil, recs)
	items := makeItems(4, "ds", "")
	for i := range 3 { // items 0-2: the events of record 0; item 3: record 1, one event
		items[i].Index, items[i].Record, items[i].Event, items[i].Events = 0, data, i, 3
	}
	items[3].Index = 1
	s := &fakeSender{poison: map[string]*ports.CAPIError{"ev-0001": invalidParam(2804016)}}
	q := &fakeDLQ{}
	out := New(s, q, opts(newClock())).Forward(context.Background(), items)
	if !slices.Equal(out.Delivered, []int{0, 0, 1}) || !slices.Equal(out.DeadLettered, []int{0}) || len(out.Failed) != 0 {
		t.Fatalf("delivered %v dead %v failed %v", out.Delivered, out.DeadLettered, out.Failed)
	}
	letters := q.letters()
	if len(letters) != 1 || letters[0].EventID != "ev-0001" {
		t.Fatalf("letters %+v", letters)
	}
	got, err := envelope.DecodeOne(letters[0].Record)
	if err != nil {
		t.Fatalf("the dead letter's record: %v\n%s", err, letters[0].Record)
	}
	if got.Event.ID != "ev-0001" || got.Event.Device.OSVersion != "18" || got.App != "shop" || got.UserKey != "uk-1" {
		t.Fatalf("the dead letter holds %+v, want event ev-0001 alone", got)
	}
}

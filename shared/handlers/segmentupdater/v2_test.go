package segmentupdater

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// The events of a version 2 record: one user's, sharing the record's sequence number.

// events parses API events through the ingest parser into envelope records, one per event.
func (hs *harness) events(t *testing.T, evs ...map[string]any) []envelope.Record {
	t.Helper()
	var out []envelope.Record
	for _, rec := range hs.batch(t, evs...).Records {
		recs, err := envelope.Decode(rec.Kinesis.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
	return out
}

// kinesis wraps encoded records as one batch, with fresh sequence numbers.
func (hs *harness) kinesis(data ...[]byte) events.KinesisEvent {
	var ev events.KinesisEvent
	for _, d := range data {
		hs.seq++
		seq := fmt.Sprintf("4968%052d", hs.seq)
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq,
			Kinesis: events.KinesisRecord{SequenceNumber: seq, Data: d}})
	}
	return ev
}

// v2 is one version 2 record holding recs (one user's); v1 is the version 1 record of one event.
func v2(recs ...envelope.Record) []byte { return envelope.AppendGroup(nil, recs) }
func v1(rec envelope.Record) []byte     { return envelope.AppendV1(nil, &rec) }

// handleCounting handles ev and returns the batch's metrics as one map.
func (hs *harness) handleCounting(t *testing.T, ev events.KinesisEvent) map[string]float64 {
	t.Helper()
	var buf bytes.Buffer
	hs.h.cfg.Metrics = observability.NewEmitter(&buf, "Test")
	defer func() { hs.h.cfg.Metrics = nil }()
	hs.handle(t, ev)
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("metrics %q: %v", buf.String(), err)
	}
	out := map[string]float64{}
	for k, v := range doc {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}

// stateOf is what a user's folded events leave: everything but the version and LastSeq,
// which count writes and records.
func stateOf(t *testing.T, hs *harness, user string) string {
	t.Helper()
	rec, _ := hs.user(t, user)
	return fmt.Sprintf("state=%s segs=%v ids=%v due=%d exp=%d", rec.State, rec.Segments, rec.RecentIDs, rec.DueAt, rec.ExpiresAt)
}

func threeEvents() []map[string]any {
	return []map[string]any{
		event("o-1", "fb_mobile_activate_app", now.Add(-3*time.Hour), "u-1", nil),
		event("v-1", "fb_mobile_content_view", now.Add(-2*time.Hour), "u-1", nil),
		event("p-1", "fb_mobile_purchase", now.Add(-time.Hour), "u-1", map[string]any{"value": 300, "currency": "USD"}),
	}
}

// A version 2 record folds as its events would one record each: every event counts, though
// they share one sequence number.
func TestMultiEventRecordFoldsEveryEvent(t *testing.T) {
	single := newHarness(t)
	single.handle(t, single.batch(t, threeEvents()...))

	hs := newHarness(t)
	recs := hs.events(t, threeEvents()...)
	other := hs.events(t, event("o-2", "fb_mobile_activate_app", now.Add(-time.Hour), "u-2", nil),
		event("v-2", "fb_mobile_content_view", now.Add(-time.Minute), "u-2", nil))
	got := hs.handleCounting(t, hs.kinesis(v2(recs...), v2(other...)))
	if got["RecordsRead"] != 2 || got["EventsRead"] != 5 || got["EventsApplied"] != 5 || got["UsersRead"] != 2 || got["UserWrites"] != 2 {
		t.Errorf("metrics %v: want 2 records, 5 events read and applied, 2 users read and written", got)
	}
	if a, b := stateOf(t, hs, "u-1"), stateOf(t, single, "u-1"); a != b {
		t.Errorf("one record of three events folds to\n  %s\nthree records of one event to\n  %s", a, b)
	}
	if rec, _ := hs.user(t, "u-1"); !slices.Contains(rec.Segments, "vip") || len(rec.RecentIDs) != 3 {
		t.Errorf("u-1: segments %v, %d recent ids; want vip and the three events", rec.Segments, len(rec.RecentIDs))
	}
	if rec, st := hs.user(t, "u-2"); st.LastSeen != now.Add(-time.Minute).Unix() || len(rec.RecentIDs) != 2 {
		t.Errorf("u-2: last seen %d, ids %v; want both events", st.LastSeen, rec.RecentIDs)
	}
}

// A redelivered version 2 record applies none of its events again: no write, no change, no
// outcome counted twice.
func TestRedeliveredMultiEventRecordAppliesNothing(t *testing.T) {
	hs := newHarness(t)
	out := &countingOutcomes{Store: hs.store}
	hs.measured(t, nil, out, nil, nil)
	recs := hs.events(t, threeEvents()...)
	ev := hs.kinesis(v2(recs...))
	hs.handle(t, ev)
	before, _ := hs.user(t, "u-1")
	beforeState, pending, calls := stateOf(t, hs, "u-1"), hs.pending(t, "vip"), len(out.calls)

	got := hs.handleCounting(t, ev) // the same batch again, as after a timeout
	if got["EventsApplied"] != 0 || got["EventsDuplicate"] != 3 || got["UserWrites"] != 0 {
		t.Errorf("redelivery metrics %v: want 3 duplicates, nothing applied or written", got)
	}
	after, _ := hs.user(t, "u-1")
	if after.Version != before.Version || stateOf(t, hs, "u-1") != beforeState {
		t.Errorf("redelivery wrote the user: version %d -> %d", before.Version, after.Version)
	}
	if p := hs.pending(t, "vip"); !slices.Equal(p, pending) || len(out.calls) != calls {
		t.Errorf("redelivery recorded changes %v (had %v) or counted outcomes (%d calls, had %d)", p, pending, len(out.calls), calls)
	}
}

// A record can hold events applied before under other sequence numbers: a producer or client
// retry of events the stream already delivered, regrouped. Only the new ones are applied, and
// the state is what each event once makes. (Within one record no event is applied without the
// others: a user's events of a batch are one conditional write, so a crash leaves all or none.)
func TestRecordWithEventsAppliedBeforeAppliesOnlyTheNew(t *testing.T) {
	reference := newHarness(t)
	reference.handle(t, reference.batch(t, threeEvents()...))

	hs := newHarness(t)
	recs := hs.events(t, threeEvents()...)
	hs.handle(t, hs.kinesis(v1(recs[0]), v1(recs[1]))) // the first two, as version 1 records
	got := hs.handleCounting(t, hs.kinesis(v2(recs...)))
	if got["EventsApplied"] != 1 || got["EventsDuplicate"] != 2 {
		t.Errorf("metrics %v: want the purchase applied, the two others duplicates", got)
	}
	if a, b := stateOf(t, hs, "u-1"), stateOf(t, reference, "u-1"); a != b {
		t.Errorf("state\n  %s\nwant (each event once)\n  %s", a, b)
	}
}

// A batch mixes version 1 and version 2 records, of one user and of several.
func TestMixedVersionsInOneBatch(t *testing.T) {
	reference := newHarness(t)
	all := append(threeEvents(), event("o-2", "fb_mobile_activate_app", now.Add(-time.Hour), "u-2", nil))
	reference.handle(t, reference.batch(t, all...))

	hs := newHarness(t)
	recs := hs.events(t, all...)
	got := hs.handleCounting(t, hs.kinesis(v1(recs[0]), v2(recs[1], recs[2]), v1(recs[3])))
	if got["RecordsRead"] != 3 || got["EventsRead"] != 4 || got["EventsApplied"] != 4 || got["UserWrites"] != 2 {
		t.Errorf("metrics %v", got)
	}
	for _, u := range []string{"u-1", "u-2"} {
		if a, b := stateOf(t, hs, u), stateOf(t, reference, u); a != b {
			t.Errorf("%s: state\n  %s\nwant\n  %s", u, a, b)
		}
	}
}

// failUsers fails the writes of some users (by user key).
type failUsers struct {
	*memstate.Store
	keys map[string]bool
}

func (f failUsers) PutUser(ctx context.Context, rec ports.UserRecord) error {
	if f.keys[rec.UserKey] {
		return fmt.Errorf("throttled")
	}
	return f.Store.PutUser(ctx, rec)
}

func (f failUsers) UpdateRead(ctx context.Context, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.UpdateRead(ctx, f, read, fn)
}

// Users are written concurrently; the batch is still retried from the earliest record of any
// user that failed, and the others are written.
func TestFailedUsersRetryFromTheirEarliestRecord(t *testing.T) {
	hs := newHarness(t)
	var evs []map[string]any
	for i := range 40 {
		evs = append(evs, event(fmt.Sprintf("e-%d", i), "fb_mobile_activate_app", now.Add(-time.Hour), fmt.Sprintf("u-%d", i%20), nil))
	}
	recs := hs.events(t, evs...)
	// One record per user, each with its two events; records in user order.
	var data [][]byte
	for u := range 20 {
		data = append(data, v2(recs[u], recs[u+20]))
	}
	store := failUsers{Store: hs.store, keys: map[string]bool{recs[17].UserKey: true, recs[5].UserKey: true}}
	hs.h.cfg.Store, hs.h.cfg.Reader = store, store
	ev := hs.kinesis(data...)
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[5].Kinesis.SequenceNumber {
		t.Fatalf("failures %+v, %v; want the record of u-5, the earliest that failed", resp.BatchItemFailures, err)
	}
	for u := range 20 {
		_, found, _ := hs.store.GetUser(context.Background(), hs.app.ID, recs[u].UserKey)
		if found == (u == 5 || u == 17) {
			t.Errorf("u-%d written: %v", u, found)
		}
	}
}

// countingReader counts the reads of each kind the handler makes.
type countingReader struct {
	*memstate.Store
	mu                          sync.Mutex
	readUser, getUser, consents int
	readKeys                    map[string]int
}

func (c *countingReader) ReadUser(ctx context.Context, app, uk string) (ports.UserRead, error) {
	c.mu.Lock()
	c.readUser++
	c.readKeys[uk]++
	c.mu.Unlock()
	return c.Store.ReadUser(ctx, app, uk)
}

func (c *countingReader) GetUser(ctx context.Context, app, uk string) (ports.UserRecord, bool, error) {
	c.mu.Lock()
	c.getUser++
	c.mu.Unlock()
	return c.Store.GetUser(ctx, app, uk)
}

func (c *countingReader) Consents(ctx context.Context, app string, keys []string) (map[string]ports.UserConsent, error) {
	c.mu.Lock()
	c.consents++
	c.mu.Unlock()
	return c.Store.Consents(ctx, app, keys)
}

func (c *countingReader) Update(ctx context.Context, app, uk string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, c, app, uk, fn)
}

func (c *countingReader) UpdateRead(ctx context.Context, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.UpdateRead(ctx, c, read, fn)
}

// Each user of a batch is read once, state and consent decision together, however many
// records and events they have; nothing else is read.
func TestOneReadPerUserAndBatch(t *testing.T) {
	hs := newHarness(t)
	c := &countingReader{Store: hs.store, readKeys: map[string]int{}}
	hs.h.cfg.Store, hs.h.cfg.Reader, hs.h.cfg.Consents = c, c, c
	withdrawn := hs.events(t, event("w-0", "fb_mobile_activate_app", now.Add(-time.Hour), "u-w", nil))[0].UserKey
	if err := hs.store.PutConsent(context.Background(), ports.UserConsent{App: hs.app.ID, UserKey: withdrawn, At: now.Unix()}); err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	for i := range 30 {
		evs = append(evs, event(fmt.Sprintf("e-%d", i), "fb_mobile_content_view", now.Add(-time.Duration(30-i)*time.Minute), []string{"u-a", "u-b", "u-w"}[i%3], nil))
	}
	recs := hs.events(t, evs...)
	var data [][]byte
	for i := 0; i < 30; i += 6 { // records of two events of one user, each user in several records
		data = append(data, v2(recs[i], recs[i+3]), v2(recs[i+1], recs[i+4]), v1(recs[i+2]), v1(recs[i+5]))
	}
	got := hs.handleCounting(t, hs.kinesis(data...))
	if c.readUser != 3 || c.getUser != 0 || c.consents != 0 {
		t.Errorf("reads: ReadUser %d (%v), GetUser %d, Consents %d; want one ReadUser per user, nothing else", c.readUser, c.readKeys, c.getUser, c.consents)
	}
	if got["UsersRead"] != 3 || got["EventsApplied"] != 30 || got["EventsWithdrawn"] != 10 {
		t.Errorf("metrics %v: want 3 users read, 30 events applied, u-w's 10 withdrawn (the decision came with the read)", got)
	}
	if rec, _ := hs.user(t, "u-w"); len(rec.Segments) != 0 {
		t.Errorf("withdrawn user in %v", rec.Segments)
	}
}

// At INFO a batch logs under 10 bytes per event, metrics included: one EMF document; what each
// user got is at DEBUG only. The batch is the smallest that the budget holds for, 100 events,
// and a busy one: 24 users in version 2 records, with duplicates, a withdrawn user, segment
// changes and outcome counters.
func TestInfoLogsUnderTenBytesPerEvent(t *testing.T) {
	hs := newHarness(t)
	plans := map[string]*outcomes.Plan{hs.app.ID: outcomes.NewPlan(hs.app)}
	var evs []map[string]any
	names := []string{"fb_mobile_activate_app", "fb_mobile_content_view", "fb_mobile_add_to_cart", "fb_mobile_purchase"}
	for i := range 96 {
		var custom map[string]any
		if i%4 == 3 {
			custom = map[string]any{"value": 200, "currency": "USD"}
		}
		evs = append(evs, event(fmt.Sprintf("e-%d", i), names[i%4], now.Add(-time.Duration(96-i)*time.Minute), fmt.Sprintf("u-%d", i/4), custom))
	}
	recs := hs.events(t, evs...)
	if err := hs.store.PutConsent(context.Background(), ports.UserConsent{App: hs.app.ID, UserKey: recs[0].UserKey, At: now.Unix()}); err != nil {
		t.Fatal(err)
	}
	var data [][]byte
	for i := 0; i < 96; i += 4 {
		data = append(data, v2(recs[i:i+4]...))
	}
	data = append(data, v2(recs[4:8]...)) // a producer retry of u-1's record: four duplicates
	run := func(level string) (*bytes.Buffer, map[string]float64) {
		var buf bytes.Buffer
		store := memstate.New()
		if err := store.PutConsent(context.Background(), ports.UserConsent{App: hs.app.ID, UserKey: recs[0].UserKey, At: now.Unix()}); err != nil {
			t.Fatal(err)
		}
		h, err := New(Config{Rules: map[string]*segments.AppRules{hs.app.ID: hs.rules}, Store: store, Reader: store,
			Now: func() time.Time { return now }, Outcomes: store, Plans: plans,
			Logger: observability.NewLogger(&buf, level), Metrics: observability.NewEmitter(&buf, "Retarget")})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := h.Handle(context.Background(), hs.kinesis(data...)); err != nil || len(resp.BatchItemFailures) > 0 {
			t.Fatalf("%+v %v", resp, err)
		}
		var doc map[string]any
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		json.Unmarshal([]byte(lines[len(lines)-1]), &doc)
		m := map[string]float64{}
		for k, v := range doc {
			if f, ok := v.(float64); ok {
				m[k] = f
			}
		}
		return &buf, m
	}
	info, m := run("info")
	for _, name := range []string{"EventsDuplicate", "EventsWithdrawn", "SegmentChanges", "OutcomeCohortsWritten"} {
		if m[name] == 0 {
			t.Errorf("the batch has no %s (%v): it should be a busy one", name, m)
		}
	}
	events := 100
	perEvent := float64(info.Len()) / float64(events)
	t.Logf("INFO: %d bytes for %d events, %.1f per event", info.Len(), events, perEvent)
	if perEvent > 10 {
		t.Errorf("%d bytes logged at INFO for %d events: %.1f per event, want <= 10:\n%s", info.Len(), events, perEvent, info)
	}
	debug, _ := run("debug")
	if n := strings.Count(debug.String(), `"msg":"user applied"`); n != 24 {
		t.Errorf("%d per-user lines at DEBUG, want 24", n)
	}
	if !strings.Contains(debug.String(), `"msg":"batch applied"`) {
		t.Error("no batch summary at DEBUG")
	}
}

// gatedReader holds every ReadUser until released, counting how many are in flight.
type gatedReader struct {
	*memstate.Store
	mu            sync.Mutex
	inFlight, max int
	release       chan struct{}
}

func (g *gatedReader) ReadUser(ctx context.Context, app, uk string) (ports.UserRead, error) {
	g.mu.Lock()
	g.inFlight++
	g.max = max(g.max, g.inFlight)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	return g.Store.ReadUser(ctx, app, uk)
}

// The users of a batch are read (and written) Concurrency at a time: as many as that while
// the store is slow, never more.
func TestUsersAreReadConcurrentlyWithinTheBound(t *testing.T) {
	hs := newHarness(t)
	g := &gatedReader{Store: hs.store, release: make(chan struct{})}
	hs.h.cfg.Reader, hs.h.cfg.Concurrency = g, 4
	var evs []map[string]any
	for i := range 40 {
		evs = append(evs, event(fmt.Sprintf("e-%d", i), "fb_mobile_activate_app", now.Add(-time.Hour), fmt.Sprintf("u-%d", i), nil))
	}
	ev := hs.batch(t, evs...)
	done := make(chan struct{})
	go func() { defer close(done); hs.handle(t, ev) }()
	// Wait for the batch to fill its slots (the deadline guards against a hang: no speed goal).
	giveUp := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		n := g.inFlight
		g.mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(giveUp) {
			close(g.release)
			<-done
			t.Fatalf("%d reads in flight at most while the store held them, want 4", g.max)
		}
		runtime.Gosched()
	}
	close(g.release)
	<-done
	if g.max != 4 {
		t.Errorf("%d reads in flight at most, want 4", g.max)
	}
	for i := range 40 {
		hs.user(t, fmt.Sprintf("u-%d", i))
	}
}

package segmentupdater

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// meteredStore counts what DynamoDB would bill: write units of user items (1 per KB,
// rounded up, plus 1 for the due index when the item is in it) and of change items (one item
// and one pending-index entry each), and read units of strongly consistent reads (1 per 4 KB).
type meteredStore struct {
	*memstate.Store
	mu                           sync.Mutex
	reads, writes, changeWrites  int
	readUnits, writeUnits        int
	maxItem, sumItem, itemWrites int
	outcomeCalls, outcomeUnits   int
}

// AddOutcomes is billed as dynamostate writes it: one UpdateItem ADD per audience and join day
// (both arms in one item), 1 write unit each.
func (m *meteredStore) AddOutcomes(ctx context.Context, deltas []ports.Outcome) error {
	n := dynamostate.OutcomeItemWrites(deltas)
	m.mu.Lock()
	m.outcomeCalls++
	m.outcomeUnits += n
	m.writeUnits += n
	m.mu.Unlock()
	return m.Store.AddOutcomes(ctx, deltas)
}

func (m *meteredStore) GetUser(ctx context.Context, app, uk string) (ports.UserRecord, bool, error) {
	rec, ok, err := m.Store.GetUser(ctx, app, uk)
	m.mu.Lock()
	m.reads++
	m.readUnits += max(1, (dynamostate.UserItemSize(rec)+4095)/4096)
	m.mu.Unlock()
	return rec, ok, err
}

func (m *meteredStore) PutUser(ctx context.Context, rec ports.UserRecord) error {
	size := dynamostate.UserItemSize(rec)
	old, _, _ := m.Store.GetUser(ctx, rec.App, rec.UserKey)
	m.mu.Lock()
	m.writes++
	m.writeUnits += (size + 1023) / 1024
	// The due index (keys only) is written only when the item's index key changes: an entry
	// added or removed costs 1, a moved entry 2 (delete and put).
	switch {
	case old.DueAt == rec.DueAt:
	case old.DueAt == 0 || rec.DueAt == 0:
		m.writeUnits++
	default:
		m.writeUnits += 2
	}
	m.itemWrites++
	m.sumItem += size
	m.maxItem = max(m.maxItem, size)
	m.mu.Unlock()
	return m.Store.PutUser(ctx, rec)
}

// ReadUser is billed as dynamostate's Query bills it: 1 unit per 4 KB of the state and
// consent items together, at least 1.
func (m *meteredStore) ReadUser(ctx context.Context, app, uk string) (ports.UserRead, error) {
	read, err := m.Store.ReadUser(ctx, app, uk)
	m.mu.Lock()
	m.reads++
	m.readUnits += max(1, (dynamostate.ReadUserSize(read)+4095)/4096)
	m.mu.Unlock()
	return read, err
}

// UpdateRead goes through the metered calls above, as Update.
func (m *meteredStore) UpdateRead(ctx context.Context, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.UpdateRead(ctx, m, read, fn)
}

// Update goes through the metered calls above (memstate's own Update would go around them).
func (m *meteredStore) Update(ctx context.Context, app, uk string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, m, app, uk, fn)
}

// Consents is billed as BatchGetItem bills strongly consistent reads: 1 unit per key asked
// for, found or not (consent items are far under 4 KB).
func (m *meteredStore) Consents(ctx context.Context, app string, keys []string) (map[string]ports.UserConsent, error) {
	m.mu.Lock()
	m.reads += (len(keys) + 99) / 100 // BatchGetItem takes 100 keys a call
	m.readUnits += len(keys)
	m.mu.Unlock()
	return m.Store.Consents(ctx, app, keys)
}

func (m *meteredStore) RecordChanges(ctx context.Context, cs []ports.MembershipChange) error {
	m.mu.Lock()
	m.changeWrites += len(cs)
	m.writeUnits += 2 * len(cs) // the change item and its pending-index entry
	m.mu.Unlock()
	return m.Store.RecordChanges(ctx, cs)
}

// BenchmarkUpdaterWriteUnits feeds the updater a realistic mix: users drawn from a Zipf
// distribution, a mix of opens, views, carts and purchases, 10,000 events in batches of 500 (the
// event source mapping's size: about 5 events per active user) or 100 (about 20 users). The
// users already have five days of history (folded before the measurement), so the figures are
// those of a steady day, not of a table filling up. It reports DynamoDB write and read units
// per event (target <= 0.3 write units) and item sizes, with the outcome counters of the
// measured audiences on (as deployed), and what the counters cost: the same batches without
// them (WU/event-no-outcomes) and the difference (outcome-WU/event, target <= 0.02), which
// includes both the counter ADDs and the cohorts' bytes in the user items. The read figures
// (RU/event, reads/event: requests) count every read, consent decisions included, as
// deployed: one Query per user and batch (BenchmarkUpdaterReads compares the separate reads).
func BenchmarkUpdaterWriteUnits(b *testing.B) {
	for _, perBatch := range []int{500, 100} {
		b.Run(fmt.Sprintf("batch=%d", perBatch), func(b *testing.B) { benchmarkWriteUnits(b, perBatch, true, true) })
	}
}

// BenchmarkUpdaterReads measures the same day's reads both ways: reads=one reads each user's
// state and consent decision with one Query (Config.Reader, as deployed), reads=separate with
// a GetItem per user and a BatchGetItem per 100 users (without a Reader). RU/event are the
// read units, reads/event the requests.
func BenchmarkUpdaterReads(b *testing.B) {
	for _, perBatch := range []int{500, 100} {
		for _, one := range []bool{false, true} {
			name := map[bool]string{false: "separate", true: "one"}[one]
			b.Run(fmt.Sprintf("batch=%d/reads=%s", perBatch, name), func(b *testing.B) { benchmarkWriteUnits(b, perBatch, one, false) })
		}
	}
}

// benchmarkWriteUnits measures a day of perBatch batches, reading users with one Query each
// (oneRead) or separately; withoutCounters also measures the day without outcome counters.
func benchmarkWriteUnits(b *testing.B, perBatch int, oneRead, withoutCounters bool) {
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(b), "infra", "config", "apps.json"))
	if err != nil {
		b.Fatal(err)
	}
	rules, _ := segments.ForConfig(cfg)
	plans := outcomes.ForConfig(cfg)
	app := &cfg.Apps[0]
	pseudo, _ := identity.NewPseudonymizer([]byte("bench-pepper-0123456789"))
	parser := appevent.NewParser(pseudo)
	now := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.2, 2, 150)
	names := []string{"fb_mobile_activate_app", "fb_mobile_activate_app", "fb_mobile_content_view", "fb_mobile_content_view",
		"fb_mobile_add_to_cart", "fb_mobile_purchase"}
	batches := 10_000 / perBatch
	var kev []events.KinesisEvent
	seq := 0
	for bi := 0; bi < 2*batches; bi++ {
		at := now // the first half of the batches is the history, five days earlier
		if bi < batches {
			at = now.Add(-5 * 24 * time.Hour)
		}
		var evs []any
		for i := 0; i < perBatch; i++ {
			name := names[rng.IntN(len(names))]
			e := map[string]any{"event_id": fmt.Sprintf("e-%d-%d", bi, i), "event_name": name,
				// an SDK flushes every few seconds: a batch spans about a minute of event time
				"event_time": at.Add(time.Duration(bi%batches)*15*time.Second*time.Duration(perBatch)/500 - time.Duration(rng.IntN(60))*time.Second).Unix(),
				"user":       map[string]any{"app_user_id": fmt.Sprintf("u-%d", zipf.Uint64()), "email": "someone@example.com"},
				"device":     map[string]any{"platform": "android", "os_version": "14"},
				"consent":    map[string]any{"ads_personalization": true}}
			if name == "fb_mobile_purchase" {
				e["custom_data"] = map[string]any{"value": 9.99, "currency": "USD"}
			}
			evs = append(evs, e)
		}
		body, _ := json.Marshal(map[string]any{"events": evs})
		parsed, err := parser.Parse(app, string(body), now)
		if err != nil || len(parsed.Accepted) != perBatch {
			b.Fatal(err)
		}
		envs, err := parsed.Events()
		if err != nil {
			b.Fatal(err)
		}
		var ke events.KinesisEvent
		for i, a := range parsed.Accepted { // one event per record: see handler_test.go
			seq++
			s := fmt.Sprintf("4968%052d", seq)
			ke.Records = append(ke.Records, events.KinesisEventRecord{EventID: "shardId-0:" + s,
				Kinesis: events.KinesisRecord{SequenceNumber: s, PartitionKey: a.UserKey, Data: envelope.Append(nil, &envs[i])}})
		}
		parsed.Release()
		kev = append(kev, ke)
	}
	// run replays the history, then measures the day's batches, with or without the counters.
	run := func(counters bool) *meteredStore {
		m := &meteredStore{Store: memstate.New()}
		cfg := func(clock func() time.Time) Config {
			c := Config{Rules: rules, Store: m, Now: clock}
			if counters {
				c.Outcomes, c.Plans = m, plans
			}
			return c
		}
		history, _ := New(cfg(func() time.Time { return now.Add(-5 * 24 * time.Hour) }))
		for _, ke := range kev[:batches] {
			history.Handle(context.Background(), ke)
		}
		sweepAll(b, m, rules, now) // the sweeper has kept the due index current meanwhile
		*m = meteredStore{Store: m.Store}
		clock := now
		c := cfg(func() time.Time { return clock })
		c.Consents = m
		if oneRead {
			c.Reader = m
		}
		h, _ := New(c)
		for i, ke := range kev[batches:] {
			clock = now.Add(time.Duration(i) * 15 * time.Second * time.Duration(perBatch) / 500) // 500 events every 15 s
			if resp, _ := h.Handle(context.Background(), ke); len(resp.BatchItemFailures) > 0 {
				b.Fatal("failures")
			}
		}
		return m
	}
	var m, without *meteredStore
	b.ResetTimer()
	for b.Loop() {
		m = run(true)
		if withoutCounters {
			b.StopTimer()
			without = run(false)
			b.StartTimer()
		}
	}
	events := float64(batches * perBatch)
	b.ReportMetric(float64(m.readUnits)/events, "RU/event")
	b.ReportMetric(float64(m.reads)/events, "reads/event")
	if !withoutCounters {
		return
	}
	b.ReportMetric(float64(m.writeUnits)/events, "WU/event")
	b.ReportMetric(float64(without.writeUnits)/events, "WU/event-no-outcomes")
	b.ReportMetric(float64(m.writeUnits-without.writeUnits)/events, "outcome-WU/event")
	b.ReportMetric(float64(m.outcomeUnits)/float64(max(m.outcomeCalls, 1)), "ADDs/batch")
	b.ReportMetric(float64(m.writes)/events, "userwrites/event")
	b.ReportMetric(float64(m.changeWrites)/events, "changes/event")
	b.ReportMetric(float64(m.sumItem)/float64(m.itemWrites), "avg-item-B")
	b.ReportMetric(float64(m.maxItem), "max-item-B")
	b.ReportMetric(events/float64(m.writes), "events/userwrite")
}

// sweepAll re-evaluates every stored user at now and writes the due times, as the sweeper
// would have done since their last events (package segmentsweeper imports this one, so the
// benchmark does the sweeper's work itself).
func sweepAll(b *testing.B, m *meteredStore, rules map[string]*segments.AppRules, now time.Time) {
	for app, r := range rules {
		keys, _, err := m.Store.DueUsers(context.Background(), app, now, 30*24*time.Hour, 1_000_000, "")
		if err != nil {
			b.Fatal(err)
		}
		for _, uk := range keys {
			rec, _, _ := m.Store.GetUser(context.Background(), app, uk)
			var st segments.State
			json.Unmarshal(rec.State, &st)
			after, due := r.Evaluate(&st, now)
			rec.Segments, rec.DueAt, rec.Version = after, segments.DueAt(due), rec.Version+1
			if err := m.Store.PutUser(context.Background(), rec); err != nil {
				b.Fatal(err)
			}
		}
	}
}

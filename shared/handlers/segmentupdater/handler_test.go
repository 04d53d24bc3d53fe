package segmentupdater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

var now = time.Now().Truncate(time.Second)

type harness struct {
	h     *Handler
	store *memstate.Store
	seq   int
	app   *appconfig.App
	rules *segments.AppRules
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := segments.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := &harness{store: memstate.New(), app: &cfg.Apps[0], rules: rules[cfg.Apps[0].ID]}
	hs.h, err = New(Config{Rules: rules, Store: hs.store, Reader: hs.store, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// batch runs API v1 events through the ingest parser and wraps them as stream records with
// fresh sequence numbers, as a producer retry would get.
func (hs *harness) batch(t *testing.T, evs ...map[string]any) events.KinesisEvent {
	t.Helper()
	pseudo, _ := identity.NewPseudonymizer([]byte("updater-test-pepper-0123"))
	body, _ := json.Marshal(map[string]any{"events": evs})
	b, err := appevent.NewParser(pseudo).Parse(hs.app, string(body), now)
	if err != nil || len(b.Rejected) > 0 {
		t.Fatalf("ingest: %v %+v", err, b.Rejected)
	}
	envs, err := b.Events()
	if err != nil {
		t.Fatal(err)
	}
	// One event per record, as the updater reads them today (envelope.DecodeOne); the ingest
	// writes a user's events of one request as one record.
	var ev events.KinesisEvent
	for i, a := range b.Accepted {
		hs.seq++
		seq := fmt.Sprintf("4968%052d", hs.seq)
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq,
			Kinesis: events.KinesisRecord{PartitionKey: a.UserKey, SequenceNumber: seq, Data: envelope.Append(nil, &envs[i])}})
	}
	b.Release()
	return ev
}

func event(id, name string, at time.Time, user string, custom map[string]any) map[string]any {
	e := map[string]any{"event_id": id, "event_name": name, "event_time": at.Unix(),
		"user": map[string]any{"app_user_id": user}, "device": map[string]any{"platform": "android", "os_version": "14"},
		"consent": map[string]any{"ads_personalization": true}}
	if custom != nil {
		e["custom_data"] = custom
	}
	return e
}

func (hs *harness) handle(t *testing.T, ev events.KinesisEvent) {
	t.Helper()
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
}

func (hs *harness) user(t *testing.T, appUserID string) (ports.UserRecord, segments.State) {
	t.Helper()
	pseudo, _ := identity.NewPseudonymizer([]byte("updater-test-pepper-0123"))
	rec, ok, err := hs.store.GetUser(context.Background(), hs.app.ID, pseudo.UserKey(hs.app.ID, identity.KindAppUserID, appUserID))
	if err != nil || !ok {
		t.Fatalf("user %s: %v %v", appUserID, ok, err)
	}
	var st segments.State
	if err := json.Unmarshal(rec.State, &st); err != nil {
		t.Fatal(err)
	}
	return rec, st
}

func (hs *harness) pending(t *testing.T, segment string) []string {
	t.Helper()
	changes, _, err := hs.store.PendingChanges(context.Background(), hs.app.ID, segment, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range changes {
		op := "left"
		if c.Joined {
			op = "joined"
		}
		out = append(out, op)
	}
	return out
}

func TestCartAbandonerThenVIPExactlyOnce(t *testing.T) {
	hs := newHarness(t)
	hs.handle(t, hs.batch(t, event("cart-1", "fb_mobile_add_to_cart", now.Add(-2*time.Hour), "u-1", nil)))
	rec, _ := hs.user(t, "u-1")
	if !slices.Contains(rec.Segments, "cart_abandoner") {
		t.Fatalf("segments %v, want cart_abandoner", rec.Segments)
	}
	purchase := event("buy-1", "fb_mobile_purchase", now.Add(-time.Minute), "u-1", map[string]any{"value": 250, "currency": "USD"})
	hs.handle(t, hs.batch(t, purchase))
	// The client retries the same purchase: a new record, a new sequence number, the same event_id.
	hs.handle(t, hs.batch(t, purchase))
	rec, st := hs.user(t, "u-1")
	if slices.Contains(rec.Segments, "cart_abandoner") || !slices.Contains(rec.Segments, "vip") {
		t.Fatalf("segments %v, want vip without cart_abandoner", rec.Segments)
	}
	if st.ValueMicros != 250_000_000 || st.Purchases != 1 {
		t.Fatalf("lifetime value %d micros, %d purchases: the retry was counted", st.ValueMicros, st.Purchases)
	}
	if got := hs.pending(t, "cart_abandoner"); !slices.Equal(got, []string{"joined", "left"}) {
		t.Errorf("cart_abandoner changes %v", got)
	}
	if got := hs.pending(t, "vip"); !slices.Equal(got, []string{"joined"}) {
		t.Errorf("vip changes %v", got)
	}
}

func TestReplayedBatchesChangeNothing(t *testing.T) {
	hs := newHarness(t)
	var evs []map[string]any
	for i := 0; i < 3; i++ {
		evs = append(evs, event(fmt.Sprintf("open-%d", i), "fb_mobile_activate_app", now.Add(-time.Duration(i+1)*time.Hour), "u-2", nil))
	}
	evs = append(evs, event("buy-2", "fb_mobile_purchase", now.Add(-30*time.Minute), "u-2", map[string]any{"value": 12.5, "currency": "EUR"}))
	batch := hs.batch(t, evs...)
	hs.handle(t, batch)
	before, beforeState := hs.user(t, "u-2")
	if !slices.Contains(before.Segments, "engaged") {
		t.Fatalf("segments %v, want engaged after 3 opens", before.Segments)
	}
	hs.handle(t, batch) // the whole batch again (Lambda retry)
	tail := events.KinesisEvent{Records: batch.Records[2:]}
	hs.handle(t, tail) // its tail again (partial batch response)
	after, afterState := hs.user(t, "u-2")
	if after.Version != before.Version || !slices.Equal(after.Segments, before.Segments) {
		t.Fatalf("replay changed the record: version %d -> %d", before.Version, after.Version)
	}
	b1, _ := json.Marshal(beforeState)
	b2, _ := json.Marshal(afterState)
	if string(b1) != string(b2) {
		t.Fatalf("replay changed the state:\n%s\n%s", b1, b2)
	}
	if got := hs.pending(t, "engaged"); len(got) != 1 {
		t.Fatalf("engaged changes %v, want one join", got)
	}
}

func TestConsentWithdrawalLeavesEverySegment(t *testing.T) {
	hs := newHarness(t)
	hs.handle(t, hs.batch(t, event("buy-3", "fb_mobile_purchase", now.Add(-time.Hour), "u-3", map[string]any{"value": 300, "currency": "USD"})))
	withdraw := event("w-1", "level_up", now.Add(-time.Minute), "u-3", nil)
	withdraw["consent"] = map[string]any{"ads_personalization": false}
	hs.handle(t, hs.batch(t, withdraw))
	rec, _ := hs.user(t, "u-3")
	if len(rec.Segments) != 0 {
		t.Fatalf("segments %v after withdrawal", rec.Segments)
	}
	if got := hs.pending(t, "vip"); !slices.Equal(got, []string{"joined", "left"}) {
		t.Errorf("vip changes %v", got)
	}
}

// failingStore fails every write: the batch must be reported from its first record.
type failingStore struct{ *memstate.Store }

func (f failingStore) PutUser(context.Context, ports.UserRecord) error {
	return errors.New("throttled")
}

// Update goes through the failing PutUser.
func (f failingStore) Update(ctx context.Context, app, uk string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, f, app, uk, fn)
}

// UpdateRead goes through the failing PutUser too.
func (f failingStore) UpdateRead(ctx context.Context, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.UpdateRead(ctx, f, read, fn)
}

func TestStoreFailureKeepsRecordsOnTheStream(t *testing.T) {
	for _, reader := range []bool{false, true} {
		t.Run(fmt.Sprintf("reader=%v", reader), func(t *testing.T) {
			hs := newHarness(t)
			store := failingStore{memstate.New()}
			cfg := Config{Rules: map[string]*segments.AppRules{hs.app.ID: hs.rules}, Store: store}
			if reader {
				cfg.Reader = store
			}
			h, _ := New(cfg)
			ev := hs.batch(t, event("a", "fb_mobile_activate_app", now.Add(-time.Hour), "u-4", nil), event("b", "fb_mobile_activate_app", now.Add(-time.Hour), "u-5", nil))
			resp, _ := h.Handle(context.Background(), ev)
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Kinesis.SequenceNumber {
				t.Fatalf("failures %+v", resp.BatchItemFailures)
			}
		})
	}
}

func TestRecentIDsKeepTheLatest(t *testing.T) {
	var ids []string
	for i := 0; i < 50; i++ {
		ids = append(ids, idEntryAt(fmt.Sprintf("e-%d", i), int64(1795000000+i)))
	}
	kept := latestIDs(slices.Clone(ids), RecentIDs)
	if len(kept) != RecentIDs || !hasID(kept, ids[49]) || hasID(kept, ids[0]) {
		t.Fatalf("kept %d ids, latest kept %v, oldest kept %v", len(kept), hasID(kept, ids[49]), hasID(kept, ids[0]))
	}
}

func TestKeepEarlierDue(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		stored, next, want int64
	}{
		{0, 2_000, 2_000}, // first due time
		{1_800_000_600, 1_800_000_900, 1_800_000_600}, // still ahead and earlier: kept
		{1_800_000_900, 1_800_000_600, 1_800_000_600}, // an earlier flip: moved forward
		{1_799_999_000, 1_800_000_900, 1_800_000_900}, // already due: the true one
		{1_800_000_600, 0, 1_800_000_600},             // nothing will flip: the sweeper clears it
	} {
		if got := keepEarlierDue(tc.stored, tc.next, at); got != tc.want {
			t.Errorf("keepEarlierDue(%d, %d) = %d, want %d", tc.stored, tc.next, got, tc.want)
		}
	}
}

// An explicit withdrawal (consent or erasure API) overrides the events' consent: the user's
// events fold as events without consent, so nothing is collected and no segment is entered,
// until an explicit grant.
func TestExplicitWithdrawalOverridesEventConsent(t *testing.T) {
	hs := newHarness(t)
	hs.h.cfg.Consents = hs.store
	pseudo, _ := identity.NewPseudonymizer([]byte("updater-test-pepper-0123"))
	key := pseudo.UserKey(hs.app.ID, identity.KindAppUserID, "u-9")
	ctx := context.Background()
	if err := hs.store.PutConsent(ctx, ports.UserConsent{App: hs.app.ID, UserKey: key, At: now.Unix(), ErasureID: "er_9"}); err != nil {
		t.Fatal(err)
	}
	hs.handle(t, hs.batch(t, event("buy-9", "fb_mobile_purchase", now.Add(-time.Minute), "u-9", map[string]any{"value": 300, "currency": "USD"})))
	rec, st := hs.user(t, "u-9")
	if len(rec.Segments) != 0 || st.ValueMicros != 0 || st.Consented() {
		t.Fatalf("withdrawn user folded: segments %v, value %d, consented %v", rec.Segments, st.ValueMicros, st.Consented())
	}
	if err := hs.store.PutConsent(ctx, ports.UserConsent{App: hs.app.ID, UserKey: key, AdsPersonalization: true, At: now.Unix()}); err != nil {
		t.Fatal(err)
	}
	hs.handle(t, hs.batch(t, event("buy-10", "fb_mobile_purchase", now.Add(-30*time.Second), "u-9", map[string]any{"value": 300, "currency": "USD"})))
	if rec, _ := hs.user(t, "u-9"); !slices.Contains(rec.Segments, "vip") {
		t.Fatalf("after the grant, segments %v: want vip", rec.Segments)
	}
}

func TestExpiresAtNeverInThePast(t *testing.T) {
	ttl := 400 * 24 * time.Hour
	seen := segments.State{LastSeen: now.Add(-time.Hour).Unix()}
	if got := expiresAt(&seen, 0, now, ttl); got != now.Add(-time.Hour).Add(ttl).Unix() {
		t.Errorf("seen user: %d", got)
	}
	var withdrawnOnly segments.State
	if got := expiresAt(&withdrawnOnly, 0, now, ttl); got != now.Add(ttl).Unix() {
		t.Errorf("never seen, no stored expiry: %d, want now + TTL", got)
	}
	tomb := now.Add(30 * 24 * time.Hour).Unix()
	if got := expiresAt(&withdrawnOnly, tomb, now, ttl); got != tomb {
		t.Errorf("tombstone expiry %d replaced by %d", tomb, got)
	}
}

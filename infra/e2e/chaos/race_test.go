package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/audiencesync"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// gatedStore holds the first PutUser until released, as a slow or throttled write does: the
// segment updater has recorded the membership changes and not yet written the state.
type gatedStore struct {
	*memstate.Store
	once    sync.Once
	reached chan struct{} // closed when the first PutUser is called
	release chan struct{} // the first PutUser proceeds once this is closed
}

func (g *gatedStore) PutUser(ctx context.Context, rec ports.UserRecord) error {
	g.once.Do(func() {
		close(g.reached)
		<-g.release
	})
	return g.Store.PutUser(ctx, rec)
}

// Update goes through the gated PutUser.
func (g *gatedStore) Update(ctx context.Context, app, uk string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, g, app, uk, fn)
}

// TestAudienceSyncBetweenChangeAndState replays, step by step, the interleaving the chaos test
// meets under DynamoDB throttling: the updater records a "joined new_installer" change, its
// state write is delayed, an audience sync runs meanwhile, then the state write lands. Every
// later sync must still put the user into the audience. No emulator is needed.
func TestAudienceSyncBetweenChangeAndState(t *testing.T) {
	mem := memstate.New()
	gated := &gatedStore{Store: mem, reached: make(chan struct{}), release: make(chan struct{})}
	rig := newRaceRig(t, gated, mem)

	// One new user: an install an hour ago makes them a new_installer.
	now := time.Now()
	uk, ev := rig.records(t, now, "race-u-1", []raceEvent{{"race-1", "MobileAppInstall", now.Add(-time.Hour)}})

	ctx := context.Background()
	handled := make(chan error, 1)
	go func() { handled <- rig.handle(ctx, ev) }()
	select {
	case <-gated.reached: // changes recorded, state write in flight
	case err := <-handled:
		t.Fatalf("the updater returned (%v) without writing the user's state", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the updater never wrote the user's state")
	}
	if _, err := rig.syncer.Run(ctx); err != nil {
		t.Fatalf("sync while the state write is in flight: %v", err)
	}
	close(gated.release)
	if err := <-handled; err != nil {
		t.Fatalf("updater: %v", err)
	}
	rig.expectMember(t, ctx, mem, uk, "new_installer", "the sync reconciled the change against the state it read before the "+
		"updater wrote it (a removal), marked it synced, and nothing brings the user in")
}

// failingStore fails the next PutUser (after the changes were recorded), as a write that
// exhausts its retries does: the batch fails and is redelivered.
type failingStore struct {
	*memstate.Store
	failNext bool
}

func (f *failingStore) PutUser(ctx context.Context, rec ports.UserRecord) error {
	if f.failNext {
		f.failNext = false
		return fmt.Errorf("injected: write throttled, retries exhausted")
	}
	return f.Store.PutUser(ctx, rec)
}

// Update goes through the failing PutUser.
func (f *failingStore) Update(ctx context.Context, app, uk string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, f, app, uk, fn)
}

// hookedUsers runs beforeMark once, just before the audience sync marks what it synced.
type hookedUsers struct {
	*memstate.Store
	beforeMark func()
}

func (h *hookedUsers) MarkSynced(ctx context.Context, changes []ports.PendingChange) error {
	if f := h.beforeMark; f != nil {
		h.beforeMark = nil
		f()
	}
	return h.Store.MarkSynced(ctx, changes)
}

// TestAudienceSyncBetweenReadAndMark replays the interleaving behind the last audience failure
// the chaos test found: a batch of three app opens fails after its changes were recorded
// ("joined engaged" at the third open's time, for state version 1); the redelivery is
// bisected, so the first two opens write version 1 without engaged; an audience sync reads the
// orphan change, finds version 1 reached and plans from it; before it marks the change synced,
// the third open alone records the very same change again (same identity: user, segment, time)
// for version 2 and writes it. Marking must spare that recording, or nothing brings the user
// into the audience.
func TestAudienceSyncBetweenReadAndMark(t *testing.T) {
	mem := memstate.New()
	failing := &failingStore{Store: mem}
	hooked := &hookedUsers{Store: mem}
	rig := newRaceRig(t, failing, hooked)

	now := time.Now()
	opens := []raceEvent{
		{"open-1", "ActivateApp", now.Add(-3 * time.Hour)},
		{"open-2", "ActivateApp", now.Add(-2 * time.Hour)},
		{"open-3", "ActivateApp", now.Add(-time.Hour)},
	}
	uk, all := rig.records(t, now, "race-u-2", opens)
	ctx := context.Background()
	failing.failNext = true
	if err := rig.handle(ctx, all); err == nil {
		t.Fatal("the updater reported success although the state write failed")
	}
	if err := rig.handle(ctx, events.KinesisEvent{Records: all.Records[:2]}); err != nil {
		t.Fatalf("updater, first two opens: %v", err)
	}
	var third error
	hooked.beforeMark = func() { third = rig.handle(ctx, events.KinesisEvent{Records: all.Records[2:]}) }
	if _, err := rig.syncer.Run(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if hooked.beforeMark != nil || third != nil {
		t.Fatalf("the third open was not applied between the sync's read and its mark (err %v)", third)
	}
	rig.expectMember(t, ctx, mem, uk, "engaged", "the sync marked synced the change recorded again for the "+
		"later state write, after planning from the earlier state")
}

// raceRig is the real segment updater and audience sync on one in-memory store, and a Meta
// sandbox.
type raceRig struct {
	app     *appconfig.App
	aa      *audiences.AppAudiences
	sb      *metasandbox.Sandbox
	updater *segmentupdater.Handler
	syncer  *audiencesync.Syncer
}

func newRaceRig(t *testing.T, updaterStore ports.SegmentStore, syncUsers ports.SegmentStore) *raceRig {
	t.Helper()
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	app := &apps.Apps[0]
	rules, err := segments.ForConfig(apps)
	if err != nil {
		t.Fatal(err)
	}
	aa, err := audiences.ForConfig(apps)
	if err != nil {
		t.Fatal(err)
	}
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: metaToken, AppSecret: metaSecret,
		Datasets: []string{app.Meta.DatasetID}, AdAccounts: []string{app.Meta.AdAccountID}, RemovalMinSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	updater, err := segmentupdater.New(segmentupdater.Config{Rules: rules, Store: updaterStore})
	if err != nil {
		t.Fatal(err)
	}
	state, ok := syncUsers.(ports.AudienceSyncStore)
	if !ok {
		t.Fatalf("%T keeps no audience sync state", syncUsers)
	}
	syncer, err := audiencesync.New(audiencesync.Config{Audiences: aa, Users: syncUsers, State: state,
		Meta: metagraph.New(metagraph.Config{BaseURL: url, AccessToken: metaToken, AppSecret: metaSecret})})
	if err != nil {
		t.Fatal(err)
	}
	return &raceRig{app: app, aa: aa[app.ID], sb: sb, updater: updater, syncer: syncer}
}

type raceEvent struct {
	id, name string
	at       time.Time
}

// records parses one user's events through the ingest parser and returns the user key and
// the stream records, with sequence numbers 1, 2, ...
func (r *raceRig) records(t *testing.T, now time.Time, user string, evs []raceEvent) (string, events.KinesisEvent) {
	t.Helper()
	var list []any
	for _, e := range evs {
		list = append(list, map[string]any{
			"event_id": e.id, "event_name": e.name, "event_time": e.at.Unix(),
			"user":    map[string]any{"app_user_id": user, "email": user + "@example.com"},
			"device":  map[string]any{"platform": "android", "os_version": "14"},
			"consent": map[string]any{"ads_personalization": true},
		})
	}
	body, _ := json.Marshal(map[string]any{"events": list})
	pseudo, _ := identity.NewPseudonymizer([]byte(pepper))
	batch, err := appevent.NewParser(pseudo).Parse(r.app, string(body), now)
	if err != nil || len(batch.Accepted) != len(evs) {
		t.Fatalf("parse: %v %+v", err, batch)
	}
	defer batch.Release()
	envs, err := batch.Events()
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisEvent
	for i, a := range batch.Accepted {
		seq := fmt.Sprint(i + 1)
		// One event per record, as the races need (the ingest puts a user's events of one
		// request in one record).
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq,
			Kinesis: events.KinesisRecord{SequenceNumber: seq, PartitionKey: a.UserKey, Data: envelope.Append(nil, &envs[i])}})
	}
	return batch.Accepted[0].UserKey, ev
}

// handle runs the updater on ev; a batch item failure is an error.
func (r *raceRig) handle(ctx context.Context, ev events.KinesisEvent) error {
	resp, err := r.updater.Handle(ctx, ev)
	if err == nil && len(resp.BatchItemFailures) > 0 {
		err = fmt.Errorf("batch item failures %v", resp.BatchItemFailures)
	}
	return err
}

// expectMember runs the next scheduled syncs and fails unless the user, stored in segment,
// is in its audience at Meta; why says what went wrong if not.
func (r *raceRig) expectMember(t *testing.T, ctx context.Context, mem *memstate.Store, uk, segment, why string) {
	t.Helper()
	for range 3 {
		if _, err := r.syncer.Run(ctx); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	rec, _, _ := mem.GetUser(ctx, r.app.ID, uk)
	if !slices.Contains(rec.Segments, segment) {
		t.Fatalf("the user's stored segments are %v; the scenario needs %s", rec.Segments, segment)
	}
	pending, _, _ := mem.PendingChanges(ctx, r.app.ID, segment, "", 10)
	st, _, _ := mem.GetAudienceState(ctx, r.app.ID, r.aa.KeyFor(uk, segment)) // the audience of the user's arm
	if _, member := r.sb.AudienceMembers(st.AudienceID)[uk]; !member {
		t.Errorf("the user is in segment %s but not in its audience at Meta after the later syncs, and %d "+
			"changes are pending: %s. Meta's audience requests: %v", segment, len(pending), why, audienceCalls(r.sb))
	}
}

// audienceCalls lists the sandbox's Custom Audience calls: method, rows, status.
func audienceCalls(sb *metasandbox.Sandbox) []string {
	var out []string
	for _, r := range sb.Requests() {
		if r.AudienceID != "" || r.AdAccount != "" {
			out = append(out, fmt.Sprintf("%s %s rows=%d status=%d", r.Method, r.Path, r.Rows, r.Status))
		}
	}
	return out
}

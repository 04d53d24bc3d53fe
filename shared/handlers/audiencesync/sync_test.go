package audiencesync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

const token, secret = "sync-token", "sync-secret"

// store is what the sync needs of the state table: memstate, or dynamostate on dynalite.
type store interface {
	ports.SegmentStore
	ports.AudienceSyncStore
}

type harness struct {
	store   store
	sandbox *metasandbox.Sandbox
	meta    ports.AudienceAPI
	aa      map[string]*audiences.AppAudiences
	app     string
	now     time.Time
}

// newHarness is the sample app with holdout_fraction 0 on every audience: the tests built on
// it assert the exact members of an audience, which a holdout would split (holdout_test.go
// covers the holdouts, on newHoldoutHarness).
func newHarness(t testing.TB) *harness {
	t.Helper()
	return startHarness(t, noHoldouts)
}

// newHoldoutHarness is the sample app as configured: every audience with the default holdout.
func newHoldoutHarness(t testing.TB) *harness {
	t.Helper()
	return startHarness(t, func(*appconfig.Config) {})
}

// noHoldouts sets holdout_fraction 0 on every audience of cfg.
func noHoldouts(cfg *appconfig.Config) {
	for i := range cfg.Apps {
		for j := range cfg.Apps[i].Audiences {
			cfg.Apps[i].Audiences[j].HoldoutFraction = new(0.0)
		}
	}
}

// sampleConfig loads the sample config.
func sampleConfig(t testing.TB) *appconfig.Config {
	t.Helper()
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startHarness(t testing.TB, edit func(*appconfig.Config)) *harness {
	t.Helper()
	cfg := sampleConfig(t)
	edit(cfg)
	aa, err := audiences.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: token, AppSecret: secret,
		AdAccounts: []string{cfg.Apps[0].Meta.AdAccountID}, Datasets: []string{cfg.Apps[0].Meta.DatasetID},
		RemovalMinSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return &harness{store: memstate.New(), sandbox: sb, aa: aa, app: cfg.Apps[0].ID, now: time.Now().Truncate(time.Second),
		meta: metagraph.New(metagraph.Config{BaseURL: url, AccessToken: token, AppSecret: secret})}
}

func (h *harness) syncer(t testing.TB, meta ports.AudienceAPI) *Syncer {
	t.Helper()
	if meta == nil {
		meta = h.meta
	}
	s, err := New(Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: meta, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// user stores a user in segs with an email and a lifetime value, and records the changes from
// before to segs, as the segment updater does.
func (h *harness) user(t testing.TB, uk string, before, segs []string, ltvMicros int64) {
	t.Helper()
	var st segments.State
	st.Email = segments.HashedID{Hash: identity.Hash(sha(uk + "@example.com")), At: h.now.Unix()}
	st.ValueMicros = ltvMicros
	st.Consent = segments.Consent{At: h.now.Unix()}
	raw, _ := json.Marshal(&st)
	rec, found, _ := h.store.GetUser(context.Background(), h.app, uk)
	version := int64(1)
	if found {
		version = rec.Version + 1
	}
	if err := h.store.PutUser(context.Background(), ports.UserRecord{App: h.app, UserKey: uk, State: raw, Segments: segs, Version: version}); err != nil {
		t.Fatal(err)
	}
	var changes []ports.MembershipChange
	joined, left := segments.Diff(before, segs)
	for _, s := range joined {
		changes = append(changes, ports.MembershipChange{App: h.app, Segment: s, UserKey: uk, Joined: true, At: h.now.UnixMilli()})
	}
	for _, s := range left {
		changes = append(changes, ports.MembershipChange{App: h.app, Segment: s, UserKey: uk, At: h.now.UnixMilli()})
	}
	if err := h.store.RecordChanges(context.Background(), changes); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) audience(t *testing.T, segment string) (string, map[string]metasandbox.AudienceMember) {
	t.Helper()
	st, ok, err := h.store.GetAudienceState(context.Background(), h.app, segment)
	if err != nil || !ok || st.AudienceID == "" {
		t.Fatalf("no audience for %s: %v %v", segment, ok, err)
	}
	return st.AudienceID, h.sandbox.AudienceMembers(st.AudienceID)
}

func (h *harness) requests(audienceID string) []metasandbox.RequestLog {
	var out []metasandbox.RequestLog
	for _, r := range h.sandbox.Requests() {
		if r.AudienceID == audienceID {
			out = append(out, r)
		}
	}
	return out
}

func TestBigBacklogGoesInFullSessions(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 25_000; i++ {
		h.user(t, fmt.Sprintf("user-%05d", i), nil, []string{"cart_abandoner"}, 0)
	}
	reports, err := h.syncer(t, nil).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id, members := h.audience(t, "cart_abandoner")
	if len(members) != 25_000 {
		t.Fatalf("%d members, want 25000", len(members))
	}
	var seqs []int
	last := false
	for _, r := range h.requests(id) {
		if r.Rows > 0 {
			seqs = append(seqs, r.BatchSeq)
		}
	}
	if !slices.Equal(seqs, []int{1, 2, 3}) {
		t.Fatalf("batch_seq %v, want 1..3", seqs)
	}
	sessions := h.sandbox.AudienceSessions(id)
	for _, s := range sessions {
		last = last || s.Finished
	}
	if !last || reports[0].Synced != 25_000 {
		t.Fatalf("last flag %v, synced %d", last, reports[0].Synced)
	}
	pending, _, _ := h.store.PendingChanges(context.Background(), h.app, "cart_abandoner", "", 10)
	if len(pending) != 0 {
		t.Fatalf("%d changes still pending", len(pending))
	}
}

// killAfter lets n uploads through, then fails as a crash would (the run stops).
type killAfter struct {
	ports.AudienceAPI
	n int
}

var errKilled = errors.New("killed")

func (k *killAfter) Upload(ctx context.Context, u ports.AudienceUpload) (ports.AudienceAck, error) {
	if k.n == 0 {
		return ports.AudienceAck{}, errKilled
	}
	k.n--
	return k.AudienceAPI.Upload(ctx, u)
}

func TestKilledRunResumesAtTheNextBatch(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 25_000; i++ {
		h.user(t, fmt.Sprintf("user-%05d", i), nil, []string{"cart_abandoner"}, 0)
	}
	if _, err := h.syncer(t, &killAfter{AudienceAPI: h.meta, n: 2}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, members := h.audience(t, "cart_abandoner")
	if len(members) != 20_000 {
		t.Fatalf("after the kill: %d members, want 20000", len(members))
	}
	if _, err := h.syncer(t, nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, members = h.audience(t, "cart_abandoner")
	var seqs []string
	for _, r := range h.requests(id) {
		if r.Rows > 0 {
			seqs = append(seqs, fmt.Sprintf("%d/%d", r.SessionID, r.BatchSeq))
		}
	}
	if len(members) != 25_000 || len(seqs) != 3 || seqs[0][:len(seqs[0])-2] != seqs[2][:len(seqs[2])-2] {
		t.Fatalf("%d members, uploads %v: want batches 1, 2 then 3 of one session, none sent twice", len(members), seqs)
	}
}

func TestExclusiveGroupsAndValueRows(t *testing.T) {
	h := newHarness(t)
	// u-1 is lapsed, then abandons a cart: the win-back group keeps only cart_abandoner.
	h.user(t, "u-1", nil, []string{"lapsed_7d"}, 0)
	h.user(t, "u-3", nil, []string{"lapsed_7d"}, 0) // Meta refuses to empty an audience
	h.user(t, "u-4", nil, []string{"cart_abandoner"}, 0)
	h.user(t, "u-2", nil, []string{"vip"}, 250_000_000)
	s := h.syncer(t, nil)
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.user(t, "u-1", []string{"lapsed_7d"}, []string{"lapsed_7d", "cart_abandoner"}, 0)
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, cart := h.audience(t, "cart_abandoner")
	_, lapsed := h.audience(t, "lapsed_7d")
	if _, ok := cart["u-1"]; !ok || len(lapsed) != 1 {
		t.Fatalf("cart_abandoner %v, lapsed_7d %v: want u-1 only in cart_abandoner", keys(cart), keys(lapsed))
	}
	_, vip := h.audience(t, "vip")
	if m, ok := vip["u-2"]; !ok || m.Row["LOOKALIKE_VALUE"] != "250" {
		t.Fatalf("vip member %+v", vip["u-2"])
	}
}

func TestRateLimitPausesAndResumes(t *testing.T) {
	h := newHarness(t)
	h.user(t, "u-1", nil, []string{"cart_abandoner"}, 0)
	s := h.syncer(t, nil)
	if _, err := s.Run(context.Background()); err != nil { // creates the audiences
		t.Fatal(err)
	}
	h.user(t, "u-2", nil, []string{"cart_abandoner"}, 0)
	h.sandbox.SetFaults(metasandbox.Faults{AudienceRateLimitRate: 1})
	reports, _ := s.Run(context.Background())
	if reports[0].Synced != 0 {
		t.Fatalf("synced %d under a rate limit", reports[0].Synced)
	}
	h.sandbox.SetFaults(metasandbox.Faults{})
	reports, _ = s.Run(context.Background())
	_, cart := h.audience(t, "cart_abandoner")
	if reports[0].Synced != 1 || len(cart) != 2 {
		t.Fatalf("after the pause: synced %d, members %v", reports[0].Synced, keys(cart))
	}
}

func TestRemovalFloodGuard(t *testing.T) {
	h := newHarness(t)
	var all []string
	for i := 0; i < 200; i++ {
		uk := fmt.Sprintf("u-%03d", i)
		all = append(all, uk)
		h.user(t, uk, nil, []string{"engaged"}, 0)
	}
	s := h.syncer(t, nil)
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, uk := range all[:100] { // half the audience leaves at once: over the 20% guard
		h.user(t, uk, []string{"engaged"}, nil, 0)
	}
	reports, _ := s.Run(context.Background())
	_, engaged := h.audience(t, "engaged")
	if len(engaged) != 200 || reports[0].Synced != 0 {
		t.Fatalf("guard did not hold: %d members, %d synced", len(engaged), reports[0].Synced)
	}
}

// Meta refuses to empty an audience ("audience size too low"): that audience's changes wait,
// the others go through.
func TestAudienceThatWouldBeEmptiedHoldsOnlyItsChanges(t *testing.T) {
	h := newHarness(t)
	h.user(t, "u-1", nil, []string{"engaged"}, 0)
	s := h.syncer(t, nil)
	s.Run(context.Background())
	h.user(t, "u-1", []string{"engaged"}, nil, 0) // the only member leaves
	h.user(t, "u-2", nil, []string{"vip"}, 1)     // unrelated: must not wait
	reports, _ := s.Run(context.Background())
	_, engaged := h.audience(t, "engaged")
	_, vip := h.audience(t, "vip")
	pending, _, _ := h.store.PendingChanges(context.Background(), h.app, "engaged", "", 10)
	if len(engaged) != 1 || len(vip) != 1 || reports[0].Synced != 1 || len(pending) != 1 {
		t.Fatalf("engaged %v vip %v synced %d pending %d", keys(engaged), keys(vip), reports[0].Synced, len(pending))
	}
}

func TestHealthMetrics(t *testing.T) {
	h := newHarness(t)
	h.user(t, "u-1", nil, []string{"cart_abandoner"}, 0)
	var buf bytes.Buffer
	s, _ := New(Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: h.meta, Now: func() time.Time { return h.now },
		Metrics: observability.NewEmitter(&buf, "Test")})
	s.Run(context.Background())
	h.now = h.now.Add(90 * time.Second)
	// Another run holds the lease: this one syncs nothing, and the audience is 90 s stale.
	h.store.AcquireLease(context.Background(), h.app, "other", h.now, h.now.Add(time.Minute))
	s.Run(context.Background())
	out := buf.String()
	for _, want := range []string{`"AudienceSecondsSinceSync":90`, `"AudienceTooSmall":1`, `"AudienceRowsAdded":1`, `"Audience":"cart_abandoner"`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s:\n%s", want, out)
		}
	}
}

func TestLeaseStopsOverlappingRuns(t *testing.T) {
	h := newHarness(t)
	h.user(t, "u-1", nil, []string{"cart_abandoner"}, 0)
	ok, err := h.store.AcquireLease(context.Background(), h.app, "someone-else", h.now, h.now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	reports, _ := h.syncer(t, nil).Run(context.Background())
	if reports[0].Leased || len(h.sandbox.Requests()) != 0 {
		t.Fatalf("ran without the lease: %+v", reports[0])
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A change is recorded before the state write it belongs to: a sync between the two waits for
// the state instead of planning from the old one (and marking the change done), and takes the
// state as it is once the grace period is over.
func TestSyncWaitsForTheStateTheChangesBelongTo(t *testing.T) {
	h := newHarness(t)
	for i := range 3 {
		h.user(t, fmt.Sprintf("u-%d", i), nil, []string{"cart_abandoner"}, 0) // an audience to join
	}
	s := h.syncer(t, nil)
	run(t, s)
	ctx := context.Background()
	// u-9 joins cart_abandoner: the change says state version 1, which is not written yet.
	if err := h.store.RecordChanges(ctx, []ports.MembershipChange{{App: h.app, Segment: "cart_abandoner", UserKey: "u-9",
		Joined: true, At: h.now.UnixMilli(), StateVersion: 1, RecordedAt: h.now.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	r := run(t, s)
	id, members := h.audience(t, "cart_abandoner")
	if r[0].Deferred != 1 || r[0].Synced != 0 || len(members) != 3 {
		t.Fatalf("before the state write: deferred %d, synced %d, members %v", r[0].Deferred, r[0].Synced, keys(members))
	}
	for _, u := range h.uploads(id) {
		if strings.HasPrefix(u, "remove") {
			t.Fatalf("a removal was planned from the old state: %v", h.uploads(id))
		}
	}
	// The state lands (version 1): the next run adds the user and marks the change done.
	h.user(t, "u-9", nil, []string{"cart_abandoner"}, 0) // writes version 1 (and records the change unstamped)
	if err := h.store.RecordChanges(ctx, []ports.MembershipChange{{App: h.app, Segment: "cart_abandoner", UserKey: "u-9",
		Joined: true, At: h.now.UnixMilli(), StateVersion: 1, RecordedAt: h.now.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	r = run(t, s)
	_, members = h.audience(t, "cart_abandoner")
	if r[0].Deferred != 0 || r[0].Synced != 1 || len(members) != 4 {
		t.Fatalf("after the state write: deferred %d, synced %d, members %v", r[0].Deferred, r[0].Synced, keys(members))
	}
	// A change whose state never lands is planned from the state as it is after the grace.
	if err := h.store.RecordChanges(ctx, []ports.MembershipChange{{App: h.app, Segment: "cart_abandoner", UserKey: "u-8",
		Joined: true, At: h.now.UnixMilli(), StateVersion: 1, RecordedAt: h.now.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	if r = run(t, s); r[0].Deferred != 1 {
		t.Fatalf("u-8 not deferred: %+v", r[0])
	}
	h.now = h.now.Add(StateCatchUpGrace + time.Minute)
	if r = run(t, s); r[0].Deferred != 0 || r[0].Synced != 1 {
		t.Fatalf("after the grace: %+v", r[0])
	}
}

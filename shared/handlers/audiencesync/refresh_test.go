package audiencesync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// withRefresh recompiles the harness's audiences with a full refresh every `hours`, and
// without holdouts (holdout_fraction 0), as newHarness.
func (h *harness) withRefresh(t testing.TB, hours int) {
	t.Helper()
	h.withRefreshAndHoldouts(t, hours, noHoldouts)
}

// withRefreshAndHoldouts is withRefresh with the holdouts edit sets (noHoldouts, or nothing for
// the sample's defaults).
func (h *harness) withRefreshAndHoldouts(t testing.TB, hours int, edit func(*appconfig.Config)) {
	t.Helper()
	cfg := sampleConfig(t)
	edit(cfg)
	cfg.Apps[0].AudienceSync.FullRefreshHours = hours
	// The config refuses a full refresh while an audience is value-based (usersreplace
	// documents no LOOKALIKE_VALUE key): the sample's value-based audience uploads plain rows.
	for i := range cfg.Apps[0].Audiences {
		cfg.Apps[0].Audiences[i].ValueBased = false
	}
	aa, err := audiences.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.aa = aa
}

// silently rewrites a user's stored state without recording a change, as happens when state
// and audience drift apart (an expired or lost change, a rule edited meanwhile).
func (h *harness) silently(t testing.TB, uk string, segs []string, edit func(*segments.State)) {
	t.Helper()
	rec, _, err := h.store.GetUser(context.Background(), h.app, uk)
	if err != nil {
		t.Fatal(err)
	}
	var st segments.State
	if err := json.Unmarshal(rec.State, &st); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&st)
	}
	rec.State, _ = json.Marshal(&st)
	rec.Segments = segs
	rec.Version++
	if err := h.store.PutUser(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) members(t testing.TB, segment string) []string {
	t.Helper()
	var out []string
	after := ""
	for {
		page, next, err := h.store.Members(context.Background(), h.app, segment, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		after = next
	}
}

// uploads lists the audience's upload calls as "<op> <session>/<batch_seq>[ last]" in order.
func (h *harness) uploads(audienceID string) []string {
	var out []string
	for _, r := range h.requests(audienceID) {
		op := "add"
		switch {
		case strings.HasSuffix(r.Path, "/usersreplace"):
			op = "replace"
		case r.Method == "DELETE":
			op = "remove"
		case !strings.HasSuffix(r.Path, "/users"):
			continue
		}
		out = append(out, fmt.Sprintf("%s %d/%d status %d", op, r.SessionID, r.BatchSeq, r.Status))
	}
	return out
}

func userKeys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

func run(t testing.TB, s *Syncer) []AppReport {
	t.Helper()
	reports, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return reports
}

func TestMemberIndexFollowsAcknowledgedUploads(t *testing.T) {
	h := newHarness(t)
	all := userKeys("u", 12)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	h.user(t, "v-1", nil, []string{"lapsed_7d", "cart_abandoner"}, 0) // outranked in lapsed_7d
	h.user(t, "v-2", nil, []string{"lapsed_7d"}, 0)
	s := h.syncer(t, nil)
	run(t, s)
	if got, want := h.members(t, "cart_abandoner"), append(slices.Clone(all), "v-1"); !slices.Equal(got, want) {
		t.Fatalf("cart_abandoner index %v, want %v", got, want)
	}
	if got := h.members(t, "lapsed_7d"); !slices.Equal(got, []string{"v-2"}) {
		t.Fatalf("lapsed_7d index %v, want [v-2]", got)
	}
	// Two leave the cart; v-1 buys and stays lapsed: it moves down to lapsed_7d.
	h.user(t, all[0], []string{"cart_abandoner"}, nil, 0)
	h.user(t, all[5], []string{"cart_abandoner"}, nil, 0)
	h.user(t, "v-1", []string{"lapsed_7d", "cart_abandoner"}, []string{"lapsed_7d"}, 0)
	run(t, s)
	want := slices.DeleteFunc(slices.Clone(all), func(k string) bool { return k == all[0] || k == all[5] })
	if got := h.members(t, "cart_abandoner"); !slices.Equal(got, want) {
		t.Fatalf("cart_abandoner index %v, want %v", got, want)
	}
	if got := h.members(t, "lapsed_7d"); !slices.Equal(got, []string{"v-1", "v-2"}) {
		t.Fatalf("lapsed_7d index %v, want [v-1 v-2]", got)
	}
	_, cart := h.audience(t, "cart_abandoner")
	if !slices.Equal(keys(cart), want) {
		t.Fatalf("sandbox cart_abandoner %v, want the index %v", keys(cart), want)
	}
}

func TestFullRefreshHealsDrift(t *testing.T) { testRefreshHealsDrift(t, newHarness(t)) }

// The same on the DynamoDB adapter (dynalite): member index items, the refresh checkpoint
// fields and the user reads go through the real store.
func TestFullRefreshHealsDriftOnDynamoDB(t *testing.T) {
	emu := emulators.StartForTest(t, emulators.DynamoDB)
	cfg, err := emulators.AWSConfig(context.Background(), emu.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client := dynamodb.NewFromConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dynamostate.CreateTable(ctx, client, "refresh"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.store = dynamostate.New(client, "refresh", dynamostate.Options{})
	testRefreshHealsDrift(t, h)
}

func testRefreshHealsDrift(t *testing.T, h *harness) {
	h.withRefresh(t, 24)
	all := userKeys("u", 150)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	var metrics bytes.Buffer
	s, _ := New(Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: h.meta, Now: func() time.Time { return h.now },
		Metrics: observability.NewEmitter(&metrics, "Test")})
	run(t, s)
	id, members := h.audience(t, "cart_abandoner")
	if len(members) != 150 {
		t.Fatalf("%d members after the first sync", len(members))
	}
	st, _, _ := h.store.GetAudienceState(context.Background(), h.app, "cart_abandoner")
	if st.LastRefreshAt != h.now.Unix() {
		t.Fatalf("LastRefreshAt %d, want the first sync (%d) as the baseline", st.LastRefreshAt, h.now.Unix())
	}

	// Drift at Meta: ten rows lost, a stranger added by hand; and u-00010 changed email
	// without changing segments (no membership change to sync).
	schema := []string{"EXTERN_ID", "EMAIL"}
	var lost [][]string
	for _, uk := range all[:10] {
		lost = append(lost, []string{uk, ""})
	}
	ctx := context.Background()
	if _, err := h.meta.Upload(ctx, ports.AudienceUpload{AudienceID: id, Op: ports.AudienceRemove, Schema: schema, Rows: lost}); err != nil {
		t.Fatal(err)
	}
	stranger := identity.Hash(sha("stranger@example.com")).String()
	if _, err := h.meta.Upload(ctx, ports.AudienceUpload{AudienceID: id, Op: ports.AudienceAdd, Schema: schema, Rows: [][]string{{"stranger", stranger}}}); err != nil {
		t.Fatal(err)
	}
	newEmail := identity.Hash(sha("new-address@example.com"))
	h.silently(t, all[10], []string{"cart_abandoner"}, func(st *segments.State) { st.Email.Hash = newEmail })

	h.now = h.now.Add(23 * time.Hour) // not due yet
	if r := run(t, s); len(r[0].Audiences) != 0 {
		t.Fatalf("a run before the period did something: %+v", r[0].Audiences)
	}
	if !strings.Contains(metrics.String(), `"AudienceSecondsSinceRefresh":82800`) {
		t.Errorf("metrics lack AudienceSecondsSinceRefresh 82800 (23 h):\n%s", metrics.String())
	}
	before := len(h.uploads(id))
	h.now = h.now.Add(time.Hour)
	metrics.Reset()
	reports := run(t, s)
	for _, want := range []string{`"AudienceRefreshRows":150`, `"AudienceRefreshLeftOut":0`, `"AudienceRefreshComplete":1`} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics.String())
		}
	}
	calls := h.uploads(id)[before:]
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "replace ") || !strings.HasSuffix(calls[0], "/1 status 200") {
		t.Fatalf("refresh calls %v, want one replace batch", calls)
	}
	sessions := h.sandbox.AudienceSessions(id)
	if last := sessions[len(sessions)-1]; last.Operation != "replace" || !last.Finished {
		t.Fatalf("last session %+v, want a finished replace", last)
	}
	_, members = h.audience(t, "cart_abandoner")
	if !slices.Equal(keys(members), all) {
		t.Fatalf("after the refresh: %d members (stranger %v, u-00000 %v), want exactly the 150 users",
			len(members), members["stranger"].Key != "", members[all[0]].Key != "")
	}
	if got := members[all[10]].Row["EMAIL"]; got != newEmail.String() {
		t.Fatalf("u-00010's row has EMAIL %q, want the current hash %q", got, newEmail.String())
	}
	var r AudienceReport
	for _, a := range reports[0].Audiences {
		if a.Segment == "cart_abandoner" {
			r = a
		}
	}
	if !r.Refreshing || !r.Refreshed || r.RefreshRows != 150 || r.RefreshExcluded != 0 {
		t.Fatalf("report %+v", r)
	}
	st, _, _ = h.store.GetAudienceState(ctx, h.app, "cart_abandoner")
	if st.LastRefreshAt != h.now.Unix() || st.Size != 150 || st.SessionID != 0 || st.RefreshCursor != "" {
		t.Fatalf("state after the refresh %+v", st)
	}
	// The other audiences were refreshed too (those with members), each in its own session.
	run(t, s)
	if n := len(h.uploads(id)); n != before+1 {
		t.Fatalf("a second refresh ran within the period: %v", h.uploads(id)[before:])
	}
}

func TestFullRefreshIsOffByDefault(t *testing.T) {
	h := newHarness(t)
	h.user(t, "u-1", nil, []string{"cart_abandoner"}, 0)
	s := h.syncer(t, nil)
	run(t, s)
	h.now = h.now.Add(365 * 24 * time.Hour)
	run(t, s)
	for _, r := range h.sandbox.Requests() {
		if strings.HasSuffix(r.Path, "/usersreplace") {
			t.Fatalf("a replace without full_refresh_hours: %+v", r)
		}
	}
}

func TestFullRefreshLeavesOutWhoNoLongerBelongs(t *testing.T) {
	h := newHarness(t)
	h.withRefresh(t, 24)
	all := userKeys("u", 200)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	s := h.syncer(t, nil)
	run(t, s)
	// Without a recorded change: one left the segment, one withdrew consent, one has no
	// matchable identifier left, one moved to another segment.
	h.silently(t, all[3], nil, nil)
	h.silently(t, all[7], []string{"cart_abandoner"}, func(st *segments.State) { st.Consent = segments.Consent{At: st.Consent.At + 1, Withdrawn: true} })
	h.silently(t, all[9], []string{"cart_abandoner"}, func(st *segments.State) { st.Email = segments.HashedID{} })
	h.silently(t, all[150], []string{"lapsed_7d"}, nil)
	h.now = h.now.Add(24 * time.Hour)
	run(t, s)
	gone := []string{all[3], all[7], all[9], all[150]}
	want := slices.DeleteFunc(slices.Clone(all), func(k string) bool { return slices.Contains(gone, k) })
	_, members := h.audience(t, "cart_abandoner")
	if !slices.Equal(keys(members), want) {
		t.Fatalf("after the refresh %d members, want 196 (without %v)", len(members), gone)
	}
	if got := h.members(t, "cart_abandoner"); !slices.Equal(got, want) {
		t.Fatalf("index after the refresh has %d keys, want the 196 members", len(got))
	}
	st, _, _ := h.store.GetAudienceState(context.Background(), h.app, "cart_abandoner")
	if st.Size != 196 {
		t.Fatalf("size %d, want 196", st.Size)
	}
}

func TestFullRefreshGuardPausesAndAlerts(t *testing.T) {
	h := newHarness(t)
	h.withRefresh(t, 24)
	all := userKeys("u", 200)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"engaged"}, 0)
	}
	var logs bytes.Buffer
	s, _ := New(Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: h.meta, Now: func() time.Time { return h.now },
		Logger: observability.NewLogger(&logs, "debug")})
	run(t, s)
	for _, uk := range all[:100] { // half the audience silently gone: a refresh would remove it
		h.silently(t, uk, nil, nil)
	}
	h.now = h.now.Add(24 * time.Hour)
	id, _ := h.audience(t, "engaged")
	before := len(h.uploads(id))
	run(t, s)
	if calls := h.uploads(id)[before:]; len(calls) != 0 {
		t.Fatalf("the guard let %v through", calls)
	}
	_, members := h.audience(t, "engaged")
	if len(members) != 200 || len(h.members(t, "engaged")) != 200 {
		t.Fatalf("after the guard: %d members at Meta, %d indexed; want 200 and 200", len(members), len(h.members(t, "engaged")))
	}
	if !strings.Contains(logs.String(), "ALERT: full refresh paused") {
		t.Fatalf("no alert in the logs:\n%s", logs.String())
	}
	// Paused for a period, not retried (and alerting) at every run.
	logs.Reset()
	run(t, s)
	if strings.Contains(logs.String(), "ALERT") {
		t.Fatalf("the next run alerted again:\n%s", logs.String())
	}
}

func TestKilledRefreshResumesAndHoldsUploads(t *testing.T) {
	h := newHarness(t)
	h.withRefresh(t, 24)
	for _, uk := range userKeys("u", 25_000) {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	run(t, h.syncer(t, nil))
	id, _ := h.audience(t, "cart_abandoner")
	before := len(h.uploads(id))

	h.now = h.now.Add(24 * time.Hour)
	run(t, h.syncer(t, &killAfter{AudienceAPI: h.meta, n: 2}))
	st, _, _ := h.store.GetAudienceState(context.Background(), h.app, "cart_abandoner")
	if st.Op != "replace" || st.BatchesDone != 2 || st.RefreshRows != 20_000 || st.RefreshCursor != "u-19999" {
		t.Fatalf("checkpoint after the kill %+v", st)
	}
	// A user joins meanwhile: the add waits for the replace (Meta takes no /users call then).
	h.user(t, "late", nil, []string{"cart_abandoner"}, 0)
	h.now = h.now.Add(10 * time.Minute)
	reports := run(t, h.syncer(t, nil))
	if reports[0].Synced != 0 {
		t.Fatalf("synced %d changes during the replace", reports[0].Synced)
	}
	calls := h.uploads(id)[before:]
	session := fmt.Sprint(st.SessionID)
	want := []string{"replace " + session + "/1 status 200", "replace " + session + "/2 status 200", "replace " + session + "/3 status 200"}
	if !slices.Equal(calls, want) {
		t.Fatalf("uploads since the first sync %v, want %v", calls, want)
	}
	_, members := h.audience(t, "cart_abandoner")
	if len(members) != 25_000 {
		t.Fatalf("%d members after the refresh", len(members))
	}
	run(t, h.syncer(t, nil))
	_, members = h.audience(t, "cart_abandoner")
	if _, ok := members["late"]; !ok || len(members) != 25_001 {
		t.Fatalf("%d members, late in: %v", len(members), ok)
	}
}

func TestRefreshStopsBeforeTheDeadline(t *testing.T) {
	h := newHarness(t)
	h.withRefresh(t, 24)
	h.user(t, "u-1", nil, []string{"cart_abandoner"}, 0)
	run(t, h.syncer(t, nil))
	h.now = h.now.Add(24 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // under the 60 s reserve
	defer cancel()
	reports, err := h.syncer(t, nil).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var stopped []string
	for _, a := range reports[0].Audiences {
		stopped = append(stopped, a.RefreshStopped)
	}
	if len(stopped) == 0 || !strings.Contains(stopped[0], "too little time") {
		t.Fatalf("refresh reports %+v, want stopped for time", reports[0].Audiences)
	}
	for _, r := range h.sandbox.Requests() {
		if strings.HasSuffix(r.Path, "/usersreplace") {
			t.Fatalf("a replace batch started with 30 s left: %+v", r)
		}
	}
}

func TestTakeSplitsBatchesAtRows(t *testing.T) {
	schema := []string{"EXTERN_ID", "EMAIL"}
	row := func(k string) []string { return []string{k, strings.Repeat("a", 64)} }
	src := &memberSource{exhausted: true, rows: 3, buf: []memberEntry{
		{key: "a", row: row("a")}, {key: "b"}, {key: "c", row: row("c")}, {key: "d", row: row("d")}, {key: "e"},
	}}
	// A byte cap that fits two rows: the first batch ends at its second row, the members left
	// out after it go with the next batch, and the last batch takes the trailing ones.
	two := audiences.PayloadSize(schema, [][]string{row("a"), row("c")})
	entries, rows, last := src.take(schema, two)
	if got := entryKeys(entries); !slices.Equal(got, []string{"a", "b", "c"}) || len(rows) != 2 || last {
		t.Fatalf("first batch %v, %d rows, last %v; want [a b c], 2 rows, not last", got, len(rows), last)
	}
	entries, rows, last = src.take(schema, two)
	if got := entryKeys(entries); !slices.Equal(got, []string{"d", "e"}) || len(rows) != 1 || !last {
		t.Fatalf("second batch %v, %d rows, last %v; want [d e], 1 row, last", got, len(rows), last)
	}
	// Not exhausted: never the last batch, even when the buffer fits in one.
	src = &memberSource{rows: 1, buf: []memberEntry{{key: "x", row: row("x")}, {key: "y"}}}
	entries, _, last = src.take(schema, two)
	if got := entryKeys(entries); !slices.Equal(got, []string{"x"}) || last {
		t.Fatalf("batch %v last %v; want [x], not last", got, last)
	}
}

func entryKeys(entries []memberEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.key)
	}
	return out
}

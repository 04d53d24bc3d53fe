package audiencesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/ports"
)

// split returns the users of keys whose arm of segment's audience is Treated, and Holdout.
func (h *harness) split(segment string, keys []string) (treated, held []string) {
	as := h.aa[h.app].Assigner(segment)
	for _, uk := range keys {
		if as.Arm(uk) == holdout.Holdout {
			held = append(held, uk)
		} else {
			treated = append(treated, uk)
		}
	}
	return treated, held
}

// sandboxMembers returns the sorted user keys of the audience with key key at Meta; nil when
// the sync never created it.
func (h *harness) sandboxMembers(t *testing.T, key string) []string {
	t.Helper()
	st, found, err := h.store.GetAudienceState(context.Background(), h.app, key)
	if err != nil {
		t.Fatal(err)
	}
	if !found || st.AudienceID == "" {
		return nil
	}
	return keys(h.sandbox.AudienceMembers(st.AudienceID))
}

// removedRows counts the rows of the removal calls Meta answered 200 for the audience key.
func (h *harness) removedRows(t *testing.T, key string) int {
	t.Helper()
	n := 0
	for _, r := range h.requests(h.state(t, key).AudienceID) {
		if r.Method == http.MethodDelete && r.Status == http.StatusOK {
			n += r.Rows
		}
	}
	return n
}

// With the default holdout (0.1), a few thousand cart abandoners split between the treated
// audience and "Cart abandoners (holdout)": about 10% held out, nobody in both, the treated
// audience holding exactly the treated users, each audience with its own member index, report
// and metrics under its key. The holdout audience is created through the same path as any
// (a lost creation answer is found by name, not made twice).
func TestHoldoutAudienceHoldsTheHoldoutArm(t *testing.T) {
	h := newHoldoutHarness(t)
	cart, _ := h.aa[h.app].Audience("cart_abandoner")
	lost, err := h.meta.CreateAudience(context.Background(), cart.Holdout().Creation()) // its answer "lost"
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	all := userKeys("u", n)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	var metrics bytes.Buffer
	s, _ := New(Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: h.meta, Now: func() time.Time { return h.now },
		Metrics: observability.NewEmitter(&metrics, "Test")})
	reports := run(t, s)

	treated, held := h.split("cart_abandoner", all)
	p, share := appconfig.DefaultHoldoutFraction, float64(len(held))/n
	if se := math.Sqrt(p * (1 - p) / n); math.Abs(share-p) > 4*se {
		t.Fatalf("holdout share %.4f of %d users, want %.2f ± %.4f (4 standard errors)", share, n, p, 4*se)
	}
	if got := h.sandboxMembers(t, "cart_abandoner"); !slices.Equal(got, treated) {
		t.Fatalf("treated audience: %d members, want exactly the %d treated users", len(got), len(treated))
	}
	if got := h.sandboxMembers(t, "cart_abandoner:holdout"); !slices.Equal(got, held) {
		t.Fatalf("holdout audience: %d members, want exactly the %d holdout users", len(got), len(held))
	}
	if got := h.members(t, "cart_abandoner"); !slices.Equal(got, treated) {
		t.Fatalf("treated member index: %d keys, want %d", len(got), len(treated))
	}
	if got := h.members(t, "cart_abandoner:holdout"); !slices.Equal(got, held) {
		t.Fatalf("holdout member index: %d keys, want %d", len(got), len(held))
	}
	st := h.state(t, "cart_abandoner:holdout")
	named := 0
	for _, info := range h.sandbox.Audiences() {
		if info.Name == "Cart abandoners (holdout)" {
			named++
		}
	}
	if st.AudienceID != lost || named != 1 || st.Size != int64(len(held)) {
		t.Fatalf("holdout audience %s (created earlier: %s), %d named \"Cart abandoners (holdout)\", size %d", st.AudienceID, lost, named, st.Size)
	}
	if reports[0].Synced != n || len(h.pendingUsers(t, "cart_abandoner")) != 0 {
		t.Fatalf("synced %d of %d changes", reports[0].Synced, n)
	}
	var rep AudienceReport
	for _, r := range reports[0].Audiences {
		if r.Segment == "cart_abandoner:holdout" {
			rep = r
		}
	}
	if rep.Added != len(held) || !rep.Complete || rep.AudienceID != lost {
		t.Fatalf("holdout report %+v", rep)
	}
	rowsAdded := fmt.Sprintf(`"AudienceRowsAdded":%d,`, len(held))
	if !slices.ContainsFunc(strings.Split(metrics.String(), "\n"), func(line string) bool {
		return strings.Contains(line, `"Audience":"cart_abandoner:holdout",`) && strings.Contains(line, rowsAdded)
	}) {
		t.Errorf("no metrics line of audience cart_abandoner:holdout with %s\n%s", rowsAdded, metrics.String())
	}

	// Everyone leaves: each user is removed from the audience of their arm only (they were
	// never added to the other).
	for _, uk := range all[:100] {
		h.user(t, uk, []string{"cart_abandoner"}, nil, 0)
	}
	run(t, s)
	leftTreated, leftHeld := h.split("cart_abandoner", all[:100])
	if got, want := h.removedRows(t, "cart_abandoner"), len(leftTreated); got != want {
		t.Errorf("%d removal rows to the treated audience, want %d (its users only)", got, want)
	}
	if got, want := h.removedRows(t, "cart_abandoner:holdout"), len(leftHeld); got != want {
		t.Errorf("%d removal rows to the holdout audience, want %d (its users only)", got, want)
	}
	if got := h.sandboxMembers(t, "cart_abandoner:holdout"); len(got) != len(held)-len(leftHeld) {
		t.Errorf("holdout audience has %d members, want %d", len(got), len(held)-len(leftHeld))
	}
}

// A user keeps their arm of each audience whatever happens around it: moving within the
// exclusive group (lapsed_7d, then cart_abandoner, then back), a full refresh, and a change of
// the segments' rules. After every step each user is in exactly the audience of their arm of
// the segment the group picked, and in no other audience of the group.
func TestArmIsStableAcrossGroupMovesRefreshAndRulesChanges(t *testing.T) {
	h := newHoldoutHarness(t)
	// Everyone moves at once: past the removal guard's default share.
	noGuard := func(cfg *appconfig.Config) { cfg.Apps[0].AudienceSync.MaxRemovalFraction = new(1.0) }
	h.withRefreshAndHoldouts(t, 24, noGuard)
	// The movers go lapsed_7d -> cart_abandoner -> lapsed_7d; some users stay in each segment,
	// because Meta refuses to empty an audience.
	movers, lapsedStay, cartStay := userKeys("m", 320), userKeys("l", 40), userKeys("c", 40)
	all := slices.Concat(movers, lapsedStay, cartStay)
	slices.Sort(all)
	group := h.aa[h.app].Affected("cart_abandoner")
	check := func(step, moversIn string) {
		t.Helper()
		for _, key := range group {
			a, _ := h.aa[h.app].Audience(key)
			var in []string
			switch a.Base() {
			case "lapsed_7d":
				in = lapsedStay
			case "cart_abandoner":
				in = cartStay
			}
			if a.Base() == moversIn {
				in = slices.Concat(in, movers)
			}
			treated, held := h.split(a.Base(), in)
			want := treated
			if a.Arm() == holdout.Holdout {
				want = held
			}
			slices.Sort(want)
			if got := h.sandboxMembers(t, key); !slices.Equal(got, want) {
				t.Fatalf("%s: %s has %d members, want %d", step, key, len(got), len(want))
			}
			if idx := h.members(t, key); !slices.Equal(idx, want) {
				t.Fatalf("%s: %s member index has %d keys, want %d", step, key, len(idx), len(want))
			}
		}
	}
	s := h.syncer(t, nil)
	for _, uk := range slices.Concat(movers, lapsedStay) {
		h.user(t, uk, nil, []string{"lapsed_7d"}, 0)
	}
	for _, uk := range cartStay {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	run(t, s)
	check("lapsed", "lapsed_7d")
	for _, uk := range movers { // cart_abandoner outranks lapsed_7d
		h.user(t, uk, []string{"lapsed_7d"}, []string{"cart_abandoner", "lapsed_7d"}, 0)
	}
	run(t, s)
	check("cart", "cart_abandoner")
	for _, uk := range movers {
		h.user(t, uk, []string{"cart_abandoner", "lapsed_7d"}, []string{"lapsed_7d"}, 0)
	}
	run(t, s)
	check("back to lapsed", "lapsed_7d")
	if p := h.pendingUsers(t, "lapsed_7d"); len(p) != 0 {
		t.Fatalf("changes still pending: %v", p)
	}

	// The full refresh replaces each audience from its own member index: nobody moves.
	h.now = h.now.Add(24 * time.Hour)
	refreshed := map[string]bool{}
	for _, r := range run(t, s)[0].Audiences {
		if r.Refreshed {
			refreshed[r.Segment] = true
			if r.RefreshExcluded != 0 {
				t.Errorf("%s: the refresh left out %d members", r.Segment, r.RefreshExcluded)
			}
		}
	}
	if !refreshed["lapsed_7d"] || !refreshed["lapsed_7d:holdout"] {
		t.Fatalf("refreshed %v, want both lapsed_7d audiences", refreshed)
	}
	check("after the full refresh", "lapsed_7d")

	// New rules for the segment (the config is recompiled, as on a deploy): the arms stay, so
	// the next refresh leaves everyone where they are.
	cfg := sampleConfig(t)
	noGuard(cfg)
	cfg.Apps[0].AudienceSync.FullRefreshHours = 24
	for i := range cfg.Apps[0].Audiences {
		cfg.Apps[0].Audiences[i].ValueBased = false
	}
	for i := range cfg.Apps[0].Segments {
		if seg := &cfg.Apps[0].Segments[i]; seg.ID == "lapsed_7d" {
			seg.Description = "rules changed"
			seg.When = []appconfig.Condition{{Value: &appconfig.ValueCondition{Attribute: "purchase_count", AtLeast: new(3.0)}}}
		}
	}
	aa, err := audiences.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.aa = aa
	h.now = h.now.Add(24 * time.Hour)
	for _, r := range run(t, h.syncer(t, nil))[0].Audiences {
		if strings.HasPrefix(r.Segment, "lapsed_7d") && (!r.Refreshed || r.RefreshExcluded != 0) {
			t.Errorf("%s after the rules change: refreshed %v, left out %d", r.Segment, r.Refreshed, r.RefreshExcluded)
		}
	}
	check("after the rules change", "lapsed_7d")
}

// failAudience fails every upload to one audience id, as an outage of that audience would.
type failAudience struct {
	ports.AudienceAPI
	id string
}

func (f *failAudience) Upload(ctx context.Context, u ports.AudienceUpload) (ports.AudienceAck, error) {
	if u.AudienceID == f.id {
		return ports.AudienceAck{}, errors.New("injected failure")
	}
	return f.AudienceAPI.Upload(ctx, u)
}

// A change is synced once both audiences of its segment are: while the holdout audience's
// upload fails, the changes stay pending (the treated audience's rows went through); the next
// run uploads the holdout rows and marks them synced.
func TestChangeWaitsForBothArms(t *testing.T) {
	h := newHoldoutHarness(t)
	all := userKeys("u", 60)
	for _, uk := range all[:30] {
		h.user(t, uk, nil, []string{"engaged"}, 0)
	}
	run(t, h.syncer(t, nil)) // creates both audiences
	for _, uk := range all[30:] {
		h.user(t, uk, nil, []string{"engaged"}, 0)
	}
	if _, first := h.split("engaged", all[:30]); len(first) == 0 {
		t.Fatal("no holdout user among the first users: pick other keys")
	}
	if _, joiners := h.split("engaged", all[30:]); len(joiners) == 0 {
		t.Fatal("no holdout user among the joiners: pick other keys")
	}
	failing := &failAudience{AudienceAPI: h.meta, id: h.state(t, "engaged:holdout").AudienceID}
	r := run(t, h.syncer(t, failing))
	if r[0].Synced != 0 || len(h.pendingUsers(t, "engaged")) != 30 {
		t.Fatalf("with the holdout audience failing: synced %d, pending %d", r[0].Synced, len(h.pendingUsers(t, "engaged")))
	}
	treated, _ := h.split("engaged", all)
	if got := h.sandboxMembers(t, "engaged"); !slices.Equal(got, treated) {
		t.Fatalf("treated audience %d members, want %d", len(got), len(treated))
	}
	r = run(t, h.syncer(t, nil))
	_, heldAll := h.split("engaged", all)
	if r[0].Synced != 30 || len(h.pendingUsers(t, "engaged")) != 0 || !slices.Equal(h.sandboxMembers(t, "engaged:holdout"), heldAll) {
		t.Fatalf("after the failure: synced %d, holdout members %v, want %v", r[0].Synced, h.sandboxMembers(t, "engaged:holdout"), heldAll)
	}
}

// holdout_fraction 0: no holdout audience is created and every user of a segment is uploaded
// to its audience, as before holdouts.
func TestHoldoutFractionZeroCreatesNoHoldoutAudience(t *testing.T) {
	h := newHarness(t) // holdout_fraction 0 everywhere
	all := userKeys("u", 300)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"cart_abandoner", "vip", "engaged", "new_installer"}, 1)
	}
	run(t, h.syncer(t, nil))
	for _, seg := range []string{"cart_abandoner", "vip", "engaged", "new_installer"} {
		if got := h.sandboxMembers(t, seg); !slices.Equal(got, all) {
			t.Errorf("%s: %d members, want all %d users", seg, len(got), len(all))
		}
		if _, found, _ := h.store.GetAudienceState(context.Background(), h.app, seg+":holdout"); found {
			t.Errorf("%s: a holdout audience state", seg)
		}
	}
	for _, info := range h.sandbox.Audiences() {
		if strings.Contains(info.Name, "(holdout)") {
			t.Errorf("audience %q created with holdout_fraction 0", info.Name)
		}
	}
}

// holdout_audience_id: the holdout users go to that audience, and no "(holdout)" audience is
// created.
func TestHoldoutAudienceIDIsUsed(t *testing.T) {
	h := newHoldoutHarness(t)
	existing, err := h.meta.CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1234567890", Name: "Cart control group"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sampleConfig(t)
	cfg.Apps[0].Audiences[0].HoldoutAudienceID = existing // cart_abandoner
	aa, err := audiences.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.aa = aa
	all := userKeys("u", 200)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	run(t, h.syncer(t, nil))
	_, held := h.split("cart_abandoner", all)
	if st := h.state(t, "cart_abandoner:holdout"); st.AudienceID != existing || !slices.Equal(keys(h.sandbox.AudienceMembers(existing)), held) {
		t.Fatalf("holdout audience %s (configured %s), members %v, want %v", st.AudienceID, existing, keys(h.sandbox.AudienceMembers(existing)), held)
	}
	for _, info := range h.sandbox.Audiences() {
		if info.Name == "Cart abandoners (holdout)" {
			t.Fatalf("created %q although holdout_audience_id is set", info.Name)
		}
	}
}

// TestHoldoutAudienceIsCreatedFirst: a sync that only has treated users to upload still creates
// the holdout audience, and before the treated one, so that an ad set including the audience can
// exclude its holdout from the start.
func TestHoldoutAudienceIsCreatedFirst(t *testing.T) {
	h := newHoldoutHarness(t)
	var treated []string
	for _, uk := range userKeys("u", 200) {
		if h.aa["sample-shop"].KeyFor(uk, "cart_abandoner") == "cart_abandoner" {
			treated = append(treated, uk)
		}
		if len(treated) == 3 {
			break
		}
	}
	for _, uk := range treated {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	run(t, h.syncer(t, nil))
	var names []string
	for _, info := range h.sandbox.Audiences() {
		names = append(names, info.Name)
	}
	if !slices.Equal(names, []string{"Cart abandoners (holdout)", "Cart abandoners"}) {
		t.Fatalf("audiences created %q, want the holdout audience, then the audience", names)
	}
}

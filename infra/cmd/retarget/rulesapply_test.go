package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// TestRulesApply: stored users whose segments no longer match the rules (as after a rules
// change) move to the segments the rules give now: a dry run counts who would join and leave
// and writes nothing; the real run writes the segments and records exactly those changes; a
// second run has nothing left to do.
func TestRulesApply(t *testing.T) {
	h, store, _ := audiencesEnv(t)
	ctx := context.Background()
	now := h.now
	consent := segments.Consent{At: now.Add(-time.Hour).Unix()}
	encode := func(st *segments.State) []byte { b, _ := json.Marshal(st); return b }

	// stale: first seen an hour ago (a new installer by the rules) but stored as a vip only.
	stale := &segments.State{FirstSeen: now.Add(-time.Hour).Unix(), LastSeen: now.Add(-time.Hour).Unix(), Consent: consent}
	// current: stored with exactly what the rules give now.
	current := &segments.State{FirstSeen: now.Add(-40 * 24 * time.Hour).Unix(), LastSeen: now.Add(-2 * time.Hour).Unix(), Consent: consent}
	cfg, err := env.LoadApps(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := segments.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	currentSegs, _ := rules["sample-shop"].Evaluate(current, now)
	for _, u := range []struct {
		uk   string
		st   *segments.State
		segs []string
	}{{"stale-user", stale, []string{"vip"}}, {"current-user", current, currentSegs}} {
		if err := store.PutUser(ctx, ports.UserRecord{App: "sample-shop", UserKey: u.uk, State: encode(u.st), Segments: u.segs, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	pendingAll := func() []ports.MembershipChange {
		t.Helper()
		var out []ports.MembershipChange
		for _, seg := range []string{"vip", "new_installer", "engaged", "cart_abandoner", "onboarding_incomplete", "lapsed_7d", "subscription_expired"} {
			page, _, err := store.PendingChanges(ctx, "sample-shop", seg, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				out = append(out, c.MembershipChange)
			}
		}
		return out
	}

	out := h.mustRun(exitOK, "rules", "apply", "--dry-run", "--page-size", "1")
	tableRow(t, out, "sample-shop", "new_installer", "1", "0")
	tableRow(t, out, "sample-shop", "vip", "0", "1")
	wantContains(t, out, "sample-shop: 2 users read, 2 membership changes would be recorded, 0 failed; nothing written (dry run)")
	if p := pendingAll(); len(p) != 0 {
		t.Fatalf("a dry run recorded %v", p)
	}
	if rec, _, _ := store.GetUser(ctx, "sample-shop", "stale-user"); rec.Version != 1 {
		t.Fatalf("a dry run wrote the user (version %d)", rec.Version)
	}

	out = h.mustRun(exitOK, "rules", "apply")
	tableRow(t, out, "sample-shop", "new_installer", "1", "0")
	tableRow(t, out, "sample-shop", "vip", "0", "1")
	wantContains(t, out, "sample-shop: 2 users re-evaluated, 2 membership changes recorded")
	rec, _, _ := store.GetUser(ctx, "sample-shop", "stale-user")
	if !slices.Equal(rec.Segments, []string{"new_installer"}) || rec.Version != 2 {
		t.Errorf("stale user after apply: segments %v, version %d; want [new_installer], 2", rec.Segments, rec.Version)
	}
	var got []string
	for _, c := range pendingAll() {
		if c.UserKey != "stale-user" || c.StateVersion != 2 {
			t.Errorf("change %+v, want the stale user's, for state version 2", c)
		}
		got = append(got, c.Segment+map[bool]string{true: " joined", false: " left"}[c.Joined])
	}
	slices.Sort(got)
	if want := []string{"new_installer joined", "vip left"}; !slices.Equal(got, want) {
		t.Errorf("recorded changes %v, want %v", got, want)
	}

	versions := map[string]int64{}
	for _, uk := range []string{"stale-user", "current-user"} {
		rec, _, _ := store.GetUser(ctx, "sample-shop", uk)
		versions[uk] = rec.Version
	}
	out = h.mustRun(exitOK, "rules", "apply", "--dry-run")
	wantContains(t, out, "sample-shop: 2 users read, 0 membership changes would be recorded, 0 failed; nothing written (dry run)")
	wantNotContains(t, out, "WOULD JOIN")
	h.mustRun(exitOK, "rules", "apply", "--json")
	var res []rulesApplyResult
	if err := json.Unmarshal(h.stdout.Bytes(), &res); err != nil || len(res) != 1 || res[0].Users != 2 || res[0].Changes != 0 || res[0].Failed != 0 {
		t.Errorf("second apply: %v %+v, want 2 users and no change", err, res)
	}
	// Users whose segments and due time stay are not written again.
	for uk, want := range versions {
		if rec, _, _ := store.GetUser(ctx, "sample-shop", uk); rec.Version != want {
			t.Errorf("%s: version %d after the second apply, want %d as after the first (no write without a change)", uk, rec.Version, want)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"rules", "apply", "extra"}, exitUsage, `unexpected arguments ["extra"]`},
		{[]string{"rules", "apply", "--page-size", "0"}, exitUsage, "--page-size must be positive"},
		{[]string{"rules", "apply", "--app", "nope"}, exitFailure, `unknown app "nope"`},
	} {
		if code := h.run(tc.args...); code != tc.code || !strings.Contains(h.stderr.String(), tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, h.stderr.String(), tc.code, tc.msg)
		}
	}
}

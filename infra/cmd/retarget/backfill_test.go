package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/audiencesync"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// TestAudiencesBackfill: users who are in the vip segment but have no membership change left
// (they joined before the audience existed, their changes expired) reach the vip audience at
// Meta only through backfill: the sync alone uploads nothing; after backfill the next sync
// uploads exactly them.
func TestAudiencesBackfill(t *testing.T) {
	h, store, sb := audiencesEnv(t)
	ctx := context.Background()
	var vips []string
	for i := range 7 {
		uk := fmt.Sprintf("user-%d", i)
		segs := []string{"engaged"}
		if i%2 == 0 {
			segs, vips = append(segs, "vip"), append(vips, uk)
		}
		st, _ := json.Marshal(&segments.State{Consent: segments.Consent{At: 1_790_000_000},
			MADID: segments.AdvertisingID{ID: fmt.Sprintf("38400000-8cf0-11bd-b23e-10b96e4000%02d", i), At: 1_790_000_000}, ValueMicros: 250_000_000})
		if err := store.PutUser(ctx, ports.UserRecord{App: "sample-shop", UserKey: uk, State: st, Segments: segs, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := env.LoadApps(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	aa, err := audiences.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := audiencesync.New(audiencesync.Config{Audiences: aa, Users: store, State: store,
		Meta: metagraph.New(metagraph.Config{BaseURL: h.env["META_GRAPH_URL"], AccessToken: devMetaToken, AppSecret: devMetaSecret})})
	if err != nil {
		t.Fatal(err)
	}
	vipMembers := func() []string {
		t.Helper()
		if _, err := syncer.Run(ctx); err != nil {
			t.Fatalf("audience sync: %v", err)
		}
		st, _, err := store.GetAudienceState(ctx, "sample-shop", "vip")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range sb.AudienceMembers(st.AudienceID) {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	}
	if got := vipMembers(); len(got) != 0 {
		t.Fatalf("the sync uploaded %v without any membership change", got)
	}

	out := h.mustRun(exitOK, "audiences", "backfill", "--segment", "vip", "--dry-run", "--page-size", "2")
	tableRow(t, out, "sample-shop", "vip", "4", "0", "would", "queue")
	if pending, _, _ := store.PendingChanges(ctx, "sample-shop", "vip", "", 100); len(pending) != 0 {
		t.Fatalf("a dry run recorded %d changes", len(pending))
	}

	out = h.mustRun(exitOK, "audiences", "backfill", "--segment", "vip", "--page-size", "2")
	tableRow(t, out, "sample-shop", "vip", "4", "4", "queued", "for", "the", "next", "audience", "sync")
	pending, _, err := store.PendingChanges(ctx, "sample-shop", "vip", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	for _, c := range pending {
		if !c.Joined || c.StateVersion != 0 {
			t.Errorf("queued change %+v, want a join without a state version", c)
		}
		queued = append(queued, c.UserKey)
	}
	slices.Sort(queued)
	if !slices.Equal(queued, vips) {
		t.Fatalf("queued %v, want the vip members %v", queued, vips)
	}
	if got := vipMembers(); !slices.Equal(got, vips) {
		t.Errorf("vip audience at Meta after backfill and a sync = %v, want %v", got, vips)
	}
	if pending, _, _ := store.PendingChanges(ctx, "sample-shop", "vip", "", 100); len(pending) != 0 {
		t.Errorf("%d changes still pending after the sync", len(pending))
	}

	h.mustRun(exitOK, "audiences", "backfill", "--segment", "vip", "--json")
	var rows []backfillRow
	if err := json.Unmarshal(h.stdout.Bytes(), &rows); err != nil || len(rows) != 1 || rows[0].Members != 4 || rows[0].Queued != 4 {
		t.Errorf("--json: %v %+v", err, rows)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"audiences", "backfill"}, exitUsage, "--segment is required"},
		{[]string{"audiences", "backfill", "--segment", "vip", "--page-size", "0"}, exitUsage, "--page-size must be positive"},
		{[]string{"audiences", "backfill", "--segment", "vip", "extra"}, exitUsage, `unexpected arguments ["extra"]`},
		{[]string{"audiences", "backfill", "--segment", "subscription_expired"}, exitFailure,
			`app sample-shop: segment "subscription_expired" has no audience in the config`},
	} {
		if code := h.run(tc.args...); code != tc.code || !strings.Contains(h.stderr.String(), tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, h.stderr.String(), tc.code, tc.msg)
		}
	}
}

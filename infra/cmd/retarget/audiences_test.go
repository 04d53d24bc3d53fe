package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// audiencesEnv starts dynalite and the Meta sandbox with the dev stack's credentials and the
// sample app's ad account, and points a harness at them as `make dev` would.
func audiencesEnv(t *testing.T) (*harness, *dynamostate.Store, *metasandbox.Sandbox) {
	t.Helper()
	endpoint, table, client := dynalite(t)
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: devMetaToken, AppSecret: devMetaSecret,
		Datasets: []string{"1234567890123456"}, AdAccounts: []string{"act_1234567890"}, RemovalMinSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	h := newHarness(t)
	h.env = map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "STATE_TABLE_NAME": table,
		"APP_CONFIG_FILE": sampleConfig, "META_GRAPH_URL": url}
	return h, dynamostate.New(client, table, dynamostate.Options{}), sb
}

func TestAudiencesCreateThenStatus(t *testing.T) {
	h, store, sb := audiencesEnv(t)
	ctx := context.Background()
	segs := []string{"cart_abandoner", "onboarding_incomplete", "lapsed_7d", "vip", "engaged", "new_installer"}

	out := h.mustRun(exitOK, "audiences", "status")
	for _, s := range segs { // the sample's audiences have the default holdout
		tableRow(t, out, "sample-shop", s, "(not", "created", "yet)", "0", "0", "0", "never", "off", "-")
		tableRow(t, out, "sample-shop", s+":holdout", "(not", "created", "yet)", "0", "0", "0", "never", "off", "-")
	}

	out = h.mustRun(exitOK, "audiences", "create", "--dry-run")
	tableRow(t, out, "sample-shop", "vip", "Top", "spenders", "act_1234567890", "yes", "-", "would", "create")
	tableRow(t, out, "sample-shop", "vip:holdout", "Top", "spenders", "(holdout)", "act_1234567890", "yes", "-", "would", "create")
	if n := len(sb.Audiences()); n != 0 {
		t.Fatalf("a dry run created %d audiences", n)
	}

	out = h.mustRun(exitOK, "audiences", "create")
	created := sb.Audiences()
	if len(created) != 12 {
		t.Fatalf("%d audiences at Meta, want 12 (6 and their holdouts):\n%s", len(created), out)
	}
	byName := map[string]metasandbox.AudienceInfo{}
	for _, a := range created {
		byName[a.Name] = a
	}
	vip := byName["Top spenders"]
	if !vip.ValueBased || vip.AdAccount != "1234567890" || vip.Description != "Retarget segment vip" || byName["Cart abandoners"].ValueBased {
		t.Errorf("audiences at Meta %+v", created)
	}
	tableRow(t, out, "sample-shop", "vip", "Top", "spenders", "act_1234567890", "yes", vip.ID, "created")
	vipHoldout := byName["Top spenders (holdout)"]
	if !vipHoldout.ValueBased || vipHoldout.AdAccount != "1234567890" || vipHoldout.ID == "" || vipHoldout.ID == vip.ID ||
		!strings.HasPrefix(vipHoldout.Description, "Retarget segment vip, holdout") {
		t.Errorf("vip holdout audience at Meta %+v", vipHoldout)
	}
	tableRow(t, out, "sample-shop", "vip:holdout", "Top", "spenders", "(holdout)", "act_1234567890", "yes", vipHoldout.ID, "created")
	if st, found, err := store.GetAudienceState(ctx, "sample-shop", "vip:holdout"); err != nil || !found || st.AudienceID != vipHoldout.ID {
		t.Fatalf("stored holdout state %+v %v %v", st, found, err)
	}
	st, found, err := store.GetAudienceState(ctx, "sample-shop", "vip")
	if err != nil || !found || st.AudienceID != vip.ID || st.Version != 1 {
		t.Fatalf("stored state %+v %v %v", st, found, err)
	}
	if ok, err := store.AcquireLease(ctx, "sample-shop", "audience-sync", testNow, testNow.Add(time.Minute)); !ok || err != nil {
		t.Errorf("create kept the sync lease: %v %v", ok, err)
	}
	store.ReleaseLease(ctx, "sample-shop", "audience-sync")

	// Again: nothing to create.
	h.mustRun(exitOK, "audiences", "create", "--json")
	var rows []createRow
	h.decodeJSON(&rows)
	if len(rows) != 12 || len(sb.Audiences()) != 12 {
		t.Fatalf("second run: %+v, %d audiences at Meta", rows, len(sb.Audiences()))
	}
	for _, r := range rows {
		if r.Result != "exists" || r.AudienceID != byName[r.Name].ID {
			t.Errorf("second run row %+v", r)
		}
	}

	// What the sync would have left: pending changes, a member index, a session under way.
	if err := store.RecordChanges(ctx, []ports.MembershipChange{
		{App: "sample-shop", Segment: "cart_abandoner", UserKey: "user-key-a", Joined: true, At: testNow.Add(-time.Hour).UnixMilli()},
		{App: "sample-shop", Segment: "cart_abandoner", UserKey: "user-key-b", Joined: true, At: testNow.Add(-time.Hour).UnixMilli()},
		{App: "sample-shop", Segment: "cart_abandoner", UserKey: "user-key-a", Joined: false, At: testNow.Add(-time.Minute).UnixMilli()},
	}); err != nil {
		t.Fatal(err)
	}
	if err := store.SetMembers(ctx, "sample-shop", "vip", []string{"user-key-a", "user-key-b", "user-key-c"}, nil); err != nil {
		t.Fatal(err)
	}
	st.Size, st.LastSyncAt, st.Version = 3, testNow.Add(-90*time.Second).Unix(), st.Version+1
	st.SessionID, st.Op, st.BatchesDone, st.SessionStartedAt = 42, "add", 2, testNow.Add(-2*time.Minute).Unix()
	if err := store.PutAudienceState(ctx, st); err != nil {
		t.Fatal(err)
	}

	out = h.mustRun(exitOK, "audiences", "status", "--app", "sample-shop")
	tableRow(t, out, "sample-shop", "cart_abandoner", byName["Cart abandoners"].ID, "3", "0", "0", "never", "off", "-")
	// The holdout audience shows its segment's pending changes (recorded per segment).
	tableRow(t, out, "sample-shop", "cart_abandoner:holdout", byName["Cart abandoners (holdout)"].ID, "3", "0", "0", "never", "off", "-")
	row := tableRow(t, out, "sample-shop", "vip", vip.ID, "0", "3", "3")
	if got := strings.Join(row[6:], " "); got != "2026-03-09T09:58:30Z (1m ago) off add, 2 batch(es) done, started 2m ago" {
		t.Errorf("vip row: %q", got)
	}

	h.mustRun(exitOK, "audiences", "status", "--json")
	var status []audienceStatus
	h.decodeJSON(&status)
	i := slices.IndexFunc(status, func(s audienceStatus) bool { return s.Segment == "vip" })
	if len(status) != 12 || i < 0 || status[i+1].Segment != "vip:holdout" || status[i+1].AudienceID != vipHoldout.ID || status[i+1].Name != "Top spenders (holdout)" {
		t.Fatalf("status %+v", status)
	}
	s := status[i]
	if s.AudienceID != vip.ID || s.IDSource != "state" || s.Members != 3 || s.Size != 3 || s.Version != 2 || s.Session == nil ||
		s.Session.Op != "add" || s.Session.BatchesDone != 2 || s.LastSyncAt != "2026-03-09T09:58:30Z" || s.CountsCapped {
		t.Errorf("vip status %+v", s)
	}

	out = h.mustRun(exitOK, "audiences", "status", "--count-limit", "2")
	tableRow(t, out, "sample-shop", "cart_abandoner", byName["Cart abandoners"].ID, "2+", "0")
	tableRow(t, out, "sample-shop", "cart_abandoner:holdout", byName["Cart abandoners (holdout)"].ID, "2+", "0")
	tableRow(t, out, "sample-shop", "vip", vip.ID, "0", "2+", "3")
}

func TestAudiencesErrors(t *testing.T) {
	h, store, sb := audiencesEnv(t)
	ctx := context.Background()

	// The sync is running: create waits for it rather than racing it.
	if ok, err := store.AcquireLease(ctx, "sample-shop", "audience-sync-run", testNow, testNow.Add(10*time.Minute)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	h.mustRun(exitFailure, "audiences", "create")
	wantContains(t, h.stderr.String(), "retarget audiences create: app sample-shop: the audience sync is running (it holds the app's lease): try again when it is done")
	store.ReleaseLease(ctx, "sample-shop", "audience-sync-run")

	// A token Meta refuses: the first audience fails, the others are not tried.
	h.env["META_ACCESS_TOKEN"], h.env["META_APP_SECRET"] = "wrong-token", devMetaSecret
	out := h.mustRun(exitFailure, "audiences", "create")
	tableRow(t, out, "sample-shop", "cart_abandoner", "Cart", "abandoners", "act_1234567890", "no", "-", "failed:", "capi", "auth")
	if strings.Count(out, "sample-shop") != 1 || len(sb.Audiences()) != 0 {
		t.Errorf("after an auth error:\n%s", out)
	}
	wantContains(t, h.stderr.String(), "create audience for segment cart_abandoner: capi auth")
	wantNotContains(t, h.stderr.String()+out, "wrong-token")

	for _, tc := range []struct {
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{map[string]string{"META_GRAPH_URL": "", "META_ACCESS_TOKEN": ""}, []string{"audiences", "create"}, exitFailure, "no Meta access token: set META_SECRET_ID (AWS) or META_ACCESS_TOKEN (local)"},
		{nil, []string{"audiences", "status", "--app", "nope"}, exitFailure, `retarget audiences status: unknown app "nope" (the config has: sample-shop)`},
		{nil, []string{"audiences", "status", "vip"}, exitUsage, `unexpected arguments ["vip"]`},
		{nil, []string{"audiences", "status", "--count-limit", "0"}, exitUsage, "--count-limit must be positive"},
		{map[string]string{"APP_CONFIG_FILE": "no/such.json"}, []string{"audiences", "status"}, exitFailure, "app config: open no/such.json"},
	} {
		for k, v := range tc.env {
			h.env[k] = v
		}
		if code := h.run(tc.args...); code != tc.code || !strings.Contains(h.stderr.String(), tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, h.stderr.String(), tc.code, tc.msg)
		}
	}
}

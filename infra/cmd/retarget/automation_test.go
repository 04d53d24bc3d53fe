package main

import (
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// TestAutomationCommands: with the sample config (pause-small: pause the cart abandoners' ad
// sets while the audience has fewer than 1000 members) and a fresh audience, automation run
// proposes the pause of its sandbox ad set; apply pauses it as an operator; undo resumes it.
func TestAutomationCommands(t *testing.T) {
	endpoint, table, _ := dynalite(t)
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: devMetaToken, AppSecret: devMetaSecret,
		Datasets: []string{"1234567890123456"}, AdAccounts: []string{"act_1234567890"}, RemovalMinSize: -1,
		Ads: metasandbox.AdsConfig{AutoAdSets: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	h := newHarness(t)
	h.env = map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "STATE_TABLE_NAME": table,
		"APP_CONFIG_FILE": sampleConfig, "META_GRAPH_URL": url}
	h.mustRun(exitOK, "audiences", "create")
	cartAdSet := func() metasandbox.AdSet {
		for _, a := range sb.AdSets("act_1234567890") {
			if strings.HasSuffix(a.Name, "Cart abandoners") {
				return a
			}
		}
		t.Fatal("no cart abandoners ad set in the sandbox")
		return metasandbox.AdSet{}
	}

	h.mustRun(exitOK, "automation", "list", "--json")
	var acts []ports.AutomationAction
	if h.decodeJSON(&acts); len(acts) != 0 {
		t.Fatalf("actions before any run: %+v", acts)
	}
	out := h.mustRun(exitOK, "automation", "run")
	wantContains(t, out, "pause-small", cartAdSet().ID, "pause", "proposed", "audience size 0 below 1000")

	h.mustRun(exitOK, "automation", "list", "--json")
	h.decodeJSON(&acts)
	if len(acts) != 1 || acts[0].Rule != "pause-small" || acts[0].AdSetID != cartAdSet().ID || acts[0].Action != ports.ActionPause ||
		acts[0].Status != ports.ActionProposed {
		t.Fatalf("list after run: %+v", acts)
	}
	for _, field := range []string{`"id"`, `"rule"`, `"adset_id"`, `"action"`, `"status"`} {
		if !strings.Contains(h.stdout.String(), field) {
			t.Errorf("list --json lacks %s", field)
		}
	}
	id := acts[0].ID
	if cartAdSet().Status != metasandbox.StatusActive {
		t.Fatal("propose mode paused the ad set")
	}

	out = h.mustRun(exitOK, "automation", "apply", id)
	wantContains(t, out, id, "applied")
	if got := cartAdSet().Status; got != metasandbox.StatusPaused {
		t.Fatalf("after apply the ad set is %s, want PAUSED", got)
	}
	h.mustRun(exitFailure, "automation", "apply", id) // applied already

	out = h.mustRun(exitOK, "automation", "undo", id, "--json")
	var act ports.AutomationAction
	h.decodeJSON(&act)
	if act.Status != ports.ActionUndone || len(act.History) != 3 || act.History[1].By != "operator" {
		t.Fatalf("after undo: %s", out)
	}
	if got := cartAdSet().Status; got != metasandbox.StatusActive {
		t.Fatalf("after undo the ad set is %s, want ACTIVE", got)
	}
	h.mustRun(exitOK, "automation", "list")
	wantContains(t, h.stdout.String(), id, "undone")

	h.mustRun(exitUsage, "automation", "apply")
	h.mustRun(exitUsage, "automation", "undo", "not-an-id")
	h.mustRun(exitFailure, "automation", "apply", "2020-01-01-0123456789abcdef")
	h.mustRun(exitUsage, "automation", "list", "--from", "2026-13-01")
}

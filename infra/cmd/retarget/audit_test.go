package main

import (
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/app/audit"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// TestAudiencesAudit: against the sandbox's auto ad sets (one per treated audience, excluding
// its holdout audience) the audit is clean; an audience shared with an account outside the
// config and an ad set that stops excluding the holdout audience are findings, printed as a
// table or JSON, with exit status 1.
func TestAudiencesAudit(t *testing.T) {
	endpoint, table, _ := dynalite(t)
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: devMetaToken, AppSecret: devMetaSecret,
		Datasets: []string{"1234567890123456"}, AdAccounts: []string{"act_1234567890", "act_999"}, RemovalMinSize: -1,
		Ads: metasandbox.AdsConfig{AutoAdSets: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	h := newHarness(t)
	h.env = map[string]string{"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "STATE_TABLE_NAME": table,
		"APP_CONFIG_FILE": sampleConfig, "META_GRAPH_URL": url}

	h.mustRun(exitOK, "audiences", "create")
	out := h.mustRun(exitOK, "audiences", "audit")
	if !strings.Contains(out, "no findings: the audiences of sample-shop are held and used as configured") {
		t.Errorf("clean audit printed:\n%s", out)
	}
	h.mustRun(exitOK, "audiences", "audit", "--json")
	var clean auditOutput
	h.decodeJSON(&clean)
	if len(clean.Findings) != 0 || len(clean.Apps) != 1 || clean.Apps[0] != "sample-shop" {
		t.Errorf("clean JSON %+v", clean)
	}

	// The cart abandoners' audience is shared with act_999 and its ad set stops excluding the
	// holdout audience.
	var cartAdSet, cartAudience string
	for _, a := range sb.AdSets("act_1234567890") {
		if strings.HasSuffix(a.Name, "Cart abandoners") {
			cartAdSet, cartAudience = a.ID, a.Included[0]
		}
	}
	if err := sb.ShareAudience(cartAudience, "act_999", ""); err != nil {
		t.Fatal(err)
	}
	if err := sb.UpdateAdSet(cartAdSet, func(a *metasandbox.AdSet) { a.Excluded = nil }); err != nil {
		t.Fatal(err)
	}
	out = h.mustRun(exitFailure, "audiences", "audit")
	tableRow(t, out, "sample-shop", "cart_abandoner", cartAudience, audit.KindHeldByForeignAccount, "act_999", "audience")
	tableRow(t, out, "sample-shop", "cart_abandoner", cartAudience, audit.KindHoldoutNotExcluded, "act_1234567890,", "campaign",
		metasandbox.DefaultAutoCampaignID+",", "ad", "set", cartAdSet, "active")
	if got := h.stderr.String(); got != "retarget audiences audit: 2 finding(s)\n" {
		t.Errorf("stderr %q", got)
	}

	h.mustRun(exitFailure, "audiences", "audit", "--app", "sample-shop", "--json")
	var found auditOutput
	h.decodeJSON(&found)
	var kinds []string
	for _, f := range found.Findings {
		kinds = append(kinds, f.Kind+" "+f.Key+" "+f.AudienceID+" "+f.AdAccountID+" "+f.AdSetID)
	}
	want := []string{audit.KindHeldByForeignAccount + " cart_abandoner " + cartAudience + " act_999 ",
		audit.KindHoldoutNotExcluded + " cart_abandoner " + cartAudience + " act_1234567890 " + cartAdSet}
	if strings.Join(kinds, "|") != strings.Join(want, "|") {
		t.Errorf("JSON findings\n got %q\nwant %q", kinds, want)
	}

	h.mustRun(exitFailure, "audiences", "audit", "--app", "nope")
	h.mustRun(exitUsage, "audiences", "audit", "extra")
}

package main

import (
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/handlers/insights"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// TestInsightsRun: against the sandbox's auto ad sets (one per treated audience, excluding its
// holdout audience), insights run pulls every managed ad set and stores spend rows; an ad set
// that stops excluding the holdout audience is reported as contaminating its audience.
func TestInsightsRun(t *testing.T) {
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

	h.mustRun(exitOK, "audiences", "create") // 6 treated audiences and their holdouts: 6 auto ad sets
	h.mustRun(exitOK, "insights", "run", "--json", "--days", "3")
	var sum insights.Summary
	h.decodeJSON(&sum)
	if len(sum.Apps) != 1 || len(sum.Apps[0].Accounts) != 1 {
		t.Fatalf("summary %+v, want one app with one account", sum)
	}
	acc := sum.Apps[0].Accounts[0]
	if acc.ID != "act_1234567890" || acc.AdSets != 6 || acc.Rows == 0 || acc.Stopped != "" || acc.Currency != "USD" {
		t.Errorf("account %+v, want act_1234567890 pulled: 6 managed ad sets, rows, USD", acc)
	}
	if len(sum.Apps[0].Contaminated) != 0 {
		t.Errorf("contaminated %v: every auto ad set excludes its holdout audience", sum.Apps[0].Contaminated)
	}

	// The cart abandoners' ad set stops excluding the holdout audience.
	var cart string
	for _, a := range sb.AdSets("act_1234567890") {
		if strings.HasSuffix(a.Name, "Cart abandoners") {
			cart = a.ID
		}
	}
	if err := sb.UpdateAdSet(cart, func(a *metasandbox.AdSet) { a.Excluded = nil }); err != nil {
		t.Fatal(err)
	}
	out := h.mustRun(exitOK, "insights", "run", "--days", "1")
	for _, want := range []string{"act_1234567890", "USD", "pulled", "cart_abandoner is contaminated: active ad set(s) " + cart} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	h.mustRun(exitUsage, "insights", "run", "--days", "91")
}

package metagraph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// insightsWorld has n ad sets on one audience of 2,000 members, created 60 days ago.
func insightsWorld(t *testing.T, ads metasandbox.AdsConfig, n int) (*adsWorld, []string) {
	t.Helper()
	w := newAdsWorld(t, ads)
	aud := w.audience(t, "Cart", 2000)
	var ids []string
	for i := range n {
		ids = append(ids, w.addAdSet(t, metasandbox.AdSet{Name: fmt.Sprintf("set %d", i), Included: []string{aud}, DailyBudget: 5000}).ID)
	}
	return w, ids
}

func (w *adsWorld) day(offset int) string { return w.now.AddDate(0, 0, offset).Format(time.DateOnly) }

// TestInsightsSyncPaged reads a week of 80 ad sets (560 rows) synchronously over two pages,
// with exact spend.
func TestInsightsSyncPaged(t *testing.T) {
	w, ids := insightsWorld(t, metasandbox.AdsConfig{}, 80)
	w.sb.SetAdSetSpend(ids[0], w.day(-6), 5_339_500_000)
	w.sb.SetAdSetSpend(ids[1], w.day(-6), 10_000)
	w.sb.SetAdSetSpend(ids[2], w.day(-6), 12_000_000)
	w.sb.SetAdSetSpend(ids[3], w.day(-6), 8_200_000) // "8.2": 8.2 x 1e6 in float64 is 8199999.99...
	rows, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-6), Until: w.day(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 560 {
		t.Fatalf("%d rows, want 560", len(rows))
	}
	if got := w.requests(t, "/insights"); len(got) != 2 {
		t.Fatalf("want two synchronous pages, got %q", got)
	}
	if len(w.requests(t, "/"+testAccount+"/insights")) != 2 {
		t.Fatal("the pages should be read from the ad account's insights edge (no report run)")
	}
	want := map[string]int64{ids[0]: 5_339_500_000, ids[1]: 10_000, ids[2]: 12_000_000, ids[3]: 8_200_000}
	seen := map[string]bool{}
	for _, r := range rows {
		m, set := want[r.AdSetID]
		set = set && r.Date == w.day(-6)
		if r.Currency != "USD" || !set && (r.Impressions <= 0 || r.Reach <= 0 || r.Clicks <= 0 || r.Actions["link_click"] <= 0) {
			t.Fatalf("row %+v", r)
		}
		if set {
			seen[r.AdSetID] = true
			if r.SpendMicros != m {
				t.Fatalf("ad set %s spend %d, want %d", r.AdSetID, r.SpendMicros, m)
			}
		}
	}
	if len(seen) != 4 {
		t.Fatalf("rows of the set spends missing: %v", seen)
	}
}

// TestInsightsFilter asks for two ad sets only.
func TestInsightsFilter(t *testing.T) {
	w, ids := insightsWorld(t, metasandbox.AdsConfig{}, 5)
	rows, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-2), Until: w.day(-1), AdSetIDs: ids[1:3]})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.AdSetID != ids[1] && r.AdSetID != ids[2] {
			t.Fatalf("row of ad set %s", r.AdSetID)
		}
	}
}

// TestInsightsAsync: 28 days go through a report run, polled until complete, its rows paged.
func TestInsightsAsync(t *testing.T) {
	w, ids := insightsWorld(t, metasandbox.AdsConfig{AsyncPolls: 4}, 20)
	w.sb.SetAdSetSpend(ids[3], w.day(-20), 5_339_500_000)
	rows, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-27), Until: w.day(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 20*28 {
		t.Fatalf("%d rows, want %d", len(rows), 20*28)
	}
	if got := w.requests(t, "/"+testAccount+"/insights"); len(got) != 1 || !strings.HasPrefix(got[0], "POST") {
		t.Fatalf("want one report run creation, got %q", got)
	}
	polls := 0
	for _, u := range w.requests(t, "") {
		if strings.Count(u, "/") == 2 && !strings.Contains(u, "act_") {
			polls++
		}
	}
	if polls != 4 {
		t.Fatalf("%d polls, want 4", polls)
	}
	if n := len(w.requests(t, "/insights")) - 1; n != 2 {
		t.Fatalf("%d pages of the report, want 2", n)
	}
	found := false
	for _, r := range rows {
		if r.AdSetID == ids[3] && r.Date == w.day(-20) {
			found = r.SpendMicros == 5_339_500_000
		}
	}
	if !found {
		t.Fatal("the set spend was not read exactly")
	}
}

func TestInsightsAsyncFailed(t *testing.T) {
	for _, status := range []string{metasandbox.JobFailed, metasandbox.JobSkipped} {
		t.Run(status, func(t *testing.T) {
			w, _ := insightsWorld(t, metasandbox.AdsConfig{}, 2)
			w.sb.FailNextReportRun(status)
			_, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-27), Until: w.day(0)})
			if classOf(err) != ports.CAPITransient || !strings.Contains(err.Error(), status) {
				t.Fatalf("got %v", err)
			}
			if len(w.requests(t, "/insights")) != 1 {
				t.Fatal("the rows of a failed report were read")
			}
		})
	}
}

// TestInsightsMaxWait: a report that never completes in time is a Transient error.
func TestInsightsMaxWait(t *testing.T) {
	w, _ := insightsWorld(t, metasandbox.AdsConfig{AsyncPolls: 1000}, 1)
	w.client.ads.maxWait = 50 * time.Millisecond
	_, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-27), Until: w.day(0)})
	if classOf(err) != ports.CAPITransient || !strings.Contains(err.Error(), "Job Running") {
		t.Fatalf("got %v", err)
	}
}

// TestInsightsSyncFallback: a synchronous call answered "too much data" or "timed out" is asked
// again through a report run.
func TestInsightsSyncFallback(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(*metasandbox.Sandbox)
	}{
		{"too much data", func(s *metasandbox.Sandbox) { s.FailNextInsights(100, 1487534) }},
		{"timeout", func(s *metasandbox.Sandbox) { s.FailNextInsights(100, 1504018) }},
		{"forced", func(s *metasandbox.Sandbox) { s.SetForceAsync(true) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, _ := insightsWorld(t, metasandbox.AdsConfig{}, 3)
			c.setup(w.sb)
			rows, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-2), Until: w.day(0)})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 9 {
				t.Fatalf("%d rows", len(rows))
			}
			got := w.requests(t, "/"+testAccount+"/insights")
			if len(got) != 2 || !strings.HasPrefix(got[1], "POST") {
				t.Fatalf("want the sync call then a report run, got %q", got)
			}
		})
	}
	// Another code is not a reason to go asynchronous.
	w, _ := insightsWorld(t, metasandbox.AdsConfig{}, 1)
	w.sb.FailNextInsights(100, 0)
	if _, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-2), Until: w.day(0)}); classOf(err) != ports.CAPIInvalidParameter {
		t.Fatalf("got %v", err)
	}
}

// TestInsightsThrottles: Meta's insights throttles, HTTP 400 with an error envelope, are
// RateLimited with the wait the headers announce (or DefaultThrottleWait).
func TestInsightsThrottles(t *testing.T) {
	for _, c := range [][2]int{{4, 1504022}, {17, 2446079}, {613, 1487742}, {80000, 0}} {
		t.Run(fmt.Sprint(c[0]), func(t *testing.T) {
			w, _ := insightsWorld(t, metasandbox.AdsConfig{}, 1)
			w.sb.FailNextInsights(c[0], c[1])
			_, usage, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-2), Until: w.day(0)})
			var e *ports.CAPIError
			if !errors.As(err, &e) || e.Class != ports.CAPIRateLimited || e.HTTPStatus != 400 || e.Meta.Code != c[0] || e.Meta.Subcode != c[1] {
				t.Fatalf("got %v", err)
			}
			if e.RetryAfter != 5*time.Minute || e.UsagePct != 100 || usage.UsagePct != 100 || usage.RegainAfter != 5*time.Minute {
				t.Fatalf("retry after %v, usage %v / %+v", e.RetryAfter, e.UsagePct, usage)
			}
		})
	}
	// A throttle that announces no wait still waits DefaultThrottleWait.
	w, _ := insightsWorld(t, metasandbox.AdsConfig{}, 1)
	w.sb.SetFaults(metasandbox.Faults{})
	w.sb.FailNextInsights(613, 1487742)
	_, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-2), Until: w.day(0)})
	var e *ports.CAPIError
	if !errors.As(err, &e) || e.Class != ports.CAPIRateLimited || e.RetryAfter != DefaultThrottleWait {
		t.Fatalf("no announced wait: %v", err)
	}
	if got := ClassifyAds(400, &ports.MetaError{Code: 17, Subcode: 2446079}); got != ports.CAPIRateLimited {
		t.Fatalf("17: %v", got)
	}
	if got := ClassifyAds(400, &ports.MetaError{Code: -2, Subcode: 2490547}); got != ports.CAPITransient {
		t.Fatalf("-2: %v", got)
	}
}

// TestInsightsUsage: the last insights usage reading comes back with the rows.
func TestInsightsUsage(t *testing.T) {
	w, _ := insightsWorld(t, metasandbox.AdsConfig{InsightsUtilPct: 12}, 1)
	_, usage, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-1), Until: w.day(0)})
	if err != nil || usage.UsagePct != 12 {
		t.Fatalf("usage %+v, %v", usage, err)
	}
	w.sb.SetInsightsUtilPct(73)
	_, usage, err = w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-27), Until: w.day(0)})
	if err != nil || usage.UsagePct != 73 {
		t.Fatalf("async usage %+v, %v", usage, err)
	}
}

// TestInsightsRestatement: a recent day grows from one pull to the next; an old one does not.
func TestInsightsRestatement(t *testing.T) {
	w, _ := insightsWorld(t, metasandbox.AdsConfig{}, 1)
	pull := func() map[string]int64 {
		rows, _, err := w.client.Insights(context.Background(), ports.InsightsRequest{AdAccountID: testAccount, Since: w.day(-5), Until: w.day(0)})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, r := range rows {
			out[r.Date] = r.SpendMicros
		}
		return out
	}
	a, b := pull(), pull()
	if b[w.day(-1)] <= a[w.day(-1)] || b[w.day(0)] <= a[w.day(0)] {
		t.Fatalf("recent days did not grow: %v then %v", a, b)
	}
	if a[w.day(-5)] != b[w.day(-5)] || a[w.day(-5)] == 0 {
		t.Fatalf("a settled day changed: %v then %v", a, b)
	}
}

func TestInsightsRequestChecks(t *testing.T) {
	w, _ := insightsWorld(t, metasandbox.AdsConfig{}, 1)
	for _, req := range []ports.InsightsRequest{
		{AdAccountID: "1001", Since: "2026-12-01", Until: "2026-12-02"},
		{AdAccountID: testAccount, Since: "2026-12-03", Until: "2026-12-02"},
		{AdAccountID: testAccount, Since: "2026-12-1", Until: "2026-12-02"},
		{AdAccountID: testAccount, Since: "2026-12-01", Until: "2026-12-02", AdSetIDs: []string{"1/2"}},
	} {
		if _, _, err := w.client.Insights(context.Background(), req); classOf(err) != ports.CAPIInvalidParameter {
			t.Errorf("%+v: %v", req, err)
		}
	}
	if n := len(w.requests(t, "/insights")); n != 0 {
		t.Fatalf("%d calls sent for invalid requests", n)
	}
}

// TestNextPageHost: a paging.next on another host is not followed (the token would go there).
func TestNextPageHost(t *testing.T) {
	c := New(Config{BaseURL: "https://graph.facebook.com", AccessToken: "t"})
	if _, _, err := c.nextPage("https://evil.example/v26.0/act_1/adsets?access_token=t&after=x", "x"); err == nil {
		t.Fatal("followed a next link to another host")
	}
	target, fields, err := c.nextPage("https://graph.facebook.com/v26.0/act_1/adsets?access_token=t&appsecret_proof=p&after=x&limit=2", "x")
	if err != nil || target != "https://graph.facebook.com/v26.0/act_1/adsets" {
		t.Fatalf("%s %v", target, err)
	}
	var keys []string
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	if strings.Join(keys, ",") != "method,after,limit" {
		t.Fatalf("fields %v", keys)
	}
}

package insights

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// fakeAds is a ports.AdsAPI over fixed accounts, ad sets and rows; errs and usage answer the
// Insights call of an account.
type fakeAds struct {
	mu       sync.Mutex
	accounts map[string]ports.AdAccount
	adSets   map[string][]ports.AdSet
	rows     map[string][]ports.InsightsRow
	usage    map[string]ports.InsightsUsage
	errs     map[string]error
	calls    []string
	requests []ports.InsightsRequest
}

func (f *fakeAds) AdAccount(_ context.Context, id string) (ports.AdAccount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "account "+id)
	a, ok := f.accounts[id]
	if !ok {
		return a, fmt.Errorf("no account %s", id)
	}
	return a, nil
}

func (f *fakeAds) AdSets(_ context.Context, id string) ([]ports.AdSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "adsets "+id)
	return f.adSets[id], nil
}

func (f *fakeAds) Insights(_ context.Context, req ports.InsightsRequest) ([]ports.InsightsRow, ports.InsightsUsage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "insights "+req.AdAccountID)
	f.requests = append(f.requests, req)
	if err := f.errs[req.AdAccountID]; err != nil {
		return nil, ports.InsightsUsage{}, err
	}
	var out []ports.InsightsRow
	for _, r := range f.rows[req.AdAccountID] {
		if slices.Contains(req.AdSetIDs, r.AdSetID) && r.Date >= req.Since && r.Date <= req.Until {
			out = append(out, r)
		}
	}
	return out, f.usage[req.AdAccountID], nil
}

// The fixture: app shop, account act_1 in Los Angeles. At now (05:00 UTC on 10 March) it is
// still 9 March there: the run's date is 2026-03-09, yesterday 2026-03-08.
var now = time.Date(2026, 3, 10, 5, 0, 0, 0, time.UTC)

const (
	today     = "2026-03-09"
	yesterday = "2026-03-08"
	since     = "2026-02-10" // 28 days including today

	cartID, cartHoldoutID = "100", "101"
	vipID, vipHoldoutID   = "200", "201"
	lapsedID              = "300" // no holdout
	otherID               = "999" // not managed
)

func frac(f float64) *float64 { return &f }

func shopConfig() *appconfig.Config {
	return &appconfig.Config{Apps: []appconfig.App{{
		ID:   "shop",
		Meta: appconfig.Meta{AdAccountID: "act_1"},
		Audiences: []appconfig.Audience{
			{Segment: "cart_abandoner", Name: "Carts", Create: true},                          // ids from the sync state
			{Segment: "vip", Name: "VIP", AudienceID: vipID, HoldoutAudienceID: vipHoldoutID}, // ids configured
			{Segment: "lapsed", Name: "Lapsed", Create: true, HoldoutFraction: frac(0)},
		},
	}}}
}

type fixture struct {
	ads     *fakeAds
	state   *memstate.Store
	logs    bytes.Buffer
	metrics bytes.Buffer
	runner  *Runner
	report  ReportFunc
}

func newFixture(t *testing.T, cfg *appconfig.Config) *fixture {
	t.Helper()
	f := &fixture{state: memstate.New(), ads: &fakeAds{
		accounts: map[string]ports.AdAccount{"act_1": {ID: "act_1", Currency: "USD", TimezoneName: "America/Los_Angeles"}},
		adSets:   map[string][]ports.AdSet{}, rows: map[string][]ports.InsightsRow{},
		usage: map[string]ports.InsightsUsage{}, errs: map[string]error{},
	}}
	ctx := context.Background()
	for _, st := range []ports.AudienceSyncState{
		{App: "shop", Segment: "cart_abandoner", AudienceID: cartID, Size: 1500, Version: 1},
		{App: "shop", Segment: "cart_abandoner" + HoldoutKeySuffix, AudienceID: cartHoldoutID, Size: 160, Version: 1},
		{App: "shop", Segment: "vip", AudienceID: vipID, Size: 400, Version: 1},
		{App: "shop", Segment: "lapsed", AudienceID: lapsedID, Size: 0, Version: 1},
	} {
		if err := f.state.PutAudienceState(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	f.report = func(context.Context, string, string, string, time.Time) (measure.Report, error) {
		return measure.Report{}, errors.New("no report in this test")
	}
	var err error
	f.runner, err = New(Config{Apps: cfg, Sync: f.state, Spend: f.state, Meta: f.ads,
		Report: func(ctx context.Context, app, from, to string, n time.Time) (measure.Report, error) {
			return f.report(ctx, app, from, to, n)
		},
		Logger: slog.New(slog.NewJSONHandler(&f.logs, nil)), Metrics: observability.NewEmitter(&f.metrics, "Retarget"),
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) run(t *testing.T, req Request) []AppReport {
	t.Helper()
	reps, err := f.runner.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	return reps
}

func (f *fixture) stored(t *testing.T) map[string]ports.SpendDay {
	t.Helper()
	rows, err := f.state.Spend(context.Background(), "shop", "2025-01-01", "2027-01-01")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ports.SpendDay{}
	for _, r := range rows {
		out[r.Date+"#"+r.AdSetID] = r
	}
	return out
}

func adSet(id, status string, included, excluded []string) ports.AdSet {
	return ports.AdSet{ID: id, Name: "ad set " + id, Status: status, EffectiveStatus: status, Included: included, Excluded: excluded}
}

func usd(major float64) int64 { return int64(major * 1e6) }

func TestAdSetsMapToManagedAudiences(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.ads.adSets["act_1"] = []ports.AdSet{
		adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID}),                      // cart alone, clean
		adSet("2", "ACTIVE", []string{vipID, cartID}, []string{vipHoldoutID, cartHoldoutID}), // a group
		adSet("3", "ACTIVE", []string{otherID}, nil),                                         // not ours
		adSet("4", "ACTIVE", []string{cartHoldoutID}, nil),                                   // the holdout is not a treated audience
		adSet("5", "ACTIVE", []string{lapsedID, otherID}, nil),                               // lapsed has no holdout: clean
	}
	f.ads.rows["act_1"] = []ports.InsightsRow{
		{AdSetID: "1", Date: yesterday, SpendMicros: usd(10), Impressions: 1000, Reach: 800, Clicks: 10},
		{AdSetID: "2", Date: yesterday, SpendMicros: usd(30), Impressions: 3000},
		{AdSetID: "3", Date: yesterday, SpendMicros: usd(99)},
		{AdSetID: "5", Date: yesterday, SpendMicros: usd(5)},
	}
	reps := f.run(t, Request{})

	if len(f.ads.requests) != 1 {
		t.Fatalf("insights requests %+v, want one", f.ads.requests)
	}
	req := f.ads.requests[0]
	// Only the managed ad sets are asked for, over 28 days ending today in Los Angeles.
	if want := (ports.InsightsRequest{AdAccountID: "act_1", Since: since, Until: today, AdSetIDs: []string{"1", "2", "5"}}); !reflect.DeepEqual(req, want) {
		t.Errorf("insights request %+v, want %+v", req, want)
	}
	got := f.stored(t)
	want := map[string][]string{
		yesterday + "#1": {"cart_abandoner"},
		yesterday + "#2": {"cart_abandoner", "vip"}, // one row for the group, not split
		yesterday + "#5": {"lapsed"},
		today + "#1":     {"cart_abandoner"}, // active ad sets get a row on the run's date
		today + "#2":     {"cart_abandoner", "vip"},
		today + "#5":     {"lapsed"},
	}
	if len(got) != len(want) {
		t.Errorf("stored rows %v, want %v", keys(got), keys(want))
	}
	for k, aud := range want {
		r, ok := got[k]
		if !ok || !slices.Equal(r.Audiences, aud) || len(r.Contaminated) != 0 {
			t.Errorf("row %s = %+v, want audiences %v, clean", k, r, aud)
		}
	}
	if r := got[yesterday+"#2"]; r.SpendMicros != usd(30) || r.Impressions != 3000 || r.Currency != "USD" || r.PulledAt != now.Unix() || r.AdSet != "ad set 2" {
		t.Errorf("group row %+v: spend, impressions, currency, pull time or name lost", r)
	}
	if r := got[today+"#1"]; r.SpendMicros != 0 {
		t.Errorf("today's placeholder row has spend %d", r.SpendMicros)
	}
	if len(reps) != 1 || reps[0].Accounts[0].AdSets != 3 || reps[0].Accounts[0].Rows != 6 || len(reps[0].Contaminated) != 0 {
		t.Errorf("report %+v", reps)
	}
}

func TestContaminationOnTheRunDateOnly(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.ads.adSets["act_1"] = []ports.AdSet{
		adSet("1", "ACTIVE", []string{cartID}, nil),                                     // no exclusion
		adSet("2", "ACTIVE", []string{vipID, cartID}, []string{cartHoldoutID, otherID}), // excludes cart's, not vip's
		adSet("3", "PAUSED", []string{vipID}, nil),                                      // cannot deliver: no harm
		adSet("4", "ACTIVE", []string{vipID}, []string{vipHoldoutID}),                   // clean
	}
	f.ads.rows["act_1"] = []ports.InsightsRow{
		{AdSetID: "1", Date: "2026-03-05", SpendMicros: usd(3)},
		{AdSetID: "1", Date: today, SpendMicros: usd(1)},
		{AdSetID: "2", Date: "2026-03-05", SpendMicros: usd(4)},
	}
	// An earlier run stored contamination on an older date; the pull must keep it.
	ctx := context.Background()
	if err := f.state.PutSpend(ctx, []ports.SpendDay{
		{App: "shop", Date: "2026-03-05", AdSetID: "2", Audiences: []string{"cart_abandoner", "vip"}, Contaminated: []string{"cart_abandoner"}, SpendMicros: usd(4.5)},
	}); err != nil {
		t.Fatal(err)
	}
	reps := f.run(t, Request{})

	got := f.stored(t)
	check := func(key string, want []string) {
		t.Helper()
		if r := got[key]; !slices.Equal(r.Contaminated, want) {
			t.Errorf("row %s contaminated %v, want %v", key, r.Contaminated, want)
		}
	}
	check(today+"#1", []string{"cart_abandoner"})
	check(today+"#2", []string{"vip"})
	check(today+"#4", nil)
	check("2026-03-05#1", nil)                        // targeting on that day is unknown: nothing recorded
	check("2026-03-05#2", []string{"cart_abandoner"}) // what the run of that day stored is kept
	if r := got["2026-03-05#2"]; r.SpendMicros != usd(4) {
		t.Errorf("older row spend %d, want the restated %d", r.SpendMicros, usd(4))
	}
	if _, ok := got[today+"#3"]; ok {
		t.Error("a paused ad set got a row on the run's date")
	}
	want := map[string][]string{"cart_abandoner": {"1"}, "vip": {"2"}}
	if !reflect.DeepEqual(reps[0].Contaminated, want) {
		t.Errorf("report contaminated %v, want %v", reps[0].Contaminated, want)
	}
	// One ALERT per contaminated audience naming the ad sets.
	var alerts []string
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, "ALERT: ") {
			alerts = append(alerts, fmt.Sprintf("%s %s %s", rec["segment"], rec["adset_ids"], rec["holdout_audience_id"]))
		}
	}
	if w := []string{"cart_abandoner 1 " + cartHoldoutID, "vip 2 " + vipHoldoutID}; !slices.Equal(alerts, w) {
		t.Errorf("alerts %q, want %q", alerts, w)
	}
}

func TestHoldoutNotCreatedYetIsContamination(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, []string{otherID})}
	ctx := context.Background()
	// The sync has not created cart's holdout audience: nothing can exclude it yet.
	st, _, _ := f.state.GetAudienceState(ctx, "shop", "cart_abandoner"+HoldoutKeySuffix)
	st.AudienceID, st.Version = "", st.Version+1
	if err := f.state.PutAudienceState(ctx, st); err != nil {
		t.Fatal(err)
	}
	reps := f.run(t, Request{})
	if want := map[string][]string{"cart_abandoner": {"1"}}; !reflect.DeepEqual(reps[0].Contaminated, want) {
		t.Errorf("contaminated %v, want %v", reps[0].Contaminated, want)
	}
}

func TestRestatedDaysReplaced(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID})}
	f.ads.rows["act_1"] = []ports.InsightsRow{{AdSetID: "1", Date: "2026-03-01", SpendMicros: usd(8), Impressions: 80}}
	ctx := context.Background()
	if err := f.state.PutSpend(ctx, []ports.SpendDay{
		{App: "shop", Date: "2026-03-01", AdSetID: "1", Audiences: []string{"cart_abandoner"}, SpendMicros: usd(10), Impressions: 100},
		// Meta restated this day away: the pull returns no row for it.
		{App: "shop", Date: "2026-03-02", AdSetID: "1", Audiences: []string{"cart_abandoner"}, SpendMicros: usd(5), Clicks: 3},
		// Outside the window: settled, untouched.
		{App: "shop", Date: "2026-01-15", AdSetID: "1", Audiences: []string{"cart_abandoner"}, SpendMicros: usd(7)},
		// Not one of the account's ad sets (another account's, or deleted): untouched.
		{App: "shop", Date: "2026-03-02", AdSetID: "77", Audiences: []string{"vip"}, SpendMicros: usd(6)},
	}); err != nil {
		t.Fatal(err)
	}
	f.run(t, Request{})
	got := f.stored(t)
	for key, want := range map[string]int64{"2026-03-01#1": usd(8), "2026-03-02#1": 0, "2026-01-15#1": usd(7), "2026-03-02#77": usd(6)} {
		if got[key].SpendMicros != want {
			t.Errorf("row %s spend %d, want %d", key, got[key].SpendMicros, want)
		}
	}
	if r := got["2026-03-02#1"]; r.Clicks != 0 || !slices.Equal(r.Audiences, []string{"cart_abandoner"}) {
		t.Errorf("restated-away row %+v, want zeroed with its audiences", r)
	}
	if r := got["2026-03-01#1"]; r.Impressions != 80 {
		t.Errorf("restated row impressions %d, want 80", r.Impressions)
	}
}

// twoAccounts gives shop a second ad account (vip's audience lives there).
func twoAccounts(f *fixture, cfg *appconfig.Config) {
	cfg.Apps[0].Audiences[1].AdAccountID = "act_2"
	f.ads.accounts["act_2"] = ports.AdAccount{ID: "act_2", Currency: "EUR", TimezoneName: "Europe/Berlin"}
	f.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID})}
	f.ads.adSets["act_2"] = []ports.AdSet{adSet("2", "ACTIVE", []string{vipID}, []string{vipHoldoutID})}
	f.ads.rows["act_1"] = []ports.InsightsRow{{AdSetID: "1", Date: yesterday, SpendMicros: usd(1)}}
	f.ads.rows["act_2"] = []ports.InsightsRow{{AdSetID: "2", Date: "2026-03-09", SpendMicros: usd(2)}}
}

func TestUsagePacingStopsTheAppsPull(t *testing.T) {
	for _, usage := range []ports.InsightsUsage{{UsagePct: 75}, {UsagePct: 10, RegainAfter: 5 * time.Minute}} {
		t.Run(fmt.Sprintf("%+v", usage), func(t *testing.T) {
			cfg := shopConfig()
			f := newFixture(t, cfg)
			twoAccounts(f, cfg)
			f.ads.usage["act_1"] = usage
			reps := f.run(t, Request{})
			// act_1's rows are kept (the call answered); act_2 is not touched at all.
			if _, ok := f.stored(t)[yesterday+"#1"]; !ok {
				t.Error("the rows of the call that reported the usage were not stored")
			}
			if slices.ContainsFunc(f.ads.calls, func(c string) bool { return strings.HasSuffix(c, "act_2") }) {
				t.Errorf("calls after the pause: %v", f.ads.calls)
			}
			if reps[0].Paused == "" || !strings.Contains(reps[0].Accounts[1].Stopped, "paused") {
				t.Errorf("report %+v does not say the pull paused", reps[0])
			}
			if !strings.Contains(f.logs.String(), "insights pull paused") {
				t.Errorf("no log of the pause: %s", f.logs.String())
			}
		})
	}
	t.Run("below the threshold both accounts are pulled", func(t *testing.T) {
		cfg := shopConfig()
		f := newFixture(t, cfg)
		twoAccounts(f, cfg)
		f.ads.usage["act_1"] = ports.InsightsUsage{UsagePct: 74}
		f.run(t, Request{})
		if _, ok := f.stored(t)["2026-03-09#2"]; !ok {
			t.Errorf("act_2 not pulled; calls %v", f.ads.calls)
		}
	})
}

func TestRateLimitedAccountSkipped(t *testing.T) {
	cfg := shopConfig()
	f := newFixture(t, cfg)
	twoAccounts(f, cfg)
	f.ads.errs["act_1"] = &ports.CAPIError{Class: ports.CAPIRateLimited, Meta: ports.MetaError{Code: 80000}, RetryAfter: time.Minute}
	reps, err := f.runner.Run(context.Background(), Request{})
	if err != nil {
		t.Fatalf("Run = %v; a rate limit stops the account, not the run", err)
	}
	got := f.stored(t)
	if _, ok := got[yesterday+"#1"]; ok {
		t.Error("rows of the rate-limited account stored")
	}
	if _, ok := got["2026-03-09#2"]; !ok { // yesterday in Berlin, where 10 March has begun
		t.Errorf("act_2 not pulled after act_1's rate limit; stored %v", keys(got))
	}
	if s := reps[0].Accounts[0].Stopped; !strings.HasPrefix(s, "rate limited") {
		t.Errorf("act_1 stopped %q", s)
	}
	// Another error is the run's error (the scheduler's retry and the errors alarm see it).
	f2 := newFixture(t, shopConfig())
	f2.ads.errs["act_1"] = errors.New("connection reset")
	f2.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, nil)}
	if _, err := f2.runner.Run(context.Background(), Request{}); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("Run = %v, want the pull's error", err)
	}
}

func TestHandleInput(t *testing.T) {
	cfg := shopConfig()
	cfg.Apps = append(cfg.Apps, appconfig.App{ID: "quiet", Meta: appconfig.Meta{AdAccountID: "act_9"}}) // no audiences
	f := newFixture(t, cfg)
	f.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID})}
	ctx := context.Background()
	for _, in := range []string{`{}`, `{"source":"schedule","scheduled_time":"2026-03-10T05:00:00Z"}`, ``} {
		f.ads.requests = nil
		sum, err := f.runner.Handle(ctx, json.RawMessage(in))
		if err != nil || len(sum.Apps) != 1 || sum.Apps[0].App != "shop" || len(f.ads.requests) != 1 || f.ads.requests[0].Since != since {
			t.Errorf("Handle(%s) = %+v, %v; requests %+v", in, sum, err, f.ads.requests)
		}
	}
	f.ads.requests = nil
	if _, err := f.runner.Handle(ctx, json.RawMessage(`{"app":"shop","days":7}`)); err != nil || len(f.ads.requests) != 1 || f.ads.requests[0].Since != "2026-03-03" {
		t.Errorf("on demand, 7 days: %v, requests %+v", err, f.ads.requests)
	}
	for _, in := range []string{`{"app":"nope"}`, `{"app":"quiet"}`, `{"days":-1}`, `{"days":91}`, `[1]`} {
		if _, err := f.runner.Handle(ctx, json.RawMessage(in)); err == nil {
			t.Errorf("Handle(%s) accepted", in)
		}
	}
}

// emf reads the metric documents of one audience.
func emf(t *testing.T, out string, segment string) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		if doc["Audience"] != segment {
			continue
		}
		if doc["Function"] != Consumer || doc["App"] != "shop" {
			t.Errorf("dimensions %v", doc)
		}
		dims := doc["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
		if !reflect.DeepEqual(dims["Dimensions"], []any{[]any{"Function", "App", "Audience"}}) {
			t.Errorf("dimension set %v", dims["Dimensions"])
		}
		for _, m := range dims["Metrics"].([]any) {
			name := m.(map[string]any)["Name"].(string)
			got[name] = doc[name].(float64)
		}
	}
	return got
}

func TestMetricsPerAudience(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.ads.adSets["act_1"] = []ports.AdSet{
		adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID}),
		adSet("2", "ACTIVE", []string{cartID, vipID}, []string{cartHoldoutID}), // vip's holdout not excluded
	}
	f.ads.rows["act_1"] = []ports.InsightsRow{
		{AdSetID: "1", Date: yesterday, SpendMicros: usd(12.5)},
		{AdSetID: "1", Date: "2026-03-01", SpendMicros: usd(50)}, // not yesterday
		{AdSetID: "2", Date: yesterday, SpendMicros: usd(0)},
		{AdSetID: "2", Date: today, SpendMicros: usd(9)}, // today is not over
	}
	cost := 3.25
	var asked []string
	f.report = func(_ context.Context, app, from, to string, n time.Time) (measure.Report, error) {
		asked = []string{app, from, to}
		return measure.Report{App: app, Audiences: []measure.AudienceReport{
			{Segment: "cart_abandoner", CostPerIncrementalReengagement: &cost},
			{Segment: "vip"}, // not enough data: no number, no metric
		}}, nil
	}
	f.run(t, Request{})
	if want := []string{"shop", "2026-02-11", "2026-03-10"}; !slices.Equal(asked, want) {
		t.Errorf("report asked for %v, want %v (the trailing 28 join days)", asked, want)
	}
	tests := []struct {
		segment string
		want    map[string]float64
	}{
		{"cart_abandoner", map[string]float64{MetricAudienceMembers: 1500, MetricAudienceSpend: 12.5, MetricZeroSpendWithMembers: 0,
			MetricHoldoutContaminated: 0, MetricCostPerIncremental: 3.25}},
		// vip is only in a group that spent 0 yesterday: spend of its own ad sets 0, members 400.
		{"vip", map[string]float64{MetricAudienceMembers: 400, MetricAudienceSpend: 0, MetricZeroSpendWithMembers: 1,
			MetricHoldoutContaminated: 1}},
		// lapsed has no ad set and no members: zero spend is no news.
		{"lapsed", map[string]float64{MetricAudienceMembers: 0, MetricAudienceSpend: 0, MetricZeroSpendWithMembers: 0,
			MetricHoldoutContaminated: 0}},
	}
	for _, tt := range tests {
		if got := emf(t, f.metrics.String(), tt.segment); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s metrics %v, want %v", tt.segment, got, tt.want)
		}
	}
}

func TestNoSpendMetricsWithoutAPull(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID})}
	f.ads.errs["act_1"] = &ports.CAPIError{Class: ports.CAPIRateLimited}
	f.run(t, Request{})
	// Without the day's spend, a zero would be a false alarm: only what is known is emitted.
	want := map[string]float64{MetricAudienceMembers: 1500, MetricHoldoutContaminated: 0}
	if got := emf(t, f.metrics.String(), "cart_abandoner"); !reflect.DeepEqual(got, want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }

package metasandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func newAdsSandbox(t *testing.T, ads AdsConfig) (*Sandbox, *clock) {
	t.Helper()
	return newAudienceSandbox(t, func(c *Config) { c.Ads = ads })
}

// members creates an audience of n members.
func members(t *testing.T, sb *Sandbox, name string, n int) string {
	t.Helper()
	id := createAudience(t, sb, name, false)
	if n == 0 {
		return id
	}
	var rows [][]string
	for i := range n {
		rows = append(rows, []string{fmt.Sprintf("%s-%d", name, i)})
	}
	mustOK(t, upload(t, sb, "POST", usersPath(id), "EXTERN_ID", rows, nil))
	return id
}

// adsReply is a decoded answer of an ads endpoint.
type adsReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r adsReply) errCode() int {
	e, _ := r.body["error"].(map[string]any)
	if e == nil {
		return 0
	}
	return int(e["code"].(float64))
}

func (r adsReply) data() []map[string]any {
	var out []map[string]any
	for _, d := range r.body["data"].([]any) {
		out = append(out, d.(map[string]any))
	}
	return out
}

func (r adsReply) next() string {
	p, _ := r.body["paging"].(map[string]any)
	n, _ := p["next"].(string)
	return n
}

// get sends a GET with params in the query and the token in the Authorization header.
func get(t *testing.T, sb *Sandbox, path string, params map[string]string) adsReply {
	t.Helper()
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	q.Set("appsecret_proof", testProof)
	req := httptest.NewRequest("GET", path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	return serveAds(t, sb, req)
}

func serveAds(t *testing.T, sb *Sandbox, req *http.Request) adsReply {
	t.Helper()
	rec := httptest.NewRecorder()
	sb.ServeHTTP(rec, req)
	r := adsReply{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &r.body); err != nil {
		t.Fatalf("not JSON: %s", r.raw)
	}
	return r
}

func mustOKAds(t *testing.T, r adsReply) adsReply {
	t.Helper()
	if r.status != http.StatusOK || r.body["error"] != nil {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	return r
}

const acct = "/v26.0/act_" + testAdAccount

func TestAdAccountAnswers(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{})
	r := mustOKAds(t, get(t, sb, acct, map[string]string{"fields": "currency,timezone_name"}))
	if r.body["currency"] != "USD" || r.body["timezone_name"] != "UTC" || r.body["id"] != "act_"+testAdAccount {
		t.Fatalf("%s", r.raw)
	}
	if r := get(t, sb, acct, map[string]string{"fields": "currency,nope"}); r.errCode() != 100 || !strings.Contains(r.raw, "nope") {
		t.Fatalf("unknown field: %s", r.raw)
	}
	if r := get(t, sb, "/v26.0/act_42", map[string]string{"fields": "currency"}); r.errCode() != 100 {
		t.Fatalf("unknown account: %s", r.raw)
	}
	if _, err := New(Config{AccessToken: "t", AdAccounts: []string{"1"}, Ads: AdsConfig{TimezoneName: "Mars/Olympus"}}); err == nil {
		t.Fatal("a time zone Go cannot load was taken")
	}
}

func TestAdSetPages(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{})
	var ids []string
	for i := range 5 {
		a, err := sb.AddAdSet(AdSet{AdAccount: testAdAccount, Name: fmt.Sprint("s", i), DailyBudget: 700})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	sb.AddAdSet(AdSet{AdAccount: testAdAccount, Name: "gone", Status: StatusDeleted})
	sb.UpdateAdSet(ids[4], func(a *AdSet) { a.Status = StatusPaused })

	r := mustOKAds(t, get(t, sb, acct+"/adsets", map[string]string{"fields": "id,name,status,daily_budget,targeting", "limit": "2"}))
	var got []string
	for pages := 1; ; pages++ {
		for _, d := range r.data() {
			got = append(got, d["id"].(string))
			if d["daily_budget"] != "700" {
				t.Fatalf("daily_budget not a string of minor units: %v", d)
			}
		}
		next := r.next()
		if next == "" {
			if pages != 3 {
				t.Fatalf("%d pages", pages)
			}
			break
		}
		u, _ := url.Parse(next)
		if u.Query().Get("access_token") != testToken || u.Query().Get("after") == "" || u.Query().Get("fields") == "" {
			t.Fatalf("next %s", next)
		}
		req := httptest.NewRequest("GET", u.RequestURI(), nil)
		r = mustOKAds(t, serveAds(t, sb, req))
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("got %v, want %v (deleted left out)", got, ids)
	}
	paused := mustOKAds(t, get(t, sb, acct+"/adsets", map[string]string{"effective_status": `["PAUSED"]`})).data()
	if len(paused) != 1 || paused[0]["id"] != ids[4] {
		t.Fatalf("paused: %v", paused)
	}
	if r := get(t, sb, acct+"/adsets", map[string]string{"effective_status": `["SLEEPING"]`}); r.errCode() != 100 {
		t.Fatalf("bad status: %s", r.raw)
	}
	if r := get(t, sb, acct+"/adsets", map[string]string{"after": "!!"}); r.errCode() != 100 {
		t.Fatalf("bad cursor: %s", r.raw)
	}
}

// insightsParams is a valid request of the days from since to until.
func insightsParams(since, until string) map[string]string {
	return map[string]string{"level": "adset", "time_increment": "1",
		"time_range": fmt.Sprintf(`{"since":%q,"until":%q}`, since, until),
		"fields":     "adset_id,date_start,spend,impressions,reach,clicks,actions,account_currency"}
}

func day(c *clock, offset int) string { return c.Now().AddDate(0, 0, offset).Format(time.DateOnly) }

func TestInsightsValidation(t *testing.T) {
	sb, c := newAdsSandbox(t, AdsConfig{})
	for name, edit := range map[string]func(map[string]string){
		"unknown field":      func(p map[string]string) { p["fields"] = "spend,cpm_magic" },
		"no time range":      func(p map[string]string) { delete(p, "time_range") },
		"bad date":           func(p map[string]string) { p["time_range"] = `{"since":"2026-13-01","until":"2026-12-01"}` },
		"reversed range":     func(p map[string]string) { p["time_range"] = `{"since":"2026-12-02","until":"2026-12-01"}` },
		"level campaign":     func(p map[string]string) { p["level"] = "campaign" },
		"level unknown":      func(p map[string]string) { p["level"] = "galaxy" },
		"dropped window":     func(p map[string]string) { p["action_attribution_windows"] = `["7d_view"]` },
		"unknown window":     func(p map[string]string) { p["action_attribution_windows"] = `["3d_click"]` },
		"filter on campaign": func(p map[string]string) { p["filtering"] = `[{"field":"campaign.id","operator":"IN","value":["1"]}]` },
		"no time increment":  func(p map[string]string) { delete(p, "time_increment") },
	} {
		p := insightsParams(day(c, -3), day(c, 0))
		edit(p)
		if r := get(t, sb, acct+"/insights", p); r.status != 400 || r.errCode() != 100 {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	p := insightsParams(day(c, -3), day(c, 0))
	p["action_attribution_windows"] = `["7d_click","1d_view"]`
	mustOKAds(t, get(t, sb, acct+"/insights", p))
}

func TestReportRunProgress(t *testing.T) {
	sb, c := newAdsSandbox(t, AdsConfig{AsyncPolls: 3})
	aud := members(t, sb, "Cart", 500)
	sb.AddAdSet(AdSet{AdAccount: testAdAccount, Name: "a", Included: []string{aud}, CreatedAt: c.Now().AddDate(0, -1, 0)})

	q := url.Values{}
	for k, v := range insightsParams(day(c, -9), day(c, 0)) {
		q.Set(k, v)
	}
	q.Set("access_token", testToken)
	q.Set("appsecret_proof", testProof)
	req := httptest.NewRequest("POST", acct+"/insights", strings.NewReader(q.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	run, _ := mustOKAds(t, serveAds(t, sb, req)).body["report_run_id"].(string)
	if run == "" {
		t.Fatal("no report_run_id")
	}
	if r := get(t, sb, "/v26.0/"+run+"/insights", nil); r.errCode() != 100 {
		t.Fatalf("rows of an unfinished run: %s", r.raw)
	}
	var statuses []string
	for range 4 {
		r := mustOKAds(t, get(t, sb, "/v26.0/"+run, map[string]string{"fields": "id,async_status,async_percent_completion"}))
		statuses = append(statuses, fmt.Sprint(r.body["async_status"], " ", r.body["async_percent_completion"]))
	}
	if want := "Job Not Started 0,Job Running 33,Job Completed 100,Job Completed 100"; strings.Join(statuses, ",") != want {
		t.Fatalf("statuses %q, want %q", strings.Join(statuses, ","), want)
	}
	r := mustOKAds(t, get(t, sb, "/v26.0/"+run+"/insights", map[string]string{"limit": "4"}))
	if len(r.data()) != 4 || r.next() == "" {
		t.Fatalf("first page: %s", r.raw)
	}
	if r.header.Get("X-Fb-Ads-Insights-Throttle") == "" || !strings.Contains(r.header.Get("X-Business-Use-Case-Usage"), "ads_insights") {
		t.Fatalf("usage headers missing: %v", r.header)
	}
}

// spendOf reads the spend of one ad set's rows by date, as micros.
func spendOf(t *testing.T, sb *Sandbox, since, until string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range mustOKAds(t, get(t, sb, acct+"/insights", insightsParams(since, until))).data() {
		out[d["adset_id"].(string)+" "+d["date_start"].(string)] = d["spend"].(string)
	}
	return out
}

func TestSyntheticSpend(t *testing.T) {
	world := func() (*Sandbox, *clock, string, string) {
		sb, c := newAdsSandbox(t, AdsConfig{})
		aud := members(t, sb, "Cart", 2000)
		empty := members(t, sb, "Empty", 0)
		a, _ := sb.AddAdSet(AdSet{AdAccount: testAdAccount, Name: "a", Included: []string{aud}, DailyBudget: 10000, CreatedAt: c.Now().AddDate(0, 0, -10)})
		sb.AddAdSet(AdSet{AdAccount: testAdAccount, Name: "empty", Included: []string{empty}, CreatedAt: c.Now().AddDate(0, 0, -10)})
		return sb, c, a.ID, aud
	}
	sb1, c, id, _ := world()
	sb2, _, _, _ := world()
	first, second := spendOf(t, sb1, day(c, -20), day(c, -4)), spendOf(t, sb2, day(c, -20), day(c, -4))
	if len(first) != 7 || fmt.Sprint(first) != fmt.Sprint(second) {
		t.Fatalf("not deterministic, or wrong days (7 from creation, none for the empty audience):\n%v\n%v", first, second)
	}
	for k, v := range first {
		var major float64
		fmt.Sscan(v, &major)
		if major < 60 || major > 100 {
			t.Fatalf("%s: spend %s outside 60%%-100%% of the $100 budget", k, v)
		}
	}
	// Paused now: today has no spend, the days before keep theirs.
	sb1.UpdateAdSet(id, func(a *AdSet) { a.Status = StatusPaused })
	after := spendOf(t, sb1, day(c, -20), day(c, 0))
	if _, ok := after[id+" "+day(c, 0)]; ok {
		t.Fatalf("a paused ad set spent today: %v", after)
	}
	if after[id+" "+day(c, -5)] != first[id+" "+day(c, -5)] {
		t.Fatal("pausing changed a past day")
	}
	sb1.SetAdSetSpend(id, day(c, -5), 5_339_500_000)
	if got := spendOf(t, sb1, day(c, -5), day(c, -5))[id+" "+day(c, -5)]; got != "5339.5" {
		t.Fatalf("set spend answered %q", got)
	}
}

func TestRestatementGrows(t *testing.T) {
	sb, c := newAdsSandbox(t, AdsConfig{})
	aud := members(t, sb, "Cart", 2000)
	a, _ := sb.AddAdSet(AdSet{AdAccount: testAdAccount, Name: "a", Included: []string{aud}, DailyBudget: 100000, CreatedAt: c.Now().AddDate(0, 0, -10)})
	key := a.ID + " " + day(c, -1)
	var seen []float64
	for range 6 {
		var v float64
		fmt.Sscan(spendOf(t, sb, day(c, -1), day(c, -1))[key], &v)
		seen = append(seen, v)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] || (i <= 5 && seen[i] == seen[i-1]) {
			t.Fatalf("yesterday did not grow on each pull until final: %v", seen)
		}
	}
	// 75% + 5 per pull reaches 100% at the sixth pull: the final value, which stays.
	var final float64
	fmt.Sscan(spendOf(t, sb, day(c, -1), day(c, -1))[key], &final)
	if final != seen[5] {
		t.Fatalf("final value moved: %v then %v", seen, final)
	}
}

func TestAutoAdSetsStay(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{AutoAdSets: true})
	aud := members(t, sb, "Cart", 10)
	sets := sb.AdSets(testAdAccount)
	if len(sets) != 1 || sets[0].AutoFor != aud || sets[0].Name != "Remarketing: Cart" || sets[0].DailyBudget != DefaultDailyBudget {
		t.Fatalf("%+v", sets)
	}
	if err := sb.UpdateAdSet(sets[0].ID, func(a *AdSet) { a.Status = StatusPaused }); err != nil {
		t.Fatal(err)
	}
	hold := members(t, sb, "Cart (holdout)", 1)
	sets = sb.AdSets(testAdAccount)
	if len(sets) != 1 || sets[0].Status != StatusPaused || len(sets[0].Excluded) != 1 || sets[0].Excluded[0] != hold {
		t.Fatalf("the write did not stay, or the holdout is not excluded: %+v", sets)
	}
	// A targeting write stays too: dropping the exclusion (a contaminated ad set) is not undone.
	if err := sb.UpdateAdSet(sets[0].ID, func(a *AdSet) { a.Excluded = nil }); err != nil {
		t.Fatal(err)
	}
	if sets = sb.AdSets(testAdAccount); len(sets[0].Excluded) != 0 || len(sets[0].Included) != 1 {
		t.Fatalf("the targeting write did not stay: %+v", sets[0])
	}
}

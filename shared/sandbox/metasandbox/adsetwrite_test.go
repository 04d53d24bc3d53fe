package metasandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// post sends a form POST with the credentials in the body.
func post(t *testing.T, sb *Sandbox, path string, params map[string]string) adsReply {
	t.Helper()
	v := url.Values{}
	for k, x := range params {
		v.Set(k, x)
	}
	v.Set("access_token", testToken)
	v.Set("appsecret_proof", testProof)
	req := httptest.NewRequest("POST", path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return serveAds(t, sb, req)
}

func (r adsReply) errSubcode() int {
	e, _ := r.body["error"].(map[string]any)
	if e == nil {
		return 0
	}
	n, _ := e["error_subcode"].(float64)
	return int(n)
}

func adSetPath(id string) string { return "/v26.0/" + id }

func mustAddAdSet(t *testing.T, sb *Sandbox, a AdSet) AdSet {
	t.Helper()
	if a.AdAccount == "" {
		a.AdAccount = testAdAccount
	}
	got, err := sb.AddAdSet(a)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAdSetReadAndWrite(t *testing.T) {
	sb, clk := newAdsSandbox(t, AdsConfig{})
	aud := members(t, sb, "cart", 0)
	a := mustAddAdSet(t, sb, AdSet{Name: "retarget", DailyBudget: 1500, Included: []string{aud}})

	r := mustOKAds(t, get(t, sb, adSetPath(a.ID), map[string]string{"fields": "id,name,campaign_id,account_id,status,effective_status,daily_budget,targeting"}))
	if r.body["status"] != "ACTIVE" || r.body["daily_budget"] != "1500" || r.body["account_id"] != testAdAccount || r.body["campaign_id"] != DefaultAutoCampaignID {
		t.Fatalf("read: %s", r.raw)
	}
	if !strings.Contains(r.raw, `"custom_audiences":[{"id":"`+aud+`"`) {
		t.Fatalf("targeting: %s", r.raw)
	}

	clk.Advance(time.Hour)
	r = mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"status": "PAUSED", "daily_budget": "3000"}))
	if r.body["success"] != true {
		t.Fatalf("answer: %s", r.raw)
	}
	got := sb.AdSets(testAdAccount)[0]
	if got.Status != StatusPaused || got.DailyBudget != 3000 {
		t.Fatalf("not applied: %+v", got)
	}
	// The pause is in the delivery history: the day before still delivered, today does not.
	sb.mu.Lock()
	st := sb.ads.adSets[a.ID]
	if len(st.activity) != 2 || st.activity[1].active || !st.activity[1].at.Equal(clk.Now()) {
		t.Fatalf("activity %+v", st.activity)
	}
	sb.mu.Unlock()

	// Read back through the method override.
	r = mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"method": "GET", "fields": "status,daily_budget"}))
	if r.body["status"] != "PAUSED" || r.body["daily_budget"] != "3000" {
		t.Fatalf("read back: %s", r.raw)
	}
}

func TestAdSetWriteValidation(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{})
	a := mustAddAdSet(t, sb, AdSet{Name: "s", DailyBudget: 1500})
	cases := []struct {
		name   string
		params map[string]string
		code   int
		want   string
	}{
		{"unknown field", map[string]string{"name": "x"}, 100, "param name"},
		{"bad status", map[string]string{"status": "DELETED"}, 100, "status must be one of"},
		{"budget not a number", map[string]string{"daily_budget": "12.5"}, 100, "positive integer"},
		{"budget zero", map[string]string{"daily_budget": "0"}, 100, "positive integer"},
		{"budget below minimum", map[string]string{"daily_budget": "99"}, 100, "Budget Is Too Low"},
	}
	for _, c := range cases {
		r := post(t, sb, adSetPath(a.ID), c.params)
		if r.status != http.StatusBadRequest || r.errCode() != c.code || !strings.Contains(r.raw, c.want) {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
	}
	if got := sb.AdSets(testAdAccount)[0]; got.Status != StatusActive || got.DailyBudget != 1500 {
		t.Fatalf("a refused write changed the ad set: %+v", got)
	}
	if r := post(t, sb, adSetPath("23879999999999999"), map[string]string{"status": "PAUSED"}); r.status != http.StatusBadRequest || r.errCode() == 0 {
		// Not an ad set: falls through to the Graph endpoint, which refuses the path.
		t.Fatalf("unknown ad set: %s", r.raw)
	}
	if r := mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": "100"})); r.body["success"] != true {
		t.Fatalf("the minimum was refused: %s", r.raw)
	}
}

func TestBudgetChangeLimit(t *testing.T) {
	sb, clk := newAdsSandbox(t, AdsConfig{})
	a := mustAddAdSet(t, sb, AdSet{Name: "s", DailyBudget: 1000})
	for i := range BudgetChangesPerHour {
		mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": strconv.Itoa((i + 2) * 1000)}))
		clk.Advance(10 * time.Minute)
	}
	// Same budget again: not a change, not counted.
	mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": "5000"}))
	// A status write is not limited.
	mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"status": "PAUSED"}))

	r := post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": "6000", "status": "ACTIVE"})
	if r.errCode() != CodeUserRequestLimit || r.errSubcode() != 0 || !strings.Contains(r.raw, "User request limit reached") {
		t.Fatalf("5th change within the hour: %s", r.raw)
	}
	if got := sb.AdSets(testAdAccount)[0]; got.DailyBudget != 5000 || got.Status != StatusPaused {
		t.Fatalf("the refused write was applied: %+v", got)
	}
	// The first change leaves the sliding window 20 minutes later, but the ad set is blocked
	// for an hour from the refusal.
	clk.Advance(30 * time.Minute)
	if r := post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": "6000"}); r.errCode() != CodeUserRequestLimit {
		t.Fatalf("blocked: %s", r.raw)
	}
	clk.Advance(31 * time.Minute)
	mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": "6000"}))
	if n := len(sb.BudgetChanges(a.ID)); n != 1 {
		t.Fatalf("%d changes in the window", n)
	}
	// Another ad set is not limited by this one's changes.
	b := mustAddAdSet(t, sb, AdSet{Name: "t", DailyBudget: 1000})
	mustOKAds(t, post(t, sb, adSetPath(b.ID), map[string]string{"daily_budget": "2000"}))
}

func TestBudgetSlidingWindow(t *testing.T) {
	sb, clk := newAdsSandbox(t, AdsConfig{})
	a := mustAddAdSet(t, sb, AdSet{Name: "s", DailyBudget: 1000})
	for _, b := range []string{"2000", "3000", "4000", "5000"} {
		mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": b}))
		clk.Advance(15 * time.Minute)
	}
	// One hour after the first change it has left the window: a 5th change is the 4th within it.
	mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": "6000"}))
}

func TestCampaignBudgetRefusesAdSetBudget(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{})
	a := mustAddAdSet(t, sb, AdSet{Name: "cbo", CampaignID: "23840000000000009", CampaignBudget: true, DailyBudget: 999})
	if a.DailyBudget != 0 {
		t.Fatalf("an ad set under a campaign budget kept a budget: %+v", a)
	}
	r := post(t, sb, adSetPath(a.ID), map[string]string{"daily_budget": "2000"})
	if r.errCode() != 100 || r.errSubcode() != SubcodeCampaignHasBudget || !strings.Contains(r.raw, "Campaign Already Has a Budget") {
		t.Fatalf("%s", r.raw)
	}
	if r := mustOKAds(t, get(t, sb, adSetPath(a.ID), map[string]string{"fields": "daily_budget"})); r.body["daily_budget"] != nil {
		t.Fatalf("daily_budget: %s", r.raw)
	}
	// Pausing it is fine.
	mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"status": "PAUSED"}))
}

func TestScriptedAdSetWriteFailure(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{})
	a := mustAddAdSet(t, sb, AdSet{Name: "s", DailyBudget: 1000})
	sb.FailNextAdSetWrite(200, 0, "(#200) Requires ads_management permission to manage the object")
	sb.FailNextAdSetWrite(2, 0, "")
	r := post(t, sb, adSetPath(a.ID), map[string]string{"status": "PAUSED"})
	if r.errCode() != 200 || !strings.Contains(r.raw, "ads_management") {
		t.Fatalf("first: %s", r.raw)
	}
	if r := post(t, sb, adSetPath(a.ID), map[string]string{"status": "PAUSED"}); r.status != http.StatusInternalServerError || r.errCode() != 2 {
		t.Fatalf("second: %d %s", r.status, r.raw)
	}
	mustOKAds(t, post(t, sb, adSetPath(a.ID), map[string]string{"status": "PAUSED"}))
	// Reads are not affected.
	sb.FailNextAdSetWrite(17, 0, "")
	mustOKAds(t, get(t, sb, adSetPath(a.ID), map[string]string{"fields": "status"}))
}

func TestAdSetAdmin(t *testing.T) {
	sb, clk := newAdsSandbox(t, AdsConfig{AutoAdSets: true})
	aud := members(t, sb, "cart", 0)
	members(t, sb, "cart"+HoldoutSuffix, 0)
	req := httptest.NewRequest("GET", "/_sandbox/adsets", nil)
	rec := httptest.NewRecorder()
	sb.ServeHTTP(rec, req)
	var views []AdSetView
	if err := json.Unmarshal(rec.Body.Bytes(), &views); err != nil || len(views) != 1 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	v := views[0]
	if v.Status != StatusActive || v.DailyBudget != DefaultDailyBudget || !slices.Equal(v.Included, []string{aud}) || len(v.Excluded) != 1 || len(v.Ads) != 1 {
		t.Fatalf("%+v", v)
	}
	mustOKAds(t, post(t, sb, adSetPath(v.ID), map[string]string{"status": "PAUSED", "daily_budget": "2500"}))
	clk.Advance(time.Minute)
	rec = httptest.NewRecorder()
	sb.ServeHTTP(rec, httptest.NewRequest("GET", "/_sandbox/adsets", nil))
	if !strings.Contains(rec.Body.String(), `"status":"PAUSED"`) || !strings.Contains(rec.Body.String(), `"daily_budget":2500`) ||
		!strings.Contains(rec.Body.String(), `"budget_changes":["`) {
		t.Fatalf("%s", rec.Body)
	}
	rec = httptest.NewRecorder()
	sb.ServeHTTP(rec, httptest.NewRequest("POST", "/_sandbox/adsets", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

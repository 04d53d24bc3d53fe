package metagraph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

const testAccount = "act_1001"

// adsWorld is a Meta sandbox on loopback and a Client on it, recording every request's URL.
type adsWorld struct {
	sb     *metasandbox.Sandbox
	client *Client
	now    time.Time

	mu     sync.Mutex
	urls   []string          // method path?query
	bodies map[string]string // the first body sent to each path
}

func newAdsWorld(t *testing.T, ads metasandbox.AdsConfig, edit ...func(*metasandbox.Config)) *adsWorld {
	t.Helper()
	w := &adsWorld{now: time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)}
	cfg := metasandbox.Config{AccessToken: testToken, AppSecret: testSecret, AdAccounts: []string{testAccount},
		Version: DefaultVersion, Now: func() time.Time { return w.now }, Ads: ads, RemovalMinSize: -1,
		Faults: metasandbox.Faults{RegainAccessMinutes: 5}}
	for _, e := range edit {
		e(&cfg)
	}
	sb, err := metasandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.sb = sb
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		w.mu.Lock()
		w.urls = append(w.urls, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		if w.bodies == nil {
			w.bodies = map[string]string{}
		}
		if _, ok := w.bodies[r.URL.Path]; !ok {
			w.bodies[r.URL.Path] = string(body)
		}
		w.mu.Unlock()
		sb.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	w.client = New(Config{BaseURL: srv.URL, AccessToken: testToken, AppSecret: testSecret, HTTPClient: srv.Client(),
		InsightsPollInterval: time.Millisecond})
	return w
}

// requests returns the recorded requests whose path ends with suffix, and checks that no URL
// carried a credential.
func (w *adsWorld) requests(t *testing.T, suffix string) []string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, u := range w.urls {
		if strings.Contains(u, "access_token") || strings.Contains(u, "appsecret_proof") || strings.Contains(u, testToken) {
			t.Fatalf("a URL carries a credential: %s", u)
		}
		path, _, _ := strings.Cut(u, "?")
		if strings.HasSuffix(path, suffix) {
			out = append(out, u)
		}
	}
	return out
}

// audience creates an audience of n members through the adapter and returns its id.
func (w *adsWorld) audience(t *testing.T, name string, n int) string {
	t.Helper()
	ctx := context.Background()
	id, err := w.client.CreateAudience(ctx, ports.NewAudience{AdAccountID: testAccount, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	for start := 0; start < n; start += ports.MaxAudienceRows {
		var rows [][]string
		for i := start; i < min(n, start+ports.MaxAudienceRows); i++ {
			rows = append(rows, []string{fmt.Sprintf("%s-u%d", name, i)})
		}
		if _, err := w.client.Upload(ctx, ports.AudienceUpload{AudienceID: id, Op: ports.AudienceAdd, Schema: []string{"EXTERN_ID"}, Rows: rows}); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func (w *adsWorld) addAdSet(t *testing.T, a metasandbox.AdSet) metasandbox.AdSet {
	t.Helper()
	a.AdAccount = testAccount
	if a.CreatedAt.IsZero() {
		a.CreatedAt = w.now.AddDate(0, -2, 0)
	}
	got, err := w.sb.AddAdSet(a)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAdAccount(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{Currency: "EUR", TimezoneName: "Europe/Berlin"})
	got, err := w.client.AdAccount(context.Background(), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ports.AdAccount{ID: testAccount, Currency: "EUR", TimezoneName: "Europe/Berlin"}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := w.client.AdAccount(context.Background(), "act_999"); classOf(err) != ports.CAPIInvalidParameter {
		t.Fatalf("unknown account: %v", err)
	}
	w.requests(t, "")
}

func classOf(err error) ports.CAPIErrorClass {
	var e *ports.CAPIError
	if errors.As(err, &e) {
		return e.Class
	}
	return -1
}

// TestAdSetsPaging reads 450 ad sets over three pages, leaves deleted and archived ones out,
// and reads the targeting.
func TestAdSetsPaging(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{})
	inc, exc := w.audience(t, "Cart", 1), w.audience(t, "Cart (holdout)", 1)
	var want []string
	for i := range 450 {
		a := metasandbox.AdSet{Name: fmt.Sprintf("set %d", i), DailyBudget: int64(100 + i)}
		switch i % 10 {
		case 3:
			a.Status = metasandbox.StatusDeleted
		case 4:
			a.Status = metasandbox.StatusArchived
		case 5:
			a.Status = metasandbox.StatusPaused
		case 6:
			a.EffectiveStatus = "CAMPAIGN_PAUSED"
		}
		if i == 7 {
			a.Included, a.Excluded, a.AdvantageAudience = []string{inc}, []string{exc}, true
		}
		got := w.addAdSet(t, a)
		if i%10 != 3 && i%10 != 4 {
			want = append(want, got.ID)
		}
	}
	sets, err := w.client.AdSets(context.Background(), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sets {
		ids = append(ids, s.ID)
		if s.Status == "DELETED" || s.Status == "ARCHIVED" {
			t.Fatalf("deleted or archived ad set read: %+v", s)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("read %d ad sets, want %d", len(ids), len(want))
	}
	w.mu.Lock()
	body := w.bodies["/"+DefaultVersion+"/"+testAccount+"/adsets"]
	w.mu.Unlock()
	if !strings.Contains(body, `"effective_status":["ACTIVE",`) || strings.Contains(body, "DELETED") || strings.Contains(body, "ARCHIVED") {
		t.Fatalf("the request does not ask for the live statuses only: %s", body)
	}
	if n := len(w.requests(t, "/adsets")); n < 2 {
		t.Fatalf("%d requests: the ad sets should need several pages", n)
	}
	s7 := sets[slices.IndexFunc(sets, func(s ports.AdSet) bool { return s.Name == "set 7" })]
	if !slices.Equal(s7.Included, []string{inc}) || !slices.Equal(s7.Excluded, []string{exc}) || !s7.AdvantageAudience ||
		s7.DailyBudget != 107 || s7.CampaignID == "" || !s7.Active() {
		t.Fatalf("set 7: %+v", s7)
	}
	s6 := sets[slices.IndexFunc(sets, func(s ports.AdSet) bool { return s.Name == "set 6" })]
	if s6.Status != "ACTIVE" || s6.EffectiveStatus != "CAMPAIGN_PAUSED" || s6.Active() {
		t.Fatalf("set 6: %+v", s6)
	}
}

// TestAutoAdSets: every treated audience gets an ad set that excludes its holdout audience,
// whichever was created first.
func TestAutoAdSets(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{AutoAdSets: true})
	holdout := w.audience(t, "Cart abandoners (holdout)", 1)
	cart := w.audience(t, "Cart abandoners", 1)
	browse := w.audience(t, "Browsers", 1)
	sets, err := w.client.AdSets(context.Background(), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 {
		t.Fatalf("%d ad sets: %+v", len(sets), sets)
	}
	byName := map[string]ports.AdSet{}
	for _, s := range sets {
		byName[s.Name] = s
		if !s.Active() {
			t.Fatalf("not active: %+v", s)
		}
	}
	c, b := byName["Remarketing: Cart abandoners"], byName["Remarketing: Browsers"]
	if !slices.Equal(c.Included, []string{cart}) || !slices.Equal(c.Excluded, []string{holdout}) {
		t.Fatalf("cart ad set %+v", c)
	}
	if !slices.Equal(b.Included, []string{browse}) || len(b.Excluded) != 0 {
		t.Fatalf("browse ad set %+v", b)
	}
	// A holdout audience made later is excluded from then on.
	late := w.audience(t, "Browsers (holdout)", 1)
	sets, _ = w.client.AdSets(context.Background(), testAccount)
	for _, s := range sets {
		if s.Name == "Remarketing: Browsers" && !slices.Equal(s.Excluded, []string{late}) {
			t.Fatalf("late holdout not excluded: %+v", s)
		}
	}
}

func TestParseMicros(t *testing.T) {
	for in, want := range map[string]int64{"5339.5": 5_339_500_000, "0.01": 10_000, "12": 12_000_000, "": 0, "0": 0,
		"0.1234560": 123_456, "9223372036854.775807": 1<<63 - 1, "4.05": 4_050_000, ".5": 500_000, "7.": 7_000_000} {
		got, err := ParseMicros(in)
		if err != nil || got != want {
			t.Errorf("ParseMicros(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "1e3", "1.2345678", "abc", "1,5", ".", "9223372036854.775808", "99999999999999999999", "+1"} {
		if got, err := ParseMicros(in); err == nil {
			t.Errorf("ParseMicros(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseInsightsUsage(t *testing.T) {
	h := http.Header{}
	h.Set("X-Fb-Ads-Insights-Throttle", `{"app_id_util_pct":12.5,"acc_id_util_pct":55,"ads_api_access_tier":"standard_access"}`)
	h.Set("X-Business-Use-Case-Usage", `{"1001":[{"type":"ads_management","call_count":99,"total_cputime":99,"total_time":99,"estimated_time_to_regain_access":30},`+
		`{"type":"ads_insights","call_count":40,"total_cputime":61,"total_time":3,"estimated_time_to_regain_access":3}]}`)
	u, ok := ParseInsightsUsage(h)
	if !ok || u.UsagePct != 61 || u.RegainAfter != 3*time.Minute {
		t.Fatalf("got %+v %v", u, ok)
	}
	h.Del("X-Business-Use-Case-Usage")
	if u, ok := ParseInsightsUsage(h); !ok || u.UsagePct != 55 || u.RegainAfter != 0 {
		t.Fatalf("throttle header only: %+v %v", u, ok)
	}
	if _, ok := ParseInsightsUsage(http.Header{"X-Fb-Ads-Insights-Throttle": {"garbage"}}); ok {
		t.Fatal("unreadable header read")
	}
}

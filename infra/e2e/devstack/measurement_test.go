//go:build unix

package devstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestMeasurementEndToEnd is the measurement's proof through the real pipeline of `make dev`: a
// synthetic population of cart abandoners, a known share of whom come back, and more of them
// when they were in the treated arm (the simulated effect of the ads). The report must count
// every user sent in exactly one arm, hold out about the configured share, match the uploaded
// audience's size with the treated count, and estimate a lift whose interval covers the true
// simulated effect.
func TestMeasurementEndToEnd(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false",
		// The joins come from the updater (the add-to-carts are two hours old): the sweeper, which
		// also publishes every change to the bus, need not run often, and leaves the emulator to
		// the 2,000 users' updates and uploads.
		"AUDIENCE_SYNC_INTERVAL=300ms", "SEGMENT_SWEEP_INTERVAL=3s", "INSIGHTS_INTERVAL=1s")
	api := ds.ready(t)
	sandbox := ds.match(t, metaLine)[1]
	defer ds.stop(t, syscall.SIGTERM, 30*time.Second)
	client := &http.Client{Timeout: 30 * time.Second}

	const (
		app      = "sample-shop"
		users    = 2000
		fraction = 0.1  // the default holdout_fraction of the sample config's audiences
		pTreated = 0.35 // simulated: share of treated users who come back within the day
		pHoldout = 0.25 // simulated: share of holdout users who come back anyway
	)
	pseudo, err := identity.NewPseudonymizer([]byte(devenv.Pepper))
	if err != nil {
		t.Fatal(err)
	}
	arms := holdout.New(app, "cart_abandoner", "", fraction)
	now := time.Now()
	ids := make([]string, users)
	// Fixed ids and a seeded generator: the arms and the returns are the same in every run (the
	// dev stack starts empty), so the run is deterministic; that the interval covers the true
	// effect about 95% of the time over many draws is shown in package measure.
	for i := range ids {
		ids[i] = fmt.Sprintf("m-%04d", i)
	}

	// 1. Every user adds to cart two hours ago and buys nothing: a cart abandoner.
	post := func(events []map[string]any) {
		t.Helper()
		for start := 0; start < len(events); start += 500 {
			body, _ := json.Marshal(map[string]any{"events": events[start:min(start+500, len(events))]})
			req, _ := http.NewRequest(http.MethodPost, api+"/v1/events", bytes.NewReader(body))
			req.Header.Set("x-api-key", "dev-api-key")
			req.Header.Set("content-type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(raw), fmt.Sprintf(`"accepted":%d`, min(500, len(events)-start))) {
				t.Fatalf("POST /v1/events: %d %s", resp.StatusCode, raw)
			}
		}
	}
	event := func(id, name string, at time.Time, user string) map[string]any {
		return map[string]any{
			"event_id": id, "event_name": name, "event_time": at.Unix(),
			"user":    map[string]any{"app_user_id": user, "email": user + "@example.com"},
			"device":  map[string]any{"platform": "android", "os_version": "14"},
			"consent": map[string]any{"ads_personalization": true},
		}
	}
	carts := make([]map[string]any, users)
	for i, u := range ids {
		carts[i] = event("cart-"+u, "fb_mobile_add_to_cart", now.Add(-2*time.Hour), u)
	}
	post(carts)

	// 2. The sync uploads each user to the audience of their arm.
	var treatedSize, holdoutSize int
	waitUntil(t, "every cart abandoner is uploaded to the treated or the holdout audience", 180*time.Second, func() (bool, string) {
		sizes, _ := sandboxAudiences(t, client, sandbox)
		treatedSize, holdoutSize = sizes["Cart abandoners"], sizes["Cart abandoners (holdout)"]
		return treatedSize+holdoutSize == users, fmt.Sprintf("treated %d, holdout %d", treatedSize, holdoutSize)
	})

	// 3. Some come back (an app open now): more of the treated, by the simulated effect.
	rng := rand.New(rand.NewPCG(16, 2026))
	var opens []map[string]any
	var wantTreated, wantHoldout int
	for _, u := range ids {
		p := pTreated
		if arms.Arm(pseudo.UserKey(app, identity.KindAppUserID, u)) == holdout.Holdout {
			p = pHoldout
		}
		if rng.Float64() < p {
			opens = append(opens, event("open-"+u, "fb_mobile_activate_app", now, u))
			if p == pTreated {
				wantTreated++
			} else {
				wantHoldout++
			}
		}
	}
	post(opens)

	// 4. The report counts them once the updater has folded the opens and insights has run.
	from := now.UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	to := now.UTC().Format(time.DateOnly)
	var rep measure.Report
	var a measure.AudienceReport
	waitUntil(t, "the report counts every return and has the day's spend", 180*time.Second, func() (bool, string) {
		rep = fetchReport(t, client, api, from, to)
		for _, x := range rep.Audiences {
			if x.Segment == "cart_abandoner" {
				a = x
			}
		}
		return a.Treated.Reengaged7d+a.Holdout.Reengaged7d == int64(len(opens)) && a.Spend != nil,
			fmt.Sprintf("re-engaged %d+%d of %d, spend %v", a.Treated.Reengaged7d, a.Holdout.Reengaged7d, len(opens), a.Spend)
	})

	if got := a.Treated.Users + a.Holdout.Users; got != users {
		t.Errorf("treated %d + holdout %d users = %d, want the %d sent", a.Treated.Users, a.Holdout.Users, got, users)
	}
	if share := float64(a.Holdout.Users) / users; math.Abs(share-fraction) > 0.02 {
		t.Errorf("holdout share %.3f, want %.2f within 2 points", share, fraction)
	}
	if int64(treatedSize) != a.Treated.Users || int64(holdoutSize) != a.Holdout.Users {
		t.Errorf("audiences hold %d treated and %d holdout users, the report counts %d and %d", treatedSize, holdoutSize, a.Treated.Users, a.Holdout.Users)
	}
	if a.Treated.Reengaged7d != int64(wantTreated) || a.Holdout.Reengaged7d != int64(wantHoldout) {
		t.Errorf("re-engaged treated %d holdout %d, want %d and %d", a.Treated.Reengaged7d, a.Holdout.Reengaged7d, wantTreated, wantHoldout)
	}
	l := a.Lift7d
	if l.Difference == nil || l.CILow == nil || l.CIHigh == nil {
		t.Fatalf("lift_7d has no estimate: %+v", l)
	}
	const trueEffect = pTreated - pHoldout
	if *l.CILow > trueEffect || *l.CIHigh < trueEffect {
		t.Errorf("lift_7d %.3f [%.3f, %.3f] does not cover the simulated effect %.2f", *l.Difference, *l.CILow, *l.CIHigh, trueEffect)
	}
	if a.Contaminated {
		t.Errorf("contaminated on %v: the sandbox's ad sets exclude the holdout audience", a.ContaminatedDays)
	}
	if a.Spend == nil || *a.Spend <= 0 || a.Currency == "" {
		t.Errorf("spend %v %q: the insights run should have pulled the sandbox's ad set", a.Spend, a.Currency)
	}
	cost := "none"
	if c := a.CostPerIncrementalReengagement; c != nil {
		cost = fmt.Sprintf("%.4f %s", *c, a.Currency)
	}
	t.Logf("treated %d (re-engaged %d) holdout %d (re-engaged %d): lift_7d %.3f [%.3f, %.3f] significant=%v; spend %.2f %s; cost per incremental re-engagement %s",
		a.Treated.Users, a.Treated.Reengaged7d, a.Holdout.Users, a.Holdout.Reengaged7d, *l.Difference, *l.CILow, *l.CIHigh, l.Significant,
		*a.Spend, a.Currency, cost)
}

// fetchReport calls GET /v1/reports/audiences as the dev admin.
func fetchReport(t *testing.T, client *http.Client, api, from, to string) measure.Report {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, api+"/v1/reports/audiences?"+url.Values{"from": {from}, "to": {to}}.Encode(), nil)
	req.Header.Set("x-api-key", "dev-api-key")
	signAsDevAdmin(t, req, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/reports/audiences: %d %s", resp.StatusCode, raw)
	}
	var rep measure.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v: %s", err, raw)
	}
	return rep
}

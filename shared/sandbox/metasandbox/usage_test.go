package metasandbox

import (
	"encoding/json"
	"testing"
	"time"
)

// With a usage budget, every audience answer carries the usage headers, rising with the
// calls; a call above 100% is throttled with 80003 and the time left in the window (minutes in
// X-Business-Use-Case-Usage, seconds in X-Ad-Account-Usage) and is not applied; the next
// window starts again from zero. The request log has the usage of each call.
func TestAudienceUsageBudget(t *testing.T) {
	sb, clk := newAudienceSandbox(t, nil)
	id := createAudience(t, sb, "Cart abandoners", false) // before the budget: not counted
	sb.SetFaults(Faults{AudienceUsageBudget: 4, AudienceUsageWindow: 3 * time.Minute})
	start := clk.Now()
	type adAccountUsage struct {
		Pct   float64 `json:"acc_id_util_pct"`
		Reset int     `json:"reset_time_duration"`
	}
	usage := func(r audienceReply) (adAccountUsage, bucUsage) {
		t.Helper()
		var a adAccountUsage
		var b map[string][]bucUsage
		if err := json.Unmarshal([]byte(r.header.Get("X-Ad-Account-Usage")), &a); err != nil {
			t.Fatalf("X-Ad-Account-Usage %q: %v", r.header.Get("X-Ad-Account-Usage"), err)
		}
		if err := json.Unmarshal([]byte(r.header.Get("X-Business-Use-Case-Usage")), &b); err != nil || len(b[testAdAccount]) != 1 {
			t.Fatalf("X-Business-Use-Case-Usage %q: %v", r.header.Get("X-Business-Use-Case-Usage"), err)
		}
		return a, b[testAdAccount][0]
	}
	for i, want := range []float64{25, 50, 75, 100} {
		clk.Advance(10 * time.Second)
		r := callJSON(t, sb, "POST", usersPath(id), usersBody(externRows(i, i+1)))
		mustOK(t, r)
		a, b := usage(r)
		if a.Pct != want || b.CallCount != int(want) || b.Type != "custom_audience" || b.EstimatedTimeToRegainAccess != 0 {
			t.Fatalf("call %d: usage %+v %+v, want %v%%", i+1, a, b, want)
		}
		if wantReset := int((3*time.Minute - clk.Now().Sub(start) + 10*time.Second).Seconds()); a.Reset != wantReset {
			t.Errorf("call %d: reset_time_duration %d, want %d", i+1, a.Reset, wantReset)
		}
	}
	clk.Advance(10 * time.Second) // 40 s into the window (it began at the first call): 2 min 20 s left
	r := callJSON(t, sb, "POST", usersPath(id), usersBody(externRows(9, 10)))
	mustFail(t, r, CodeAudienceRateLimit, 0)
	a, b := usage(r)
	if a.Pct != 100 || a.Reset != 140 || b.EstimatedTimeToRegainAccess != 2 {
		t.Fatalf("throttled: usage %+v %+v, want 100%%, 140 s, 2 min", a, b)
	}
	if _, ok := sb.AudienceMembers(id)["u9"]; ok {
		t.Error("a throttled call was applied")
	}
	reqs := sb.Requests()
	last := reqs[len(reqs)-1]
	if last.Fault != FaultAudienceUsageThrottle || last.UsagePct != 100 || last.UsageReset != 140*time.Second {
		t.Errorf("request log: %+v", last)
	}
	clk.Advance(140 * time.Second) // the window is over
	r = callJSON(t, sb, "POST", usersPath(id), usersBody(externRows(9, 10)))
	mustOK(t, r)
	if a, _ := usage(r); a.Pct != 25 {
		t.Errorf("new window: %v%%, want 25%%", a.Pct)
	}
}

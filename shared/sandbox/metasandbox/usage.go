package metasandbox

// Usage budgets: Meta counts the Custom Audience calls of each ad account against an hourly
// budget (190,000 calls on Standard access; 5,000 + 40 x active audiences on Development:
// Marketing API rate limiting, https://developers.facebook.com/docs/marketing-api/overview/rate-limiting),
// tells how much is used in the X-Ad-Account-Usage (acc_id_util_pct, reset_time_duration in
// seconds) and X-Business-Use-Case-Usage (call_count, total_cputime, total_time,
// estimated_time_to_regain_access in minutes) headers of every answer, and throttles above
// 100% (code 80003 for Custom Audiences). The sandbox does the same with a small budget per
// window (Faults.AudienceUsageBudget, Faults.AudienceUsageWindow), windows fixed from the
// first call of each, so that tests can drive an ad account to its limit in a few calls.
// estimated_time_to_regain_access is rounded down to whole minutes (Meta sends integers);
// reset_time_duration carries the seconds left in the window.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"
)

// DefaultAudienceUsageWindow is the default Faults.AudienceUsageWindow: Meta's hour.
const DefaultAudienceUsageWindow = time.Hour

// FaultAudienceUsageThrottle is RequestLog.Fault of a call throttled by its usage budget.
const FaultAudienceUsageThrottle = "audience_usage_throttle" // HTTP 400, code 80003

// usageWindow counts one ad account's calls in its current window.
type usageWindow struct {
	start time.Time
	calls int
}

// usageAnswer is what one call's usage count says: the headers to send and whether to throttle.
type usageAnswer struct {
	header    http.Header
	pct       float64
	reset     time.Duration
	throttled bool
}

// countAudienceUsage counts one call to account (digits) and returns its usage after the call.
// The zero answer (no headers) when no budget is set.
func (s *Sandbox) countAudienceUsage(account string, f Faults, now time.Time) usageAnswer {
	if f.AudienceUsageBudget <= 0 || account == "" {
		return usageAnswer{}
	}
	window := f.AudienceUsageWindow
	if window <= 0 {
		window = DefaultAudienceUsageWindow
	}
	s.mu.Lock()
	if s.usage == nil {
		s.usage = map[string]*usageWindow{}
	}
	w := s.usage[account]
	if w == nil || now.Sub(w.start) >= window || now.Before(w.start) {
		w = &usageWindow{start: now}
		s.usage[account] = w
	}
	w.calls++
	calls, left := w.calls, w.start.Add(window).Sub(now)
	s.mu.Unlock()

	pct := float64(calls) * 100 / float64(f.AudienceUsageBudget)
	a := usageAnswer{pct: math.Min(pct, 100), reset: left, throttled: pct > 100, header: http.Header{}}
	regainMin := 0
	if a.throttled {
		regainMin = int(left / time.Minute)
	}
	shown := int(math.Round(a.pct))
	buc, _ := json.Marshal(map[string][]bucUsage{account: {{
		Type: "custom_audience", CallCount: shown, TotalCPUTime: shown / 2, TotalTime: shown / 2,
		EstimatedTimeToRegainAccess: regainMin,
	}}})
	a.header.Set("X-Business-Use-Case-Usage", string(buc))
	a.header.Set("X-Ad-Account-Usage", fmt.Sprintf(`{"acc_id_util_pct":%.2f,"reset_time_duration":%d}`,
		a.pct, int(math.Ceil(left.Seconds()))))
	return a
}

// errAudienceUsageThrottle is the throttle of an ad account over its usage budget, with the
// usage headers of the call.
func errAudienceUsageThrottle(u usageAnswer) *graphError {
	e := &graphError{Type: "OAuthException", Code: CodeAudienceRateLimit, IsTransient: true,
		Message: "(#80003) There have been too many calls to this ad-account. Wait a bit and try again. " +
			"For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting#custom-audience."}
	for k, vs := range u.header {
		e.withHeader(k, vs[0])
	}
	return e
}

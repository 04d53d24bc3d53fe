package metagraph

import (
	"encoding/json"
	"net/http"
	"time"
)

// Usage is what Meta's rate-limit headers say about the budget left. Percentages run from 0
// to 100; at 100 Meta throttles. Headers that are absent or unreadable leave their fields zero.
type Usage struct {
	// AppPct is the highest of call_count, total_time and total_cputime in X-App-Usage.
	AppPct float64
	// AdAccountPct is acc_id_util_pct in X-Ad-Account-Usage.
	AdAccountPct float64
	// BusinessPct is the highest of call_count, total_time and total_cputime over every entry
	// of X-Business-Use-Case-Usage.
	BusinessPct float64
	// RegainAfter is the longest wait announced: reset_time_duration (seconds) of
	// X-Ad-Account-Usage and estimated_time_to_regain_access (minutes) of
	// X-Business-Use-Case-Usage.
	RegainAfter time.Duration
}

// MaxPct returns the highest usage percentage.
func (u Usage) MaxPct() float64 { return max(u.AppPct, u.AdAccountPct, u.BusinessPct) }

// ParseUsage reads X-App-Usage, X-Ad-Account-Usage and X-Business-Use-Case-Usage.
//
//	X-App-Usage: {"call_count":28,"total_time":25,"total_cputime":25}
//	X-Ad-Account-Usage: {"acc_id_util_pct":9.67,"reset_time_duration":0}
//	X-Business-Use-Case-Usage: {"1234":[{"type":"ads_management","call_count":95,
//	    "total_cputime":20,"total_time":20,"estimated_time_to_regain_access":5}]}
func ParseUsage(h http.Header) Usage {
	var u Usage
	if s := h.Get("X-App-Usage"); s != "" {
		var v struct {
			CallCount    float64 `json:"call_count"`
			TotalTime    float64 `json:"total_time"`
			TotalCPUTime float64 `json:"total_cputime"`
		}
		if json.Unmarshal([]byte(s), &v) == nil {
			u.AppPct = max(v.CallCount, v.TotalTime, v.TotalCPUTime)
		}
	}
	if s := h.Get("X-Ad-Account-Usage"); s != "" {
		var v struct {
			Pct   float64 `json:"acc_id_util_pct"`
			Reset float64 `json:"reset_time_duration"`
		}
		if json.Unmarshal([]byte(s), &v) == nil {
			u.AdAccountPct = v.Pct
			u.RegainAfter = max(u.RegainAfter, seconds(v.Reset))
		}
	}
	if s := h.Get("X-Business-Use-Case-Usage"); s != "" {
		var v map[string][]struct {
			Type         string  `json:"type"`
			CallCount    float64 `json:"call_count"`
			TotalTime    float64 `json:"total_time"`
			TotalCPUTime float64 `json:"total_cputime"`
			RegainMin    float64 `json:"estimated_time_to_regain_access"`
		}
		if json.Unmarshal([]byte(s), &v) == nil {
			for _, entries := range v {
				for _, e := range entries {
					u.BusinessPct = max(u.BusinessPct, e.CallCount, e.TotalTime, e.TotalCPUTime)
					u.RegainAfter = max(u.RegainAfter, seconds(e.RegainMin*60))
				}
			}
		}
	}
	return u
}

// seconds converts a non-negative number of seconds, capping absurd values at a day.
func seconds(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	if s > 86400 {
		s = 86400
	}
	return time.Duration(s * float64(time.Second))
}

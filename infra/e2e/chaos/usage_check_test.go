package chaos

import (
	"fmt"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/handlers/audiencesync"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// pausing reports whether an audience answer told the sync to pause its ad account: usage at
// the pause threshold with the time to the reset, or a throttle.
func pausing(r metasandbox.RequestLog) bool {
	return r.UsageReset > 0 && (r.UsagePct >= audiencesync.PauseAtUsagePct || r.Fault == metasandbox.FaultAudienceUsageThrottle)
}

// usagePauses counts the answers that paused an ad account (coverage).
func usagePauses(reqs []metasandbox.RequestLog) int {
	n := 0
	for _, r := range reqs {
		if pausing(r) {
			n++
		}
	}
	return n
}

// checkUsagePauses finds audience calls sent to an ad account inside a "not before" window:
// after an answer that announced a pause (usage at 85% or more, or a throttle, with the time
// left in Meta's window), the sync must send nothing to that account until the window ends.
// The log's times are the sandbox's arrival times, so a call the sync sent after its not-before
// can never look early. Usage throttles (80003 above 100%) are problems too: the sync pauses
// before Meta has to throttle it.
func checkUsagePauses(reqs []metasandbox.RequestLog) []string {
	var problems []string
	until := map[string]time.Time{} // ad account -> end of its pause
	why := map[string]string{}      // ad account -> the answer that paused it
	for _, r := range reqs {
		if r.AdAccount == "" {
			continue
		}
		if end, ok := until[r.AdAccount]; ok && r.At.Before(end) {
			problems = append(problems, fmt.Sprintf("%s %s at %s: ad account act_%s paused until %s by %s",
				r.Method, r.Path, r.At.Format("15:04:05.000"), r.AdAccount, end.Format("15:04:05.000"), why[r.AdAccount]))
		}
		if r.Fault == metasandbox.FaultAudienceUsageThrottle {
			problems = append(problems, fmt.Sprintf("%s %s at %s: throttled by usage (the sync should have paused at %d%%)",
				r.Method, r.Path, r.At.Format("15:04:05.000"), audiencesync.PauseAtUsagePct))
		}
		if pausing(r) {
			if end := r.At.Add(r.UsageReset); end.After(until[r.AdAccount]) {
				until[r.AdAccount] = end
				why[r.AdAccount] = fmt.Sprintf("%s %s at %s (status %d %s, usage %.0f%%)", r.Method, r.Path,
					r.At.Format("15:04:05.000"), r.Status, r.Fault, r.UsagePct)
			}
		}
	}
	return problems
}

// The check finds a call inside a pause and a usage throttle, and accepts calls after the
// pause or on another account.
func TestCheckUsagePauses(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	req := func(ms int, account string, pct float64, reset time.Duration, fault string) metasandbox.RequestLog {
		return metasandbox.RequestLog{At: t0.Add(time.Duration(ms) * time.Millisecond), Method: "POST", Path: "/v26.0/1/users",
			AdAccount: account, UsagePct: pct, UsageReset: reset, Fault: fault}
	}
	ok := []metasandbox.RequestLog{
		req(0, "1", 50, 700*time.Millisecond, ""),
		req(10, "1", 100, 690*time.Millisecond, ""),
		req(300, "2", 33, time.Second, ""),
		req(700, "1", 33, 700*time.Millisecond, ""),
	}
	if p := checkUsagePauses(ok); len(p) != 0 {
		t.Errorf("problems in a paced log: %v", p)
	}
	if n := usagePauses(ok); n != 1 {
		t.Errorf("usagePauses = %d, want 1", n)
	}
	bad := append(ok[:2:2], req(400, "1", 100, 300*time.Millisecond, metasandbox.FaultAudienceUsageThrottle))
	if p := checkUsagePauses(bad); len(p) != 2 {
		t.Errorf("want the early call and the throttle, got %v", p)
	}
}

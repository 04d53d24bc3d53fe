package audiencesync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

func (h *harness) pacedSyncer(t *testing.T, edit func(*Config)) *Syncer {
	t.Helper()
	cfg := Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: h.meta, Now: func() time.Time { return h.now }}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) runAll(t *testing.T, s *Syncer) AppReport {
	t.Helper()
	reports, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return reports[0]
}

// Once an answer's usage headers reach 85%, the sync pauses the ad account until the time
// the headers announce: no call goes to the account in that window, in this run or the next,
// and the pause is in the state table. Before, the sync went on calling until Meta throttled
// it (here the fourth call would have been refused with 80003).
func TestUsageHeadersPauseTheAdAccount(t *testing.T) {
	h := newHarness(t)
	for i := range 3 {
		h.user(t, fmt.Sprintf("c%d", i), nil, []string{"cart_abandoner"}, 0)
		h.user(t, fmt.Sprintf("v%d", i), nil, []string{"vip"}, 50_000_000)
	}
	// Three calls per hour: the lookup, create and add of cart_abandoner, the add answered at
	// 100%; vip's lookup would be throttled.
	h.sandbox.SetFaults(metasandbox.Faults{AudienceUsageBudget: 3})
	s := h.pacedSyncer(t, nil)
	rep := h.runAll(t, s)
	reqs := h.sandbox.Requests()
	if len(reqs) != 3 {
		for _, r := range reqs {
			t.Logf("%s %s %d %s usage %.0f%%", r.Method, r.Path, r.Status, r.Fault, r.UsagePct)
		}
		t.Fatalf("%d requests in the first run, want 3 (none after the usage reached 100%%): %+v", len(reqs), rep)
	}
	last := reqs[len(reqs)-1]
	if last.UsagePct != 100 || last.Status != 200 {
		t.Fatalf("last request %+v, want an accepted call at 100%%", last)
	}
	pause, ok, err := h.store.GetAccountPause(context.Background(), "act_1234567890")
	if err != nil || !ok {
		t.Fatalf("no pause stored: %v", err)
	}
	if want := h.now.Add(last.UsageReset); pause.NotBefore.Before(want.Add(-2*time.Second)) || pause.NotBefore.After(want.Add(2*time.Second)) {
		t.Errorf("not before %v, want about %v (the reset_time_duration)", pause.NotBefore, want)
	}
	if rep.Synced == 0 || rep.Synced == rep.Changes {
		t.Errorf("synced %d of %d changes: want cart_abandoner's only", rep.Synced, rep.Changes)
	}

	// Ten minutes later, still inside the window: nothing is sent, by this syncer or a new one.
	h.now = h.now.Add(10 * time.Minute)
	h.runAll(t, s)
	h.runAll(t, h.pacedSyncer(t, nil))
	if n := len(h.sandbox.Requests()); n != 3 {
		t.Fatalf("%d requests inside the pause, want none sent", n-3)
	}

	// After the window the sync goes on and completes.
	h.sandbox.SetFaults(metasandbox.Faults{})
	h.now = pause.NotBefore.Add(time.Second)
	rep = h.runAll(t, s)
	if rep.Synced != rep.Changes || rep.Changes == 0 {
		t.Fatalf("after the pause: synced %d of %d", rep.Synced, rep.Changes)
	}
}

// A throttle's announced wait is kept too: nothing goes to the account before it ends.
func TestThrottleWaitIsKept(t *testing.T) {
	h := newHarness(t)
	h.user(t, "c0", nil, []string{"cart_abandoner"}, 0)
	h.sandbox.SetFaults(metasandbox.Faults{AudienceRateLimitRate: 1, RegainAccessMinutes: 7})
	s := h.pacedSyncer(t, nil)
	h.runAll(t, s)
	if n := len(h.sandbox.Requests()); n != 1 {
		t.Fatalf("%d requests, want the one throttled", n)
	}
	pause, ok, _ := h.store.GetAccountPause(context.Background(), "act_1234567890")
	if !ok || !pause.NotBefore.Equal(h.now.Add(7*time.Minute)) {
		t.Fatalf("pause %+v (stored %v), want until now + 7 min", pause, ok)
	}
	h.sandbox.SetFaults(metasandbox.Faults{})
	h.now = h.now.Add(5 * time.Minute)
	h.runAll(t, s)
	if n := len(h.sandbox.Requests()); n != 1 {
		t.Fatalf("%d requests sent inside Meta's wait", n-1)
	}
	h.now = h.now.Add(2 * time.Minute)
	if rep := h.runAll(t, s); rep.Synced != 1 {
		t.Fatalf("after the wait: %+v", rep)
	}
}

// A run sends at most its share of the ad account's hourly budget on the app's access tier:
// on Development access (5,000 + 40 x 6 audiences an hour) a run every 2 seconds may send 2
// calls, so the create (lookup + create) and the upload go in two runs; on Standard access
// (190,000 an hour) one run does all.
func TestRunCallShareFollowsTheAccessTier(t *testing.T) {
	for _, tc := range []struct {
		tier      string
		firstRuns int // requests of the first run
		complete  bool
	}{
		{appconfig.TierDevelopment, 2, false},
		{appconfig.TierStandard, 3, true},
	} {
		t.Run(tc.tier, func(t *testing.T) {
			h := newHarness(t)
			h.user(t, "c0", nil, []string{"cart_abandoner"}, 0)
			s := h.pacedSyncer(t, func(c *Config) {
				c.AccessTiers = map[string]string{h.app: tc.tier}
				c.RunInterval = 2 * time.Second
			})
			rep := h.runAll(t, s)
			if n := len(h.sandbox.Requests()); n != tc.firstRuns || (rep.Synced == rep.Changes) != tc.complete {
				t.Fatalf("first run: %d requests, synced %d of %d; want %d requests, complete %v", n, rep.Synced, rep.Changes, tc.firstRuns, tc.complete)
			}
			if tc.complete {
				return
			}
			if rep.Audiences[0].Stopped == "" {
				t.Errorf("no reason given: %+v", rep.Audiences[0])
			}
			rep = h.runAll(t, s)
			if n := len(h.sandbox.Requests()); n != 3 || rep.Synced != rep.Changes {
				t.Fatalf("second run: %d requests in all, synced %d of %d", n, rep.Synced, rep.Changes)
			}
		})
	}
}

var _ ports.AudienceAPI = paced{}

// failingPauses is a state store whose pause writes fail (throttled, unavailable).
type failingPauses struct{ store }

func (failingPauses) ExtendAccountPause(context.Context, ports.AccountPause) error {
	return fmt.Errorf("dynamodb: throttled")
}

// A pause the state table did not take still holds in the next runs of the same process.
func TestPauseHoldsWhenTheStateTableMissesIt(t *testing.T) {
	h := newHarness(t)
	h.user(t, "c0", nil, []string{"cart_abandoner"}, 0)
	h.sandbox.SetFaults(metasandbox.Faults{AudienceRateLimitRate: 1, RegainAccessMinutes: 7})
	s := h.pacedSyncer(t, func(c *Config) { c.State = failingPauses{h.store} })
	h.runAll(t, s)
	h.sandbox.SetFaults(metasandbox.Faults{})
	h.now = h.now.Add(5 * time.Minute)
	h.runAll(t, s)
	if n := len(h.sandbox.Requests()); n != 1 {
		t.Fatalf("%d requests sent inside Meta's wait", n-1)
	}
}

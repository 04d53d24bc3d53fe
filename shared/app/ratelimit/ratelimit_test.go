package ratelimit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration)           { c.t = c.t.Add(d) }
func newClock() *clock                         { return &clock{t: time.Unix(1_764_300_000, 0)} } // a window start
func fixed(l Limit) func(string) (Limit, bool) { return func(string) (Limit, bool) { return l, true } }

// counter is the shared table: totals by app and window start, shared by the limiters of a test.
type counter struct {
	mu    sync.Mutex
	total map[string]int64
	calls int
	err   error
}

func (c *counter) Add(_ context.Context, app string, start time.Time, window time.Duration, n int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.err != nil {
		return 0, c.err
	}
	if c.total == nil {
		c.total = map[string]int64{}
	}
	k := app + "#" + start.Format(time.RFC3339)
	c.total[k] += n
	return c.total[k], nil
}

func allowN(t *testing.T, l *Limiter, app string, n int) {
	t.Helper()
	for i := range n {
		if d := l.Allow(context.Background(), app); !d.Allowed {
			t.Fatalf("request %d of %d refused: %+v", i+1, n, d)
		}
	}
}

func TestLocalBurstAndRefill(t *testing.T) {
	c := newClock()
	l := New(Options{Limits: fixed(Limit{Rate: 2, Burst: 3}), Now: c.now})
	allowN(t, l, "shop", 3)
	d := l.Allow(context.Background(), "shop")
	if d.Allowed || d.Global || d.RetryAfter != time.Second {
		t.Fatalf("4th request of a burst of 3: %+v, want refused locally, retry after 1s", d)
	}
	// Another app has its own bucket.
	allowN(t, l, "game", 3)
	// Half a second refills one token at 2/s.
	c.add(500 * time.Millisecond)
	allowN(t, l, "shop", 1)
	if d := l.Allow(context.Background(), "shop"); d.Allowed {
		t.Fatal("allowed beyond the refill")
	}
	// A long pause refills to the burst, not beyond.
	c.add(time.Minute)
	allowN(t, l, "shop", 3)
	if d := l.Allow(context.Background(), "shop"); d.Allowed {
		t.Fatal("the bucket filled beyond its burst")
	}
}

func TestRetryAfterOfASlowRate(t *testing.T) {
	c := newClock()
	l := New(Options{Limits: fixed(Limit{Rate: 0.25, Burst: 1}), Now: c.now})
	allowN(t, l, "shop", 1)
	d := l.Allow(context.Background(), "shop")
	if d.Allowed || d.RetryAfter != 4*time.Second || RetryAfterHeader(d.RetryAfter) != "4" {
		t.Fatalf("refused %+v (header %q), want retry after 4s", d, RetryAfterHeader(d.RetryAfter))
	}
}

// Two instances share the window's count: together they stop at the window's budget (burst +
// rate x window), though each one's bucket would let more through.
func TestGlobalCountAcrossInstances(t *testing.T) {
	c := newClock()
	shared := &counter{}
	lim := Limit{Rate: 10, Burst: 20} // budget 20 + 10 x 10 s = 120 per window
	a := New(Options{Limits: fixed(lim), Counter: shared, Now: c.now})
	b := New(Options{Limits: fixed(lim), Counter: shared, Now: c.now})
	if got := a.Budget(lim); got != 120 {
		t.Fatalf("budget %d, want 120", got)
	}
	allowed, global := 0, 0
	// 9 seconds of both instances at their local rate: 2 x (20 + 9 x 10) = 220 > 120.
	for s := 0; s < 10; s++ {
		for range 30 {
			for _, l := range []*Limiter{a, b} {
				d := l.Allow(context.Background(), "shop")
				if d.Allowed {
					allowed++
				} else if d.Global {
					global++
					if want := time.Duration(10-s) * time.Second; d.RetryAfter != want {
						t.Fatalf("second %d: retry after %v, want the window's end in %v", s, d.RetryAfter, want)
					}
				}
			}
		}
		c.add(time.Second)
		if s == 8 {
			break
		}
	}
	// Each instance learns the others' count at most a second late: at most one second of
	// both instances' rate over the budget.
	if allowed < 120 || allowed > 120+2*10+2 {
		t.Errorf("%d requests allowed in one window, want about the budget of 120", allowed)
	}
	if global == 0 {
		t.Error("the shared count never refused a request")
	}
	// Once a second at most per instance: 9 seconds, 2 instances.
	if shared.calls > 2*9 {
		t.Errorf("%d counter calls in 9 s by 2 instances, want at most 18", shared.calls)
	}
	// The next window starts from nothing.
	c.add(time.Second)
	if d := a.Allow(context.Background(), "shop"); !d.Allowed {
		t.Errorf("first request of a new window refused: %+v", d)
	}
}

func TestSyncAtMostOncePerInterval(t *testing.T) {
	c := newClock()
	shared := &counter{}
	l := New(Options{Limits: fixed(Limit{Rate: 1000, Burst: 1000}), Counter: shared, Now: c.now})
	allowN(t, l, "shop", 100)
	if shared.calls != 1 {
		t.Errorf("%d syncs for 100 requests in the same instant, want 1", shared.calls)
	}
	c.add(999 * time.Millisecond)
	allowN(t, l, "shop", 10)
	if shared.calls != 1 {
		t.Errorf("%d syncs before a second passed, want 1", shared.calls)
	}
	c.add(time.Millisecond)
	allowN(t, l, "shop", 1)
	if shared.calls != 2 {
		t.Errorf("%d syncs after a second, want 2", shared.calls)
	}
	// The second sync carried every request since the first.
	if got := shared.total["shop#"+c.t.Truncate(DefaultWindow).Format(time.RFC3339)]; got != 111 {
		t.Errorf("shared total %d, want 111", got)
	}
}

// A failing counter lets requests through (fail open) within the local bucket, reports the
// error, and the requests are counted at the next sync that works.
func TestCounterErrorFailsOpen(t *testing.T) {
	c := newClock()
	shared := &counter{err: errors.New("ProvisionedThroughputExceededException")}
	var reported []string
	l := New(Options{Limits: fixed(Limit{Rate: 5, Burst: 5}), Counter: shared, Now: c.now,
		OnSyncError: func(app string, err error) { reported = append(reported, app+": "+err.Error()) }})
	allowN(t, l, "shop", 5)
	if len(reported) != 1 || reported[0] != "shop: ProvisionedThroughputExceededException" {
		t.Errorf("reported %q", reported)
	}
	if d := l.Allow(context.Background(), "shop"); d.Allowed || d.Global {
		t.Errorf("the local bucket no longer bounds the app: %+v", d)
	}
	shared.err = nil
	c.add(time.Second)
	allowN(t, l, "shop", 1)
	if got := shared.total["shop#"+c.t.Truncate(DefaultWindow).Format(time.RFC3339)]; got != 6 {
		t.Errorf("shared total %d after recovery, want all 6 requests", got)
	}
}

func TestUnlimitedApps(t *testing.T) {
	l := New(Options{Limits: func(app string) (Limit, bool) { return Limit{Rate: 1, Burst: 1}, app == "shop" }})
	allowN(t, l, "other", 1000)
	allowN(t, New(Options{}), "shop", 1000)
}

func TestConfigLimits(t *testing.T) {
	cfg := &appconfig.Config{Apps: []appconfig.App{
		{ID: "shop", APIKey: appconfig.APIKey{RateLimit: 50, BurstLimit: 100}},
		{ID: "game"},
	}}
	limits := ConfigLimits(cfg)
	for app, want := range map[string]Limit{"shop": {50, 100}, "game": {DefaultRate, DefaultBurst}} {
		if got, ok := limits(app); !ok || got != want {
			t.Errorf("%s: %+v %v, want %+v", app, got, ok, want)
		}
	}
	if _, ok := limits("unknown"); ok {
		t.Error("an unknown app is limited")
	}
}

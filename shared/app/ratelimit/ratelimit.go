// Package ratelimit is the per-app request limit of the HTTP API front door, which has no
// usage plans (infra/docs/front-door.md). It approximates an API Gateway usage plan's throttle
// (a token bucket of Rate requests per second and Burst) cheaply, in the function itself:
//
//   - locally, one token bucket per app and instance: an instance never lets an app exceed its
//     Rate and Burst, whatever the others do;
//   - globally, a count per app and Window shared by every instance through a Counter
//     (DynamoDB UpdateItem ADD on one item per app and window): each instance adds the requests
//     it let through since its last sync and learns the total, at most once per SyncEvery. An
//     app whose window total reached Burst + Rate x Window is refused by every instance until
//     the window ends.
//
// The global count lags by up to SyncEvery per instance, so N busy instances can overshoot a
// window's budget by about N x Rate x SyncEvery before all of them see it; the local bucket
// bounds each one meanwhile.
//
// A Counter that fails is logged and ignored (fail open): the local buckets still bound every
// instance, and refusing an app's events because the counter table is unavailable would lose
// more than it protects. The failed requests are added at the next successful sync.
package ratelimit

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Defaults, the same as the REST door's usage plans (stack.DefaultRateLimit, DefaultBurstLimit).
const (
	DefaultRate      = 500
	DefaultBurst     = 1000
	DefaultWindow    = 10 * time.Second
	DefaultSyncEvery = time.Second
	// SyncTimeout bounds one Counter call: a slow table delays the request that syncs by at most
	// this much.
	SyncTimeout = 200 * time.Millisecond
)

// Limit is an app's throttle: Rate requests per second steady, Burst at once.
type Limit struct {
	Rate, Burst float64
}

// Counter is the shared count (ports.RateCounter).
type Counter = ports.RateCounter

// Options configure a Limiter.
type Options struct {
	// Limits returns an app's limit; ok false: the app is not limited.
	Limits func(app string) (Limit, bool)
	// Counter shares the counts across instances; nil limits each instance on its own.
	Counter Counter
	// Window of the shared count (default DefaultWindow) and the least time between two syncs
	// of one app (default DefaultSyncEvery).
	Window, SyncEvery time.Duration
	// OnSyncError is told about a failed sync (default: nothing).
	OnSyncError func(app string, err error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Decision is the answer to one request.
type Decision struct {
	Allowed bool
	// RetryAfter is how long the client should wait when refused: until the app's bucket holds
	// a token again, or until the shared window ends. Whole seconds, at least one.
	RetryAfter time.Duration
	// Global is true when the shared count refused the request (false: this instance's bucket).
	Global bool
}

// Limiter decides, per app, whether one more request may pass. Safe for concurrent use.
type Limiter struct {
	opts Options
	mu   sync.Mutex
	apps map[string]*bucket
}

type bucket struct {
	limit    Limit
	tokens   float64
	last     time.Time
	window   time.Time // start of the current shared window
	total    int64     // the window's shared total as last learnt (this instance's synced requests included)
	unsynced int64     // requests let through since the last sync, in this window
	lastSync time.Time
	syncing  bool
}

// New returns a Limiter.
func New(opts Options) *Limiter {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.SyncEvery <= 0 {
		opts.SyncEvery = DefaultSyncEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Limits == nil {
		opts.Limits = func(string) (Limit, bool) { return Limit{}, false }
	}
	return &Limiter{opts: opts, apps: map[string]*bucket{}}
}

// Budget is what every instance together lets through in one window: a full bucket and the
// window's refill.
func (l *Limiter) Budget(lim Limit) int64 {
	return int64(lim.Burst + lim.Rate*l.opts.Window.Seconds())
}

// Allow decides one request of app, and syncs the app's count when it is due (which may wait
// up to SyncTimeout for the Counter).
func (l *Limiter) Allow(ctx context.Context, app string) Decision {
	now := l.opts.Now()
	l.mu.Lock()
	b, ok := l.apps[app]
	if !ok {
		lim, limited := l.opts.Limits(app)
		if !limited || lim.Rate <= 0 {
			l.mu.Unlock()
			return Decision{Allowed: true}
		}
		b = &bucket{limit: lim, tokens: lim.Burst, last: now}
		l.apps[app] = b
	}
	// Refill.
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(b.limit.Burst, b.tokens+el*b.limit.Rate)
		b.last = now
	}
	// A new window starts from nothing: the old one's unsynced requests only counted there.
	if w := now.Truncate(l.opts.Window); !w.Equal(b.window) {
		b.window, b.total, b.unsynced = w, 0, 0
	}
	end := b.window.Add(l.opts.Window)
	if b.total+b.unsynced >= l.Budget(b.limit) {
		l.mu.Unlock()
		return Decision{RetryAfter: wholeSeconds(end.Sub(now)), Global: true}
	}
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) / b.limit.Rate * float64(time.Second))
		l.mu.Unlock()
		return Decision{RetryAfter: wholeSeconds(wait)}
	}
	b.tokens--
	b.unsynced++
	if l.opts.Counter == nil || b.syncing || now.Sub(b.lastSync) < l.opts.SyncEvery {
		l.mu.Unlock()
		return Decision{Allowed: true}
	}
	n, window := b.unsynced, b.window
	b.syncing, b.unsynced, b.lastSync = true, 0, now
	l.mu.Unlock()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SyncTimeout)
	total, err := l.opts.Counter.Add(sctx, app, window, l.opts.Window, n)
	cancel()

	l.mu.Lock()
	b.syncing = false
	switch {
	case !b.window.Equal(window):
		// The window ended meanwhile: its total no longer matters.
	case err != nil:
		b.unsynced += n // counted at the next successful sync
	default:
		b.total = total
	}
	l.mu.Unlock()
	if err != nil && l.opts.OnSyncError != nil {
		l.opts.OnSyncError(app, err)
	}
	return Decision{Allowed: true}
}

// wholeSeconds rounds d up to whole seconds, at least one (Retry-After takes seconds).
func wholeSeconds(d time.Duration) time.Duration {
	s := math.Ceil(d.Seconds())
	if s < 1 {
		s = 1
	}
	return time.Duration(s) * time.Second
}

// RetryAfterHeader is d as a Retry-After value (whole seconds).
func RetryAfterHeader(d time.Duration) string {
	return strconv.FormatInt(int64(wholeSeconds(d)/time.Second), 10)
}

// ConfigLimits is Options.Limits for the apps of cfg: each app's api_key rate_limit and
// burst_limit (the settings of its REST usage plan), else DefaultRate and DefaultBurst.
func ConfigLimits(cfg *appconfig.Config) func(app string) (Limit, bool) {
	return func(id string) (Limit, bool) {
		app, ok := cfg.App(id)
		if !ok {
			return Limit{}, false
		}
		lim := Limit{Rate: DefaultRate, Burst: DefaultBurst}
		if r := app.APIKey.RateLimit; r > 0 {
			lim.Rate = float64(r)
		}
		if b := app.APIKey.BurstLimit; b > 0 {
			lim.Burst = float64(b)
		}
		return lim, true
	}
}

package audiencesync

// Request pacing: Meta counts Custom Audiences calls per ad account (the custom_audience
// business use case), tells how much of the budget is used in the usage headers of every
// answer, and throttles at 100% (codes 80003, 4, 17, 613, 80000-80014) for
// estimated_time_to_regain_access minutes. Sources: Marketing API rate limiting,
// https://developers.facebook.com/docs/marketing-api/overview/rate-limiting, and Graph API rate
// limiting, https://developers.facebook.com/docs/graph-api/overview/rate-limiting (headers
// X-Business-Use-Case-Usage, X-Ad-Account-Usage), as summarised in the project's Meta reference
// notes (section 1 and "Corrections and additions (December 2026)").
//
// The sync therefore:
//   - keeps a "not before" per ad account in the state table (ports.AccountPause): no call goes
//     to the account before it, in this run or the next ones, whichever app's run it is;
//   - sets it when Meta throttles with a wait (estimated_time_to_regain_access,
//     reset_time_duration, Retry-After), and once an answer's usage reaches PauseAtUsagePct:
//     for the wait its headers announce, else UsagePause. Slowing down before 100% keeps Meta
//     from throttling at all (a throttle without a wait stops the account for the run only);
//   - sends at most a run's share of the account's hourly budget per run: the budget of the
//     app's meta.access_tier (appconfig.AudienceCallsPerHour) times RunInterval / 1 hour. The
//     deployed schedule runs every 5 minutes (DefaultRunInterval), so one run sends at most a
//     twelfth of the hourly budget and a full hour of runs stays within it. Calls left over
//     wait for the next run, as any interrupted upload does.
//
// A call the pacing refuses is a *ports.CAPIError of class RateLimited, sent nowhere: the
// sync stops the ad account for the run exactly as for a throttle from Meta.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/ports"
)

const (
	// PauseAtUsagePct is the usage percentage from which the sync pauses an ad account: Meta
	// throttles at 100 and asks integrations to slow down before.
	PauseAtUsagePct = 85
	// DefaultUsagePause is the default Config.UsagePause.
	DefaultUsagePause = 5 * time.Minute
	// DefaultRunInterval is the default Config.RunInterval: the deployed schedule
	// (infra/stack DefaultAudienceSyncIntervalMinutes).
	DefaultRunInterval = 5 * time.Minute
	// maxPause bounds a pause read from headers: Meta's windows are an hour long.
	maxPause = time.Hour
	// createCalls is what CreateAudience costs: the name lookup, then the create.
	createCalls = 2
)

// pacer paces one run's calls per ad account.
type pacer struct {
	s        *Syncer
	mu       sync.Mutex
	accounts map[string]*accountPace
}

type accountPace struct {
	loaded    bool
	notBefore time.Time
	reason    string
	calls     int
	cap       int
}

// newPacer starts the pacing of one run.
func (s *Syncer) newPacer() *pacer { return &pacer{s: s, accounts: map[string]*accountPace{}} }

// runCap is a run's share of the ad account's hourly budget on the app's tier, counting the
// audiences of every app on that account as the active ones.
func (s *Syncer) runCap(app, account string) int {
	active := 0
	for _, aa := range s.cfg.Audiences {
		for _, a := range aa.Audiences() {
			if a.AdAccountID() == account {
				active++
			}
		}
	}
	perHour := appconfig.AudienceCallsPerHour(s.cfg.AccessTiers[app], active)
	// At least a create's calls, so that a tiny share still makes progress.
	return max(createCalls, int(int64(perHour)*int64(s.cfg.RunInterval)/int64(time.Hour)))
}

// paced is the AudienceAPI of one audience's ad account, paced.
type paced struct {
	p       *pacer
	app     string
	account string
}

var _ ports.AudienceAPI = paced{}

// meta returns the paced AudienceAPI for a's ad account.
func (s *Syncer) meta(app string, a *audiences.Audience) paced {
	s.paceMu.Lock()
	p := s.pace
	s.paceMu.Unlock()
	if p == nil {
		p = s.newPacer()
	}
	return paced{p: p, app: app, account: a.AdAccountID()}
}

// CreateAudience creates the audience if the account may be called now.
func (m paced) CreateAudience(ctx context.Context, na ports.NewAudience) (string, error) {
	if err := m.p.admit(ctx, m.app, m.account, createCalls); err != nil {
		return "", err
	}
	id, err := m.p.s.cfg.Meta.CreateAudience(ctx, na)
	m.p.observe(ctx, m.account, 0, 0, err)
	return id, err
}

// Upload sends one batch if the account may be called now, then reads its usage.
func (m paced) Upload(ctx context.Context, u ports.AudienceUpload) (ports.AudienceAck, error) {
	if err := m.p.admit(ctx, m.app, m.account, 1); err != nil {
		return ports.AudienceAck{}, err
	}
	ack, err := m.p.s.cfg.Meta.Upload(ctx, u)
	m.p.observe(ctx, m.account, ack.UsagePct, ack.RegainAfter, err)
	return ack, err
}

// admit counts calls against the account's run share, or refuses them (nothing sent) while the
// account is paused or its share is used.
func (p *pacer) admit(ctx context.Context, app, account string, calls int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ap := p.accounts[account]
	if ap == nil {
		ap = &accountPace{cap: p.s.runCap(app, account)}
		p.accounts[account] = ap
	}
	if !ap.loaded {
		stored, ok, err := p.s.cfg.State.GetAccountPause(ctx, account)
		if err != nil {
			return fmt.Errorf("ad account pause: %w", err)
		}
		if ok && stored.NotBefore.After(ap.notBefore) {
			ap.notBefore, ap.reason = stored.NotBefore, stored.Reason
		}
		if known := p.s.knownPause(account); known.NotBefore.After(ap.notBefore) {
			ap.notBefore, ap.reason = known.NotBefore, known.Reason
		}
		ap.loaded = true
	}
	now := p.s.cfg.Now()
	if now.Before(ap.notBefore) {
		return &ports.CAPIError{Class: ports.CAPIRateLimited, RetryAfter: ap.notBefore.Sub(now),
			Err: fmt.Errorf("audiencesync: ad account %s paused until %s (%s): nothing sent", account, ap.notBefore.UTC().Format(time.RFC3339), ap.reason)}
	}
	if ap.calls+calls > ap.cap {
		return &ports.CAPIError{Class: ports.CAPIRateLimited,
			Err: fmt.Errorf("audiencesync: ad account %s used this run's share of its hourly call budget (%d calls): the next run goes on", account, ap.cap)}
	}
	ap.calls += calls
	return nil
}

// observe reads an answer's usage (from the ack, or from err) and pauses the account when Meta
// throttled it with a wait, or the usage reached PauseAtUsagePct: for the wait the headers
// announce (reset_time_duration, estimated_time_to_regain_access), else for UsagePause. A
// wait announced at a lower usage is the time to a reset nobody needs to wait for.
func (p *pacer) observe(ctx context.Context, account string, pct float64, wait time.Duration, err error) {
	var ce *ports.CAPIError
	throttled := false
	if errors.As(err, &ce) {
		pct, wait = max(pct, ce.UsagePct), max(wait, ce.RetryAfter)
		throttled = ce.Class == ports.CAPIRateLimited
	}
	var reason string
	switch {
	case throttled && wait > 0:
		reason = fmt.Sprintf("throttled by Meta, asked to wait %s", wait.Round(time.Second))
	case pct >= PauseAtUsagePct && wait > 0:
		reason = fmt.Sprintf("usage %.0f%% reached the %d%% pause threshold; Meta's reset in %s", pct, PauseAtUsagePct, wait.Round(time.Second))
	case pct >= PauseAtUsagePct && !throttled:
		wait, reason = p.s.cfg.UsagePause, fmt.Sprintf("usage %.0f%% reached the %d%% pause threshold", pct, PauseAtUsagePct)
	default:
		return
	}
	until := p.s.cfg.Now().Add(min(wait, maxPause))
	p.mu.Lock()
	ap := p.accounts[account]
	extend := ap != nil && until.After(ap.notBefore)
	if extend {
		ap.notBefore, ap.reason = until, reason
	}
	p.mu.Unlock()
	if !extend {
		return
	}
	p.s.rememberPause(ports.AccountPause{AdAccountID: account, NotBefore: until, Reason: reason})
	p.s.cfg.Logger.Warn("Meta rate-limit usage: pausing the ad account's audience calls", "ad_account", account,
		"not_before", until.UTC().Format(time.RFC3339), "reason", reason)
	p.s.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}, {Name: "AdAccount", Value: account}},
		observability.Metric{Name: "AudienceAccountPausedSeconds", Unit: observability.Count, Value: until.Sub(p.s.cfg.Now()).Seconds()})
	if err := p.s.cfg.State.ExtendAccountPause(context.WithoutCancel(ctx), ports.AccountPause{AdAccountID: account, NotBefore: until, Reason: reason}); err != nil {
		// The pause holds in this run and, in memory, in the next runs of this container.
		p.s.cfg.Logger.Warn("ad account pause not stored", "ad_account", account, "error", err.Error())
	}
}

// rememberPause keeps a pause in the Syncer's memory too, for the next runs of this process:
// the state table may have refused the write (throttled, unavailable), and the next run must
// not call before the pause ends either.
func (s *Syncer) rememberPause(p ports.AccountPause) {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	if s.known == nil {
		s.known = map[string]ports.AccountPause{}
	}
	if p.NotBefore.After(s.known[p.AdAccountID].NotBefore) {
		s.known[p.AdAccountID] = p
	}
}

// knownPause is the latest pause of account this process set (zero when none).
func (s *Syncer) knownPause(account string) ports.AccountPause {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	return s.known[account]
}

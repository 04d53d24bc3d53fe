// Package audiencesync turns segment membership changes into Meta Custom Audience uploads. A run
// takes the app's lease, reads the pending changes (the sparse index the segment updater and
// sweeper write), reconciles each affected user's current segments with the audiences they
// should be in (exclusive groups included), uploads removals and additions per audience in
// sessions of up to 10,000 rows, checkpoints after every batch Meta acknowledged, and marks the
// changes synced once everything they caused is acknowledged. A run that stops anywhere (timeout,
// crash, rate limit) is resumed by the next: an interrupted session continues at its next batch.
// Every acknowledged batch also updates the audience's member index, from which the optional
// periodic full refresh (refresh.go) replaces the audience whole to heal drift.
//
// An audience with a holdout is two Meta audiences, keyed by segment and "<segment>:holdout"
// (package audiences): each user of the segment goes to the one of their holdout arm. Both are
// synced, created, refreshed, reported and measured alike, each under its own key.
package audiencesync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Consumer names this function in logs and metrics.
const Consumer = "audience-sync"

// Defaults.
const (
	// DefaultMaxChanges bounds the changes one run plans per app; a larger backlog continues in
	// the next run.
	DefaultMaxChanges = 200_000
	// LeaseTTL outlives the function's timeout, so a crashed run's lease expires on its own.
	LeaseTTL = 15 * time.Minute
	// sessionWindow is kept under Meta's 90 minutes: an older session is not resumed.
	sessionWindow = 80 * time.Minute
	pageSize      = 1000
	// refreshInProgress is AudienceReport.Stopped of an audience whose changes wait for its
	// full refresh to end.
	refreshInProgress = "full refresh in progress"
)

// Config wires a Syncer.
type Config struct {
	Audiences map[string]*audiences.AppAudiences // by app id
	Users     ports.SegmentStore
	State     ports.AudienceSyncStore
	Meta      ports.AudienceAPI
	// Holder names this run for the lease (default: random).
	Holder     string
	MaxChanges int
	// RefreshReserve is the time before the context's deadline after which no full refresh
	// batch starts (default DefaultRefreshReserve).
	RefreshReserve time.Duration
	// AccessTiers are the apps' meta.access_tier (by app id; "" or absent: standard), and
	// RunInterval the schedule (default DefaultRunInterval): together they size a run's calls
	// per ad account. UsagePause is the pause once usage reaches PauseAtUsagePct without a wait
	// from Meta (default DefaultUsagePause). See pace.go.
	AccessTiers map[string]string
	RunInterval time.Duration
	UsagePause  time.Duration
	Logger      *slog.Logger
	Metrics     *observability.Emitter
	Now         func() time.Time
}

// Syncer runs audience sync.
type Syncer struct {
	cfg Config
	// pace paces the current run's calls per ad account (pace.go).
	paceMu sync.Mutex
	pace   *pacer
	// known are the pauses this process set, should the state table miss one (pace.go).
	knownMu sync.Mutex
	known   map[string]ports.AccountPause
}

// New returns a Syncer.
func New(cfg Config) (*Syncer, error) {
	if cfg.Audiences == nil || cfg.Users == nil || cfg.State == nil || cfg.Meta == nil {
		return nil, errors.New("audiencesync: Audiences, Users, State and Meta are required")
	}
	if cfg.Holder == "" {
		var b [8]byte
		rand.Read(b[:])
		cfg.Holder = hex.EncodeToString(b[:])
	}
	if cfg.MaxChanges <= 0 {
		cfg.MaxChanges = DefaultMaxChanges
	}
	if cfg.RefreshReserve <= 0 {
		cfg.RefreshReserve = DefaultRefreshReserve
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RunInterval <= 0 {
		cfg.RunInterval = DefaultRunInterval
	}
	if cfg.UsagePause <= 0 {
		cfg.UsagePause = DefaultUsagePause
	}
	return &Syncer{cfg: cfg}, nil
}

// AudienceReport says what one run did for one audience.
type AudienceReport struct {
	Segment, AudienceID  string
	Added, Removed       int
	Invalid, Unmatchable int
	Requests             int
	Complete             bool
	Stopped              string // why the audience stopped early ("" when complete)
	// RemovalsHeld counts the removals Meta refused in this run (or still in backoff), held
	// pending with its answer RemovalError; the additions went on (see held.go).
	RemovalsHeld int
	RemovalError string
	// heldUsers are the users whose removal is held; addsDone: the additions all went through.
	heldUsers map[string]bool
	addsDone  bool

	// The full refresh: Refreshing when one ran in this run, Refreshed when it finished; the
	// rows it uploaded and the members it left out in this run.
	Refreshing, Refreshed        bool
	RefreshRows, RefreshExcluded int
	RefreshStopped               string
}

// AppReport says what one run did for one app.
type AppReport struct {
	App     string
	Leased  bool
	Changes int // pending changes planned
	Synced  int // changes marked synced
	// Deferred counts the users whose state had not reached their changes yet: their changes
	// stay pending for a later run.
	Deferred   int
	Audiences  []AudienceReport
	AuthFailed bool
	// VersionExpired: Meta refused the Marketing API version as expired (2635); the app's sync
	// stopped until a current version is configured.
	VersionExpired bool
}

// Run syncs every app once.
func (s *Syncer) Run(ctx context.Context) ([]AppReport, error) {
	apps := make([]string, 0, len(s.cfg.Audiences))
	for app := range s.cfg.Audiences {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	s.paceMu.Lock()
	s.pace = s.newPacer() // each run has its share of the hourly budgets
	s.paceMu.Unlock()
	var reports []AppReport
	var errs []error
	for _, app := range apps {
		r, err := s.syncApp(ctx, app)
		reports = append(reports, r)
		s.record(r)
		s.health(ctx, app)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", app, err))
		}
	}
	return reports, errors.Join(errs...)
}

// upload is the rows one operation sends to one audience.
type upload struct {
	op   ports.AudienceOp
	rows [][]string
}

func (s *Syncer) syncApp(ctx context.Context, app string) (AppReport, error) {
	rep := AppReport{App: app}
	aa := s.cfg.Audiences[app]
	if len(aa.Audiences()) == 0 {
		return rep, nil
	}
	now := s.cfg.Now()
	ok, err := s.cfg.State.AcquireLease(ctx, app, s.cfg.Holder, now, now.Add(LeaseTTL))
	if err != nil || !ok {
		return rep, err // another run holds the lease: it does the work
	}
	rep.Leased = true
	defer s.cfg.State.ReleaseLease(context.WithoutCancel(ctx), app, s.cfg.Holder)

	// Which users changed, and which audiences that can affect.
	var changes []ports.PendingChange
	affected := map[string]map[string]bool{} // user key -> audience keys (both arms)
	changed := map[string]map[string]bool{}  // user key -> segments with a pending change
	waits := map[string]stateWait{}          // user key -> the state its changes belong to
	for _, a := range aa.Audiences() {
		if a.Arm() == holdout.Holdout {
			continue // changes are recorded per segment: the treated audience reads them for both
		}
		cursor := ""
		for len(changes) < s.cfg.MaxChanges {
			page, next, err := s.cfg.Users.PendingChanges(ctx, app, a.Base(), cursor, min(pageSize, s.cfg.MaxChanges-len(changes)))
			if err != nil {
				return rep, fmt.Errorf("pending changes of %s: %w", a.Base(), err)
			}
			for _, c := range page {
				changes = append(changes, c)
				if affected[c.UserKey] == nil {
					affected[c.UserKey] = map[string]bool{}
					changed[c.UserKey] = map[string]bool{}
				}
				changed[c.UserKey][c.Segment] = true
				if w := waits[c.UserKey]; c.StateVersion > w.version || (c.StateVersion == w.version && c.RecordedAt > w.recordedAt) {
					waits[c.UserKey] = stateWait{version: c.StateVersion, recordedAt: c.RecordedAt}
				}
				for _, seg := range aa.Affected(c.Segment) {
					affected[c.UserKey][seg] = true
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	rep.Changes = len(changes)
	if len(changes) == 0 {
		if err := s.touchAll(ctx, aa, now); err != nil {
			return rep, err
		}
		return rep, s.refreshAll(ctx, aa, &rep, func(*audiences.Audience) bool { return true }, now)
	}

	// Reconcile each affected user's current segments with the audiences they should be in.
	users := make([]string, 0, len(affected))
	for uk := range affected {
		users = append(users, uk)
	}
	sort.Strings(users)
	plans := map[string]*[2]upload{} // audience key -> [remove, add]
	deferred := map[string]bool{}    // users whose state has not caught up with their changes
	reports := map[string]*AudienceReport{}
	for _, a := range aa.Audiences() {
		plans[a.Segment()] = &[2]upload{{op: ports.AudienceRemove}, {op: ports.AudienceAdd}}
		reports[a.Segment()] = &AudienceReport{Segment: a.Segment()}
	}
	for start := 0; start < len(users); start += pageSize {
		chunk := users[start:min(start+pageSize, len(users))]
		views, err := s.readUsers(ctx, app, chunk)
		if err != nil {
			return rep, err
		}
		for i, uk := range chunk {
			if !waits[uk].reached(views[i], now) {
				// The changes were recorded, the state they belong to is not written yet: plan
				// the user in a later run, from that state (planning now would use the old one).
				deferred[uk] = true
				continue
			}
			s.plan(aa, uk, views[i], affected[uk], changed[uk], plans, reports)
		}
	}

	stoppedAccounts := map[string]bool{} // rate limited: back off for the whole ad account
	for _, a := range aa.Audiences() {
		r := reports[a.Segment()]
		plan := plans[a.Segment()]
		if len(plan[0].rows) == 0 && len(plan[1].rows) == 0 {
			r.Complete = true
			continue
		}
		if stoppedAccounts[a.AdAccountID()] {
			r.Stopped = "rate limited (ad account backing off)"
			rep.Audiences = append(rep.Audiences, *r)
			continue
		}
		done, err := s.syncAudience(ctx, aa, a, plan, r, now)
		rep.Audiences = append(rep.Audiences, *r)
		if done {
			continue
		}
		if s.stopped(err, &rep, a, stoppedAccounts) {
			return rep, nil
		}
	}
	// A change is synced once every audience it can affect is, treated and holdout alike: the
	// others stay pending and the next run resumes them, without holding back the rest.
	rep.Deferred = len(deferred)
	var synced []ports.PendingChange
	for _, c := range changes {
		ok := !deferred[c.UserKey]
		for _, seg := range aa.Affected(c.Segment) {
			r := reports[seg]
			// A held removal keeps only its own users' changes pending, not the additions'.
			ok = ok && (r.Complete || (r.addsDone && r.heldUsers != nil && !r.heldUsers[c.UserKey]))
		}
		if ok {
			synced = append(synced, c)
		}
	}
	if len(synced) > 0 {
		if err := s.cfg.Users.MarkSynced(ctx, synced); err != nil {
			return rep, fmt.Errorf("mark synced: %w", err)
		}
	}
	rep.Synced = len(synced)
	return rep, s.refreshAll(ctx, aa, &rep, func(a *audiences.Audience) bool {
		r := reports[a.Segment()]
		return (r.Complete || r.Stopped == refreshInProgress) && !stoppedAccounts[a.AdAccountID()]
	}, now)
}

// userView is what the sync needs of one user's stored record.
type userView struct {
	found    bool
	version  int64
	segments []string
	state    *segments.State // nil when not found
}

// StateCatchUpGrace bounds the wait for a user's state to reach the version its recorded
// changes belong to: past it (a write that never landed: the event source mapping skips records
// after 6 hours of failures) the changes are planned from the state as it is.
const StateCatchUpGrace = 7 * time.Hour

// stateWait is the state write a user's pending changes belong to: the highest StateVersion
// among them, and when its change was recorded.
type stateWait struct {
	version, recordedAt int64
}

// reached reports whether the user's state (as read) includes the write the changes belong to,
// or the grace period is over. Changes without a version (recorded before versions were kept)
// never wait.
func (w stateWait) reached(u userView, now time.Time) bool {
	if w.version == 0 || u.version >= w.version {
		return true
	}
	return now.Sub(time.UnixMilli(w.recordedAt)) > StateCatchUpGrace
}

// readUsers reads the users' records, readConcurrency at a time; views[i] is keys[i]'s.
func (s *Syncer) readUsers(ctx context.Context, app string, keys []string) ([]userView, error) {
	views := make([]userView, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, readConcurrency)
	var wg sync.WaitGroup
	for i, uk := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rec, found, err := s.cfg.Users.GetUser(ctx, app, uk)
			if err != nil {
				errs[i] = fmt.Errorf("read user: %w", err)
				return
			}
			if !found {
				return
			}
			st := &segments.State{}
			if err := json.Unmarshal(rec.State, st); err != nil {
				errs[i] = fmt.Errorf("stored state of a user does not decode: %w", err)
				return
			}
			views[i] = userView{found: true, version: rec.Version, segments: rec.Segments, state: st}
		})
	}
	wg.Wait()
	return views, errors.Join(errs...)
}

// plan adds one affected user's rows to the uploads: an add for each audience the user should
// be in, a removal for each the user may be in and should not.
//
// Of a segment's two audiences, the user's arm picks the one they are added to, and only that
// one gets their removal: the assignment is stable, so a user was only ever added to the
// audience of their arm. Changing holdout_fraction or holdout_salt re-draws arms, which makes a
// new experiment: users who switched arms are not removed from their old arm's audience by
// their next change; the full refresh (refresh.go) rebuilds both audiences from their member
// indexes and leaves them out.
func (s *Syncer) plan(aa *audiences.AppAudiences, uk string, u userView, affected, changed map[string]bool, plans map[string]*[2]upload, reports map[string]*AudienceReport) {
	desired := aa.DesiredFor(uk, u.segments, u.state) // none for a user under Limited Data Use: removed
	for key := range affected {
		a, _ := aa.Audience(key)
		p := plans[key]
		seg := a.Base()
		switch {
		case slices.Contains(desired, key):
			if row, ok := a.Row(uk, u.state); ok {
				p[1].rows = append(p[1].rows, row)
			} else {
				reports[key].Unmatchable++
			}
		case aa.Assigner(seg).Arm(uk) != a.Arm():
			// The other arm's audience: the user was never added to it.
		case changed[seg] || slices.Contains(u.segments, seg):
			// The user left seg, or is in it but outranked in its exclusive group: out of its
			// audience. A user who was never in seg was never added: nothing to remove.
			if row, ok := a.RemovalRow(uk, u.state); ok {
				p[0].rows = append(p[0].rows, row)
			}
		}
	}
}

// refreshAll runs the full refresh of every audience of aa for which eligible is true and a
// refresh is due or in progress (see refresh.go).
func (s *Syncer) refreshAll(ctx context.Context, aa *audiences.AppAudiences, rep *AppReport, eligible func(*audiences.Audience) bool, now time.Time) error {
	every := aa.Rules().FullRefresh
	stoppedAccounts := map[string]bool{}
	for _, a := range aa.Audiences() {
		if !eligible(a) || stoppedAccounts[a.AdAccountID()] {
			continue
		}
		st, found, err := s.cfg.State.GetAudienceState(ctx, aa.App(), a.Segment())
		if err != nil {
			return fmt.Errorf("audience state of %s: %w", a.Segment(), err)
		}
		if !found || st.AudienceID == "" || st.Gone() || st.RemovalsHeld > 0 {
			continue // never synced, deleted at Meta, or removals held: nothing to refresh now
		}
		if every > 0 && st.LastRefreshAt == 0 && !refreshOpen(&st, now) {
			st.LastRefreshAt = now.Unix() // the baseline: the first refresh is one period away
			if err := s.putState(ctx, &st); err != nil {
				return err
			}
			continue
		}
		if !refreshDue(every, &st, now) {
			continue
		}
		r := rep.audience(a.Segment())
		r.AudienceID = st.AudienceID
		err = s.refresh(ctx, aa, a, &st, r, now)
		if err == nil {
			continue
		}
		if ports.IsAudienceGone(err) {
			err = s.markGone(ctx, aa.App(), a.Segment(), &st, err)
		}
		r.RefreshStopped = err.Error()
		if !errors.Is(err, audiences.ErrRemovalFlood) {
			s.cfg.Logger.Warn("full refresh stopped; the next run resumes", "app", aa.App(), "segment", a.Segment(), "error", err.Error())
		}
		if s.stopped(err, rep, a, stoppedAccounts) {
			return nil
		}
		if errors.Is(err, errNoTime) {
			return nil
		}
	}
	return nil
}

// stopped classifies an upload error: Meta refusing the credentials or the API version stops the
// app's sync (alert, true); a rate limit stops the audience's ad account for the rest of the run.
func (s *Syncer) stopped(err error, rep *AppReport, a *audiences.Audience, stoppedAccounts map[string]bool) bool {
	var ce *ports.CAPIError
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Class {
	case ports.CAPIAuth:
		rep.AuthFailed = true
		s.cfg.Logger.Error("ALERT: Meta refused the credentials for audience uploads; this app's sync is stopped",
			"app", rep.App, "code", ce.Meta.Code, "subcode", ce.Meta.Subcode, "fbtrace_id", ce.Meta.FBTraceID)
		return true
	case ports.CAPIVersionExpired:
		// Every call of the run goes to the same version: none can succeed. The changes stay
		// pending and the next run (after a new META_MARKETING_VERSION) uploads them.
		rep.VersionExpired = true
		s.cfg.Logger.Error("ALERT: Meta refused the Marketing API version as expired (code 2635); this app's sync is stopped "+
			"until META_MARKETING_VERSION names a current version", "app", rep.App, "code", ce.Meta.Code,
			"message", ce.Meta.Message, "fbtrace_id", ce.Meta.FBTraceID)
		return true
	case ports.CAPIRateLimited:
		stoppedAccounts[a.AdAccountID()] = true
	}
	return false
}

// audience returns the run's report of one audience, adding it if there is none yet.
func (r *AppReport) audience(segment string) *AudienceReport {
	for i := range r.Audiences {
		if r.Audiences[i].Segment == segment {
			return &r.Audiences[i]
		}
	}
	r.Audiences = append(r.Audiences, AudienceReport{Segment: segment})
	return &r.Audiences[len(r.Audiences)-1]
}

// syncAudience uploads one audience's removals then additions; it reports whether both were
// acknowledged completely.
func (s *Syncer) syncAudience(ctx context.Context, aa *audiences.AppAudiences, a *audiences.Audience, plan *[2]upload, r *AudienceReport, now time.Time) (bool, error) {
	if h := a.Holdout(); h != nil {
		// The holdout audience exists before anyone can include the treated one in an ad set:
		// an ad set can only exclude an audience that exists, and until it is excluded the
		// holdout users can be reached (Advantage+ audience, broad targeting).
		if _, err := s.audienceState(ctx, aa.App(), h, now); err != nil {
			r.Stopped = "holdout audience: " + err.Error()
			return false, err
		}
	}
	st, err := s.audienceState(ctx, aa.App(), a, now)
	if err != nil {
		r.Stopped = err.Error()
		return false, err
	}
	r.AudienceID = st.AudienceID
	if st.Gone() {
		r.Stopped = errAudienceGone.Error() // alerted when it was found; nothing is sent to it
		return false, nil
	}
	if refreshOpen(&st, now) {
		r.Stopped = refreshInProgress // Meta takes no /users call during a replace
		return false, nil
	}
	if len(plan[0].rows) > 0 {
		if err := audiences.RemovalGuard(aa.Rules().MaxRemovalFraction, int(st.Size), len(plan[0].rows)); err != nil {
			r.Stopped = "removal guard"
			s.cfg.Logger.Error("ALERT: audience sync paused: too many removals at once", "app", aa.App(), "segment", a.Segment(),
				"removals", len(plan[0].rows), "size", st.Size, "max_fraction", aa.Rules().MaxRemovalFraction)
			return false, err
		}
	}
	held := false
	for _, u := range plan {
		if len(u.rows) == 0 {
			continue
		}
		if u.op == ports.AudienceRemove && st.RemovalSkipRuns > 0 {
			st.RemovalSkipRuns-- // backing off: the removals stay held, the additions go on
			held = true
			r.RemovalsHeld, r.RemovalError = len(u.rows), st.RemovalError
			if err := s.putState(ctx, &st); err != nil {
				return false, err
			}
			continue
		}
		err := s.upload(ctx, aa, a, &st, u, r, now)
		switch {
		case err == nil:
			if u.op == ports.AudienceRemove && clearHeld(&st) {
				if err := s.putState(ctx, &st); err != nil {
					return false, err
				}
			}
			continue
		case ports.IsAudienceGone(err):
			err = s.markGone(ctx, aa.App(), a.Segment(), &st, err)
			r.Stopped = err.Error()
			return false, err
		case u.op == ports.AudienceRemove && heldRemovals(err):
			held = true
			if err := s.holdRemovals(ctx, aa.App(), a.Segment(), &st, len(u.rows), err, r); err != nil {
				return false, err
			}
			continue
		}
		r.Stopped = err.Error()
		s.cfg.Logger.Warn("audience upload stopped; the next run resumes", "app", aa.App(), "segment", a.Segment(), "op", u.op.String(), "error", err.Error())
		return false, err
	}
	if held {
		r.addsDone = true
		r.heldUsers = map[string]bool{}
		for _, row := range plan[0].rows {
			r.heldUsers[a.UserKey(row)] = true
		}
		r.Stopped = fmt.Sprintf("%d removal(s) held: %s", r.RemovalsHeld, r.RemovalError)
		return false, nil
	}
	if len(plan[0].rows) == 0 {
		clearHeld(&st) // nothing to remove any more (the held users came back): the hold is over
	}
	r.Complete = true
	st.LastSyncAt = now.Unix()
	return true, s.putState(ctx, &st)
}

// upload sends one operation's rows in one session, resuming an interrupted session of the same
// plan at its next batch, and checkpoints after each acknowledged batch.
func (s *Syncer) upload(ctx context.Context, aa *audiences.AppAudiences, a *audiences.Audience, st *ports.AudienceSyncState, u upload, r *AudienceReport, now time.Time) error {
	schema := a.Schema()
	batches := audiences.Chunk(u.rows, schema, audiences.MaxRows, aa.Rules().MaxPayloadBytes)
	plan := planID(st.AudienceID, u.op, u.rows)
	op := u.op.String()
	switch {
	case st.Plan == plan && st.Op == op && st.SessionID == 0 && st.BatchesDone == len(batches):
		return nil // this exact upload was completed by an earlier run
	case st.Plan == plan && st.Op == op && st.SessionID != 0 && now.Sub(time.Unix(st.SessionStartedAt, 0)) < sessionWindow:
		// resume: the same rows, the same session, from the next batch
	default:
		st.Plan, st.Op, st.SessionID, st.BatchesDone, st.SessionStartedAt = plan, op, sessionID(), 0, now.Unix()
	}
	for i := st.BatchesDone; i < len(batches); i++ {
		ack, err := s.meta(aa.App(), a).Upload(ctx, ports.AudienceUpload{
			AudienceID: st.AudienceID, Op: u.op, Schema: schema, Rows: batches[i],
			Session: ports.AudienceSession{ID: st.SessionID, BatchSeq: i + 1, Last: i == len(batches)-1, EstimatedTotal: len(u.rows)},
		})
		r.Requests++
		if err != nil {
			if ports.IsSessionEnded(err) {
				st.SessionID, st.BatchesDone = 0, 0 // Meta closed it: the next run starts a new one
				_ = s.putState(ctx, st)
			}
			return err
		}
		r.Invalid += ack.NumInvalid
		// The member index follows what Meta acknowledged, before the checkpoint: a run that
		// dies in between sends the batch again and writes the same index.
		keys := make([]string, len(batches[i]))
		for j, row := range batches[i] {
			keys[j] = a.UserKey(row)
		}
		added, removed := keys, []string(nil)
		if u.op == ports.AudienceRemove {
			added, removed = nil, keys
		}
		if err := s.cfg.State.SetMembers(ctx, aa.App(), a.Segment(), added, removed); err != nil {
			return fmt.Errorf("member index: %w", err)
		}
		st.BatchesDone = i + 1
		if err := s.putState(ctx, st); err != nil { // checkpoint: this batch is never sent again
			return err
		}
	}
	st.SessionID = 0
	if u.op == ports.AudienceAdd {
		st.Size += int64(len(u.rows))
		r.Added += len(u.rows)
	} else {
		st.Size = max(0, st.Size-int64(len(u.rows)))
		r.Removed += len(u.rows)
	}
	return s.putState(ctx, st)
}

// audienceState reads an audience's sync state, creating the audience at Meta when configured.
func (s *Syncer) audienceState(ctx context.Context, app string, a *audiences.Audience, now time.Time) (ports.AudienceSyncState, error) {
	st, found, err := s.cfg.State.GetAudienceState(ctx, app, a.Segment())
	if err != nil {
		return st, err
	}
	if !found {
		st = ports.AudienceSyncState{App: app, Segment: a.Segment()}
	}
	switch {
	case a.ID() != "":
		st.AudienceID = a.ID()
	case st.AudienceID == "" && a.Create():
		id, err := s.meta(app, a).CreateAudience(ctx, a.Creation())
		if err != nil {
			return st, fmt.Errorf("create audience: %w", err)
		}
		st.AudienceID = id
		if err := s.putState(ctx, &st); err != nil {
			return st, err
		}
		s.cfg.Logger.Info("audience created", "app", app, "segment", a.Segment(), "audience_id", id)
	}
	if st.AudienceID == "" {
		return st, errors.New("no audience id configured and create is off")
	}
	return st, nil
}

// touchAll records that nothing was pending, for the staleness metric.
func (s *Syncer) touchAll(ctx context.Context, aa *audiences.AppAudiences, now time.Time) error {
	for _, a := range aa.Audiences() {
		st, found, err := s.cfg.State.GetAudienceState(ctx, aa.App(), a.Segment())
		if err != nil || !found {
			continue
		}
		st.LastSyncAt = now.Unix()
		if err := s.putState(ctx, &st); err != nil {
			return err
		}
	}
	return nil
}

func (s *Syncer) putState(ctx context.Context, st *ports.AudienceSyncState) error {
	st.Version++
	if err := s.cfg.State.PutAudienceState(ctx, *st); err != nil {
		st.Version--
		return fmt.Errorf("audience state: %w", err)
	}
	return nil
}

// planID identifies the rows of an upload: a resumed run continues a session only when it plans
// exactly the same rows (the pending changes are the same until they are marked synced).
func planID(audience string, op ports.AudienceOp, rows [][]string) string {
	h := sha256.New()
	h.Write([]byte(audience + "\x00" + op.String()))
	for _, r := range rows {
		h.Write([]byte("\x01" + strings.Join(r, "\x00")))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// sessionID is a new positive session id, unique per ad account with overwhelming probability.
func sessionID() int64 {
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:])>>1) | 1
}

// health emits, for every audience of app, the seconds since its last complete sync and
// whether it is still too small for Meta to use (about 100 matched people).
func (s *Syncer) health(ctx context.Context, app string) {
	now := s.cfg.Now()
	for _, a := range s.cfg.Audiences[app].Audiences() {
		st, found, err := s.cfg.State.GetAudienceState(ctx, app, a.Segment())
		if err != nil || !found || st.AudienceID == "" {
			continue
		}
		stale := 0.0
		if st.LastSyncAt > 0 {
			stale = now.Sub(time.Unix(st.LastSyncAt, 0)).Seconds()
		}
		small := 0.0
		if st.Size < audiences.MinGuardedSize {
			small = 1
		}
		gone := 0.0
		if st.Gone() {
			gone = 1
		}
		metrics := []observability.Metric{
			{Name: "AudienceGone", Unit: observability.Count, Value: gone},
			{Name: "AudienceRemovalsHeld", Unit: observability.Count, Value: float64(st.RemovalsHeld)},
			{Name: "AudienceSecondsSinceSync", Unit: observability.Count, Value: stale},
			{Name: "AudienceSize", Unit: observability.Count, Value: float64(st.Size)},
			{Name: "AudienceTooSmall", Unit: observability.Count, Value: small},
		}
		if s.cfg.Audiences[app].Rules().FullRefresh > 0 && st.LastRefreshAt > 0 {
			metrics = append(metrics, observability.Metric{Name: "AudienceSecondsSinceRefresh", Unit: observability.Count,
				Value: now.Sub(time.Unix(st.LastRefreshAt, 0)).Seconds()})
		}
		s.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}, {Name: "App", Value: app}, {Name: "Audience", Value: a.Segment()}},
			metrics...)
	}
}

func (s *Syncer) record(r AppReport) {
	if !r.Leased {
		return
	}
	s.cfg.Logger.Info("audience sync", "app", r.App, "changes", r.Changes, "synced", r.Synced, "deferred_users", r.Deferred, "auth_failed", r.AuthFailed)
	m := func(name string, v float64) observability.Metric {
		return observability.Metric{Name: name, Unit: observability.Count, Value: v}
	}
	for _, a := range r.Audiences {
		dims := []observability.Dimension{{Name: "Function", Value: Consumer}, {Name: "App", Value: r.App}, {Name: "Audience", Value: a.Segment}}
		done := 0.0
		if a.Complete {
			done = 1
		}
		s.cfg.Metrics.Emit(dims, m("AudienceRowsAdded", float64(a.Added)), m("AudienceRowsRemoved", float64(a.Removed)),
			m("AudienceInvalidEntries", float64(a.Invalid)), m("AudienceUnmatchable", float64(a.Unmatchable)),
			m("AudienceRequests", float64(a.Requests)), m("AudienceSyncComplete", done))
		if a.Refreshing {
			refreshed := 0.0
			if a.Refreshed {
				refreshed = 1
			}
			s.cfg.Metrics.Emit(dims, m("AudienceRefreshRows", float64(a.RefreshRows)),
				m("AudienceRefreshLeftOut", float64(a.RefreshExcluded)), m("AudienceRefreshComplete", refreshed))
		}
	}
	auth := 0.0
	if r.AuthFailed {
		auth = 1
	}
	versionExpired := 0.0
	if r.VersionExpired {
		versionExpired = 1
	}
	s.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}, {Name: "App", Value: r.App}},
		m("PendingChanges", float64(r.Changes-r.Synced)), m("AudienceAuthFailures", auth), m("AudienceUsersDeferred", float64(r.Deferred)),
		m("AudienceVersionExpired", versionExpired))
}

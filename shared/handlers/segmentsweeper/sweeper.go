// Package segmentsweeper is the scheduled segment sweeper: time-based segments (lapsed users,
// cart abandonment after its hour, new-installer expiry, onboarding after 24 h, subscription
// expiry) change without any new event. Each user record carries the next moment one of its
// rules could flip, in a sparse due index; a sweep reads only the users due now, re-evaluates
// them and records their membership changes. Cost grows with due users, not with the table.
package segmentsweeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Consumer names this function in logs and metrics.
const Consumer = "segment-sweeper"

// Defaults.
const (
	// DefaultLookback is how far back a sweep looks for due users: a sweeper that was down this
	// long still catches up; users due earlier are caught on their next event.
	DefaultLookback = 48 * time.Hour
	pageSize        = 100
	// margin is the part of the invocation's deadline kept to answer.
	margin = 5 * time.Second
)

// Config wires a Sweeper.
type Config struct {
	Rules    map[string]*segments.AppRules
	Store    ports.SegmentStore
	Lookback time.Duration
	Logger   *slog.Logger
	Metrics  *observability.Emitter
	Now      func() time.Time
	// Outcomes and Plans, both set, enrol the users a sweep moves into a measured audience's
	// segment (by app id). Either nil: nothing is enrolled.
	Outcomes ports.OutcomeStore
	Plans    map[string]*outcomes.Plan
}

// Sweeper re-evaluates the users whose time-based segments are due.
type Sweeper struct{ cfg Config }

// New returns a Sweeper.
func New(cfg Config) (*Sweeper, error) {
	if cfg.Rules == nil || cfg.Store == nil {
		return nil, errors.New("segmentsweeper: Rules and Store are required")
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = DefaultLookback
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Outcomes == nil {
		cfg.Plans = nil
	}
	return &Sweeper{cfg: cfg}, nil
}

// Result says what one sweep did.
type Result struct {
	Users, Changes, Failed int
	// Enrolled counts users enrolled in audience measurements; EnrolmentsLost those whose
	// counter write failed (their cohorts are in their state, uncounted).
	Enrolled, EnrolmentsLost int
	// Complete is false when the sweep stopped at its deadline; the next run goes on.
	Complete bool
}

// Sweep re-evaluates every user due by now, app by app.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	now := s.cfg.Now()
	res := Result{Complete: true}
	apps := make([]string, 0, len(s.cfg.Rules))
	for app := range s.cfg.Rules {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	var errs []error
	for _, app := range apps {
		cursor := ""
		for {
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < margin {
				res.Complete = false
				s.record(res)
				return res, errors.Join(errs...)
			}
			keys, next, err := s.cfg.Store.DueUsers(ctx, app, now, s.cfg.Lookback, pageSize, cursor)
			if err != nil {
				errs = append(errs, fmt.Errorf("due users of %s: %w", app, err))
				break
			}
			_, failed := s.sweepUsers(ctx, app, keys, now, false, &res)
			errs = append(errs, failed...)
			if next == "" {
				break
			}
			cursor = next
		}
	}
	s.record(res)
	return res, errors.Join(errs...)
}

// Reevaluate re-evaluates the given users of app now, as a sweep does for due users, and
// records their membership changes: after a rules change, it applies the new rules to stored
// users without waiting for their next event or due time (`retarget rules apply`). It returns
// the changes; with dryRun it writes nothing and returns the changes it would record. Users
// deleted meanwhile are skipped; a failed user is counted and named in the error.
func (s *Sweeper) Reevaluate(ctx context.Context, app string, userKeys []string, dryRun bool) (Result, []ports.MembershipChange, error) {
	if _, ok := s.cfg.Rules[app]; !ok {
		return Result{}, nil, fmt.Errorf("segmentsweeper: no rules for app %q", app)
	}
	res := Result{Complete: true}
	changes, errs := s.sweepUsers(ctx, app, userKeys, s.cfg.Now(), dryRun, &res)
	return res, changes, errors.Join(errs...)
}

// sweepUsers re-evaluates the users at now, adding to res; it returns their changes and one
// error per failed user. The users' enrolments are counted with one AddOutcomes call.
func (s *Sweeper) sweepUsers(ctx context.Context, app string, keys []string, now time.Time, dryRun bool, res *Result) ([]ports.MembershipChange, []error) {
	var all []ports.MembershipChange
	var errs []error
	tally := outcomes.Tally{}
	defer s.writeOutcomes(ctx, tally, res)
	for _, uk := range keys {
		changes, err := s.sweepUser(ctx, app, uk, now, dryRun, tally)
		res.Users++
		res.Changes += len(changes)
		all = append(all, changes...)
		if err != nil {
			res.Failed++
			errs = append(errs, fmt.Errorf("user %s of %s: %w", uk, app, err))
		}
	}
	return all, errs
}

// sweepUser re-evaluates one user at now and records the changes (with dryRun, only returns
// them). A user is written only when a segment or its due time changes: `retarget rules apply`
// on a large table writes only the users who move. A user deleted since it was listed
// (erasure, TTL) has nothing to sweep.
func (s *Sweeper) sweepUser(ctx context.Context, app, uk string, now time.Time, dryRun bool, tally outcomes.Tally) ([]ports.MembershipChange, error) {
	rules := s.cfg.Rules[app]
	plan := s.cfg.Plans[app]
	var counted outcomes.Tally
	res, err := s.cfg.Store.Update(ctx, app, uk, func(u *ports.UserState) error {
		counted = outcomes.Tally{} // of the attempt written only
		if !u.Found {
			return ports.ErrNothingToWrite
		}
		after, due := rules.Evaluate(&u.State, now)
		joined, left := segments.Diff(u.Segments, after)
		unchanged := len(joined) == 0 && len(left) == 0 && segments.DueAt(due) == u.DueAt
		u.Segments, u.DueAt = after, segments.DueAt(due)
		u.ChangedAt, u.RecordedAt, u.Reason = now.UnixMilli(), now, ports.ReasonTime
		if dryRun || unchanged {
			return ports.ErrNothingToWrite
		}
		if plan != nil {
			plan.Enrol(&u.State, uk, joined, now.Unix(), counted)
			outcomes.Prune(&u.State, now.Unix())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res.Written {
		tally.Merge(counted)
	}
	return res.Changes, nil
}

// writeOutcomes adds a page's enrolments with one AddOutcomes call, retried twice with backoff.
// As in the updater, the users were written first: a failure loses these increments (logged
// with the counts, counted in res.EnrolmentsLost and the OutcomeCountsLost metric), never
// doubles them.
func (s *Sweeper) writeOutcomes(ctx context.Context, tally outcomes.Tally, res *Result) {
	deltas := tally.Outcomes()
	if len(deltas) == 0 {
		return
	}
	users := int(tally.Total().Users)
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = s.cfg.Outcomes.AddOutcomes(ctx, deltas); err == nil {
			res.Enrolled += users
			return
		}
		if attempt < 3 && backoff.Sleep(ctx, backoff.FullJitter(attempt, 100*time.Millisecond, 2*time.Second, rand.Float64)) != nil {
			break
		}
	}
	res.EnrolmentsLost += users
	s.cfg.Logger.Error("outcome counters not written: these enrolments are lost", "cohorts", len(deltas), "users", users, "error", err.Error())
}

func (s *Sweeper) record(r Result) {
	s.cfg.Logger.Info("sweep", "users", r.Users, "membership_changes", r.Changes, "failed", r.Failed, "complete", r.Complete,
		"enrolled", r.Enrolled, "enrolments_lost", r.EnrolmentsLost)
	m := func(name string, v int) observability.Metric {
		return observability.Metric{Name: name, Unit: observability.Count, Value: float64(v)}
	}
	done := 1
	if !r.Complete {
		done = 0
	}
	s.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}},
		m("UsersSwept", r.Users), m("SegmentChanges", r.Changes), m("UsersFailed", r.Failed), m("SweepComplete", done),
		m("UsersEnrolled", r.Enrolled), m("OutcomeCountsLost", r.EnrolmentsLost))
}

// Handle is the Lambda entry point for EventBridge Scheduler: it sweeps and fails only when
// nothing could be swept (the scheduler then retries); users that failed are still due and
// come again next time.
func (s *Sweeper) Handle(ctx context.Context, _ json.RawMessage) (Result, error) {
	res, err := s.Sweep(ctx)
	if err != nil && res.Users == res.Failed {
		return res, err
	}
	if err != nil {
		s.cfg.Logger.Warn("some users not swept; they stay due", "error", err.Error())
	}
	return res, nil
}

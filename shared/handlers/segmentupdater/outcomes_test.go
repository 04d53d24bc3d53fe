package segmentupdater

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// countingOutcomes records every AddOutcomes call and can fail them.
type countingOutcomes struct {
	*memstate.Store
	mu    sync.Mutex
	calls [][]ports.Outcome
	fail  error
}

func (c *countingOutcomes) AddOutcomes(ctx context.Context, deltas []ports.Outcome) error {
	c.mu.Lock()
	c.calls = append(c.calls, deltas)
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return fail
	}
	return c.Store.AddOutcomes(ctx, deltas)
}

// conflictOnce answers the first PutUser of each user with a version conflict, as if another
// writer had come first: Update reads again and runs fn again.
type conflictOnce struct {
	*memstate.Store
	mu   sync.Mutex // the handler writes several users at once
	seen map[string]bool
}

func (c *conflictOnce) PutUser(ctx context.Context, rec ports.UserRecord) error {
	c.mu.Lock()
	first := !c.seen[rec.UserKey]
	c.seen[rec.UserKey] = true
	c.mu.Unlock()
	if first {
		return ports.ErrVersionConflict
	}
	return c.Store.PutUser(ctx, rec)
}

func (c *conflictOnce) Update(ctx context.Context, app, uk string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, c, app, uk, fn)
}

func (c *conflictOnce) UpdateRead(ctx context.Context, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.UpdateRead(ctx, c, read, fn)
}

// measured rebuilds the harness's handler with outcome counting into out, on store (nil: the
// harness's), logging to log and metrics (nil: discarded).
func (hs *harness) measured(t *testing.T, store ports.SegmentStore, out ports.OutcomeStore, log, metrics *bytes.Buffer) {
	t.Helper()
	if store == nil {
		store = hs.store
	}
	cfg := Config{Rules: map[string]*segments.AppRules{hs.app.ID: hs.rules}, Store: store, Now: func() time.Time { return now },
		Outcomes: out, Plans: map[string]*outcomes.Plan{hs.app.ID: outcomes.NewPlan(hs.app)}, OutcomeRetryBase: time.Millisecond}
	cfg.Reader, _ = store.(ports.UserReader)
	if log != nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(log, nil))
	}
	if metrics != nil {
		cfg.Metrics = observability.NewEmitter(metrics, "Test")
	}
	var err error
	if hs.h, err = New(cfg); err != nil {
		t.Fatal(err)
	}
}

func userKeyOf(hs *harness, appUserID string) string {
	pseudo, _ := identity.NewPseudonymizer([]byte("updater-test-pepper-0123"))
	return pseudo.UserKey(hs.app.ID, identity.KindAppUserID, appUserID)
}

// counts reads the stored counters of segment's cohorts of the join day of at, both arms.
func counts(t *testing.T, s ports.OutcomeStore, app, segment string, at time.Time) map[holdout.Arm]ports.OutcomeCounts {
	t.Helper()
	day := outcomes.Day(at.Unix())
	got, err := s.Outcomes(context.Background(), app, segment, day, day)
	if err != nil {
		t.Fatal(err)
	}
	out := map[holdout.Arm]ports.OutcomeCounts{}
	for _, o := range got {
		out[o.Arm] = o.OutcomeCounts
	}
	return out
}

// TestOutcomesOncePerUserAndWindow: a first event puts the user in new_installer (an audience):
// one user enrolled at the batch's time. Two app opens and a purchase after the join count once
// per window (revenue per purchase); the same batch delivered again, and an app open from
// before the join arriving late, count nothing for it.
func TestOutcomesOncePerUserAndWindow(t *testing.T) {
	hs := newHarness(t)
	out := &countingOutcomes{Store: memstate.New()}
	hs.measured(t, nil, out, nil, nil)
	joinAt := now.Add(-3 * time.Hour)
	arm := outcomes.NewPlan(hs.app).Arm("new_installer", userKeyOf(hs, "u-1"))
	hs.handle(t, hs.batch(t, event("v-1", "fb_mobile_content_view", joinAt, "u-1", nil)))
	if got := counts(t, out, hs.app.ID, "new_installer", joinAt)[arm]; got != (ports.OutcomeCounts{Users: 1}) {
		t.Fatalf("after the join: %+v, want one user", got)
	}
	later := hs.batch(t,
		event("o-1", "fb_mobile_activate_app", joinAt.Add(time.Hour), "u-1", nil),
		event("o-2", "fb_mobile_activate_app", joinAt.Add(2*time.Hour), "u-1", nil),
		event("p-1", "fb_mobile_purchase", joinAt.Add(2*time.Hour), "u-1", map[string]any{"value": 9.99, "currency": "USD"}))
	hs.handle(t, later)
	hs.handle(t, later) // redelivered
	hs.handle(t, hs.batch(t, event("o-0", "fb_mobile_activate_app", joinAt.Add(-time.Hour), "u-1", nil)))
	want := ports.OutcomeCounts{Users: 1, Reengaged1d: 1, Reengaged7d: 1, Reengaged28d: 1, Purchasers28d: 1, RevenueMicros: 9_990_000}
	if got := counts(t, out, hs.app.ID, "new_installer", joinAt)[arm]; got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
	// The late open is the user's third in 7 days: they join engaged, a cohort of its own.
	if len(out.calls) != 3 || len(out.calls[2]) != 1 || out.calls[2][0].Segment != "engaged" {
		t.Errorf("AddOutcomes calls %+v, want 3: the join, the outcomes, the join of engaged", out.calls)
	}
}

// TestOutcomesVersionConflictCountsOnce: a concurrent write makes Update run the fold again;
// only the attempt that was written counts.
func TestOutcomesVersionConflictCountsOnce(t *testing.T) {
	hs := newHarness(t)
	out := &countingOutcomes{Store: memstate.New()}
	hs.measured(t, &conflictOnce{Store: hs.store, seen: map[string]bool{}}, out, nil, nil)
	joinAt := now.Add(-3 * time.Hour)
	hs.handle(t, hs.batch(t, event("v-1", "fb_mobile_content_view", joinAt, "u-1", nil)))
	hs.handle(t, hs.batch(t, event("o-1", "fb_mobile_activate_app", joinAt.Add(time.Hour), "u-1", nil)))
	arm := outcomes.NewPlan(hs.app).Arm("new_installer", userKeyOf(hs, "u-1"))
	want := ports.OutcomeCounts{Users: 1, Reengaged1d: 1, Reengaged7d: 1, Reengaged28d: 1}
	if got := counts(t, out, hs.app.ID, "new_installer", joinAt)[arm]; got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
}

// TestOutcomesOneCallPerBatch: the 40 users of a batch are enrolled with one AddOutcomes call
// holding one delta per cohort, each user in the arm the holdout assignment gives them.
func TestOutcomesOneCallPerBatch(t *testing.T) {
	hs := newHarness(t)
	out := &countingOutcomes{Store: memstate.New()}
	hs.measured(t, nil, out, nil, nil)
	plan := outcomes.NewPlan(hs.app)
	joinAt := now.Add(-time.Hour)
	var evs []map[string]any
	want := map[holdout.Arm]int64{}
	for i := range 40 {
		u := fmt.Sprintf("u-%d", i)
		evs = append(evs, event("v-"+u, "fb_mobile_content_view", joinAt, u, nil))
		want[plan.Arm("new_installer", userKeyOf(hs, u))]++
	}
	if want[holdout.Holdout] == 0 {
		t.Fatal("no holdout user among 40: pick other users")
	}
	hs.handle(t, hs.batch(t, evs...))
	if len(out.calls) != 1 || len(out.calls[0]) != 2 {
		t.Fatalf("AddOutcomes calls %+v, want one with a delta per arm", out.calls)
	}
	got := counts(t, out, hs.app.ID, "new_installer", joinAt)
	for _, arm := range holdout.Arms {
		if got[arm].Users != want[arm] {
			t.Errorf("%v: %d users, want %d", arm, got[arm].Users, want[arm])
		}
	}
}

// TestOutcomesLostAreReported: when AddOutcomes keeps failing the batch still succeeds (its
// users were written: a redelivery would count nothing), and the loss is an ERROR log with the
// counts and the OutcomeCountsLost metric.
func TestOutcomesLostAreReported(t *testing.T) {
	hs := newHarness(t)
	out := &countingOutcomes{Store: memstate.New(), fail: errors.New("throttled")}
	var log, metrics bytes.Buffer
	hs.measured(t, nil, out, &log, &metrics)
	hs.handle(t, hs.batch(t, event("v-1", "fb_mobile_content_view", now, "u-1", nil)))
	if len(out.calls) != 3 {
		t.Errorf("%d AddOutcomes calls, want 3 attempts", len(out.calls))
	}
	if !strings.Contains(log.String(), `"level":"ERROR","msg":"outcome counters not written`) || !strings.Contains(log.String(), `"users":1`) {
		t.Errorf("log %s", log.String())
	}
	if strings.Contains(log.String(), userKeyOf(hs, "u-1")) {
		t.Error("the log names the user")
	}
	if !strings.Contains(metrics.String(), `"OutcomeCountsLost":1`) {
		t.Errorf("metrics %s", metrics.String())
	}
}

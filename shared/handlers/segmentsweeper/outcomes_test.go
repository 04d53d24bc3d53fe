package segmentsweeper

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// recordingOutcomes counts AddOutcomes calls.
type recordingOutcomes struct {
	*memstate.Store
	mu    sync.Mutex
	calls int
}

func (r *recordingOutcomes) AddOutcomes(ctx context.Context, deltas []ports.Outcome) error {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	return r.Store.AddOutcomes(ctx, deltas)
}

// TestSweepEnrolsItsJoins: users whose add-to-cart turns into abandonment without a new event
// join cart_abandoner in the sweep; the sweep enrols each in its holdout arm at the sweep's
// time, with one AddOutcomes call for the page, and a later app open counts for the cohort.
func TestSweepEnrolsItsJoins(t *testing.T) {
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := segments.ForConfig(cfg)
	plans := outcomes.ForConfig(cfg)
	app := &cfg.Apps[0]
	store := memstate.New()
	out := &recordingOutcomes{Store: memstate.New()}
	clock := time.Now().Truncate(time.Second)
	now := func() time.Time { return clock }
	updater, _ := segmentupdater.New(segmentupdater.Config{Rules: rules, Store: store, Now: now, Outcomes: out, Plans: plans})
	pseudo, _ := identity.NewPseudonymizer([]byte("sweeper-test-pepper-0123"))
	handle := func(name string, at time.Time, users int) []string {
		t.Helper()
		var evs []any
		for i := range users {
			evs = append(evs, map[string]any{"event_id": fmt.Sprintf("%s-%d-%d", name, at.Unix(), i), "event_name": name, "event_time": at.Unix(),
				"user": map[string]any{"app_user_id": fmt.Sprintf("u-%d", i)}, "device": map[string]any{"platform": "android", "os_version": "14"},
				"consent": map[string]any{"ads_personalization": true}})
		}
		body, _ := json.Marshal(map[string]any{"events": evs})
		b, err := appevent.NewParser(pseudo).Parse(app, string(body), clock)
		if err != nil || len(b.Accepted) != users {
			t.Fatal(err)
		}
		var ev events.KinesisEvent
		var keys []string
		envs, err := b.Events()
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range b.Accepted { // one event per record, as the updater reads them today
			s := fmt.Sprintf("%d%06d", at.Unix(), i)
			keys = append(keys, a.UserKey)
			ev.Records = append(ev.Records, events.KinesisEventRecord{Kinesis: events.KinesisRecord{SequenceNumber: s, PartitionKey: a.UserKey, Data: envelope.Append(nil, &envs[i])}})
		}
		if resp, err := updater.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) > 0 {
			t.Fatal(resp, err)
		}
		return keys
	}
	keys := handle("fb_mobile_add_to_cart", clock.Add(-30*time.Minute), 30)

	sweeper, _ := New(Config{Rules: rules, Store: store, Now: now, Outcomes: out, Plans: plans})
	clock = clock.Add(30*time.Minute + segments.DueStep)
	before := out.calls
	res, err := sweeper.Sweep(context.Background())
	if err != nil || res.Changes != 30 || res.Enrolled != 30 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	if out.calls-before != 1 {
		t.Errorf("%d AddOutcomes calls for one page of joins, want 1", out.calls-before)
	}
	day := outcomes.Day(clock.Unix())
	got, _ := out.Outcomes(context.Background(), app.ID, "cart_abandoner", day, day)
	want := map[string]int64{}
	for _, uk := range keys {
		want[plans[app.ID].Arm("cart_abandoner", uk).String()]++
	}
	if want["holdout"] == 0 {
		t.Fatal("no holdout user among 30: pick other users")
	}
	for _, o := range got {
		if o.Users != want[o.Arm.String()] {
			t.Errorf("%v: %d users, want %d", o.Arm, o.Users, want[o.Arm.String()])
		}
		delete(want, o.Arm.String())
	}
	if len(want) != 0 {
		t.Errorf("arms without their users: %v (got %+v)", want, got)
	}

	// An app open after the sweep's join is an outcome of the sweep's cohort.
	handle("fb_mobile_activate_app", clock.Add(time.Minute), 1)
	got, _ = out.Outcomes(context.Background(), app.ID, "cart_abandoner", day, day)
	var reengaged int64
	for _, o := range got {
		reengaged += o.Reengaged1d
	}
	if reengaged != 1 {
		t.Errorf("re-engaged after the sweep's join: %d, want 1 (%+v)", reengaged, got)
	}
}

package segmentsweeper

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// TestCartAbandonmentWithoutANewEvent: an add-to-cart 30 minutes ago is not abandonment yet;
// half an hour later the sweep, with no new event, moves the user in and records the change.
func TestCartAbandonmentWithoutANewEvent(t *testing.T) {
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := segments.ForConfig(cfg)
	app := &cfg.Apps[0]
	store := memstate.New()
	clock := time.Now().Truncate(time.Second)
	now := func() time.Time { return clock }

	updater, _ := segmentupdater.New(segmentupdater.Config{Rules: rules, Store: store, Now: now})
	pseudo, _ := identity.NewPseudonymizer([]byte("sweeper-test-pepper-0123"))
	body, _ := json.Marshal(map[string]any{"events": []any{map[string]any{
		"event_id": "cart-1", "event_name": "fb_mobile_add_to_cart", "event_time": clock.Add(-30 * time.Minute).Unix(),
		"user": map[string]any{"app_user_id": "u-1"}, "device": map[string]any{"platform": "android", "os_version": "14"},
		"consent": map[string]any{"ads_personalization": true}}}})
	b, err := appevent.NewParser(pseudo).Parse(app, string(body), clock)
	if err != nil || len(b.Accepted) != 1 {
		t.Fatal(err)
	}
	uk := b.Accepted[0].UserKey
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{{EventID: "shardId-0:1",
		Kinesis: events.KinesisRecord{SequenceNumber: "1", PartitionKey: uk, Data: append([]byte(nil), b.Records[0].Data...)}}}}
	if resp, err := updater.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) > 0 {
		t.Fatal(resp, err)
	}
	rec, _, _ := store.GetUser(context.Background(), app.ID, uk)
	if want := segments.DueAt(clock.Add(30 * time.Minute)); slices.Contains(rec.Segments, "cart_abandoner") || rec.DueAt != want {
		t.Fatalf("segments %v, due %d; want %d: when the hour is up, rounded up to the sweep step", rec.Segments, rec.DueAt, want)
	}

	sweeper, _ := New(Config{Rules: rules, Store: store, Now: now})
	if res, err := sweeper.Sweep(context.Background()); err != nil || res.Users != 0 {
		t.Fatalf("nothing is due yet: %+v %v", res, err)
	}
	clock = clock.Add(30*time.Minute + segments.DueStep)
	res, err := sweeper.Sweep(context.Background())
	if err != nil || res.Users != 1 || res.Changes != 1 || !res.Complete {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	rec, _, _ = store.GetUser(context.Background(), app.ID, uk)
	if !slices.Contains(rec.Segments, "cart_abandoner") || rec.DueAt <= clock.Unix() {
		t.Fatalf("after the sweep: segments %v, next due %d", rec.Segments, rec.DueAt)
	}
	changes, _, _ := store.PendingChanges(context.Background(), app.ID, "cart_abandoner", "", 10)
	if len(changes) != 1 || !changes[0].Joined || changes[0].At != clock.UnixMilli() || changes[0].Reason != ports.ReasonTime {
		t.Fatalf("changes %+v", changes)
	}
	// A second sweep at the same time finds nobody due and records nothing more.
	if res, _ := sweeper.Sweep(context.Background()); res.Users != 0 {
		t.Fatalf("second sweep: %+v", res)
	}
}

// TestReevaluate: a user stored with segments the rules no longer give is moved now, whether
// due or not; a user deleted meanwhile is skipped; an app without rules is an error.
func TestReevaluate(t *testing.T) {
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := segments.ForConfig(cfg)
	store := memstate.New()
	clock := time.Now().Truncate(time.Second)
	ctx := context.Background()
	st, _ := json.Marshal(&segments.State{FirstSeen: clock.Add(-time.Hour).Unix(), LastSeen: clock.Add(-time.Hour).Unix(),
		Consent: segments.Consent{At: clock.Add(-time.Hour).Unix()}})
	// Stored as a vip (an old rule), not due: no sweep would look at it.
	if err := store.PutUser(ctx, ports.UserRecord{App: "sample-shop", UserKey: "u-1", State: st, Segments: []string{"vip"}, Version: 1}); err != nil {
		t.Fatal(err)
	}
	sweeper, _ := New(Config{Rules: rules, Store: store, Now: func() time.Time { return clock }})
	describe := func(changes []ports.MembershipChange) []string {
		var out []string
		for _, c := range changes {
			out = append(out, fmt.Sprintf("%s %s %v", c.UserKey, c.Segment, c.Joined))
		}
		slices.Sort(out)
		return out
	}
	want := []string{"u-1 new_installer true", "u-1 vip false"}
	res, planned, err := sweeper.Reevaluate(ctx, "sample-shop", []string{"u-1", "gone"}, true)
	if err != nil || res.Changes != 2 || !slices.Equal(describe(planned), want) {
		t.Fatalf("dry run: %+v %v %v; want the changes %v", res, describe(planned), err, want)
	}
	if rec, _, _ := store.GetUser(ctx, "sample-shop", "u-1"); rec.Version != 1 {
		t.Fatalf("a dry run wrote the user (version %d)", rec.Version)
	}
	res, recorded, err := sweeper.Reevaluate(ctx, "sample-shop", []string{"u-1", "gone"}, false)
	if err != nil || res.Users != 2 || res.Changes != 2 || res.Failed != 0 || !slices.Equal(describe(recorded), want) {
		t.Fatalf("Reevaluate: %+v %v %v; want 2 users (one gone), the changes %v", res, describe(recorded), err, want)
	}
	rec, _, _ := store.GetUser(ctx, "sample-shop", "u-1")
	if !slices.Equal(rec.Segments, []string{"new_installer"}) || rec.Version != 2 {
		t.Errorf("after: segments %v, version %d", rec.Segments, rec.Version)
	}
	if _, _, err := sweeper.Reevaluate(ctx, "no-such-app", []string{"u-1"}, false); err == nil {
		t.Error("Reevaluate of an app without rules: no error")
	}
}

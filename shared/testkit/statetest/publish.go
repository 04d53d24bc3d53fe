package statetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// PublishStore is what the change feed cases need: the feed and cool-downs next to the
// segment store that records the changes.
type PublishStore interface {
	ports.SegmentStore
	ports.ChangeFeed
	ports.CooldownStore
}

// RunPublish runs the ports.ChangeFeed and ports.CooldownStore cases, each on a fresh, empty
// store from newStore.
func RunPublish(t *testing.T, newStore func(t *testing.T) PublishStore) {
	for _, c := range publishCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var publishCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s PublishStore)
}{
	{"a recorded change is unpublished, with its reason and app user id", feedRoundTrip},
	{"unpublished changes of every segment of the app in time order, paged", feedOrderAndPaging},
	{"mark published removes changes from the feed, not from pending", markPublished},
	{"mark published spares a change recorded again since it was read", markPublishedOnlyWhatWasRead},
	{"last deliveries round trip", cooldowns},
}

func unpublished(ctx context.Context, t *testing.T, s PublishStore, app string, limit int) []ports.PendingChange {
	t.Helper()
	var all []ports.PendingChange
	cursor := ""
	for {
		page, next, err := s.UnpublishedChanges(ctx, app, cursor, limit)
		if err != nil {
			t.Fatalf("UnpublishedChanges(%s, %q, %d): %v", app, cursor, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("UnpublishedChanges returned %d changes, limit %d", len(page), limit)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func memberships(pcs []ports.PendingChange) []ports.MembershipChange {
	out := make([]ports.MembershipChange, len(pcs))
	for i, c := range pcs {
		out[i] = c.MembershipChange
	}
	return out
}

func feedRoundTrip(ctx context.Context, t *testing.T, s PublishStore) {
	c := ports.MembershipChange{App: app, Segment: "cart", UserKey: "u-1", Joined: true, At: 1_773_144_000_123,
		StateVersion: 3, RecordedAt: 1_773_144_001_000, Reason: ports.ReasonEvents, AppUserID: "user-42"}
	plain := ports.MembershipChange{App: app, Segment: "cart", UserKey: "u-2", Joined: false, At: 1_773_144_000_124,
		StateVersion: 1, RecordedAt: 1_773_144_001_000, Reason: ports.ReasonTime}
	record(ctx, t, s, c, plain)
	got := memberships(unpublished(ctx, t, s, app, 10))
	if want := []ports.MembershipChange{c, plain}; !reflect.DeepEqual(got, want) {
		t.Fatalf("UnpublishedChanges = %+v\nwant %+v", got, want)
	}
	// The audience sync reads the same change, reason and all.
	pend, _, err := s.PendingChanges(ctx, app, "cart", "", 10)
	if err != nil || len(pend) != 2 || pend[0].Reason != ports.ReasonEvents || pend[0].AppUserID != "user-42" {
		t.Fatalf("PendingChanges = %+v, %v; want the reason and app user id kept", pend, err)
	}
	if got := unpublished(ctx, t, s, "other", 10); len(got) != 0 {
		t.Fatalf("another app's feed lists %+v", got)
	}
}

func feedOrderAndPaging(ctx context.Context, t *testing.T, s PublishStore) {
	var want []ports.MembershipChange
	for i := range 7 {
		seg := []string{"cart", "lapsed", "vip"}[i%3]
		want = append(want, ports.MembershipChange{App: app, Segment: seg, UserKey: fmt.Sprintf("u-%d", i), Joined: i%2 == 0,
			At: 1_773_144_000_000 + int64(i)*1000, StateVersion: 1, RecordedAt: 1_773_144_100_000, Reason: ports.ReasonEvents})
	}
	// Recorded out of order; listed in time order across segments.
	record(ctx, t, s, want[4], want[6], want[0], want[2])
	record(ctx, t, s, want[1], want[5], want[3])
	record(ctx, t, s, ports.MembershipChange{App: "other", Segment: "cart", UserKey: "u-x", Joined: true, At: 1_773_144_000_500,
		StateVersion: 1, RecordedAt: 1_773_144_100_000})
	for _, limit := range []int{1, 2, 3, 7, 100} {
		if got := memberships(unpublished(ctx, t, s, app, limit)); !reflect.DeepEqual(got, want) {
			t.Fatalf("limit %d: UnpublishedChanges = %+v\nwant %+v", limit, got, want)
		}
	}
	if _, _, err := s.UnpublishedChanges(ctx, app, "not a cursor", 10); err == nil {
		t.Error("a malformed cursor is accepted")
	}
	if _, _, err := s.UnpublishedChanges(ctx, app, "", 0); err == nil {
		t.Error("limit 0 is accepted")
	}
}

func markPublished(ctx context.Context, t *testing.T, s PublishStore) {
	a := ports.MembershipChange{App: app, Segment: "cart", UserKey: "u-1", Joined: true, At: 1_000, StateVersion: 1, RecordedAt: 5_000,
		Reason: ports.ReasonEvents, AppUserID: "user-1"}
	b := ports.MembershipChange{App: app, Segment: "vip", UserKey: "u-2", Joined: true, At: 2_000, StateVersion: 1, RecordedAt: 5_000}
	record(ctx, t, s, a, b)
	feed := unpublished(ctx, t, s, app, 10)
	if err := s.MarkPublished(ctx, feed[:1]); err != nil {
		t.Fatal(err)
	}
	if got := memberships(unpublished(ctx, t, s, app, 10)); !reflect.DeepEqual(got, []ports.MembershipChange{b}) {
		t.Fatalf("after MarkPublished(a): %+v; want only b", got)
	}
	// Published is not synced: the audience sync still has it, without the app user id,
	// which was kept only for the bus.
	pend, _, err := s.PendingChanges(ctx, app, "cart", "", 10)
	if err != nil || len(pend) != 1 || pend[0].UserKey != "u-1" {
		t.Fatalf("PendingChanges after MarkPublished = %+v, %v; want a still pending", pend, err)
	}
	if pend[0].AppUserID != "" {
		t.Errorf("the app user id is kept after publication: %q", pend[0].AppUserID)
	}
	// Marking again, or marking an unknown change, is not an error.
	if err := s.MarkPublished(ctx, append(feed[:1:1], ports.PendingChange{MembershipChange: ports.MembershipChange{
		App: app, Segment: "gone", UserKey: "u-9", Joined: true, At: 9_000, StateVersion: 1, RecordedAt: 1}})); err != nil {
		t.Fatalf("MarkPublished of published and unknown changes: %v", err)
	}
	// Synced is not published either.
	if err := s.MarkSynced(ctx, []ports.PendingChange{{MembershipChange: b}}); err != nil {
		t.Fatal(err)
	}
	if got := memberships(unpublished(ctx, t, s, app, 10)); !reflect.DeepEqual(got, []ports.MembershipChange{b}) {
		t.Fatalf("after MarkSynced(b): %+v; want b still unpublished", got)
	}
}

func markPublishedOnlyWhatWasRead(ctx context.Context, t *testing.T, s PublishStore) {
	c := ports.MembershipChange{App: app, Segment: "cart", UserKey: "u-1", Joined: true, At: 1_000, StateVersion: 1, RecordedAt: 5_000}
	record(ctx, t, s, c)
	read := unpublished(ctx, t, s, app, 10)
	again := c
	again.StateVersion, again.RecordedAt = 2, 6_000 // the same change, restamped by a later write
	record(ctx, t, s, again)
	if err := s.MarkPublished(ctx, read); err != nil {
		t.Fatal(err)
	}
	if got := memberships(unpublished(ctx, t, s, app, 10)); !reflect.DeepEqual(got, []ports.MembershipChange{again}) {
		t.Fatalf("after marking the first recording: %+v; want the second still unpublished", got)
	}
	// Published, then recorded again by a later write: unpublished again.
	if err := s.MarkPublished(ctx, unpublished(ctx, t, s, app, 10)); err != nil {
		t.Fatal(err)
	}
	if got := unpublished(ctx, t, s, app, 10); len(got) != 0 {
		t.Fatalf("after marking it: %+v", got)
	}
	third := c
	third.StateVersion, third.RecordedAt = 3, 7_000
	record(ctx, t, s, third)
	if got := memberships(unpublished(ctx, t, s, app, 10)); !reflect.DeepEqual(got, []ports.MembershipChange{third}) {
		t.Fatalf("recorded again after publication: %+v; want it unpublished", got)
	}
}

func cooldowns(ctx context.Context, t *testing.T, s PublishStore) {
	got, err := s.LastDeliveries(ctx, app, []string{"u-1", "u-2"})
	if err != nil || len(got) != 0 {
		t.Fatalf("LastDeliveries on an empty store = %v, %v", got, err)
	}
	if err := s.SetLastDeliveries(ctx, app, map[string]int64{"u-1": 1_773_144_000_000, "u-2": 1_773_144_000_001}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastDeliveries(ctx, app, map[string]int64{"u-1": 1_773_150_000_000}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastDeliveries(ctx, "other", map[string]int64{"u-3": 5}); err != nil {
		t.Fatal(err)
	}
	got, err = s.LastDeliveries(ctx, app, []string{"u-1", "u-2", "u-3", "u-1"})
	if want := map[string]int64{"u-1": 1_773_150_000_000, "u-2": 1_773_144_000_001}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LastDeliveries = %v, %v; want %v", got, err, want)
	}
	// The user's state is untouched by a cool-down item.
	if _, ok, err := s.GetUser(ctx, app, "u-1"); err != nil || ok {
		t.Fatalf("GetUser after SetLastDeliveries = %v, %v; want no user", ok, err)
	}
}

// Package statetest is the contract test suite for ports.SegmentStore implementations. The
// same cases run against the in-memory fake (memstate) and against dynalite (dynamostate), so
// the fake cannot drift from what the DynamoDB adapter does.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Run runs every case, each on a fresh, empty store from newStore.
func Run(t *testing.T, newStore func(t *testing.T) ports.SegmentStore) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var cases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s ports.SegmentStore)
}{
	{"unknown user", unknownUser},
	{"put and get round trip every field", roundTrip},
	{"versions are optimistic locks", versions},
	{"invalid input is rejected", invalidInput},
	{"recording a change twice stores it once", idempotentChanges},
	{"pending changes in time then user key order", pendingOrder},
	{"pending changes page with a cursor", pendingPaging},
	{"mark synced removes changes from pending", markSynced},
	{"mark synced spares a change recorded again since it was read", markSyncedOnlyWhatWasRead},
	{"60 changes in one call", manyChanges},
	{"due users within until and lookback", dueUsers},
	{"due users page across buckets", dueUsersPaging},
	{"update writes fn's state and records its changes stamped with the new version", updateRecordsStampedChanges},
	{"update runs fn again on the fresh state after a concurrent write", updateRetriesOnConcurrentWrite},
	{"update gives up after the retry bound with ErrVersionConflict", updateGivesUp},
	{"update writes nothing when fn fails", updateFnErrorWritesNothing},
	{"update writes nothing when fn says so", updateNothingToWrite},
}

const app = "shop"

func unknownUser(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	rec, ok, err := s.GetUser(ctx, app, "nobody")
	if err != nil || ok {
		t.Fatalf("GetUser(unknown) = %+v, %v, %v; want not found", rec, ok, err)
	}
	// A user of another app with the same key is another user.
	put(ctx, t, s, ports.UserRecord{App: "other", UserKey: "nobody", Version: 1})
	if _, ok, err := s.GetUser(ctx, app, "nobody"); err != nil || ok {
		t.Fatalf("GetUser after a write in another app = %v, %v; want not found", ok, err)
	}
}

func roundTrip(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	tests := []struct {
		name string
		rec  ports.UserRecord
		want ports.UserRecord // zero: same as rec
	}{
		{name: "every field set", rec: ports.UserRecord{
			App: app, UserKey: "full", State: allBytes,
			Segments: []string{"vip", "cart-abandoners", "buyers"}, LastSeq: strings.Repeat("4", 56),
			RecentIDs: []string{"h3", "h1", "h2"}, Version: 1, DueAt: 1_773_144_000, ExpiresAt: 1_780_000_000,
		}, want: ports.UserRecord{
			App: app, UserKey: "full", State: allBytes,
			Segments: []string{"buyers", "cart-abandoners", "vip"}, LastSeq: strings.Repeat("4", 56),
			RecentIDs: []string{"h1", "h2", "h3"}, Version: 1, DueAt: 1_773_144_000, ExpiresAt: 1_780_000_000,
		}},
		{name: "empty sets and zero values", rec: ports.UserRecord{
			App: app, UserKey: "empty", State: []byte{}, Segments: []string{}, Version: 1,
		}},
		{name: "nil everything", rec: ports.UserRecord{App: app, UserKey: "nil", Version: 1}},
		{name: "duplicates in sets collapse", rec: ports.UserRecord{
			App: app, UserKey: "dups", State: []byte("s"), Segments: []string{"b", "a", "b"},
			RecentIDs: []string{"x", "x"}, Version: 1,
		}, want: ports.UserRecord{
			App: app, UserKey: "dups", State: []byte("s"), Segments: []string{"a", "b"},
			RecentIDs: []string{"x"}, Version: 1,
		}},
		{name: "user key with # and unicode", rec: ports.UserRecord{
			App: app, UserKey: "ü#1#", Segments: []string{"ß"}, LastSeq: "1", Version: 1, DueAt: 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(ctx, t, s, tt.rec)
			want := tt.want
			if want.UserKey == "" {
				want = tt.rec
			}
			got, ok, err := s.GetUser(ctx, tt.rec.App, tt.rec.UserKey)
			if err != nil || !ok {
				t.Fatalf("GetUser = %v, %v", ok, err)
			}
			if !equalRecords(got, want) {
				t.Errorf("GetUser =\n  %+v\nwant\n  %+v", got, want)
			}
		})
	}
	// The store keeps its own copy.
	rec := ports.UserRecord{App: app, UserKey: "copy", State: []byte("abc"), Segments: []string{"a"}, Version: 1}
	put(ctx, t, s, rec)
	rec.State[0], rec.Segments[0] = 'X', "X"
	if got, _, _ := s.GetUser(ctx, app, "copy"); string(got.State) != "abc" || got.Segments[0] != "a" {
		t.Errorf("stored record changed with the caller's slices: %+v", got)
	}
}

// equalRecords compares records treating nil and empty slices alike.
func equalRecords(a, b ports.UserRecord) bool {
	return a.App == b.App && a.UserKey == b.UserKey && bytes.Equal(a.State, b.State) &&
		slices.Equal(a.Segments, b.Segments) && a.LastSeq == b.LastSeq &&
		slices.Equal(a.RecentIDs, b.RecentIDs) && a.Version == b.Version &&
		a.DueAt == b.DueAt && a.ExpiresAt == b.ExpiresAt
}

func versions(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	rec := func(v int64, seq string) ports.UserRecord {
		return ports.UserRecord{App: app, UserKey: "u", State: []byte(seq), LastSeq: seq, Version: v}
	}
	steps := []struct {
		rec      ports.UserRecord
		conflict bool
	}{
		{rec(2, "x"), true}, // no version 1 yet
		{rec(1, "10"), false},
		{rec(1, "11"), true}, // a second first write
		{rec(3, "12"), true}, // skips a version
		{rec(2, "13"), false},
		{rec(2, "14"), true}, // stale
		{rec(1, "15"), true},
		{rec(3, "16"), false},
	}
	for i, st := range steps {
		err := s.PutUser(ctx, st.rec)
		if st.conflict != errors.Is(err, ports.ErrVersionConflict) || (!st.conflict && err != nil) {
			t.Fatalf("step %d: PutUser(version %d) = %v, want conflict %v", i, st.rec.Version, err, st.conflict)
		}
	}
	got, ok, err := s.GetUser(ctx, app, "u")
	if err != nil || !ok || got.Version != 3 || got.LastSeq != "16" || string(got.State) != "16" {
		t.Errorf("GetUser = %+v, %v, %v; want version 3 from the last successful write", got, ok, err)
	}
}

func invalidInput(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	good := ports.MembershipChange{App: app, Segment: "seg", UserKey: "u", Joined: true, At: 1}
	changeWith := func(f func(*ports.MembershipChange)) []ports.MembershipChange {
		c := good
		f(&c)
		return []ports.MembershipChange{good, c}
	}
	until := time.Unix(1_773_144_000, 0)
	tests := []struct {
		name string
		call func() error
	}{
		{"version 0", func() error { return s.PutUser(ctx, ports.UserRecord{App: app, UserKey: "u", Version: 0}) }},
		{"empty user key", func() error { return s.PutUser(ctx, ports.UserRecord{App: app, Version: 1}) }},
		{"app with #", func() error { return s.PutUser(ctx, ports.UserRecord{App: "a#b", UserKey: "u", Version: 1}) }},
		{"empty segment name", func() error {
			return s.PutUser(ctx, ports.UserRecord{App: app, UserKey: "u", Version: 1, Segments: []string{""}})
		}},
		{"get with empty app", func() error { _, _, err := s.GetUser(ctx, "", "u"); return err }},
		{"change without segment", func() error {
			return s.RecordChanges(ctx, changeWith(func(c *ports.MembershipChange) { c.Segment = "" }))
		}},
		{"change with negative time", func() error {
			return s.RecordChanges(ctx, changeWith(func(c *ports.MembershipChange) { c.At = -1 }))
		}},
		{"change past 13 digits", func() error {
			return s.RecordChanges(ctx, changeWith(func(c *ports.MembershipChange) { c.At = 10_000_000_000_000 }))
		}},
		{"pending with limit 0", func() error { _, _, err := s.PendingChanges(ctx, app, "seg", "", 0); return err }},
		{"pending with a bad cursor", func() error { _, _, err := s.PendingChanges(ctx, app, "seg", "nope", 5); return err }},
		{"due with limit 0", func() error { _, _, err := s.DueUsers(ctx, app, until, time.Hour, 0, ""); return err }},
		{"due with negative lookback", func() error { _, _, err := s.DueUsers(ctx, app, until, -time.Hour, 5, ""); return err }},
		{"due with a bad cursor", func() error { _, _, err := s.DueUsers(ctx, app, until, time.Hour, 5, "x"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || errors.Is(err, ports.ErrVersionConflict) {
				t.Errorf("error = %v, want a validation error", err)
			}
		})
	}
	// A rejected call stores nothing, not even its valid changes.
	if got := allPending(ctx, t, s, app, "seg"); len(got) != 0 {
		t.Errorf("pending after rejected calls = %v, want none", got)
	}
	if _, ok, _ := s.GetUser(ctx, app, "u"); ok {
		t.Error("a rejected PutUser stored the user")
	}
}

func idempotentChanges(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	c := ports.MembershipChange{App: app, Segment: "vip", UserKey: "u1", Joined: true, At: 1_773_144_000_123}
	record(ctx, t, s, c)
	record(ctx, t, s, c, c) // a redelivery, and a duplicate within one call
	got := allPending(ctx, t, s, app, "vip")
	if len(got) != 1 || got[0].MembershipChange != c || got[0].Cursor == "" {
		t.Fatalf("pending = %+v, want exactly %+v with a cursor", got, c)
	}
	// Joined and left at the same instant are two changes.
	left := c
	left.Joined = false
	record(ctx, t, s, left)
	if got := allPending(ctx, t, s, app, "vip"); len(got) != 2 {
		t.Fatalf("pending = %+v, want the join and the leave", got)
	}
	// The state version and recording time come back; recording the change again (the
	// updater's retry after a version conflict) replaces them, it is the same change.
	stamped := ports.MembershipChange{App: app, Segment: "stamped", UserKey: "u1", Joined: true, At: 5, StateVersion: 7, RecordedAt: 1_773_144_000_999}
	record(ctx, t, s, stamped)
	stamped.StateVersion, stamped.RecordedAt = 8, 1_773_144_001_000
	record(ctx, t, s, stamped)
	if got := allPending(ctx, t, s, app, "stamped"); len(got) != 1 || got[0].MembershipChange != stamped {
		t.Fatalf("stamped change = %+v, want %+v", got, stamped)
	}
}

func pendingOrder(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	ch := func(uk string, joined bool, at int64) ports.MembershipChange {
		return ports.MembershipChange{App: app, Segment: "buyers", UserKey: uk, Joined: joined, At: at}
	}
	want := []ports.MembershipChange{
		ch("a", true, 999),
		ch("a", true, 1000),
		ch("a", false, 1000),
		ch("c", true, 1000),
		ch("a", true, 2000),
		ch("b", false, 3000),
		ch("a", true, 1_773_144_000_000),
	}
	shuffled := []ports.MembershipChange{want[5], want[3], want[6], want[4], want[1], want[0], want[2]}
	record(ctx, t, s, shuffled[:3]...)
	record(ctx, t, s, shuffled[3:]...)
	// Changes of other segments and apps are listed apart.
	record(ctx, t, s,
		ports.MembershipChange{App: app, Segment: "buyers2", UserKey: "z", Joined: true, At: 1},
		ports.MembershipChange{App: "shop2", Segment: "buyers", UserKey: "z", Joined: true, At: 1},
	)
	if got := changesOf(allPending(ctx, t, s, app, "buyers")); !slices.Equal(got, want) {
		t.Errorf("pending =\n  %v\nwant\n  %v", got, want)
	}
	if got := allPending(ctx, t, s, app, "nothing-here"); len(got) != 0 {
		t.Errorf("pending of an empty segment = %v", got)
	}
}

func pendingPaging(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	var all []ports.MembershipChange
	for i := range 5 {
		all = append(all, ports.MembershipChange{App: app, Segment: "s", UserKey: fmt.Sprintf("u%d", i), Joined: i%2 == 0, At: int64(1000 + i)})
	}
	record(ctx, t, s, all...)
	for _, limit := range []int{1, 2, 4, 5, 6, 100, math.MaxInt} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			var got []ports.MembershipChange
			var sizes []int
			cursor := ""
			for range 10 {
				page, next, err := s.PendingChanges(ctx, app, "s", cursor, limit)
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(page))
				got = append(got, changesOf(page)...)
				if next == "" {
					break
				}
				if next != page[len(page)-1].Cursor {
					t.Errorf("next = %q, want the last change's cursor %q", next, page[len(page)-1].Cursor)
				}
				cursor = next
			}
			if !slices.Equal(got, all) {
				t.Errorf("pages = %v, want %v", got, all)
			}
			// Full pages until the last; no empty page at the end.
			var want []int
			for left := 5; left > 0; left -= limit {
				want = append(want, min(left, limit))
			}
			if !slices.Equal(sizes, want) {
				t.Errorf("page sizes = %v, want %v", sizes, want)
			}
		})
	}
	// A cursor stays valid after its change was synced.
	page, next, err := s.PendingChanges(ctx, app, "s", "", 2)
	if err != nil || next == "" {
		t.Fatalf("first page: %v, next %q", err, next)
	}
	if err := s.MarkSynced(ctx, page); err != nil {
		t.Fatal(err)
	}
	rest, next, err := s.PendingChanges(ctx, app, "s", next, 10)
	if err != nil || next != "" || !slices.Equal(changesOf(rest), all[2:]) {
		t.Errorf("after synced cursor: %v, next %q, err %v; want %v", changesOf(rest), next, err, all[2:])
	}
}

func markSynced(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	join1 := ports.MembershipChange{App: app, Segment: "vip", UserKey: "u1", Joined: true, At: 1000}
	join2 := ports.MembershipChange{App: app, Segment: "vip", UserKey: "u2", Joined: true, At: 1000}
	record(ctx, t, s, join1, join2)
	page := allPending(ctx, t, s, app, "vip")
	if err := s.MarkSynced(ctx, page[:1]); err != nil {
		t.Fatal(err)
	}
	if got := changesOf(allPending(ctx, t, s, app, "vip")); !slices.Equal(got, []ports.MembershipChange{join2}) {
		t.Fatalf("pending after syncing u1 = %v, want only u2", got)
	}

	// A later change of the same user and segment is a new change: pending.
	leave1 := join1
	leave1.Joined, leave1.At = false, 2000
	record(ctx, t, s, leave1)
	if got := changesOf(allPending(ctx, t, s, app, "vip")); !slices.Equal(got, []ports.MembershipChange{join2, leave1}) {
		t.Fatalf("pending = %v, want u2's join and u1's leave", got)
	}

	// Syncing again, syncing a change never recorded and an empty call are no-ops. MarkSynced
	// identifies changes by their fields; the cursor is not needed.
	never := ports.PendingChange{MembershipChange: ports.MembershipChange{App: app, Segment: "vip", UserKey: "ghost", Joined: true, At: 1500}}
	for _, batch := range [][]ports.PendingChange{page[:1], {never}, nil, {{MembershipChange: join2}}} {
		if err := s.MarkSynced(ctx, batch); err != nil {
			t.Fatalf("MarkSynced(%v): %v", batch, err)
		}
	}
	if got := changesOf(allPending(ctx, t, s, app, "vip")); !slices.Equal(got, []ports.MembershipChange{leave1}) {
		t.Fatalf("pending = %v, want only u1's leave (the ghost must not appear)", got)
	}

	// Recording a synced change again makes it pending again: DynamoDB's BatchWriteItem takes
	// no condition. Syncing it twice is harmless; pinned here so the fake matches.
	record(ctx, t, s, join1)
	if got := changesOf(allPending(ctx, t, s, app, "vip")); !slices.Equal(got, []ports.MembershipChange{join1, leave1}) {
		t.Fatalf("pending = %v, want u1's join (re-recorded) and leave", got)
	}
}

// markSyncedOnlyWhatWasRead: a change recorded again between the sync's read and its
// MarkSynced (same identity, stamped for a later state write) must stay pending, or the sync
// would take it as done after planning from the state before that write.
func markSyncedOnlyWhatWasRead(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	first := ports.MembershipChange{App: app, Segment: "vip", UserKey: "u9", Joined: true, At: 3000, StateVersion: 1, RecordedAt: 1_800_000_000_000}
	record(ctx, t, s, first)
	read := allPending(ctx, t, s, app, "vip")
	if len(read) != 1 || read[0].StateVersion != 1 || read[0].RecordedAt != first.RecordedAt {
		t.Fatalf("pending = %+v, want the change with its stamps", read)
	}
	again := first
	again.StateVersion, again.RecordedAt = 2, first.RecordedAt+40
	record(ctx, t, s, again)
	if err := s.MarkSynced(ctx, read); err != nil {
		t.Fatal(err)
	}
	got := allPending(ctx, t, s, app, "vip")
	if len(got) != 1 || got[0].MembershipChange != again {
		t.Fatalf("pending after marking the earlier recording = %+v, want the later one %+v", got, again)
	}
	// The recording read last is marked.
	if err := s.MarkSynced(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got := allPending(ctx, t, s, app, "vip"); len(got) != 0 {
		t.Fatalf("pending after marking the later recording = %+v, want none", got)
	}
}

func manyChanges(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	var all []ports.MembershipChange
	for i := range 60 {
		all = append(all, ports.MembershipChange{App: app, Segment: "big", UserKey: fmt.Sprintf("user-%02d", i), Joined: true, At: 1_773_144_000_000 + int64(i/7)})
	}
	record(ctx, t, s, all...)
	got := allPending(ctx, t, s, app, "big")
	if !slices.Equal(changesOf(got), all) {
		t.Fatalf("pending = %d changes, want the 60 in order", len(got))
	}
	if err := s.MarkSynced(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got := allPending(ctx, t, s, app, "big"); len(got) != 0 {
		t.Errorf("pending after syncing all = %d changes", len(got))
	}
}

// dueUntil is 2026-03-10 12:30:00 UTC; the due tests look back 3 h, to 09:30:00.
var dueUntil = time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)

const dueLookback = 3 * time.Hour

// dueFixture writes users around the window and returns the keys due, in DueAt order.
func dueFixture(ctx context.Context, t *testing.T, s ports.SegmentStore) []string {
	u := dueUntil.Unix()
	users := []struct {
		key   string
		dueAt []int64 // successive writes
	}{
		{"late", []int64{u + 1}},
		{"h09-first", []int64{u - 3*3600}}, // exactly at until-lookback
		{"h09-before-window", []int64{u - 3*3600 - 1}},
		{"h12-moved-from-h10", []int64{u - 2*3600, u - 30*60}},
		{"h11", []int64{u - 90*60}},
		{"much-earlier", []int64{u - 5*3600}},
		{"at-until", []int64{u}},
		{"much-later", []int64{u + 2*3600}},
		{"cleared", []int64{u - 60, 0}},
		{"never", []int64{0}},
		{"h12-last-minute", []int64{u - 59}},
		{"h10", []int64{u - 2*3600 - 20*60}},
	}
	for _, usr := range users {
		for i, at := range usr.dueAt {
			put(ctx, t, s, ports.UserRecord{App: app, UserKey: usr.key, Version: int64(i + 1), DueAt: at})
		}
	}
	// The same moment in another app.
	put(ctx, t, s, ports.UserRecord{App: "shop2", UserKey: "other-app", Version: 1, DueAt: u - 60})
	return []string{"h09-first", "h10", "h11", "h12-moved-from-h10", "h12-last-minute", "at-until"}
}

func dueUsers(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	want := dueFixture(ctx, t, s)
	got, next, err := s.DueUsers(ctx, app, dueUntil, dueLookback, 100, "")
	if err != nil || next != "" {
		t.Fatalf("DueUsers: %v, next %q", err, next)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DueUsers = %v, want %v", got, want)
	}

	u := dueUntil.Unix()
	tests := []struct {
		name     string
		until    time.Time
		lookback time.Duration
		want     []string
	}{
		{"lookback 0 hits exactly until", dueUntil, 0, []string{"at-until"}},
		{"sub-second until counts whole seconds", dueUntil.Add(999 * time.Millisecond), time.Second, []string{"at-until"}},
		{"until just before a due second", time.Unix(u-59, 0).Add(-time.Nanosecond), time.Minute, nil},
		{"sub-second start rounds up", time.Unix(u-59, 500_000_000), time.Second, []string{"h12-last-minute"}},
		{"one hour", dueUntil, time.Hour, []string{"h12-moved-from-h10", "h12-last-minute", "at-until"}},
		{"earlier until", time.Unix(u-90*60, 0), time.Hour, []string{"h10", "h11"}},
		{"window in the past", time.Unix(u-4*3600, 0), 30 * time.Minute, nil},
		{"later until, long lookback", time.Unix(u+2*3600, 0), 7 * time.Hour, []string{
			"much-earlier", "h09-before-window", "h09-first", "h10", "h11", "h12-moved-from-h10",
			"h12-last-minute", "at-until", "late", "much-later"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := s.DueUsers(ctx, app, tt.until, tt.lookback, 100, "")
			if err != nil || next != "" || !slices.Equal(got, tt.want) {
				t.Errorf("DueUsers = %v, next %q, err %v; want %v", got, next, err, tt.want)
			}
		})
	}
}

func dueUsersPaging(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	want := dueFixture(ctx, t, s)
	// Two users due at the same second: the cursor must tell them apart.
	u := dueUntil.Unix()
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "tie-a", Version: 1, DueAt: u - 100})
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "tie-b", Version: 1, DueAt: u - 100})
	want = slices.Insert(want, 4, "tie-a", "tie-b")

	for _, limit := range []int{1, 2, 3, 7, 8, 9, math.MaxInt} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			var got []string
			var sizes []int
			cursor := ""
			for range 20 {
				page, next, err := s.DueUsers(ctx, app, dueUntil, dueLookback, limit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page...)
				sizes = append(sizes, len(page))
				if next == "" {
					break
				}
				cursor = next
			}
			if !sameSet(got, want) || len(got) != len(want) {
				t.Errorf("pages = %v, want %v once each", got, want)
			}
			var wantSizes []int
			for left := len(want); left > 0; left -= limit {
				wantSizes = append(wantSizes, min(left, limit))
			}
			if !slices.Equal(sizes, wantSizes) {
				t.Errorf("page sizes = %v, want %v", sizes, wantSizes)
			}
		})
	}

	// A cursor from a window that has moved: before the new window it restarts it, after it
	// ends the listing.
	page, next, err := s.DueUsers(ctx, app, dueUntil, dueLookback, 1, "")
	if err != nil || len(page) != 1 || next == "" {
		t.Fatalf("first page %v, next %q, %v", page, next, err)
	}
	got, _, err := s.DueUsers(ctx, app, dueUntil, time.Hour, 100, next)
	if err != nil || !slices.Equal(got, []string{"h12-moved-from-h10", "tie-a", "tie-b", "h12-last-minute", "at-until"}) {
		t.Errorf("cursor before the window: %v, %v", got, err)
	}
	got, next, err = s.DueUsers(ctx, app, time.Unix(u-4*3600, 0), time.Hour, 100, next)
	if err != nil || len(got) != 0 || next != "" {
		t.Errorf("cursor after the window: %v, next %q, %v", got, next, err)
	}
}

// sameSet reports whether a and b hold the same values (ignoring order).
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func put(ctx context.Context, t *testing.T, s ports.SegmentStore, rec ports.UserRecord) {
	t.Helper()
	if err := s.PutUser(ctx, rec); err != nil {
		t.Fatalf("PutUser(%s/%s v%d): %v", rec.App, rec.UserKey, rec.Version, err)
	}
}

func record(ctx context.Context, t *testing.T, s ports.SegmentStore, changes ...ports.MembershipChange) {
	t.Helper()
	if err := s.RecordChanges(ctx, changes); err != nil {
		t.Fatalf("RecordChanges: %v", err)
	}
}

// allPending reads every pending change of a segment, 7 per page.
func allPending(ctx context.Context, t *testing.T, s ports.SegmentStore, app, segment string) []ports.PendingChange {
	t.Helper()
	var all []ports.PendingChange
	cursor := ""
	for range 1000 {
		page, next, err := s.PendingChanges(ctx, app, segment, cursor, 7)
		if err != nil {
			t.Fatalf("PendingChanges: %v", err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
	t.Fatal("PendingChanges did not end")
	return nil
}

func changesOf(pending []ports.PendingChange) []ports.MembershipChange {
	out := make([]ports.MembershipChange, len(pending))
	for i, p := range pending {
		out[i] = p.MembershipChange
	}
	return out
}

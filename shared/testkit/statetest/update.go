package statetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// The SegmentStore.Update cases, run by Run with the others.

// stateBytes encodes st as the store keeps it.
func stateBytes(t *testing.T, st segments.State) []byte {
	t.Helper()
	b, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// getUser reads a user that must exist.
func getUser(ctx context.Context, t *testing.T, s ports.SegmentStore, userKey string) ports.UserRecord {
	t.Helper()
	rec, ok, err := s.GetUser(ctx, app, userKey)
	if err != nil || !ok {
		t.Fatalf("GetUser(%s) = %v, %v", userKey, ok, err)
	}
	return rec
}

// describeChanges renders changes as "segment j|l at v<StateVersion> r<RecordedAt>", sorted.
func describeChanges(changes []ports.MembershipChange) []string {
	var out []string
	for _, c := range changes {
		dir := "l"
		if c.Joined {
			dir = "j"
		}
		out = append(out, fmt.Sprintf("%s %s %s %d v%d r%d", c.UserKey, c.Segment, dir, c.At, c.StateVersion, c.RecordedAt))
	}
	slices.Sort(out)
	return out
}

// pendingOf lists the pending changes of the segments, described.
func pendingOf(ctx context.Context, t *testing.T, s ports.SegmentStore, segs ...string) []string {
	t.Helper()
	var all []ports.MembershipChange
	for _, seg := range segs {
		all = append(all, changesOf(allPending(ctx, t, s, app, seg))...)
	}
	return describeChanges(all)
}

func updateRecordsStampedChanges(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	// A new user: fn sees nothing stored and everything it sets is written as version 1.
	res, err := s.Update(ctx, app, "u", func(u *ports.UserState) error {
		if u.Found || !u.State.IsZero() || u.Segments != nil || u.DueAt != 0 {
			t.Errorf("new user handed to fn as %+v", u)
		}
		u.State.FirstSeen, u.State.LastSeen = 100, 200
		u.Segments = []string{"b", "a"}
		u.LastSeq, u.RecentIDs = "42", []string{"x1"}
		u.DueAt, u.ExpiresAt = 1_773_144_000, 1_780_000_000
		u.ChangedAt, u.RecordedAt = 5_000, time.UnixMilli(9_000)
		return nil
	})
	want := []string{"u a j 5000 v1 r9000", "u b j 5000 v1 r9000"}
	if err != nil || !res.Written || res.Version != 1 || res.Conflicts != 0 || !slices.Equal(describeChanges(res.Changes), want) {
		t.Fatalf("Update(new user) = %+v, %v; want version 1 written with the changes %v", res, err, want)
	}
	rec := getUser(ctx, t, s, "u")
	wantRec := ports.UserRecord{App: app, UserKey: "u", State: stateBytes(t, segments.State{FirstSeen: 100, LastSeen: 200}),
		Segments: []string{"a", "b"}, LastSeq: "42", RecentIDs: []string{"x1"}, Version: 1, DueAt: 1_773_144_000, ExpiresAt: 1_780_000_000}
	if !equalRecords(rec, wantRec) {
		t.Fatalf("stored =\n  %+v\nwant\n  %+v", rec, wantRec)
	}
	if got := pendingOf(ctx, t, s, "a", "b"); !slices.Equal(got, want) {
		t.Fatalf("pending = %v, want %v", got, want)
	}

	// The stored user: fn gets it decoded; the diff from what was stored is recorded, stamped
	// with version 2; what fn leaves alone is kept.
	res, err = s.Update(ctx, app, "u", func(u *ports.UserState) error {
		if !u.Found || u.State.FirstSeen != 100 || !slices.Equal(u.Segments, []string{"a", "b"}) || u.LastSeq != "42" ||
			!slices.Equal(u.RecentIDs, []string{"x1"}) || u.DueAt != 1_773_144_000 || u.ExpiresAt != 1_780_000_000 {
			t.Errorf("stored user handed to fn as %+v", u)
		}
		u.State.LastSeen = 300
		u.Segments = []string{"c", "b"}
		u.ChangedAt, u.RecordedAt = 6_000, time.UnixMilli(9_500)
		return nil
	})
	want = []string{"u a l 6000 v2 r9500", "u c j 6000 v2 r9500"}
	if err != nil || !res.Written || res.Version != 2 || !slices.Equal(describeChanges(res.Changes), want) {
		t.Fatalf("Update(stored user) = %+v, %v; want version 2 written with the changes %v", res, err, want)
	}
	rec = getUser(ctx, t, s, "u")
	wantRec.State, wantRec.Segments, wantRec.Version = stateBytes(t, segments.State{FirstSeen: 100, LastSeen: 300}), []string{"b", "c"}, 2
	if !equalRecords(rec, wantRec) {
		t.Fatalf("stored =\n  %+v\nwant\n  %+v", rec, wantRec)
	}
	if got := pendingOf(ctx, t, s, "a", "c"); !slices.Equal(got, []string{"u a j 5000 v1 r9000", want[0], want[1]}) {
		t.Fatalf("pending = %v", got)
	}

	// No change of segments: the write records nothing.
	res, err = s.Update(ctx, app, "u", func(u *ports.UserState) error { u.DueAt = 0; return nil })
	if err != nil || !res.Written || res.Version != 3 || len(res.Changes) != 0 {
		t.Fatalf("Update(due time only) = %+v, %v", res, err)
	}
	if rec := getUser(ctx, t, s, "u"); rec.DueAt != 0 || rec.Version != 3 || !slices.Equal(rec.Segments, []string{"b", "c"}) {
		t.Fatalf("stored = %+v", rec)
	}
}

func updateRetriesOnConcurrentWrite(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "u", State: stateBytes(t, segments.State{LastSeen: 1}),
		Segments: []string{"a"}, Version: 1})
	var seen []string // what each call of fn was handed
	res, err := s.Update(ctx, app, "u", func(u *ports.UserState) error {
		seen = append(seen, fmt.Sprintf("ls=%d segs=%v", u.State.LastSeen, u.Segments))
		if len(seen) == 1 {
			// Another writer (the sweeper, say) writes the user between this read and this write.
			put(ctx, t, s, ports.UserRecord{App: app, UserKey: "u", State: stateBytes(t, segments.State{LastSeen: 7}),
				Segments: []string{"a", "c"}, LastSeq: "9", Version: 2})
		}
		u.State.LastSeen++
		u.Segments = append(u.Segments, "b")
		u.ChangedAt, u.RecordedAt = 1_000, time.UnixMilli(2_000)
		return nil
	})
	if want := []string{"ls=1 segs=[a]", "ls=7 segs=[a c]"}; !slices.Equal(seen, want) {
		t.Fatalf("fn was handed %v, want the stored user, then what the other writer wrote", seen)
	}
	if err != nil || !res.Written || res.Version != 3 || res.Conflicts != 1 ||
		!slices.Equal(describeChanges(res.Changes), []string{"u b j 1000 v3 r2000"}) {
		t.Fatalf("Update = %+v, %v; want version 3 after one conflict, joining b", res, err)
	}
	rec := getUser(ctx, t, s, "u")
	if rec.Version != 3 || !slices.Equal(rec.Segments, []string{"a", "b", "c"}) || rec.LastSeq != "9" ||
		string(rec.State) != string(stateBytes(t, segments.State{LastSeen: 8})) {
		t.Fatalf("stored = %+v; want the other writer's record changed by fn, version 3", rec)
	}
	// The join recorded by the first attempt is the same change: recorded again, it belongs to
	// the write that landed.
	if got := pendingOf(ctx, t, s, "a", "b", "c"); !slices.Equal(got, []string{"u b j 1000 v3 r2000"}) {
		t.Fatalf("pending = %v, want the join of b stamped with version 3", got)
	}
}

func updateGivesUp(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "u", Version: 1})
	calls, version := 0, int64(1)
	res, err := s.Update(ctx, app, "u", func(u *ports.UserState) error {
		calls++
		version++ // another writer wins every race
		put(ctx, t, s, ports.UserRecord{App: app, UserKey: "u", LastSeq: fmt.Sprint(version), Version: version})
		u.LastSeq = "mine"
		return nil
	})
	if !errors.Is(err, ports.ErrVersionConflict) || res.Written || res.Conflicts != userstate.MaxConflictRetries {
		t.Fatalf("Update = %+v, %v; want ErrVersionConflict after %d conflicts", res, err, userstate.MaxConflictRetries)
	}
	if calls != userstate.MaxConflictRetries+1 {
		t.Errorf("fn called %d times, want %d", calls, userstate.MaxConflictRetries+1)
	}
	if rec := getUser(ctx, t, s, "u"); rec.Version != version || rec.LastSeq != fmt.Sprint(version) {
		t.Errorf("stored = %+v; want the other writer's last write", rec)
	}
}

func updateFnErrorWritesNothing(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	stored := ports.UserRecord{App: app, UserKey: "u", State: stateBytes(t, segments.State{LastSeen: 1}), Segments: []string{"a"}, Version: 1}
	put(ctx, t, s, stored)
	boom := errors.New("boom")
	for _, uk := range []string{"u", "new"} {
		res, err := s.Update(ctx, app, uk, func(u *ports.UserState) error {
			u.State.LastSeen = 99
			u.Segments = []string{"b"}
			u.ChangedAt = 1_000
			return fmt.Errorf("fold: %w", boom)
		})
		if !errors.Is(err, boom) || res.Written || len(res.Changes) != 0 {
			t.Fatalf("Update(%s) = %+v, %v; want fn's error and nothing written", uk, res, err)
		}
	}
	if rec := getUser(ctx, t, s, "u"); !equalRecords(rec, stored) {
		t.Errorf("stored = %+v, want it untouched", rec)
	}
	if _, ok, err := s.GetUser(ctx, app, "new"); ok || err != nil {
		t.Errorf("a failed Update created the user (%v, %v)", ok, err)
	}
	if got := pendingOf(ctx, t, s, "a", "b"); len(got) != 0 {
		t.Errorf("pending = %v, want none", got)
	}

	// A stored state that does not decode is an error before fn runs.
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "garbled", State: []byte("{not json"), Version: 1})
	if _, err := s.Update(ctx, app, "garbled", func(*ports.UserState) error {
		t.Error("fn called with a state that does not decode")
		return nil
	}); err == nil {
		t.Error("Update of a garbled state: no error")
	}
}

func updateNothingToWrite(ctx context.Context, t *testing.T, s ports.SegmentStore) {
	stored := ports.UserRecord{App: app, UserKey: "u", State: stateBytes(t, segments.State{LastSeen: 1}),
		Segments: []string{"a"}, Version: 1, DueAt: 1_773_144_000}
	put(ctx, t, s, stored)
	// fn may look at what the write would change and decide against it (a dry run): the
	// changes come back unstamped, nothing is recorded or written.
	res, err := s.Update(ctx, app, "u", func(u *ports.UserState) error {
		u.Segments, u.DueAt, u.ChangedAt = []string{"b"}, 0, 1_000
		return ports.ErrNothingToWrite
	})
	if err != nil || res.Written || res.Version != 1 || !slices.Equal(describeChanges(res.Changes), []string{"u a l 1000 v0 r0", "u b j 1000 v0 r0"}) {
		t.Fatalf("Update = %+v, %v; want nothing written, the would-be changes unstamped", res, err)
	}
	if rec := getUser(ctx, t, s, "u"); !equalRecords(rec, stored) {
		t.Errorf("stored = %+v, want it untouched", rec)
	}
	if got := pendingOf(ctx, t, s, "a", "b"); len(got) != 0 {
		t.Errorf("pending = %v, want none", got)
	}
	// An unknown user stays unknown.
	res, err = s.Update(ctx, app, "nobody", func(u *ports.UserState) error {
		if u.Found {
			t.Error("unknown user handed to fn as found")
		}
		return ports.ErrNothingToWrite
	})
	if err != nil || res.Written || res.Version != 0 || len(res.Changes) != 0 {
		t.Fatalf("Update(unknown) = %+v, %v", res, err)
	}
	if _, ok, err := s.GetUser(ctx, app, "nobody"); ok || err != nil {
		t.Errorf("Update with nothing to write created the user (%v, %v)", ok, err)
	}
}

package statetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// RunSync runs the ports.AudienceSyncStore cases, each on a fresh, empty store from newStore.
func RunSync(t *testing.T, newStore func(t *testing.T) ports.AudienceSyncStore) {
	for _, c := range syncCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var syncCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s ports.AudienceSyncStore)
}{
	{"lease", leaseSteps},
	{"lease of another app is independent", leasePerApp},
	{"audience state round trip every field", audienceRoundTrip},
	{"unknown audience state", unknownAudience},
	{"audience state versions are optimistic locks", audienceVersions},
	{"audience states of segments are independent", audienceSegments},
	{"invalid sync input is rejected", invalidSyncInput},
	{"member index adds, removes and pages in key order", memberIndex},
	{"member indexes of audiences and apps are independent", memberIndexScope},
	{"ad account pauses are extended, never shortened", accountPauses},
}

// t0 is a whole millisecond: DynamoDB keeps lease times in milliseconds.
var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func acquire(ctx context.Context, t *testing.T, s ports.AudienceSyncStore, app, holder string, now, until time.Time, want bool) {
	t.Helper()
	ok, err := s.AcquireLease(ctx, app, holder, now, until)
	if err != nil || ok != want {
		t.Fatalf("AcquireLease(%s, %s, now %s, until %s) = %v, %v; want %v", app, holder,
			now.Sub(t0), until.Sub(t0), ok, err, want)
	}
}

func release(ctx context.Context, t *testing.T, s ports.AudienceSyncStore, app, holder string) {
	t.Helper()
	if err := s.ReleaseLease(ctx, app, holder); err != nil {
		t.Fatalf("ReleaseLease(%s, %s) = %v", app, holder, err)
	}
}

func leaseSteps(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	m := time.Minute
	acquire(ctx, t, s, app, "a", at(0), at(5*m), true)                      // free
	acquire(ctx, t, s, app, "b", at(m), at(6*m), false)                     // held by a
	acquire(ctx, t, s, app, "b", at(5*m), at(9*m), false)                   // until == now: not expired yet
	acquire(ctx, t, s, app, "a", at(4*m), at(10*m), true)                   // a extends to 10m
	acquire(ctx, t, s, app, "b", at(7*m), at(12*m), false)                  // would have expired at 5m
	acquire(ctx, t, s, app, "b", at(10*m+time.Millisecond), at(15*m), true) // expired
	acquire(ctx, t, s, app, "a", at(11*m), at(16*m), false)                 // now b's

	release(ctx, t, s, app, "a") // not a's: nothing happens
	acquire(ctx, t, s, app, "a", at(12*m), at(17*m), false)
	release(ctx, t, s, app, "b")
	acquire(ctx, t, s, app, "a", at(12*m), at(17*m), true) // freed
	release(ctx, t, s, app, "a")
	release(ctx, t, s, app, "a") // releasing a free lease is fine
	acquire(ctx, t, s, app, "c", at(13*m), at(14*m), true)
}

func leasePerApp(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	m := time.Minute
	acquire(ctx, t, s, app, "a", at(0), at(5*m), true)
	acquire(ctx, t, s, "other", "b", at(0), at(5*m), true)
	acquire(ctx, t, s, app, "b", at(m), at(5*m), false)
	acquire(ctx, t, s, "other", "a", at(m), at(5*m), false)
	release(ctx, t, s, "other", "a") // a holds shop's, not other's
	acquire(ctx, t, s, "other", "c", at(m), at(5*m), false)
	release(ctx, t, s, "other", "b")
	acquire(ctx, t, s, app, "b", at(m), at(5*m), false) // shop's still a's
	acquire(ctx, t, s, "other", "c", at(m), at(5*m), true)
}

func putAudience(ctx context.Context, t *testing.T, s ports.AudienceSyncStore, st ports.AudienceSyncState) {
	t.Helper()
	if err := s.PutAudienceState(ctx, st); err != nil {
		t.Fatalf("PutAudienceState(%+v) = %v", st, err)
	}
}

func getAudience(ctx context.Context, t *testing.T, s ports.AudienceSyncStore, app, segment string) ports.AudienceSyncState {
	t.Helper()
	st, ok, err := s.GetAudienceState(ctx, app, segment)
	if err != nil || !ok {
		t.Fatalf("GetAudienceState(%s, %s) = %+v, %v, %v; want found", app, segment, st, ok, err)
	}
	return st
}

func audienceRoundTrip(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	tests := []ports.AudienceSyncState{
		{
			App: app, Segment: "full", AudienceID: "23851234567890123", Size: 1_234_567, LastSyncAt: 1_773_144_000,
			SessionID: 9_007_199_254_740_993, Op: "remove", BatchesDone: 42, Plan: "sha256:0f1e2d3c",
			SessionStartedAt: 1_773_140_000, LastRefreshAt: 1_773_000_000, RefreshCursor: "uk-Zz_09",
			RefreshRows: 30_000, RefreshExcluded: 12, RemovalsHeld: 3, RemovalError: "meta 2650: Audience Size Too Low",
			RemovalRefusals: 4, RemovalSkipRuns: 7, GoneID: "23851234567890123", GoneAt: 1_773_150_000, Version: 1,
		},
		{App: app, Segment: "bare", Version: 1},
		{App: app, Segment: "negative-size", AudienceID: "1", Size: -3, Op: "add", Version: 1},
		{App: app, Segment: "ü-seg", Plan: "p#1#", Version: 1},
	}
	for _, want := range tests {
		t.Run(want.Segment, func(t *testing.T) {
			putAudience(ctx, t, s, want)
			if got := getAudience(ctx, t, s, want.App, want.Segment); got != want {
				t.Errorf("GetAudienceState =\n  %+v\nwant\n  %+v", got, want)
			}
		})
	}
	// Later versions replace every field, zero values included.
	st := tests[0]
	st.Version, st.SessionID, st.Op, st.BatchesDone, st.Plan, st.SessionStartedAt = 2, 0, "", 0, "", 0
	st.RefreshCursor, st.RefreshRows, st.RefreshExcluded = "", 0, 0
	st.RemovalsHeld, st.RemovalError, st.RemovalRefusals, st.RemovalSkipRuns, st.GoneID, st.GoneAt = 0, "", 0, 0, "", 0
	putAudience(ctx, t, s, st)
	if got := getAudience(ctx, t, s, app, "full"); got != st {
		t.Errorf("after version 2: %+v, want %+v", got, st)
	}
}

func unknownAudience(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	if st, ok, err := s.GetAudienceState(ctx, app, "nothing"); err != nil || ok {
		t.Fatalf("GetAudienceState(unknown) = %+v, %v, %v; want not found", st, ok, err)
	}
	// A state of another app, and the app's lease, are not this state.
	putAudience(ctx, t, s, ports.AudienceSyncState{App: "other", Segment: "nothing", Version: 1})
	acquire(ctx, t, s, app, "a", t0, at(time.Minute), true)
	if _, ok, err := s.GetAudienceState(ctx, app, "nothing"); err != nil || ok {
		t.Fatalf("GetAudienceState after a write in another app = %v, %v; want not found", ok, err)
	}
	if _, ok, err := s.GetAudienceState(ctx, app, "lease"); err != nil || ok {
		t.Fatalf("GetAudienceState(lease) = %v, %v; want not found", ok, err)
	}
}

func audienceVersions(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	st := func(v int64, plan string) ports.AudienceSyncState {
		return ports.AudienceSyncState{App: app, Segment: "s", Plan: plan, Version: v}
	}
	steps := []struct {
		st       ports.AudienceSyncState
		conflict bool
	}{
		{st(2, "x"), true}, // no version 1 yet
		{st(1, "10"), false},
		{st(1, "11"), true}, // a second first write
		{st(3, "12"), true}, // skips a version
		{st(2, "13"), false},
		{st(2, "14"), true}, // stale
		{st(1, "15"), true},
		{st(3, "16"), false},
	}
	for i, step := range steps {
		err := s.PutAudienceState(ctx, step.st)
		if step.conflict != errors.Is(err, ports.ErrVersionConflict) || (!step.conflict && err != nil) {
			t.Fatalf("step %d: PutAudienceState(version %d) = %v, want conflict %v", i, step.st.Version, err, step.conflict)
		}
	}
	if got := getAudience(ctx, t, s, app, "s"); got.Version != 3 || got.Plan != "16" {
		t.Errorf("final state = %+v, want version 3, plan 16", got)
	}
}

func audienceSegments(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	putAudience(ctx, t, s, ports.AudienceSyncState{App: app, Segment: "a", AudienceID: "1", Version: 1})
	putAudience(ctx, t, s, ports.AudienceSyncState{App: app, Segment: "b", AudienceID: "2", Version: 1})
	putAudience(ctx, t, s, ports.AudienceSyncState{App: "other", Segment: "a", AudienceID: "3", Version: 1})
	putAudience(ctx, t, s, ports.AudienceSyncState{App: app, Segment: "a", AudienceID: "1", Size: 5, Version: 2})
	for _, want := range []ports.AudienceSyncState{
		{App: app, Segment: "a", AudienceID: "1", Size: 5, Version: 2},
		{App: app, Segment: "b", AudienceID: "2", Version: 1},
		{App: "other", Segment: "a", AudienceID: "3", Version: 1},
	} {
		if got := getAudience(ctx, t, s, want.App, want.Segment); got != want {
			t.Errorf("GetAudienceState(%s, %s) = %+v, want %+v", want.App, want.Segment, got, want)
		}
	}
}

func invalidSyncInput(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	calls := map[string]func() error{
		"lease of an empty app":      func() error { _, err := s.AcquireLease(ctx, "", "h", t0, t0); return err },
		"lease of an app with #":     func() error { _, err := s.AcquireLease(ctx, "a#b", "h", t0, t0); return err },
		"lease for an empty holder":  func() error { _, err := s.AcquireLease(ctx, app, "", t0, t0); return err },
		"release by an empty holder": func() error { return s.ReleaseLease(ctx, app, "") },
		"release of an empty app":    func() error { return s.ReleaseLease(ctx, "", "h") },
		"get with an empty segment":  func() error { _, _, err := s.GetAudienceState(ctx, app, ""); return err },
		"get with a segment with #":  func() error { _, _, err := s.GetAudienceState(ctx, app, "a#b"); return err },
		"put with an empty app": func() error {
			return s.PutAudienceState(ctx, ports.AudienceSyncState{Segment: "s", Version: 1})
		},
		"put with a segment with #": func() error {
			return s.PutAudienceState(ctx, ports.AudienceSyncState{App: app, Segment: "s#", Version: 1})
		},
		"put with version 0": func() error {
			return s.PutAudienceState(ctx, ports.AudienceSyncState{App: app, Segment: "s"})
		},
		"members set with an empty key":     func() error { return s.SetMembers(ctx, app, "s", []string{""}, nil) },
		"members removed with an empty key": func() error { return s.SetMembers(ctx, app, "s", nil, []string{""}) },
		"members added and removed":         func() error { return s.SetMembers(ctx, app, "s", []string{"a", "b"}, []string{"b"}) },
		"members set with a segment with #": func() error { return s.SetMembers(ctx, app, "s#", []string{"a"}, nil) },
		"members of an empty app":           func() error { _, _, err := s.Members(ctx, "", "s", "", 10); return err },
		"members with limit 0":              func() error { _, _, err := s.Members(ctx, app, "s", "", 0); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil || errors.Is(err, ports.ErrVersionConflict) {
			t.Errorf("%s: %v, want an invalid input error", name, err)
		}
	}
}

// allMembers pages through a member index limit keys at a time, checking the paging contract.
func allMembers(ctx context.Context, t *testing.T, s ports.AudienceSyncStore, app, segment string, limit int) []string {
	t.Helper()
	var out []string
	after := ""
	for range 1000 {
		page, next, err := s.Members(ctx, app, segment, after, limit)
		if err != nil {
			t.Fatalf("Members(%s, %s, %q, %d) = %v", app, segment, after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("Members returned %d keys, limit %d", len(page), limit)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		if len(page) == 0 || next != page[len(page)-1] {
			t.Fatalf("Members page %v has next %q, want its last key", page, next)
		}
		after = next
	}
	t.Fatal("Members did not finish paging")
	return nil
}

func setMembers(ctx context.Context, t *testing.T, s ports.AudienceSyncStore, app, segment string, added, removed []string) {
	t.Helper()
	if err := s.SetMembers(ctx, app, segment, added, removed); err != nil {
		t.Fatalf("SetMembers(%s, %s, %v, %v) = %v", app, segment, added, removed, err)
	}
}

func memberIndex(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	if got := allMembers(ctx, t, s, app, "cart", 10); len(got) != 0 {
		t.Fatalf("empty index lists %v", got)
	}
	var keys []string
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("uk-%02d", (i*37)%60)) // added out of order
	}
	setMembers(ctx, t, s, app, "cart", keys, nil)
	setMembers(ctx, t, s, app, "cart", keys[:10], nil) // again: idempotent
	var removed []string
	for i := 0; i < 60; i += 3 {
		removed = append(removed, fmt.Sprintf("uk-%02d", i))
	}
	removed = append(removed, "uk-never-added")
	setMembers(ctx, t, s, app, "cart", nil, removed)
	var want []string
	for i := range 60 {
		if i%3 != 0 {
			want = append(want, fmt.Sprintf("uk-%02d", i))
		}
	}
	for _, limit := range []int{1, 7, 40, 41, 1000} {
		if got := allMembers(ctx, t, s, app, "cart", limit); !slices.Equal(got, want) {
			t.Errorf("limit %d: members %v, want %v", limit, got, want)
		}
	}
	// Paging after a key that is not (or no longer) in the index starts at the next one.
	if page, _, err := s.Members(ctx, app, "cart", "uk-03", 2); err != nil || !slices.Equal(page, []string{"uk-04", "uk-05"}) {
		t.Errorf("Members after a removed key = %v, %v; want [uk-04 uk-05]", page, err)
	}
	if page, next, err := s.Members(ctx, app, "cart", "uk-59", 5); err != nil || len(page) != 0 || next != "" {
		t.Errorf("Members after the last key = %v, %q, %v; want nothing", page, next, err)
	}
	// A page ending exactly at the last key says nothing follows.
	if page, next, err := s.Members(ctx, app, "cart", "uk-56", 2); err != nil || !slices.Equal(page, []string{"uk-58", "uk-59"}) || next != "" {
		t.Errorf("last page = %v, %q, %v; want [uk-58 uk-59] and no next", page, next, err)
	}
}

func memberIndexScope(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	setMembers(ctx, t, s, app, "a", []string{"u1", "u2"}, nil)
	setMembers(ctx, t, s, app, "b", []string{"u2", "u3"}, nil)
	setMembers(ctx, t, s, "other", "a", []string{"u9"}, nil)
	setMembers(ctx, t, s, app, "b", nil, []string{"u2"})
	putAudience(ctx, t, s, ports.AudienceSyncState{App: app, Segment: "a", AudienceID: "1", Version: 1})
	acquire(ctx, t, s, app, "h", t0, at(time.Minute), true)
	for _, c := range []struct {
		app, segment string
		want         []string
	}{{app, "a", []string{"u1", "u2"}}, {app, "b", []string{"u3"}}, {"other", "a", []string{"u9"}}, {"other", "b", nil}} {
		if got := allMembers(ctx, t, s, c.app, c.segment, 10); !slices.Equal(got, c.want) {
			t.Errorf("members of %s/%s = %v, want %v", c.app, c.segment, got, c.want)
		}
	}
}

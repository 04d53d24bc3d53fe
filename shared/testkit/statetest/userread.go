package statetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// UserReadStore is what the ports.UserReader cases need: user state and consent decisions in
// one store that reads both at once.
type UserReadStore interface {
	ConsentStore
	ports.UserReader
}

// RunUserRead runs the ports.UserReader cases, each on a fresh, empty store from newStore.
func RunUserRead(t *testing.T, newStore func(t *testing.T) UserReadStore) {
	for _, c := range userReadCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var userReadCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s UserReadStore)
}{
	{"read user finds what GetUser and Consents find, together", readUserTogether},
	{"update from a read writes without reading, and reads again after a concurrent write", updateFromRead},
	{"invalid read input is rejected", invalidReadInput},
}

func readUserTogether(ctx context.Context, t *testing.T, s UserReadStore) {
	check := func(userKey string, wantFound bool, wantConsent bool) {
		t.Helper()
		got, err := s.ReadUser(ctx, app, userKey)
		if err != nil {
			t.Fatalf("ReadUser(%s): %v", userKey, err)
		}
		rec, found, err := s.GetUser(ctx, app, userKey)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			rec = ports.UserRecord{App: app, UserKey: userKey}
		}
		if got.Found != wantFound || found != wantFound || !equalRecords(got.Record, rec) {
			t.Errorf("ReadUser(%s) = found %v, %+v; want found %v, %+v (GetUser's)", userKey, got.Found, got.Record, wantFound, rec)
		}
		consents, err := s.Consents(ctx, app, []string{userKey})
		if err != nil {
			t.Fatal(err)
		}
		c, decided := consents[userKey]
		switch {
		case decided != wantConsent || (got.Consent != nil) != wantConsent:
			t.Errorf("ReadUser(%s).Consent = %+v, Consents has one: %v; want one: %v", userKey, got.Consent, decided, wantConsent)
		case decided && !reflect.DeepEqual(*got.Consent, c):
			t.Errorf("ReadUser(%s).Consent = %+v, want %+v (Consents')", userKey, *got.Consent, c)
		}
	}
	check("nobody", false, false)

	full := ports.UserRecord{App: app, UserKey: "both", State: stateBytes(t, segments.State{FirstSeen: 5, LastSeen: 9}),
		Segments: []string{"b", "a"}, LastSeq: "49680000000000000000000000001", RecentIDs: []string{"x", "y"}, Version: 1,
		DueAt: 1_773_144_000, ExpiresAt: 1_780_000_000}
	put(ctx, t, s, full)
	for _, c := range []ports.UserConsent{
		{App: app, UserKey: "both", AdsPersonalization: false, LDU: flag(true), AdvertiserTracking: flag(false), At: 1_773_000_000, ErasureID: "er-1"},
		{App: app, UserKey: "consent-only", AdsPersonalization: true, At: 1_773_000_001},
		// The same key in another app is another user.
		{App: "other", UserKey: "state-only", AdsPersonalization: false, At: 1_773_000_002},
	} {
		if err := s.PutConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "state-only", LastSeq: "7", Version: 1})
	put(ctx, t, s, ports.UserRecord{App: "other", UserKey: "consent-only", LastSeq: "8", Version: 1})
	// Other items of the user's partition (the cool-down item) are not state or consent.
	if cs, ok := s.(ports.CooldownStore); ok {
		if err := cs.SetLastDeliveries(ctx, app, map[string]int64{"both": 1_773_000_000_000, "nobody": 1}); err != nil {
			t.Fatal(err)
		}
	}
	check("both", true, true)
	check("state-only", true, false)
	check("consent-only", false, true)
	check("nobody", false, false)

	// What a read returns is the caller's: changing it changes nothing stored.
	got, _ := s.ReadUser(ctx, app, "both")
	got.Record.State[0], got.Record.Segments[0] = 'X', "X"
	*got.Consent.LDU = false
	check("both", true, true)
	if again, _ := s.ReadUser(ctx, app, "both"); !*again.Consent.LDU || again.Record.Segments[0] != "a" {
		t.Errorf("the stored user changed with the caller's copy: %+v", again)
	}
}

func updateFromRead(ctx context.Context, t *testing.T, s UserReadStore) {
	// A new user, read as unknown: the update writes version 1.
	read, err := s.ReadUser(ctx, app, "u")
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.UpdateRead(ctx, read, func(u *ports.UserState) error {
		if u.Found {
			t.Errorf("unknown user handed to fn as found: %+v", u)
		}
		u.State.LastSeen = 1
		u.Segments = []string{"a"}
		u.ChangedAt, u.RecordedAt = 1_000, time.UnixMilli(2_000)
		return nil
	})
	if err != nil || !res.Written || res.Version != 1 || res.Conflicts != 0 ||
		!slices.Equal(describeChanges(res.Changes), []string{"u a j 1000 v1 r2000"}) {
		t.Fatalf("UpdateRead(unknown) = %+v, %v; want version 1 joining a", res, err)
	}

	// fn starts from what was read, not from what is stored now: a read that is stale meets a
	// conflict, and fn runs again on the fresh state.
	read, err = s.ReadUser(ctx, app, "u")
	if err != nil {
		t.Fatal(err)
	}
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "u", State: stateBytes(t, segments.State{LastSeen: 7}),
		Segments: []string{"a", "c"}, LastSeq: "9", Version: 2})
	var seen []string
	res, err = s.UpdateRead(ctx, read, func(u *ports.UserState) error {
		seen = append(seen, fmt.Sprintf("ls=%d segs=%v", u.State.LastSeen, u.Segments))
		u.State.LastSeen++
		u.Segments = append(u.Segments, "b")
		u.ChangedAt, u.RecordedAt = 3_000, time.UnixMilli(4_000)
		return nil
	})
	if want := []string{"ls=1 segs=[a]", "ls=7 segs=[a c]"}; !slices.Equal(seen, want) {
		t.Fatalf("fn was handed %v, want what was read, then what the other writer wrote", seen)
	}
	if err != nil || !res.Written || res.Version != 3 || res.Conflicts != 1 {
		t.Fatalf("UpdateRead(stale) = %+v, %v; want version 3 after one conflict", res, err)
	}
	rec := getUser(ctx, t, s, "u")
	if rec.Version != 3 || !slices.Equal(rec.Segments, []string{"a", "b", "c"}) || rec.LastSeq != "9" ||
		string(rec.State) != string(stateBytes(t, segments.State{LastSeen: 8})) {
		t.Fatalf("stored = %+v; want the other writer's record changed by fn, version 3", rec)
	}

	// Nothing to write: nothing written, the version read reported.
	read, _ = s.ReadUser(ctx, app, "u")
	res, err = s.UpdateRead(ctx, read, func(u *ports.UserState) error { return ports.ErrNothingToWrite })
	if err != nil || res.Written || res.Version != 3 {
		t.Fatalf("UpdateRead(nothing to write) = %+v, %v", res, err)
	}
}

func invalidReadInput(ctx context.Context, t *testing.T, s UserReadStore) {
	for _, tc := range []struct{ app, userKey string }{{"", "u"}, {app, ""}, {"a#b", "u"}} {
		if _, err := s.ReadUser(ctx, tc.app, tc.userKey); err == nil {
			t.Errorf("ReadUser(%q, %q) accepted", tc.app, tc.userKey)
		}
	}
}

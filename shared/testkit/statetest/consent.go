package statetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// ConsentStore is what the consent cases need: consent items next to user state.
type ConsentStore interface {
	ports.ConsentStore
	ports.SegmentStore
}

// RunConsent runs the ports.ConsentStore cases, each on a fresh, empty store from newStore.
func RunConsent(t *testing.T, newStore func(t *testing.T) ConsentStore) {
	for _, c := range consentCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var consentCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s ConsentStore)
}{
	{"consent round trip, replaced by a later decision", consentRoundTrip},
	{"consents of many users, apps apart, state untouched", consentsMany},
	{"erasure audit round trip", erasureRoundTrip},
	{"an erasure is a pending archive purge until done", pendingPurges},
	{"invalid consent input is rejected", invalidConsentInput},
}

func flag(b bool) *bool { return &b }

func consentRoundTrip(ctx context.Context, t *testing.T, s ConsentStore) {
	want := ports.UserConsent{App: app, UserKey: "u-1", AdsPersonalization: false, AdvertiserTracking: flag(false),
		ApplicationTracking: flag(true), LDU: flag(true), At: 1_773_144_000, ErasureID: "er-1"}
	if err := s.PutConsent(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Consents(ctx, app, []string{"u-1"})
	if err != nil || !reflect.DeepEqual(got, map[string]ports.UserConsent{"u-1": want}) {
		t.Fatalf("Consents = %+v, %v; want %+v", got, err, want)
	}
	if !got["u-1"].Withdrawn() {
		t.Error("a decision without ads personalisation is not a withdrawal")
	}
	// A later grant replaces everything, optional flags included.
	grant := ports.UserConsent{App: app, UserKey: "u-1", AdsPersonalization: true, At: 1_773_145_000}
	if err := s.PutConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	got, err = s.Consents(ctx, app, []string{"u-1", "u-1"})
	if err != nil || !reflect.DeepEqual(got, map[string]ports.UserConsent{"u-1": grant}) || got["u-1"].Withdrawn() {
		t.Fatalf("after the grant: %+v, %v", got, err)
	}
}

func consentsMany(ctx context.Context, t *testing.T, s ConsentStore) {
	put(ctx, t, s, ports.UserRecord{App: app, UserKey: "u-000", State: []byte(`{}`), Segments: []string{"vip"}, Version: 1})
	var keys []string
	want := map[string]ports.UserConsent{}
	for i := range 250 { // more than one BatchGetItem call
		k := fmt.Sprintf("u-%03d", i)
		keys = append(keys, k)
		if i%3 == 0 {
			c := ports.UserConsent{App: app, UserKey: k, AdsPersonalization: i%2 == 0, At: int64(1_773_000_000 + i)}
			if err := s.PutConsent(ctx, c); err != nil {
				t.Fatal(err)
			}
			want[k] = c
		}
	}
	if err := s.PutConsent(ctx, ports.UserConsent{App: "other", UserKey: "u-001", At: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Consents(ctx, app, keys)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Consents of 250 users: %d found, %v; want %d", len(got), err, len(want))
	}
	if got, err := s.Consents(ctx, app, nil); err != nil || len(got) != 0 {
		t.Fatalf("Consents of nobody = %v, %v", got, err)
	}
	// The consent item does not disturb the user's state item.
	rec, found, err := s.GetUser(ctx, app, "u-000")
	if err != nil || !found || rec.Version != 1 || len(rec.Segments) != 1 {
		t.Fatalf("user state after a consent write: %+v %v %v", rec, found, err)
	}
}

func erasureRoundTrip(ctx context.Context, t *testing.T, s ConsentStore) {
	want := ports.ErasureRecord{ID: "er-7", App: app, UserKey: "u-1", RequestedAt: 100, CompletedAt: 101,
		Audiences: []string{"cart_abandoner", "vip"}, ExpiresAt: 1_900_000_000}
	if err := s.PutErasure(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Erasure(ctx, app, "er-7")
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("Erasure = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	bare := ports.ErasureRecord{ID: "er-8", App: app, UserKey: "u-2", RequestedAt: 100}
	if err := s.PutErasure(ctx, bare); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Erasure(ctx, app, "er-8"); err != nil || !ok || !reflect.DeepEqual(got, bare) {
		t.Fatalf("bare erasure = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := s.Erasure(ctx, "other", "er-7"); err != nil || ok {
		t.Fatalf("erasure of another app found: %v %v", ok, err)
	}
}

func invalidConsentInput(ctx context.Context, t *testing.T, s ConsentStore) {
	calls := map[string]func() error{
		"consent without app":      func() error { return s.PutConsent(ctx, ports.UserConsent{UserKey: "u", At: 1}) },
		"consent without user key": func() error { return s.PutConsent(ctx, ports.UserConsent{App: app, At: 1}) },
		"consent without time":     func() error { return s.PutConsent(ctx, ports.UserConsent{App: app, UserKey: "u"}) },
		"consents with an empty key": func() error {
			_, err := s.Consents(ctx, app, []string{"u", ""})
			return err
		},
		"erasure without id": func() error { return s.PutErasure(ctx, ports.ErasureRecord{App: app, UserKey: "u", RequestedAt: 1}) },
		"erasure id with #": func() error {
			return s.PutErasure(ctx, ports.ErasureRecord{ID: "a#b", App: app, UserKey: "u", RequestedAt: 1})
		},
		"erasure without time": func() error { return s.PutErasure(ctx, ports.ErasureRecord{ID: "e", App: app, UserKey: "u"}) },
		"erasure empty audience": func() error {
			return s.PutErasure(ctx, ports.ErasureRecord{ID: "e", App: app, UserKey: "u", RequestedAt: 1, Audiences: []string{""}})
		},
		"read erasure without id": func() error { _, _, err := s.Erasure(ctx, app, ""); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil || errors.Is(err, ports.ErrVersionConflict) {
			t.Errorf("%s: %v, want an invalid input error", name, err)
		}
	}
}

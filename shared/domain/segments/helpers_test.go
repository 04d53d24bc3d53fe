package segments

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// t0 is a Monday, 10:00 UTC: days are easy to reason about.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const (
	sec    = time.Second
	minute = time.Minute
	hour   = time.Hour
	day    = 24 * time.Hour
)

// sampleApp loads the sample app of infra/config/apps.json (the default segment pack).
func sampleApp(t testing.TB) *appconfig.App {
	t.Helper()
	cfg, err := loadConfig(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	app, ok := cfg.App("sample-shop")
	if !ok {
		t.Fatal("no sample-shop app")
	}
	return app
}

// sampleRules compiles the default pack; with ids, only those segments of it.
func sampleRules(t testing.TB, ids ...string) *AppRules {
	t.Helper()
	app := *sampleApp(t)
	if len(ids) > 0 {
		app.Segments = slices.DeleteFunc(slices.Clone(app.Segments), func(s appconfig.Segment) bool {
			return !slices.Contains(ids, s.ID)
		})
		if len(app.Segments) != len(ids) {
			t.Fatalf("sample pack lacks some of %v", ids)
		}
	}
	r, err := Compile(&app)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var eventSeq atomic.Int64

// ev builds a consented iOS event (ATT granted) named name at time at.
func ev(name string, at time.Time, opts ...func(*envelope.Event)) *envelope.Event {
	e := &envelope.Event{
		ID:      fmt.Sprintf("evt-%d", eventSeq.Add(1)),
		Name:    name,
		Time:    at.Unix(),
		Device:  envelope.Device{Platform: "ios", OSVersion: "18.1"},
		Consent: envelope.Consent{AdsPersonalization: envelope.True, AdvertiserTracking: envelope.True},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func value(v float64, currency string) func(*envelope.Event) {
	return func(e *envelope.Event) { e.Custom.Value, e.Custom.Currency = envelope.Float(v), currency }
}

func expires(at time.Time) func(*envelope.Event) {
	return func(e *envelope.Event) { e.Custom.SubscriptionExpiresAt = at.Unix() }
}

// withoutConsent strips the event as the ingest API does for users without
// ads_personalization=true: no identifiers, no device, no custom data.
func withoutConsent(flag envelope.Flag) func(*envelope.Event) {
	return func(e *envelope.Event) {
		e.Consent = envelope.Consent{AdsPersonalization: flag}
		e.User, e.Device, e.Custom = envelope.User{}, envelope.Device{}, envelope.CustomData{}
	}
}

func email(addr string) func(*envelope.Event) {
	return func(e *envelope.Event) { e.User.Email = hash(addr) }
}

func phone(p string) func(*envelope.Event) {
	return func(e *envelope.Event) { e.User.Phone = hash(p) }
}

func externalID(id string) func(*envelope.Event) {
	return func(e *envelope.Event) { e.User.ExternalID = hash(id) }
}

func madid(id string) func(*envelope.Event) {
	return func(e *envelope.Event) { e.User.MADID = id }
}

func att(f envelope.Flag) func(*envelope.Event) {
	return func(e *envelope.Event) { e.Consent.AdvertiserTracking = f }
}

func platform(p string) func(*envelope.Event) {
	return func(e *envelope.Event) { e.Device.Platform = p }
}

func hash(s string) identity.Hash { return sha256.Sum256([]byte(s)) }

// fold applies events in the order given to a new state.
func fold(r *AppRules, evs ...*envelope.Event) *State {
	s := &State{}
	for _, e := range evs {
		s.Apply(e, r)
	}
	return s
}

func encode(t testing.TB, s *State) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// loadConfig reads a config file for the tests (the domain itself does no I/O).
func loadConfig(path string) (*appconfig.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return appconfig.Parse(data)
}

package audiences

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
)

// sampleConfig loads infra/config/apps.json.
func sampleConfig(t testing.TB) *appconfig.Config {
	t.Helper()
	cfg, err := loadConfig(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// sample compiles the sample app's audiences.
func sample(t testing.TB) *AppAudiences {
	t.Helper()
	all, err := ForConfig(sampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	a, ok := all["sample-shop"]
	if !ok {
		t.Fatal("no sample-shop audiences")
	}
	return a
}

// sampleWithoutHoldouts compiles the sample app's audiences with holdout_fraction 0 on every
// audience: the audiences as they were before holdouts.
func sampleWithoutHoldouts(t testing.TB) *AppAudiences {
	t.Helper()
	cfg := sampleConfig(t)
	for i := range cfg.Apps[0].Audiences {
		cfg.Apps[0].Audiences[i].HoldoutFraction = new(0.0)
	}
	a, err := Compile(&cfg.Apps[0])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCompileSampleConfig(t *testing.T) {
	a := sample(t)
	if a.App() != "sample-shop" {
		t.Fatalf("app %q", a.App())
	}
	var segs []string
	for _, au := range a.Audiences() {
		segs = append(segs, au.Segment())
		if !au.Create() || au.ID() != "" || au.AdAccountID() != "act_1234567890" {
			t.Errorf("%s: create %v id %q account %q", au.Segment(), au.Create(), au.ID(), au.AdAccountID())
		}
	}
	// The sample sets no holdout_fraction: every audience has the default holdout, listed
	// right after it.
	if want := []string{"cart_abandoner", "cart_abandoner:holdout", "onboarding_incomplete", "onboarding_incomplete:holdout",
		"lapsed_7d", "lapsed_7d:holdout", "vip", "vip:holdout", "engaged", "engaged:holdout", "new_installer", "new_installer:holdout"}; !reflect.DeepEqual(segs, want) {
		t.Fatalf("audiences %v, want %v", segs, want)
	}
	vip, _ := a.Audience("vip")
	if !vip.ValueBased() || vip.Name() != "Top spenders" {
		t.Fatalf("vip: value based %v, name %q", vip.ValueBased(), vip.Name())
	}
	if got, want := vip.Schema(), []string{"EXTERN_ID", "EMAIL", "PHONE", "MADID", "LOOKALIKE_VALUE"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("vip schema %v, want %v", got, want)
	}
	cart, _ := a.Audience("cart_abandoner")
	if got, want := cart.Schema(), []string{"EXTERN_ID", "EMAIL", "PHONE", "MADID"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("cart schema %v, want %v", got, want)
	}
	if _, ok := a.Audience("subscription_expired"); ok {
		t.Fatal("subscription_expired is not mapped in the sample")
	}
	if got, want := a.Rules(), (Rules{MaxRemovalFraction: 0.2, MaxPayloadBytes: MaxPayloadBytes}); got != want {
		t.Fatalf("rules %+v, want %+v", got, want)
	}
}

// app returns a minimal valid app with the given audience settings.
func app(audiences []appconfig.Audience, groups [][]string, sync appconfig.AudienceSync) *appconfig.App {
	seg := func(id string) appconfig.Segment {
		return appconfig.Segment{ID: id, When: []appconfig.Condition{{Value: &appconfig.ValueCondition{Attribute: "purchase_count", AtLeast: new(1.0)}}}}
	}
	return &appconfig.App{
		ID: "shop", Platforms: []appconfig.Platform{appconfig.PlatformIOS},
		APIKey:            appconfig.APIKey{Name: "shop"},
		Meta:              appconfig.Meta{DatasetID: "1", AdAccountID: "act_1"},
		ReportingCurrency: "USD",
		Segments:          []appconfig.Segment{seg("a"), seg("b"), seg("c"), seg("d")},
		Audiences:         audiences, ExclusiveGroups: groups, AudienceSync: sync,
	}
}

func TestCompileAppliesSettings(t *testing.T) {
	a, err := Compile(app([]appconfig.Audience{
		{Segment: "a", Name: "A", AudienceID: "123", AdAccountID: "act_9", Columns: []string{"EMAIL", "EXTERN_ID"}, ValueBased: true},
		{Segment: "b", Name: "B", Create: true},
	}, nil, appconfig.AudienceSync{MaxRemovalFraction: new(0.0), MaxPayloadBytes: 60000}))
	if err != nil {
		t.Fatal(err)
	}
	au, _ := a.Audience("a")
	if au.ID() != "123" || au.Create() || au.AdAccountID() != "act_9" {
		t.Fatalf("a: %+v", au)
	}
	if got, want := au.Schema(), []string{"EMAIL", "EXTERN_ID", "LOOKALIKE_VALUE"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("schema %v, want %v (config order, value last)", got, want)
	}
	au.Schema()[0] = "x"
	if au.Schema()[0] != "EMAIL" {
		t.Fatal("Schema exposes the audience's slice")
	}
	if b, _ := a.Audience("b"); b.AdAccountID() != "act_1" {
		t.Fatalf("b account %q, want the app's", b.AdAccountID())
	}
	if got, want := a.Rules(), (Rules{MaxRemovalFraction: 0, MaxPayloadBytes: 60000}); got != want {
		t.Fatalf("rules %+v, want %+v", got, want)
	}
	// The full refresh is refused with a value-based audience (appconfig), so it is read from
	// an app without one.
	r, err := Compile(app([]appconfig.Audience{{Segment: "b", Name: "B", Create: true}}, nil,
		appconfig.AudienceSync{FullRefreshHours: 168}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Rules(), (Rules{MaxRemovalFraction: DefaultMaxRemovalFraction, MaxPayloadBytes: MaxPayloadBytes, FullRefresh: 168 * time.Hour}); got != want {
		t.Fatalf("rules %+v, want %+v", got, want)
	}
}

func TestCompileRefusesInvalidConfig(t *testing.T) {
	_, err := Compile(app([]appconfig.Audience{{Segment: "zz", Name: "Z", Create: true}}, nil, appconfig.AudienceSync{}))
	if err == nil || !strings.Contains(err.Error(), `app "shop".audiences[0] ("zz").segment: "zz" is not one of the app's segments (a, b, c, d)`) {
		t.Fatalf("error %v", err)
	}
	cfg := &appconfig.Config{Version: 1, Apps: []appconfig.App{*app([]appconfig.Audience{{Segment: "a", Name: "A"}}, nil, appconfig.AudienceSync{})}}
	if _, err := ForConfig(cfg); err == nil {
		t.Fatal("ForConfig accepted an audience with neither id nor create")
	}
	none, err := Compile(app(nil, nil, appconfig.AudienceSync{}))
	if err != nil || len(none.Audiences()) != 0 || none.Desired([]string{"a"}) != nil || none.Affected("a") != nil {
		t.Fatalf("app without audiences: %v %+v", err, none)
	}
}

func TestDesiredAppliesExclusiveGroups(t *testing.T) {
	a := sample(t) // group: cart_abandoner > onboarding_incomplete > lapsed_7d
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"none", nil, nil},
		{"unmapped only", []string{"subscription_expired", "unknown"}, nil},
		{"ungrouped kept", []string{"vip", "engaged", "new_installer"}, []string{"vip", "engaged", "new_installer"}},
		{"one group member", []string{"lapsed_7d"}, []string{"lapsed_7d"}},
		{"highest priority wins", []string{"lapsed_7d", "onboarding_incomplete", "cart_abandoner"}, []string{"cart_abandoner"}},
		{"second wins without the first", []string{"lapsed_7d", "onboarding_incomplete"}, []string{"onboarding_incomplete"}},
		{"first and last", []string{"lapsed_7d", "cart_abandoner"}, []string{"cart_abandoner"}},
		{"group plus others, config order", []string{"new_installer", "lapsed_7d", "vip", "subscription_expired", "onboarding_incomplete"},
			[]string{"onboarding_incomplete", "vip", "new_installer"}},
		{"duplicates in input", []string{"vip", "vip"}, []string{"vip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.Desired(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Desired(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// A user in all three win-back segments sits in the cart audience only; when they buy (leave
// cart_abandoner) they fall to onboarding_incomplete, then to lapsed_7d: never two at once.
func TestDesiredFallsToTheNextOfTheGroup(t *testing.T) {
	a := sample(t)
	steps := []struct {
		segments []string
		want     []string
	}{
		{[]string{"cart_abandoner", "onboarding_incomplete", "lapsed_7d", "vip"}, []string{"cart_abandoner", "vip"}},
		{[]string{"onboarding_incomplete", "lapsed_7d", "vip"}, []string{"onboarding_incomplete", "vip"}},
		{[]string{"lapsed_7d", "vip"}, []string{"lapsed_7d", "vip"}},
		{[]string{"cart_abandoner", "lapsed_7d", "vip"}, []string{"cart_abandoner", "vip"}}, // a new cart takes over again
		{[]string{"vip"}, []string{"vip"}},
	}
	for i, s := range steps {
		got := a.Desired(s.segments)
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d: Desired(%v) = %v, want %v", i, s.segments, got, s.want)
		}
		inGroup := 0
		for _, seg := range a.Affected("cart_abandoner") {
			if slices.Contains(got, seg) {
				inGroup++
			}
		}
		if inGroup > 1 {
			t.Fatalf("step %d: %v holds %d audiences of the win-back group", i, got, inGroup)
		}
	}
}

func TestAffected(t *testing.T) {
	// Without holdouts (holdout_fraction 0) the audiences are keyed by segment alone.
	a := sampleWithoutHoldouts(t)
	group := []string{"cart_abandoner", "onboarding_incomplete", "lapsed_7d"}
	tests := []struct {
		segment string
		want    []string
	}{
		{"cart_abandoner", group},
		{"onboarding_incomplete", group},
		{"lapsed_7d", group},
		{"vip", []string{"vip"}},
		{"new_installer", []string{"new_installer"}},
		{"subscription_expired", nil}, // a segment without an audience
		{"nope", nil},
	}
	for _, tt := range tests {
		if got := a.Affected(tt.segment); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Affected(%q) = %v, want %v", tt.segment, got, tt.want)
		}
	}
	a.Affected("lapsed_7d")[0] = "x"
	if a.Affected("lapsed_7d")[0] != "cart_abandoner" {
		t.Fatal("Affected exposes the group's slice")
	}

	// With holdouts (the sample's default), each treated audience is followed by its holdout.
	h := sample(t)
	hgroup := []string{"cart_abandoner", "cart_abandoner:holdout", "onboarding_incomplete", "onboarding_incomplete:holdout", "lapsed_7d", "lapsed_7d:holdout"}
	for _, tt := range []struct {
		segment string
		want    []string
	}{
		{"cart_abandoner", hgroup},
		{"lapsed_7d", hgroup},
		{"vip", []string{"vip", "vip:holdout"}},
		{"vip:holdout", nil}, // changes are recorded per segment, never per holdout key
		{"subscription_expired", nil},
	} {
		if got := h.Affected(tt.segment); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("with holdouts: Affected(%q) = %v, want %v", tt.segment, got, tt.want)
		}
	}
}

// Affected is complete: whenever flipping one segment changes DesiredFor for some audience
// (treated or holdout), that audience is in Affected(segment). Checked over every subset of the
// sample's segments, for users of both arms of every audience.
func TestAffectedCoversEveryChange(t *testing.T) {
	a := sample(t)
	all := []string{"new_installer", "engaged", "cart_abandoner", "lapsed_7d", "vip", "onboarding_incomplete", "subscription_expired"}
	var users []string
	for _, au := range a.Audiences() {
		if au.Holdout() != nil {
			users = append(users, keyInArm(t, a, au.Segment(), holdout.Treated), keyInArm(t, a, au.Segment(), holdout.Holdout))
		}
	}
	for _, uk := range users {
		for mask := range 1 << len(all) {
			var in []string
			for i, s := range all {
				if mask&(1<<i) != 0 {
					in = append(in, s)
				}
			}
			before := a.DesiredFor(uk, in, nil)
			for i, s := range all {
				var flipped []string
				for k, x := range all {
					if (mask&(1<<k) != 0) != (k == i) {
						flipped = append(flipped, x)
					}
				}
				after := a.DesiredFor(uk, flipped, nil)
				for _, au := range a.Audiences() {
					seg := au.Segment()
					if slices.Contains(before, seg) != slices.Contains(after, seg) && !slices.Contains(a.Affected(s), seg) {
						t.Fatalf("user %s: flipping %s in %v changes %s, missing from Affected", uk, s, in, seg)
					}
				}
			}
		}
	}
}

// keyInArm returns the first user key "user-<n>" that segment's audience assigns to arm.
func keyInArm(t testing.TB, a *AppAudiences, segment string, arm holdout.Arm) string {
	t.Helper()
	for n := range 10_000 {
		if uk := fmt.Sprintf("user-%d", n); a.Assigner(segment).Arm(uk) == arm {
			return uk
		}
	}
	t.Fatalf("no user in the %s arm of %s", arm, segment)
	return ""
}

// loadConfig reads a config file for the tests (the domain itself does no I/O).
func loadConfig(path string) (*appconfig.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return appconfig.Parse(data)
}

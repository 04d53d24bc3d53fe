package audiences

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
)

// Every audience with a holdout gets a second audience: keyed "<segment>:holdout", named
// "<name> (holdout)", same ad account, schema and kind, created by the sync.
func TestHoldoutAudienceCompiled(t *testing.T) {
	a := sample(t)
	for _, au := range a.Audiences() {
		if au.Arm() == holdout.Holdout {
			continue
		}
		ho := au.Holdout()
		if ho == nil {
			t.Fatalf("%s: no holdout audience with the default fraction", au.Segment())
		}
		if au.Base() != au.Segment() || ho.Base() != au.Segment() || ho.Segment() != au.Segment()+":holdout" ||
			ho.Arm() != holdout.Holdout || ho.Holdout() != nil || ho.Name() != au.Name()+" (holdout)" ||
			ho.AdAccountID() != au.AdAccountID() || ho.ValueBased() != au.ValueBased() ||
			!reflect.DeepEqual(ho.Schema(), au.Schema()) || !ho.Create() || ho.ID() != "" {
			t.Errorf("%s: holdout audience %+v", au.Segment(), ho)
		}
		if got, ok := a.Audience(ho.Segment()); !ok || got != ho {
			t.Errorf("Audience(%q) = %v, %v", ho.Segment(), got, ok)
		}
		if c := ho.Creation(); c.Name != au.Name()+" (holdout)" || c.AdAccountID != au.AdAccountID() || c.ValueBased != au.ValueBased() {
			t.Errorf("%s: creation %+v", ho.Segment(), c)
		}
		if f := a.Assigner(au.Segment()).Fraction(); f != appconfig.DefaultHoldoutFraction {
			t.Errorf("%s: fraction %v", au.Segment(), f)
		}
	}
}

// With the default fraction, a few thousand users of a segment split about 10% / 90% between
// the holdout and the treated audience, and nobody is in both.
func TestHoldoutShare(t *testing.T) {
	a := sample(t)
	const n = 4000
	for _, seg := range []string{"cart_abandoner", "vip", "new_installer"} {
		held := 0
		for i := range n {
			uk := fmt.Sprintf("user-%05d", i)
			got := a.DesiredFor(uk, []string{seg}, nil)
			switch {
			case slices.Equal(got, []string{seg + ":holdout"}):
				held++
			case !slices.Equal(got, []string{seg}):
				t.Fatalf("%s: DesiredFor(%s) = %v, want one of its two audiences", seg, uk, got)
			}
			if arm := a.Assigner(seg).Arm(uk); (arm == holdout.Holdout) != (got[0] == seg+":holdout") {
				t.Fatalf("%s: %s is in %v but its arm is %s", seg, uk, got, arm)
			}
		}
		p := appconfig.DefaultHoldoutFraction
		se := math.Sqrt(p * (1 - p) / n)
		if share := float64(held) / n; math.Abs(share-p) > 4*se {
			t.Errorf("%s: holdout share %.4f, want %.2f ± %.4f (4 standard errors)", seg, share, p, 4*se)
		}
	}
}

// A user's arm follows them: leaving a group member for another and coming back gives the same
// audience of each segment as before (intention-to-treat: the group picks the segment, that
// segment's arm picks the audience). Arms are per audience, so some user is treated in one and
// held out in the other; the test covers all four combinations.
func TestArmStableAcrossExclusiveGroupMoves(t *testing.T) {
	a := sample(t)
	key := func(seg, uk string) string {
		if a.Assigner(seg).Arm(uk) == holdout.Holdout {
			return seg + ":holdout"
		}
		return seg
	}
	seen := map[[2]holdout.Arm]bool{}
	for i := 0; len(seen) < 4; i++ {
		if i > 10_000 {
			t.Fatalf("arm combinations seen: %v", seen)
		}
		uk := fmt.Sprintf("user-%d", i)
		seen[[2]holdout.Arm{a.Assigner("lapsed_7d").Arm(uk), a.Assigner("cart_abandoner").Arm(uk)}] = true
		steps := []struct {
			segs []string
			want []string
		}{
			{[]string{"lapsed_7d"}, []string{key("lapsed_7d", uk)}},
			{[]string{"cart_abandoner", "lapsed_7d"}, []string{key("cart_abandoner", uk)}}, // cart outranks lapsed
			{[]string{"lapsed_7d"}, []string{key("lapsed_7d", uk)}},
		}
		for j, s := range steps {
			if got := a.DesiredFor(uk, s.segs, nil); !slices.Equal(got, s.want) {
				t.Fatalf("%s step %d: DesiredFor(%v) = %v, want %v", uk, j, s.segs, got, s.want)
			}
		}
	}
}

// The arm depends on the app, the audience's segment and the salt only: editing the segment's
// rules (or anything else of the config) keeps every user's arm; changing the salt re-draws.
func TestArmStableAcrossRulesChanges(t *testing.T) {
	before := sample(t)
	cfg := sampleConfig(t)
	app := &cfg.Apps[0]
	for i := range app.Segments {
		if app.Segments[i].ID == "vip" {
			app.Segments[i].Description = "changed"
			app.Segments[i].When = []appconfig.Condition{{Value: &appconfig.ValueCondition{Attribute: "purchase_count", AtLeast: new(7.0)}}}
		}
	}
	after, err := Compile(app)
	if err != nil {
		t.Fatal(err)
	}
	for i := range app.Audiences {
		app.Audiences[i].HoldoutSalt = "2027"
	}
	salted, err := Compile(app)
	if err != nil {
		t.Fatal(err)
	}
	redrawn := 0
	for i := range 2000 {
		uk := fmt.Sprintf("user-%d", i)
		if a, b := before.DesiredFor(uk, []string{"vip"}, nil), after.DesiredFor(uk, []string{"vip"}, nil); !slices.Equal(a, b) {
			t.Fatalf("%s: %v before the rules change, %v after", uk, a, b)
		}
		if before.Assigner("vip").Arm(uk) != salted.Assigner("vip").Arm(uk) {
			redrawn++
		}
	}
	if redrawn == 0 {
		t.Fatal("a new holdout_salt re-drew no user")
	}
}

// holdout_fraction 0 compiles exactly the audiences of before holdouts: no holdout audience,
// every user of a segment in its audience.
func TestHoldoutFractionZeroIsOff(t *testing.T) {
	a := sampleWithoutHoldouts(t)
	var keys []string
	for _, au := range a.Audiences() {
		keys = append(keys, au.Segment())
		if au.Holdout() != nil || au.Arm() != holdout.Treated || au.Base() != au.Segment() {
			t.Errorf("%s: holdout %v, arm %s", au.Segment(), au.Holdout(), au.Arm())
		}
	}
	if want := []string{"cart_abandoner", "onboarding_incomplete", "lapsed_7d", "vip", "engaged", "new_installer"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("audiences %v, want %v", keys, want)
	}
	if _, ok := a.Audience("cart_abandoner:holdout"); ok {
		t.Fatal("a holdout audience with holdout_fraction 0")
	}
	segs := []string{"lapsed_7d", "vip", "engaged", "subscription_expired"}
	for i := range 2000 {
		uk := fmt.Sprintf("user-%d", i)
		if got, want := a.DesiredFor(uk, segs, nil), a.Desired(segs); !slices.Equal(got, want) {
			t.Fatalf("%s: DesiredFor %v, want Desired's %v", uk, got, want)
		}
	}
}

// holdout_audience_id names an existing holdout audience: the sync uploads to it and creates
// none.
func TestHoldoutAudienceIDIsUsed(t *testing.T) {
	a, err := Compile(app([]appconfig.Audience{
		{Segment: "a", Name: "A", AudienceID: "123", HoldoutAudienceID: "456"},
		{Segment: "b", Name: "B", Create: true, HoldoutFraction: new(0.25), HoldoutSalt: "s"},
		{Segment: "c", Name: "C", AudienceID: "789"}, // default fraction: the holdout is created
	}, nil, appconfig.AudienceSync{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key, name, id string
		create        bool
	}{
		{"a:holdout", "A (holdout)", "456", false},
		{"b:holdout", "B (holdout)", "", true},
		{"c:holdout", "C (holdout)", "", true},
	} {
		au, ok := a.Audience(tt.key)
		if !ok || au.Name() != tt.name || au.ID() != tt.id || au.Create() != tt.create {
			t.Errorf("%s: %+v", tt.key, au)
		}
	}
	if a.Assigner("b").Fraction() != 0.25 || a.Assigner("b:holdout").Fraction() != 0.25 || a.Assigner("zz").Enabled() {
		t.Errorf("assigners: b %v, zz %v", a.Assigner("b"), a.Assigner("zz"))
	}
}

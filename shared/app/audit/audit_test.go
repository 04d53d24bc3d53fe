package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// fakeMeta answers the audit's reads from maps keyed by audience id (or ad account id for the
// ad sets); errs fails a read named "<call> <id>".
type fakeMeta struct {
	holders, shared map[string][]string
	ads             map[string][]ports.AudienceUse
	adSets          map[string][]ports.AdSet
	errs            map[string]error
	calls           []string
}

func (f *fakeMeta) call(name, id string) error {
	f.calls = append(f.calls, name+" "+id)
	return f.errs[name+" "+id]
}

func (f *fakeMeta) AudienceAdAccounts(_ context.Context, id string) ([]string, error) {
	return f.holders[id], f.call("adaccounts", id)
}

func (f *fakeMeta) AudienceSharedAccounts(_ context.Context, id string) ([]string, error) {
	return f.shared[id], f.call("shared", id)
}

func (f *fakeMeta) AudienceAds(_ context.Context, id string) ([]ports.AudienceUse, error) {
	return f.ads[id], f.call("ads", id)
}

func (f *fakeMeta) AdAccount(context.Context, string) (ports.AdAccount, error) {
	return ports.AdAccount{}, errors.New("not used by the audit")
}

func (f *fakeMeta) AdSets(_ context.Context, acc string) ([]ports.AdSet, error) {
	if err := f.call("adsets", acc); err != nil {
		return nil, err
	}
	return f.adSets[acc], nil
}

func (f *fakeMeta) Insights(context.Context, ports.InsightsRequest) ([]ports.InsightsRow, ports.InsightsUsage, error) {
	return nil, ports.InsightsUsage{}, errors.New("not used by the audit")
}

// The fixture: app shop in act_1; cart_abandoner (ids 100, holdout 101 from the sync state),
// vip in act_2 (ids 200, 201 configured), lapsed without holdout (300 from the sync state).
const (
	cartID, cartHoldoutID = "100", "101"
	vipID, vipHoldoutID   = "200", "201"
	lapsedID              = "300"
)

func frac(f float64) *float64 { return &f }

func shop() *appconfig.App {
	return &appconfig.App{
		ID:   "shop",
		Meta: appconfig.Meta{AdAccountID: "act_1", AllowedCampaigns: []string{"5", "6"}},
		Audiences: []appconfig.Audience{
			{Segment: "cart_abandoner", Name: "Carts", Create: true},
			{Segment: "vip", Name: "VIP", AdAccountID: "act_2", AudienceID: vipID, HoldoutAudienceID: vipHoldoutID},
			{Segment: "lapsed", Name: "Lapsed", Create: true, HoldoutFraction: frac(0)},
		},
	}
}

func active(id, campaign string, included, excluded []string) ports.AdSet {
	return ports.AdSet{ID: id, CampaignID: campaign, Status: "ACTIVE", EffectiveStatus: "ACTIVE", Included: included, Excluded: excluded}
}

// clean is Meta as the config wants it: each audience held by its account only, used by ads
// of the allowed campaigns, every active ad set excluding the holdout audience.
func clean() *fakeMeta {
	return &fakeMeta{
		holders: map[string][]string{cartID: {"act_1"}, cartHoldoutID: {"act_1"}, vipID: {"act_2"}, vipHoldoutID: {"act_2"}, lapsedID: {"act_1"}},
		shared:  map[string][]string{},
		ads: map[string][]ports.AudienceUse{
			cartID: {{AdID: "1000", AdSetID: "10", CampaignID: "5", AdAccountID: "act_1"}},
			vipID:  {{AdID: "2000", AdSetID: "20", CampaignID: "6", AdAccountID: "act_2"}},
		},
		adSets: map[string][]ports.AdSet{
			"act_1": {active("10", "5", []string{cartID}, []string{cartHoldoutID}), active("14", "5", []string{lapsedID}, nil),
				active("15", "77", []string{"999"}, nil)}, // not a managed audience: none of the audit's business
			"act_2": {active("20", "6", []string{vipID}, []string{vipHoldoutID})},
		},
		errs: map[string]error{},
	}
}

func state(t *testing.T, withCartHoldout bool) *memstate.Store {
	t.Helper()
	s := memstate.New()
	states := []ports.AudienceSyncState{
		{App: "shop", Segment: "cart_abandoner", AudienceID: cartID, Size: 1500, Version: 1},
		{App: "shop", Segment: "lapsed", AudienceID: lapsedID, Size: 10, Version: 1},
	}
	if withCartHoldout {
		states = append(states, ports.AudienceSyncState{App: "shop", Segment: "cart_abandoner:holdout", AudienceID: cartHoldoutID, Size: 160, Version: 1})
	}
	for _, st := range states {
		if err := s.PutAudienceState(context.Background(), st); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// brief is a finding without its explanation: "kind key audience account campaign adset ad".
func brief(f Finding) string {
	return strings.Join([]string{f.Kind, f.Key, f.AudienceID, f.AdAccountID, f.CampaignID, f.AdSetID, f.AdID}, " ")
}

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		// change alters the clean Meta and config.
		change      func(m *fakeMeta, app *appconfig.App)
		noHoldoutID bool // the cart abandoners' holdout audience is not created yet
		want        []string
		explains    []string // substrings of the explanations, in order
	}{
		{name: "clean", change: func(*fakeMeta, *appconfig.App) {}},
		{name: "held by a foreign ad account", change: func(m *fakeMeta, _ *appconfig.App) {
			m.holders[cartID] = []string{"act_1", "act_9", "act_9"}
		}, want: []string{"held_by_foreign_account cart_abandoner 100 act_9   "},
			explains: []string{"audience 100 (cart_abandoner) is held by ad account act_9, which is not in the app's config"}},
		{name: "shared with another business's account (Meta's id without act_)", change: func(m *fakeMeta, _ *appconfig.App) {
			m.shared[cartHoldoutID] = []string{"42", "act_1"}
		}, want: []string{"held_by_foreign_account cart_abandoner:holdout 101 act_42   "},
			explains: []string{"is shared with ad account act_42 of another business"}},
		{name: "held and shared by the same account: one finding", change: func(m *fakeMeta, _ *appconfig.App) {
			m.holders[vipID] = []string{"act_2", "act_9"}
			m.shared[vipID] = []string{"act_9"}
		}, want: []string{"held_by_foreign_account vip 200 act_9   "}},
		{name: "an audience's own accounts are the app's: vip's act_2 may hold the cart audience", change: func(m *fakeMeta, _ *appconfig.App) {
			m.holders[cartID] = []string{"act_1", "act_2"}
		}},
		{name: "used by an ad of a foreign account", change: func(m *fakeMeta, _ *appconfig.App) {
			m.ads[vipID] = append(m.ads[vipID], ports.AudienceUse{AdID: "7", AdSetID: "70", CampaignID: "700", AdAccountID: "act_9"})
		}, want: []string{"used_by_foreign_account vip 200 act_9 700 70 7"},
			explains: []string{"is used by ad 7 (ad set 70, campaign 700) of ad account act_9, which is not in the app's config"}},
		{name: "an ad set outside the allowed campaigns, even paused, and the holdout audience too", change: func(m *fakeMeta, _ *appconfig.App) {
			paused := active("11", "99", []string{lapsedID, cartHoldoutID}, nil)
			paused.Status, paused.EffectiveStatus = "PAUSED", "PAUSED"
			m.adSets["act_1"] = append(m.adSets["act_1"], paused)
		}, want: []string{"campaign_not_allowed cart_abandoner:holdout 101 act_1 99 11 ", "campaign_not_allowed lapsed 300 act_1 99 11 "},
			explains: []string{"is included by ad set 11 of campaign 99, which is not in meta.allowed_campaigns"}},
		{name: "an ad of the app's account outside the allowed campaigns: once per ad set", change: func(m *fakeMeta, _ *appconfig.App) {
			m.ads[cartID] = append(m.ads[cartID], ports.AudienceUse{AdID: "8", AdSetID: "12", CampaignID: "98", AdAccountID: "act_1"},
				ports.AudienceUse{AdID: "9", AdSetID: "12", CampaignID: "98", AdAccountID: "act_1"})
			m.adSets["act_1"] = append(m.adSets["act_1"], active("12", "98", []string{cartID}, []string{cartHoldoutID}))
		}, want: []string{"campaign_not_allowed cart_abandoner 100 act_1 98 12 8"},
			explains: []string{"is used by ad 8 of ad set 12 in campaign 98, which is not in meta.allowed_campaigns"}},
		{name: "no allowed_campaigns: any campaign may", change: func(m *fakeMeta, app *appconfig.App) {
			app.Meta.AllowedCampaigns = nil
			m.adSets["act_1"] = append(m.adSets["act_1"], active("11", "99", []string{lapsedID}, nil))
			m.ads[cartID] = append(m.ads[cartID], ports.AudienceUse{AdID: "8", AdSetID: "12", CampaignID: "98", AdAccountID: "act_1"})
		}},
		{name: "an active ad set without the holdout exclusion; a paused one and an audience without holdout are fine", change: func(m *fakeMeta, _ *appconfig.App) {
			paused := active("13", "5", []string{cartID}, nil)
			paused.EffectiveStatus = "CAMPAIGN_PAUSED"
			m.adSets["act_1"] = append(m.adSets["act_1"], active("12", "5", []string{cartID, lapsedID}, []string{"999"}), paused)
			m.adSets["act_2"][0].Excluded = []string{cartHoldoutID} // the wrong holdout audience
		}, want: []string{"holdout_not_excluded cart_abandoner 100 act_1 5 12 ", "holdout_not_excluded vip 200 act_2 6 20 "},
			explains: []string{"active ad set 12 includes audience 100 (cart_abandoner) without excluding its holdout audience 101", "without excluding its holdout audience 201"}},
		{name: "the holdout audience not created yet cannot be excluded", noHoldoutID: true, change: func(*fakeMeta, *appconfig.App) {},
			want:     []string{"holdout_not_excluded cart_abandoner 100 act_1 5 10 "},
			explains: []string{"its holdout audience (not created yet"}},
		{name: "a Meta error is a finding; the rest is audited", change: func(m *fakeMeta, _ *appconfig.App) {
			m.errs["ads "+vipID] = errors.New("(#200) permission denied")
			m.errs["adaccounts "+cartHoldoutID] = errors.New("throttled")
			m.errs["adsets act_2"] = errors.New("(#100) unknown account")
			m.holders[lapsedID] = []string{"act_9"}
		}, want: []string{"audit_error   act_2   ", "audit_error cart_abandoner:holdout 101    ", "held_by_foreign_account lapsed 300 act_9   ", "audit_error vip 200    "},
			explains: []string{"the ad sets of ad account act_2 could not be read", "the ad accounts holding it could not be read", "", "audience 200 (vip): the ads using it could not be read, so this audit of it is incomplete: (#200) permission denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, app := clean(), shop()
			tt.change(m, app)
			got, err := Run(context.Background(), Sources{Sync: state(t, !tt.noHoldoutID), Audit: m, Ads: m}, app)
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
			var briefs []string
			for _, f := range got {
				briefs = append(briefs, brief(f))
				if f.App != "shop" || f.Explanation == "" {
					t.Errorf("finding %+v: want app shop and an explanation", f)
				}
				if f.Misuse() == (f.Kind == KindError) {
					t.Errorf("finding %+v: Misuse() = %v", f, f.Misuse())
				}
			}
			if !slices.Equal(briefs, tt.want) {
				t.Errorf("findings\n got %q\nwant %q", briefs, tt.want)
			}
			for i, want := range tt.explains {
				if i < len(got) && !strings.Contains(got[i].Explanation, want) {
					t.Errorf("finding %d explains %q, want it to contain %q", i, got[i].Explanation, want)
				}
			}
		})
	}
}

// TestRunReadsEveryManagedAudience: treated and holdout audiences, ids from the config or
// the sync state; audiences not at Meta yet are skipped, and the ad sets are read once per
// account.
func TestRunReadsEveryManagedAudience(t *testing.T) {
	m := clean()
	app := shop()
	app.Audiences = append(app.Audiences, appconfig.Audience{Segment: "new_one", Name: "New", Create: true}) // no id yet
	if _, err := Run(context.Background(), Sources{Sync: state(t, true), Audit: m, Ads: m}, app); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, acc := range []string{"act_1", "act_2"} {
		want = append(want, "adsets "+acc)
	}
	for _, id := range []string{cartID, cartHoldoutID, vipID, vipHoldoutID, lapsedID} {
		want = append(want, "shared "+id, "adaccounts "+id, "ads "+id)
	}
	if !slices.Equal(m.calls, want) {
		t.Errorf("calls\n got %v\nwant %v", m.calls, want)
	}
}

func TestRunStateError(t *testing.T) {
	m := clean()
	_, err := Run(context.Background(), Sources{Sync: failingSync{memstate.New()}, Audit: m, Ads: m}, shop())
	if err == nil || !strings.Contains(err.Error(), "audience state of shop/cart_abandoner") {
		t.Errorf("Run = %v, want the state error", err)
	}
	if len(m.calls) != 0 {
		t.Errorf("Meta was called: %v", m.calls)
	}
}

type failingSync struct{ *memstate.Store }

func (failingSync) GetAudienceState(context.Context, string, string) (ports.AudienceSyncState, bool, error) {
	return ports.AudienceSyncState{}, false, fmt.Errorf("dynamodb down")
}

func TestAccounts(t *testing.T) {
	if got, want := Accounts(shop()), []string{"act_1", "act_2"}; !slices.Equal(got, want) {
		t.Errorf("Accounts = %v, want %v", got, want)
	}
}

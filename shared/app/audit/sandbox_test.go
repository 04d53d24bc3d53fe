package audit_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/app/audit"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

const (
	token, secret = "sandbox-token", "sandbox-secret"
	ours, foreign = "act_1234567890", "act_999"
	otherCampaign = "23840000000000999"
)

// world is an app's audiences in the Meta sandbox, read by the Graph API client over loopback.
type world struct {
	sb     *metasandbox.Sandbox
	client *metagraph.Client
	state  *memstate.Store
	app    *appconfig.App
	// ids of the audiences: cart, its holdout, lapsed (no holdout).
	cart, cartHoldout, lapsed string
	// clean is the cart's ad set: in the allowed campaign, excluding the holdout audience.
	clean metasandbox.AdSet
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: token, AppSecret: secret, Version: metaversions.DefaultMarketing,
		AdAccounts: []string{ours, foreign}, RemovalMinSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	w := &world{sb: sb, state: memstate.New(),
		client: metagraph.New(metagraph.Config{BaseURL: url, Version: metaversions.DefaultMarketing, AccessToken: token, AppSecret: secret}),
		app: &appconfig.App{ID: "shop", Meta: appconfig.Meta{AdAccountID: ours, AllowedCampaigns: []string{metasandbox.DefaultAutoCampaignID}},
			Audiences: []appconfig.Audience{
				{Segment: "cart_abandoner", Name: "Carts", Create: true, HoldoutFraction: frac(0.1)},
				{Segment: "lapsed", Name: "Lapsed", Create: true, HoldoutFraction: frac(0)},
			}}}
	ctx := context.Background()
	for _, a := range []struct {
		key, name string
		id        *string
	}{{"cart_abandoner", "Carts", &w.cart}, {"cart_abandoner:holdout", "Carts (holdout)", &w.cartHoldout}, {"lapsed", "Lapsed", &w.lapsed}} {
		id, err := w.client.CreateAudience(ctx, ports.NewAudience{AdAccountID: ours, Name: a.name})
		if err != nil {
			t.Fatal(err)
		}
		*a.id = id
		if err := w.state.PutAudienceState(ctx, ports.AudienceSyncState{App: "shop", Segment: a.key, AudienceID: id, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	w.clean = w.adSet(t, metasandbox.AdSet{AdAccount: ours, Name: "carts", Included: []string{w.cart}, Excluded: []string{w.cartHoldout}})
	return w
}

func frac(f float64) *float64 { return &f }

func (w *world) adSet(t *testing.T, a metasandbox.AdSet) metasandbox.AdSet {
	t.Helper()
	got, err := w.sb.AddAdSet(a)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAuditAgainstTheSandbox: each finding, from Meta's answers as the Graph API client reads
// them (paging, the act_ prefix, Meta's errors).
func TestAuditAgainstTheSandbox(t *testing.T) {
	tests := []struct {
		name string
		// script changes the sandbox and returns the wanted findings as "kind key account
		// campaign adset" (ad ids are checked to be set where an ad is the evidence).
		script func(t *testing.T, w *world) []string
		// adID: the findings of these kinds name an ad.
		adID []string
		// explains is in the first finding's explanation.
		explains string
	}{
		{"clean", func(*testing.T, *world) []string { return nil }, nil, ""},
		{"shared with an account outside the config", func(t *testing.T, w *world) []string {
			if err := w.sb.ShareAudience(w.cart, foreign, ""); err != nil {
				t.Fatal(err)
			}
			return []string{"held_by_foreign_account cart_abandoner act_999  "}
		}, nil, ""},
		{"the holdout audience shared with another business's account", func(t *testing.T, w *world) []string {
			if err := w.sb.ShareAudience(w.cartHoldout, "777", "4242"); err != nil {
				t.Fatal(err)
			}
			// /adaccounts and /shared_account_info both list it: one finding, saying it is
			// another business's.
			return []string{"held_by_foreign_account cart_abandoner:holdout act_777  "}
		}, nil, "is shared with ad account act_777 of another business"},
		{"an ad of an account outside the config", func(t *testing.T, w *world) []string {
			theirs := w.adSet(t, metasandbox.AdSet{AdAccount: foreign, CampaignID: otherCampaign, Name: "theirs", Included: []string{w.lapsed}})
			return []string{"used_by_foreign_account lapsed act_999 " + otherCampaign + " " + theirs.ID}
		}, []string{audit.KindUsedByForeignAccount}, ""},
		{"an ad set of ours outside the allowed campaigns, paused", func(t *testing.T, w *world) []string {
			other := w.adSet(t, metasandbox.AdSet{AdAccount: ours, CampaignID: otherCampaign, Name: "other campaign", Status: metasandbox.StatusPaused,
				Included: []string{w.lapsed}})
			return []string{"campaign_not_allowed lapsed " + ours + " " + otherCampaign + " " + other.ID}
		}, []string{audit.KindCampaignNotAllowed}, ""},
		{"an active ad set not excluding the holdout audience", func(t *testing.T, w *world) []string {
			if err := w.sb.UpdateAdSet(w.clean.ID, func(a *metasandbox.AdSet) { a.Excluded = nil }); err != nil {
				t.Fatal(err)
			}
			return []string{"holdout_not_excluded cart_abandoner " + ours + " " + metasandbox.DefaultAutoCampaignID + " " + w.clean.ID}
		}, nil, ""},
		{"an audience deleted at Meta: Meta's errors are findings, the others are audited", func(t *testing.T, w *world) []string {
			w.sb.DeleteAudience(w.lapsed)
			if err := w.sb.ShareAudience(w.cart, foreign, ""); err != nil {
				t.Fatal(err)
			}
			return []string{"held_by_foreign_account cart_abandoner act_999  ",
				"audit_error lapsed   ", "audit_error lapsed   ", "audit_error lapsed   "}
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			want := tt.script(t, w)
			got, err := audit.Run(context.Background(), audit.Sources{Sync: w.state, Audit: w.client, Ads: w.client}, w.app)
			if err != nil {
				t.Fatal(err)
			}
			var briefs []string
			for _, f := range got {
				briefs = append(briefs, strings.Join([]string{f.Kind, f.Key, f.AdAccountID, f.CampaignID, f.AdSetID}, " "))
				if slices.Contains(tt.adID, f.Kind) && f.AdID == "" {
					t.Errorf("%+v names no ad", f)
				}
				if f.Kind == audit.KindError && !strings.Contains(f.Explanation, "could not be read") {
					t.Errorf("error finding %+v", f)
				}
			}
			if !slices.Equal(briefs, want) {
				t.Errorf("findings\n got %q\nwant %q", briefs, want)
			}
			if tt.explains != "" && (len(got) == 0 || !strings.Contains(got[0].Explanation, tt.explains)) {
				t.Errorf("findings %+v, want the first to explain %q", got, tt.explains)
			}
		})
	}
}

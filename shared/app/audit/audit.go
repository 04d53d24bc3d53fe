// Package audit is the misuse audit of an app's managed Custom Audiences: for every treated
// and holdout audience the app has at Meta, who holds it (the ad accounts it is owned by or
// shared with, and the accounts of other businesses it is shared with) and who uses it (the ads
// that use it, and the targeting of the ad sets of the app's own ad accounts). It reports what
// goes against the app's config as findings; the insights run audits daily (ALERT, metric,
// alarm) and `retarget audiences audit` on demand.
//
// Decisions the code follows:
//   - The app's accounts are meta.ad_account_id and the audiences' ad_account_id: any other
//     account holding or using an audience is foreign, whoever owns it.
//   - Only the ad sets of the app's accounts can be read, so the campaign and holdout checks
//     cover those; an ad of a foreign account is reported as that account's use.
//   - An ad set outside meta.allowed_campaigns is reported whatever its status (a paused ad set
//     can be resumed); a missing holdout exclusion only on active ad sets, as the insights
//     run's contamination check does (an ad set that cannot reach anyone biases nothing).
//   - A holdout audience not created yet cannot be excluded: an active ad set including the
//     treated audience counts as not excluding it (the insights run says the same).
//   - A Meta error on one read is a KindError finding for that audience (or for the app, when
//     an account's ad sets cannot be read); the other reads go on. Findings carry ids only,
//     never personal data.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Finding kinds: stable names, used in logs, JSON and the operations guide.
const (
	// KindHeldByForeignAccount: an ad account outside the app's config holds the audience
	// (/adaccounts) or it is shared with one of another business (/shared_account_info).
	KindHeldByForeignAccount = "held_by_foreign_account"
	// KindUsedByForeignAccount: an ad of an account outside the app's config uses it.
	KindUsedByForeignAccount = "used_by_foreign_account"
	// KindCampaignNotAllowed: meta.allowed_campaigns is set and an ad set of another campaign
	// includes it.
	KindCampaignNotAllowed = "campaign_not_allowed"
	// KindHoldoutNotExcluded: an active ad set includes the treated audience without excluding
	// its holdout audience.
	KindHoldoutNotExcluded = "holdout_not_excluded"
	// KindError: a Meta read failed; the audit of that audience (or app) is incomplete.
	KindError = "audit_error"
)

// Finding is one thing the audit saw that goes against the app's config.
type Finding struct {
	App string `json:"app"`
	// Segment is the audience's segment; "" for an error that concerns every audience (an
	// ad account's ad sets could not be read).
	Segment string `json:"segment,omitempty"`
	// Key is the audience's key in the audience sync state: the segment, or
	// "<segment>:holdout" for its holdout audience.
	Key        string `json:"audience_key,omitempty"`
	AudienceID string `json:"audience_id,omitempty"`
	Kind       string `json:"kind"`
	// Where: the account, campaign, ad set and ad concerned (those known).
	AdAccountID string `json:"ad_account_id,omitempty"`
	CampaignID  string `json:"campaign_id,omitempty"`
	AdSetID     string `json:"adset_id,omitempty"`
	AdID        string `json:"ad_id,omitempty"`
	// Explanation says in one line what was seen and why it matters.
	Explanation string `json:"explanation"`
}

// Misuse reports whether f is a misuse (not a failed read).
func (f *Finding) Misuse() bool { return f.Kind != KindError }

// Sources are what the audit reads: the audience ids in the sync state, who holds and uses an
// audience, and the ad sets of the app's accounts.
type Sources struct {
	Sync  ports.AudienceSyncStore
	Audit ports.AudienceAuditAPI
	Ads   ports.AdsAPI
}

// audience is one managed audience at Meta.
type audience struct {
	segment, key, id string
	holdout          bool
	// For a treated audience with a holdout: hasHoldout, and holdoutID ("" when not created).
	hasHoldout bool
	holdoutID  string
}

// Run audits app's managed audiences (those with an id at Meta: configured, or created by the
// audience sync) and returns the findings, ordered by segment, audience, kind and place. The
// error is the sync state's only: Meta's errors are KindError findings.
func Run(ctx context.Context, src Sources, app *appconfig.App) ([]Finding, error) {
	managed, err := managedAudiences(ctx, src.Sync, app)
	if err != nil {
		return nil, err
	}
	if len(managed) == 0 {
		return nil, nil // nothing at Meta yet
	}
	own := Accounts(app)
	var out []Finding
	add := func(f Finding) {
		f.App = app.ID
		out = append(out, f)
	}

	// The ad sets of the app's accounts, read once for every audience.
	type ownAdSet struct {
		ports.AdSet
		account string
	}
	var adSets []ownAdSet
	for _, acc := range own {
		sets, err := src.Ads.AdSets(ctx, acc)
		if err != nil {
			add(Finding{Kind: KindError, AdAccountID: acc,
				Explanation: fmt.Sprintf("the ad sets of ad account %s could not be read, so no audience's targeting there was checked: %v", acc, err)})
			continue
		}
		for _, as := range sets {
			adSets = append(adSets, ownAdSet{AdSet: as, account: acc})
		}
	}
	allowed := app.Meta.AllowedCampaigns

	for _, au := range managed {
		base := Finding{Segment: au.segment, Key: au.key, AudienceID: au.id}
		what := "audience " + au.id + " (" + au.key + ")"
		fail := func(read string, err error) {
			f := base
			f.Kind = KindError
			f.Explanation = fmt.Sprintf("%s: %s could not be read, so this audit of it is incomplete: %v", what, read, err)
			add(f)
		}

		// Who holds it: the shares to other businesses first, as their finding says more.
		held := map[string]bool{}
		shared, err := src.Audit.AudienceSharedAccounts(ctx, au.id)
		if err != nil {
			fail("the accounts it is shared with", err)
		}
		for _, acc := range shared {
			acc = account(acc)
			if slices.Contains(own, acc) || held[acc] {
				continue
			}
			held[acc] = true
			f := base
			f.Kind, f.AdAccountID = KindHeldByForeignAccount, acc
			f.Explanation = fmt.Sprintf("%s is shared with ad account %s of another business, which is not in the app's config: stop sharing it", what, acc)
			add(f)
		}
		holders, err := src.Audit.AudienceAdAccounts(ctx, au.id)
		if err != nil {
			fail("the ad accounts holding it", err)
		}
		for _, acc := range holders {
			acc = account(acc)
			if slices.Contains(own, acc) || held[acc] {
				continue
			}
			held[acc] = true
			f := base
			f.Kind, f.AdAccountID = KindHeldByForeignAccount, acc
			f.Explanation = fmt.Sprintf("%s is held by ad account %s, which is not in the app's config: whoever runs it can target these users; remove its access", what, acc)
			add(f)
		}

		// Who uses it: ads (any account), then the app's ad sets' targeting.
		notAllowed := map[string]bool{} // ad set ids reported
		uses, err := src.Audit.AudienceAds(ctx, au.id)
		if err != nil {
			fail("the ads using it", err)
		}
		for _, u := range uses {
			acc := account(u.AdAccountID)
			switch {
			case !slices.Contains(own, acc):
				f := base
				f.Kind, f.AdAccountID, f.CampaignID, f.AdSetID, f.AdID = KindUsedByForeignAccount, acc, u.CampaignID, u.AdSetID, u.AdID
				f.Explanation = fmt.Sprintf("%s is used by ad %s (ad set %s, campaign %s) of ad account %s, which is not in the app's config: stop the ad and remove the account's access",
					what, u.AdID, u.AdSetID, u.CampaignID, acc)
				add(f)
			case len(allowed) > 0 && !slices.Contains(allowed, u.CampaignID) && !notAllowed[u.AdSetID]:
				notAllowed[u.AdSetID] = true
				f := base
				f.Kind, f.AdAccountID, f.CampaignID, f.AdSetID, f.AdID = KindCampaignNotAllowed, acc, u.CampaignID, u.AdSetID, u.AdID
				f.Explanation = fmt.Sprintf("%s is used by ad %s of ad set %s in campaign %s, which is not in meta.allowed_campaigns: remove the audience from the ad set or allow the campaign",
					what, u.AdID, u.AdSetID, u.CampaignID)
				add(f)
			}
		}
		for i := range adSets {
			as := &adSets[i]
			if !slices.Contains(as.Included, au.id) {
				continue
			}
			if len(allowed) > 0 && !slices.Contains(allowed, as.CampaignID) && !notAllowed[as.ID] {
				notAllowed[as.ID] = true
				f := base
				f.Kind, f.AdAccountID, f.CampaignID, f.AdSetID = KindCampaignNotAllowed, as.account, as.CampaignID, as.ID
				f.Explanation = fmt.Sprintf("%s is included by ad set %s of campaign %s, which is not in meta.allowed_campaigns: remove the audience from the ad set or allow the campaign",
					what, as.ID, as.CampaignID)
				add(f)
			}
			if au.hasHoldout && as.Active() && (au.holdoutID == "" || !slices.Contains(as.Excluded, au.holdoutID)) {
				f := base
				f.Kind, f.AdAccountID, f.CampaignID, f.AdSetID = KindHoldoutNotExcluded, as.account, as.CampaignID, as.ID
				excl := "its holdout audience " + au.holdoutID
				if au.holdoutID == "" {
					excl = "its holdout audience (not created yet: the audience sync creates it)"
				}
				f.Explanation = fmt.Sprintf("active ad set %s includes %s without excluding %s: holdout users can see the ads and the measured lift is biased toward zero; exclude it",
					as.ID, what, excl)
				add(f)
			}
		}
	}
	sortFindings(out)
	return out, nil
}

// Accounts returns the app's ad accounts (meta.ad_account_id and the audiences'
// ad_account_id), sorted, as act_<digits>.
func Accounts(app *appconfig.App) []string {
	var out []string
	if app.Meta.AdAccountID != "" {
		out = append(out, account(app.Meta.AdAccountID))
	}
	for i := range app.Audiences {
		if acc := app.Audiences[i].AccountID(app); acc != "" {
			out = append(out, account(acc))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// account spells an ad account id as act_<digits> (the config's and the ports' form), whether
// Meta gave it with or without the prefix.
func account(id string) string {
	if id == "" || strings.HasPrefix(id, "act_") {
		return id
	}
	return "act_" + id
}

// managedAudiences lists the app's audiences that have an id at Meta, treated then holdout,
// in config order.
func managedAudiences(ctx context.Context, sync ports.AudienceSyncStore, app *appconfig.App) ([]audience, error) {
	idOf := func(configured, key string) (string, error) {
		if configured != "" {
			return configured, nil
		}
		st, found, err := sync.GetAudienceState(ctx, app.ID, key)
		if err != nil {
			return "", fmt.Errorf("audit: audience state of %s/%s: %w", app.ID, key, err)
		}
		if !found {
			return "", nil
		}
		return st.AudienceID, nil
	}
	var out []audience
	for i := range app.Audiences {
		au := &app.Audiences[i]
		id, err := idOf(au.AudienceID, au.Segment)
		if err != nil {
			return nil, err
		}
		treated := audience{segment: au.Segment, key: au.Segment, id: id}
		var holdout audience
		if au.Holdout() > 0 {
			hkey := au.Segment + audiences.HoldoutKeySuffix
			hid, err := idOf(au.HoldoutAudienceID, hkey)
			if err != nil {
				return nil, err
			}
			treated.hasHoldout, treated.holdoutID = true, hid
			holdout = audience{segment: au.Segment, key: hkey, id: hid, holdout: true}
		}
		if treated.id != "" {
			out = append(out, treated)
		}
		if holdout.id != "" {
			out = append(out, holdout)
		}
	}
	return out, nil
}

func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Segment, b.Segment), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.AdAccountID, b.AdAccountID), cmp.Compare(a.CampaignID, b.CampaignID),
			cmp.Compare(a.AdSetID, b.AdSetID), cmp.Compare(a.AdID, b.AdID))
	})
}

package metasandbox

// # Who holds and who uses an audience
//
//	GET /{version}/{audience_id}/adaccounts            -> {"data":[{"id":"act_<digits>"}], "paging"}
//	GET /{version}/{audience_id}/shared_account_info   -> {"data":[{"account_id","account_name",
//	                                                       "business_id","business_name","sharing_status"}]}
//	GET /{version}/{audience_id}/ads?fields=id,adset_id,campaign_id,account_id&effective_status=[...]
//	                                                   -> {"data":[{"id","adset_id","campaign_id","account_id"}]}
//
// Each also as a POST with method=GET. Sources: the edges and what they list [CAE, CAADS;
// reference meta-measurement.md section 3: "/adaccounts: the ad account ids associated with
// this custom audience", "/shared_account_info: list of Ad Accounts and Businesses this
// Audience is shared to", "/ads: ads that are using this custom audience"]; the fields of
// shared_account_info are those of CustomAudiencesharedAccountInfo (Meta's business SDKs,
// e.g. facebook_business/adobjects/customaudiencesharedaccountinfo.py); the Ad fields and the
// Ad effective_status values are Meta's [CG Ad]. Whether /adaccounts answers ids with the act_
// prefix is unverified: the sandbox sends "act_<digits>" (what an AdAccount node's id is) and
// the adapter takes both.
//
// The model: every audience is held by the ad account that created it; ShareAudience adds
// another account (to /adaccounts) and, when that account belongs to another business, to
// /shared_account_info too. Every ad set has one ad (id derived from the ad set's, so auto ad
// sets have one) and AddAd adds more. /ads answers the ads, in any ad account, of ad sets whose
// targeting includes the audience: Meta documents the edge as the ads "using" the audience and
// the sandbox reads that as including it (an ad set that only excludes it is left out; whether
// Meta lists those is unverified). An ad's status is ACTIVE; its effective_status is its ad
// set's (ADSET_PAUSED when the ad set is paused), and the effective_status parameter filters
// on it. A deleted audience answers 100/33 on all three edges.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Edges of an audience the audit reads.
const (
	edgeAdAccounts        = "adaccounts"
	edgeSharedAccountInfo = "shared_account_info"
	edgeAds               = "ads"
)

// adEffectiveStatuses are Meta's Ad effective_status values [CG Ad].
var adEffectiveStatuses = []string{"ACTIVE", "PAUSED", "DELETED", "PENDING_REVIEW", "DISAPPROVED", "PREAPPROVED",
	"PENDING_BILLING_INFO", "CAMPAIGN_PAUSED", "ARCHIVED", "ADSET_PAUSED", "IN_PROCESS", "WITH_ISSUES"}

// Ad ids: the ad of an ad set is the ad set's number plus adOfAdSetOffset (2396... and
// 2397... for the 2386... and 2387... ad sets); AddAd counts up from firstAdID.
const (
	adOfAdSetOffset = 100_000_000_000_000
	firstAdID       = 23880000000000000
)

// Share is one ad account an audience is shared with. Business is the account's business
// when it is not the audience owner's ("" for an account of the same business).
type Share struct {
	AdAccount string `json:"ad_account"` // digits, without "act_"
	Business  string `json:"business,omitempty"`
}

// ShareAudience shares an audience with an ad account (digits, with or without "act_"; it
// need not be one of Config.AdAccounts). business is the account's business when it is not
// the owner's: then the share is listed on /shared_account_info too. Sharing again replaces
// the business.
func (s *Sandbox) ShareAudience(audienceID, account, business string) error {
	account = strings.TrimPrefix(account, "act_")
	if account == "" || strings.Trim(account, "0123456789") != "" {
		return fmt.Errorf("metasandbox: bad ad account %q", account)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	aud := s.aud.byID[audienceID]
	if aud == nil {
		return fmt.Errorf("metasandbox: no audience %q", audienceID)
	}
	if aud.info.AdAccount == account {
		return fmt.Errorf("metasandbox: audience %s belongs to act_%s", audienceID, account)
	}
	w := &s.ads.writes
	if w.shares == nil {
		w.shares = map[string][]Share{}
	}
	shares := slices.DeleteFunc(w.shares[audienceID], func(sh Share) bool { return sh.AdAccount == account })
	w.shares[audienceID] = append(shares, Share{AdAccount: account, Business: business})
	return nil
}

// AudienceShares returns the shares of an audience, in the order they were made.
func (s *Sandbox) AudienceShares(audienceID string) []Share {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ads.writes.shares[audienceID])
}

// AddAd adds an ad to an ad set and returns its id.
func (s *Sandbox) AddAd(adSetID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveAutoAdSetsLocked()
	if s.ads.adSets[adSetID] == nil {
		return "", fmt.Errorf("metasandbox: no ad set %q", adSetID)
	}
	w := &s.ads.writes
	w.lastAdID++
	id := strconv.FormatUint(firstAdID+w.lastAdID, 10)
	if w.extraAds == nil {
		w.extraAds = map[string][]string{}
	}
	w.extraAds[adSetID] = append(w.extraAds[adSetID], id)
	return id, nil
}

// adsOfLocked returns an ad set's ads: its own, then those AddAd added.
func (s *Sandbox) adsOfLocked(adSetID string) []string {
	own := adSetID
	if n, err := strconv.ParseUint(adSetID, 10, 64); err == nil {
		own = strconv.FormatUint(n+adOfAdSetOffset, 10)
	} else {
		own = adSetID + "0" // not reached with the sandbox's ids
	}
	return append([]string{own}, s.ads.writes.extraAds[adSetID]...)
}

// adEffectiveStatus is the effective_status of an ad of a.
func adEffectiveStatus(a *adSet) string {
	if a.Status == StatusPaused {
		return "ADSET_PAUSED"
	}
	return a.effective()
}

// isAudienceAuditEdge matches /{version}/{audience_id}/adaccounts|shared_account_info|ads.
func isAudienceAuditEdge(edge string) bool {
	return edge == edgeAdAccounts || edge == edgeSharedAccountInfo || edge == edgeAds
}

// answerAudienceEdge answers the three audit edges of an audience.
func (s *Sandbox) answerAudienceEdge(r *http.Request, audienceID, edge string, p audienceParams) adsAnswer {
	var known []string
	switch edge {
	case edgeAdAccounts:
		known = []string{"id", "account_id"}
	case edgeSharedAccountInfo:
		known = []string{"account_id", "account_name", "business_id", "business_name", "sharing_status"}
	default:
		known = []string{"id", "name", "adset_id", "campaign_id", "account_id", "status", "effective_status"}
	}
	def := known[0]
	fields, gerr := parseFields(p, known, def)
	if gerr != nil {
		return adsAnswer{err: gerr}
	}
	if edge == edgeSharedAccountInfo && p.get("fields") == "" {
		fields = known // Meta's default fields of this edge are unverified: the sandbox sends all
	}
	var statuses []string
	if text := p.get("effective_status"); edge == edgeAds && text != "" {
		if json.Unmarshal([]byte(text), &statuses) != nil {
			return adsAnswer{err: errParam("param effective_status must be an array.")}
		}
		for _, st := range statuses {
			if !slices.Contains(adEffectiveStatuses, st) {
				return adsAnswer{err: errParam(fmt.Sprintf("param effective_status[%s] must be one of {%s}", st, strings.Join(adEffectiveStatuses, ", ")))}
			}
		}
	}
	offset, limit, gerr := parsePaging(p, 25)
	if gerr != nil {
		return adsAnswer{err: gerr}
	}

	s.mu.Lock()
	aud := s.aud.byID[audienceID]
	if aud == nil {
		s.mu.Unlock()
		return adsAnswer{err: errUnsupportedMethod(http.MethodGet, audienceID)}
	}
	s.resolveAutoAdSetsLocked()
	pick := func(all map[string]string) map[string]string {
		out := map[string]string{}
		for _, f := range fields {
			out[f] = all[f]
		}
		return out
	}
	var rows []map[string]string
	switch edge {
	case edgeAdAccounts:
		accounts := []string{aud.info.AdAccount}
		for _, sh := range s.ads.writes.shares[audienceID] {
			accounts = append(accounts, sh.AdAccount)
		}
		for _, acc := range accounts {
			rows = append(rows, pick(map[string]string{"id": "act_" + acc, "account_id": acc}))
		}
	case edgeSharedAccountInfo:
		for _, sh := range s.ads.writes.shares[audienceID] {
			if sh.Business == "" {
				continue
			}
			rows = append(rows, pick(map[string]string{"account_id": sh.AdAccount, "account_name": "Ad account " + sh.AdAccount,
				"business_id": sh.Business, "business_name": "Business " + sh.Business, "sharing_status": "active"}))
		}
	default:
		for _, id := range s.ads.order {
			a := s.ads.adSets[id]
			if !slices.Contains(a.Included, audienceID) {
				continue
			}
			eff := adEffectiveStatus(a)
			if statuses != nil && !slices.Contains(statuses, eff) ||
				statuses == nil && (a.Status == StatusDeleted || a.Status == StatusArchived) {
				continue // without a filter, deleted and archived are left out, as for /adsets
			}
			for _, ad := range s.adsOfLocked(id) {
				rows = append(rows, pick(map[string]string{"id": ad, "name": "Ad of " + a.Name, "adset_id": a.ID,
					"campaign_id": a.CampaignID, "account_id": a.AdAccount, "status": StatusActive, "effective_status": eff}))
			}
		}
	}
	s.mu.Unlock()
	return adsAnswer{body: page(r, p, rows, offset, limit)}
}

package metagraph

// Who holds and who uses a Custom Audience (ports.AudienceAuditAPI). Build the Client with the
// Marketing API version, as for ads.go.
//
//	GET {BaseURL}/{Version}/{audience_id}/adaccounts?fields=id&limit=200
//	GET {BaseURL}/{Version}/{audience_id}/shared_account_info?fields=account_id,business_id&limit=200
//	GET {BaseURL}/{Version}/{audience_id}/ads?fields=id,adset_id,campaign_id,account_id
//	    &effective_status=[every status but DELETED and ARCHIVED]&limit=200
//
// Sources (reference meta-measurement.md section 3): /adaccounts lists "the ad account ids
// associated with this custom audience" (held or shared to), /shared_account_info the "Ad
// Accounts and Businesses this Audience is shared to" (fields account_id, account_name,
// business_id, business_name, sharing_status: CustomAudiencesharedAccountInfo in Meta's
// business SDKs), /ads the "Ads that are using this custom audience" with adset_id,
// campaign_id, account_id [CAE; CAADS; CG Ad]. Ad ids of /adaccounts may come as act_<digits>
// or bare digits (unverified which): both are taken. The Ad effective_status values are
// Meta's [CG Ad]. Every edge is paged: paging.next is followed to its end, the token never in
// a URL (ads.go's adsPages).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/retarget-dev/retarget/shared/ports"
)

// adReadStatuses are the Ad effective statuses asked for: all but DELETED and ARCHIVED.
var adReadStatuses = []string{"ACTIVE", "ADSET_PAUSED", "CAMPAIGN_PAUSED", "DISAPPROVED", "IN_PROCESS", "PAUSED",
	"PENDING_BILLING_INFO", "PENDING_REVIEW", "PREAPPROVED", "WITH_ISSUES"}

var _ ports.AudienceAuditAPI = (*Client)(nil)

// AudienceAdAccounts lists the ad accounts that hold the audience (its owner and those it is
// shared with), as act_<digits>. Errors are *ports.CAPIError.
func (c *Client) AudienceAdAccounts(ctx context.Context, audienceID string) ([]string, error) {
	var rows []struct {
		ID        flexString `json:"id"`
		AccountID flexString `json:"account_id"`
	}
	var out []string
	err := c.auditPages(ctx, audienceID, "adaccounts", "list the ad accounts of audience", []field{stringField("fields", "id")}, &rows, func() error {
		for _, r := range rows {
			acc, err := actID(firstNonEmpty(string(r.ID), string(r.AccountID)))
			if err != nil {
				return err
			}
			out = append(out, acc)
		}
		return nil
	})
	return out, err
}

// AudienceSharedAccounts lists the ad accounts of other businesses the audience is shared
// with, as act_<digits>. Errors are *ports.CAPIError.
func (c *Client) AudienceSharedAccounts(ctx context.Context, audienceID string) ([]string, error) {
	var rows []struct {
		AccountID flexString `json:"account_id"`
	}
	var out []string
	err := c.auditPages(ctx, audienceID, "shared_account_info", "list the shared accounts of audience",
		[]field{stringField("fields", "account_id,business_id")}, &rows, func() error {
			for _, r := range rows {
				acc, err := actID(string(r.AccountID))
				if err != nil {
					return err
				}
				out = append(out, acc)
			}
			return nil
		})
	return out, err
}

// AudienceAds lists the ads that use the audience, in any ad account, that are neither
// deleted nor archived. Errors are *ports.CAPIError.
func (c *Client) AudienceAds(ctx context.Context, audienceID string) ([]ports.AudienceUse, error) {
	statuses, _ := json.Marshal(adReadStatuses)
	var rows []struct {
		ID         flexString `json:"id"`
		AdSetID    flexString `json:"adset_id"`
		CampaignID flexString `json:"campaign_id"`
		AccountID  flexString `json:"account_id"`
	}
	var out []ports.AudienceUse
	err := c.auditPages(ctx, audienceID, "ads", "list the ads of audience",
		[]field{stringField("fields", "id,adset_id,campaign_id,account_id"), rawField("effective_status", statuses)}, &rows, func() error {
			for _, r := range rows {
				if r.ID == "" {
					return fmt.Errorf("an ad without an id")
				}
				acc, err := actID(string(r.AccountID))
				if err != nil {
					return fmt.Errorf("ad %s: %w", r.ID, err)
				}
				out = append(out, ports.AudienceUse{AdID: string(r.ID), AdSetID: string(r.AdSetID), CampaignID: string(r.CampaignID), AdAccountID: acc})
			}
			return nil
		})
	return out, err
}

// auditPages reads every page of one edge of an audience: each page's data is decoded into
// rows, then take is called.
func (c *Client) auditPages(ctx context.Context, audienceID, edge, what string, fields []field, rows any, take func() error) error {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return &e
	}
	if !isDigits(audienceID) {
		return invalid("invalid audience id %q", audienceID)
	}
	what += " " + audienceID
	fields = append(fields, rawField("limit", []byte(strconv.Itoa(adSetsPageSize))))
	var decodeErr error
	_, err := c.adsPages(ctx, c.endpoint+audienceID+"/"+edge, what, fields, nil, func(data json.RawMessage) bool {
		if decodeErr = json.Unmarshal(data, rows); decodeErr != nil {
			return false
		}
		decodeErr = take()
		return decodeErr == nil
	})
	if err != nil {
		return err
	}
	if decodeErr != nil {
		return &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: %s: %w", what, decodeErr)}
	}
	return nil
}

// actID turns an ad account id, with or without its act_ prefix, into act_<digits>.
func actID(s string) (string, error) {
	digits := strings.TrimPrefix(s, "act_")
	if !isDigits(digits) {
		return "", fmt.Errorf("ad account id %q is not act_<digits>", s)
	}
	return "act_" + digits, nil
}

package metagraph

// Ad set reads and writes (ports.AdsWriter, Marketing API, ads_management). Build the Client
// with the Marketing API version, as for ads.go.
//
//	GET  {BaseURL}/{Version}/{adset_id}?fields=id,name,campaign_id,account_id,status,
//	     effective_status,daily_budget,targeting
//	POST {BaseURL}/{Version}/{adset_id}  status=ACTIVE|PAUSED and/or daily_budget=<minor units>
//	     -> {"success": true}
//
// The GET goes as a POST with method=GET and the credentials in the body, as every read of
// ads.go; the write carries them in its body too. Sources (reference meta-measurement.md
// section 2): the write's parameters and that it needs ads_management [CG AdSet; BUD; PERM];
// daily_budget in the currency's minor units, sent as a string [BUD].
//
// Write refusals are *ports.CAPIError with Meta's code, subcode and message kept, classified
// by ClassifyAds (so the throttles are RateLimited, permissions Auth, code 100 InvalidParameter)
// and, for the two refusals the automation records as such, wrapping a sentinel:
//
//   - ErrBudgetChangeLimit: code 17 answering a daily_budget write whose subcode is not the
//     user-level throttle's (2446079). Meta: "For each ad set, the budget is only allowed to
//     change 4 times per hour, if exceeds the limit, the budget change for that ad set will be
//     blocked for an hour. Error, Code: 17, Message: User request limit reached." (the older
//     Marketing API rate-limiting page, https://developers.facebook.com/docs/marketing-api/api-rate-limiting
//     [RLOLD]; the newer copy says the same). Meta names no subcode for it: a 17 on a budget
//     write is read as this limit, which may also be the user throttle without its subcode.
//     RetryAfter is at least BudgetChangeBlock.
//   - ErrCampaignOwnsBudget: code 100 with subcode 1885621 ("Budget Conflict: Campaign
//     Already Has a Budget": the campaign uses Advantage campaign budget [ACB]). The subcode
//     is what integrators quote (pipeboard-co/meta-ads-mcp pull requests 71 and 112,
//     byadsco/meta-ads-mcp pull request 97), not found on a Meta page: unverified.
//
// A write that fails without an answer (network, timeout) is Transient, as for reads: the
// write sets absolute values, so sending it again does no harm, but it may have been applied;
// read the ad set before deciding.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Refusals of an ad set write the caller tells apart with errors.Is on the *ports.CAPIError.
var (
	// ErrBudgetChangeLimit: the ad set's budget changed too often (4 per hour); its budget
	// is blocked for an hour.
	ErrBudgetChangeLimit = errors.New("metagraph: the ad set's budget changed too often (Meta allows 4 changes per hour, then blocks its budget for an hour)")
	// ErrCampaignOwnsBudget: the ad set's campaign has the budget (Advantage campaign budget):
	// an ad set budget cannot be set.
	ErrCampaignOwnsBudget = errors.New("metagraph: the ad set's campaign owns the budget (Advantage campaign budget)")
)

// BudgetChangeBlock is how long Meta blocks an ad set's budget after too many changes
// [RLOLD]: the least RetryAfter of ErrBudgetChangeLimit.
const BudgetChangeBlock = time.Hour

// Codes of the write refusals (see the file comment for their sources).
const (
	codeUserRequestLimit      = 17
	subcodeUserRequestLimit   = 2446079 // the user-level throttle [RL]
	subcodeCampaignOwnsBudget = 1885621
	// maxDailyBudget bounds a budget: past 2^53 a JSON number anywhere on the way loses digits.
	maxDailyBudget = 1 << 53
)

// adSetReadFields are the fields of an ad set read (account_id too, which ports.AdSet does
// not keep: the answer then shows which account it is in when logged).
const adSetReadFields = "id,name,campaign_id,account_id,status,effective_status,daily_budget,targeting"

var _ ports.AdsWriter = (*Client)(nil)

// AdSet reads one ad set with its status, budget and targeting. Errors are *ports.CAPIError.
func (c *Client) AdSet(ctx context.Context, id string) (ports.AdSet, error) {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return ports.AdSet{}, &e
	}
	if !isDigits(id) {
		return ports.AdSet{}, invalid("invalid ad set id %q", id)
	}
	var answer adSetJSON
	fields := []field{stringField("method", "GET"), stringField("fields", adSetReadFields)}
	if _, err := c.adsCall(ctx, c.endpoint+id, "read ad set", fields, &answer); err != nil {
		return ports.AdSet{}, err
	}
	set, err := answer.adSet()
	if err == nil && set.ID != id {
		err = fmt.Errorf("asked for ad set %s, answered %s", id, set.ID)
	}
	if err != nil {
		return ports.AdSet{}, &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: read ad set %s: %w", id, err)}
	}
	return set, nil
}

// UpdateAdSet writes the change's status and/or daily budget. Errors are *ports.CAPIError; a
// refusal keeps Meta's code, subcode and message, and wraps ErrBudgetChangeLimit or
// ErrCampaignOwnsBudget when it is one of those.
func (c *Client) UpdateAdSet(ctx context.Context, ch ports.AdSetChange) error {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return &e
	}
	if !isDigits(ch.AdSetID) {
		return invalid("invalid ad set id %q", ch.AdSetID)
	}
	var fields []field
	switch ch.Status {
	case "":
	case ports.AdSetActive, ports.AdSetPaused:
		fields = append(fields, stringField("status", ch.Status))
	default:
		return invalid("update ad set %s: status %q is not ACTIVE or PAUSED", ch.AdSetID, ch.Status)
	}
	if ch.DailyBudget < 0 || ch.DailyBudget > maxDailyBudget {
		return invalid("update ad set %s: daily_budget %d is not a positive number of minor units", ch.AdSetID, ch.DailyBudget)
	}
	if ch.DailyBudget > 0 {
		// A string of minor units, as Meta's examples send it [BUD].
		fields = append(fields, stringField("daily_budget", strconv.FormatInt(ch.DailyBudget, 10)))
	}
	if len(fields) == 0 {
		return invalid("update ad set %s: nothing to change", ch.AdSetID)
	}
	var answer struct {
		Success *bool `json:"success"`
	}
	_, err := c.adsCall(ctx, c.endpoint+ch.AdSetID, "update ad set", fields, &answer)
	if err != nil {
		var e *ports.CAPIError
		if errors.As(err, &e) {
			classifyWriteRefusal(e, ch)
		}
		return err
	}
	if answer.Success != nil && !*answer.Success {
		return &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: update ad set %s: Meta answered success false", ch.AdSetID)}
	}
	return nil
}

// classifyWriteRefusal marks the two refusals of a write the caller must tell apart (see the
// file comment).
func classifyWriteRefusal(e *ports.CAPIError, ch ports.AdSetChange) {
	switch m := e.Meta; {
	case ch.DailyBudget > 0 && m.Code == codeUserRequestLimit && m.Subcode != subcodeUserRequestLimit:
		e.Err = ErrBudgetChangeLimit
		e.RetryAfter = max(e.RetryAfter, BudgetChangeBlock)
	case m.Code == 100 && m.Subcode == subcodeCampaignOwnsBudget:
		e.Err = ErrCampaignOwnsBudget
	}
}

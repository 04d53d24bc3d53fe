package metagraph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Creating an audience is made idempotent by looking its name up first: a create whose answer
// was lost (timeout, 5xx after Meta applied it) would otherwise make a second audience of the
// same name at the next attempt.
//
//	GET {BaseURL}/{Version}/act_{ad account}/customaudiences   fields=id,name,
//	    filtering=[{"field":"name","operator":"EQUAL","value":<name>}], limit=500
//
// The edge and its filtering parameter are in Meta's API spec
// (facebook/facebook-business-sdk-codegen api_specs/specs/AdAccount.json: GET customaudiences,
// params business_id, fields, filtering, pixel_id); filter objects are {field, operator,
// value}, as for Insights (https://developers.facebook.com/docs/marketing-api/insights/best-practices).
// The GET is sent as a POST with method=GET (the Graph API's method override, which Meta's
// JavaScript SDK uses) so that the token and its proof stay in the body, never in the URL.
// Neither the override nor the name filter on this edge is verified against a real ad account
// (infra/docs/guarantees.md): the answer's names are compared here as well, so an unfiltered
// answer is read correctly, and a POST taken as a create fails for want of a name instead of
// creating anything. 500 is the most customer-file audiences an ad account holds.

// CreateMaxUsagePct: when the name lookup's answer reports this rate-limit usage or more,
// CreateAudience sends no create and answers RateLimited with the lookup's usage and announced
// wait, whatever the lookup found (the id is looked up again after the wait); when the create's
// answer does, it answers the same (the next attempt finds the new audience by name). The two calls are
// one CreateAudience to its caller, which paces its calls from their answers' usage (the audience sync pauses an ad account at 85%: Meta asks integrations
// to slow down before 100%, Graph API rate limiting,
// https://developers.facebook.com/docs/graph-api/overview/rate-limiting); without this the
// create would follow an answer that asked to wait.
const CreateMaxUsagePct = 85

// lookupLimit is the page size of the lookup.
const lookupLimit = 500

// findAudience returns the id of the audience of account named name, "" when there is none.
// Several of that name is an error (class Unknown): creating another would make it worse.
func (c *Client) findAudience(ctx context.Context, account, name string) (string, error) {
	filter, _ := json.Marshal([]map[string]string{{"field": "name", "operator": "EQUAL", "value": name}})
	fields := []field{
		stringField("method", "GET"),
		stringField("fields", "id,name"),
		rawField("filtering", filter),
		rawField("limit", []byte(strconv.Itoa(lookupLimit))),
	}
	var answer struct {
		Data []struct {
			ID   flexString `json:"id"`
			Name string     `json:"name"`
		} `json:"data"`
	}
	usage, err := c.audienceCall(ctx, http.MethodPost, account+"/customaudiences", "find audience", fields, &answer)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, a := range answer.Data {
		if a.Name == name && a.ID != "" {
			ids = append(ids, string(a.ID))
		}
	}
	if pct := usage.MaxPct(); pct >= CreateMaxUsagePct {
		// Near Meta's limit the caller must learn the usage before its next call (the create,
		// or an upload to the audience found): the id is looked up again after the wait.
		return "", &ports.CAPIError{Class: ports.CAPIRateLimited, UsagePct: pct, RetryAfter: usage.RegainAfter,
			Err: fmt.Errorf("metagraph: create audience: stopped after the name lookup, whose answer reported %.0f%% rate-limit usage", pct)}
	}
	switch len(ids) {
	case 0:
		return "", nil
	case 1:
		return ids[0], nil
	}
	return "", &ports.CAPIError{Class: ports.CAPIUnknown, Err: fmt.Errorf(
		"metagraph: %d audiences named %q in %s (%v): put the right one's id in the config", len(ids), name, account, ids)}
}

package metagraph

// Marketing API reading (ports.AdsAPI): the ad account's currency and time zone, its ad sets
// with their targeting, and Ads Insights (insights.go). Build the Client with the Marketing API
// version (runtime.MetaVersion(m, metaversions.Marketing)), not the Conversions API's: these
// are Marketing API endpoints, on its deprecation schedule (an expired version answers 2635).
//
//	GET {BaseURL}/{Version}/act_{id}?fields=currency,timezone_name
//	GET {BaseURL}/{Version}/act_{id}/adsets?fields=id,name,campaign_id,status,effective_status,
//	    daily_budget,targeting&effective_status=[every status but DELETED and ARCHIVED]&limit=200
//
// Sources (reference meta-measurement.md): the account's currency and timezone_name, and that
// insights days are in that time zone [CG AdAccount; AB base_insight_streams.py]; the ad set
// fields, targeting.custom_audiences[] and excluded_custom_audiences[] as {id, name}, the
// status and effective_status values [CG AdSet, Targeting, enum_types: the effective_status
// parameter of GET adsets takes adaccountadsets_effective_status_enum_param];
// targeting_automation.advantage_audience = 1 delivers beyond the included audiences, only
// exclusions hold [AA]; daily_budget is in the currency's minor units, sent as a string
// [BUD]. Pagination: follow paging.next until it is absent; cursors are never stored [PAG].
//
// Every GET is sent as a POST with method=GET and its parameters, the access token and
// appsecret_proof in the body, as the audience lookup does (audiencelookup.go): no URL carries
// the token. paging.next is a URL Meta builds with the token in its query: it is read for its
// path and parameters only (access_token and appsecret_proof dropped), sent the same way, and
// only to the configured Graph host.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Defaults of the Marketing API reading.
const (
	// DefaultAdsTimeout is the default Config.AdsTimeout: a synchronous insights call over
	// weeks of an account can take tens of seconds before Meta answers or times out itself.
	DefaultAdsTimeout = 60 * time.Second
	// DefaultInsightsPollInterval and MaxInsightsPollInterval bound the wait between polls of
	// a report run (it doubles from the first to the second).
	DefaultInsightsPollInterval = 2 * time.Second
	MaxInsightsPollInterval     = 30 * time.Second
	// DefaultInsightsMaxWait is the default Config.InsightsMaxWait. Meta says an async job
	// may take up to an hour [BP]; a scheduled function has 15 minutes at most, so it gives up
	// sooner and the next run asks again.
	DefaultInsightsMaxWait = 10 * time.Minute
	// DefaultThrottleWait is the RetryAfter of a throttle whose answer announces no wait
	// (our choice: Meta documents no default).
	DefaultThrottleWait = time.Minute
)

// adSetsPageSize is the limit of an ad set page; maxPages stops a paging loop that never ends
// (a next link that points back to itself).
const (
	adSetsPageSize = 200
	maxPages       = 10_000
)

// readStatuses are the effective statuses asked for: all but DELETED and ARCHIVED.
var readStatuses = []string{"ACTIVE", "ADSET_PAUSED", "CAMPAIGN_PAUSED", "DISAPPROVED", "IN_PROCESS", "PAUSED",
	"PENDING_BILLING_INFO", "PENDING_REVIEW", "PREAPPROVED", "WITH_ISSUES"}

// adsConfig is the Marketing API reading's part of the Config.
type adsConfig struct {
	timeout, poll, maxWait time.Duration
	origin                 string // scheme://host of BaseURL: where paging.next may point
}

func newAdsConfig(cfg Config) adsConfig {
	a := adsConfig{timeout: cfg.AdsTimeout, poll: cfg.InsightsPollInterval, maxWait: cfg.InsightsMaxWait}
	if a.timeout <= 0 {
		a.timeout = DefaultAdsTimeout
	}
	if a.poll <= 0 {
		a.poll = DefaultInsightsPollInterval
	}
	if a.maxWait <= 0 {
		a.maxWait = DefaultInsightsMaxWait
	}
	if u, err := url.Parse(cfg.BaseURL); err == nil {
		a.origin = u.Scheme + "://" + u.Host
	}
	return a
}

var _ ports.AdsAPI = (*Client)(nil)

// AdAccount reads the ad account's currency and time zone. Errors are *ports.CAPIError.
func (c *Client) AdAccount(ctx context.Context, id string) (ports.AdAccount, error) {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return ports.AdAccount{}, &e
	}
	if !validAdAccount(id) {
		return ports.AdAccount{}, invalid("invalid ad account id %q (want act_<digits>)", id)
	}
	var answer struct {
		Currency     string `json:"currency"`
		TimezoneName string `json:"timezone_name"`
	}
	fields := []field{stringField("method", "GET"), stringField("fields", "currency,timezone_name")}
	if _, err := c.adsCall(ctx, c.endpoint+id, "read ad account", fields, &answer); err != nil {
		return ports.AdAccount{}, err
	}
	if answer.Currency == "" || answer.TimezoneName == "" {
		return ports.AdAccount{}, &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: read ad account %s: the answer lacks currency or timezone_name", id)}
	}
	return ports.AdAccount{ID: id, Currency: answer.Currency, TimezoneName: answer.TimezoneName}, nil
}

// adSetJSON is an ad set as the Graph API sends it.
type adSetJSON struct {
	ID              flexString `json:"id"`
	Name            string     `json:"name"`
	CampaignID      flexString `json:"campaign_id"`
	Status          string     `json:"status"`
	EffectiveStatus string     `json:"effective_status"`
	DailyBudget     flexString `json:"daily_budget"`
	Targeting       struct {
		CustomAudiences         []audienceRef `json:"custom_audiences"`
		ExcludedCustomAudiences []audienceRef `json:"excluded_custom_audiences"`
		TargetingAutomation     struct {
			AdvantageAudience flexInt `json:"advantage_audience"`
		} `json:"targeting_automation"`
	} `json:"targeting"`
}

type audienceRef struct {
	ID   flexString `json:"id"`
	Name string     `json:"name"`
}

// AdSets lists the account's ad sets that are neither deleted nor archived, with the custom
// audiences their targeting includes and excludes, following paging.next to the end. Errors
// are *ports.CAPIError.
func (c *Client) AdSets(ctx context.Context, adAccountID string) ([]ports.AdSet, error) {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return nil, &e
	}
	if !validAdAccount(adAccountID) {
		return nil, invalid("invalid ad account id %q (want act_<digits>)", adAccountID)
	}
	statuses, _ := json.Marshal(readStatuses)
	fields := []field{
		stringField("fields", "id,name,campaign_id,status,effective_status,daily_budget,targeting"),
		rawField("effective_status", statuses),
		rawField("limit", []byte(strconv.Itoa(adSetsPageSize))),
	}
	var out []ports.AdSet
	var decodeErr error
	_, err := c.adsPages(ctx, c.endpoint+adAccountID+"/adsets", "list ad sets", fields, nil, func(data json.RawMessage) bool {
		var page []adSetJSON
		if err := json.Unmarshal(data, &page); err != nil {
			decodeErr = err
			return false
		}
		for _, a := range page {
			set, err := a.adSet()
			if err != nil {
				decodeErr = err
				return false
			}
			// Asked for by effective_status already; checked again in case the filter was
			// ignored: a deleted ad set spends nothing and must not count as targeting.
			if slices.Contains([]string{"DELETED", "ARCHIVED"}, set.Status) || slices.Contains([]string{"DELETED", "ARCHIVED"}, set.EffectiveStatus) {
				continue
			}
			out = append(out, set)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if decodeErr != nil {
		return nil, &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: list ad sets of %s: %w", adAccountID, decodeErr)}
	}
	return out, nil
}

func (a adSetJSON) adSet() (ports.AdSet, error) {
	set := ports.AdSet{ID: string(a.ID), Name: a.Name, CampaignID: string(a.CampaignID), Status: a.Status,
		EffectiveStatus: a.EffectiveStatus, AdvantageAudience: a.Targeting.TargetingAutomation.AdvantageAudience == 1}
	if set.ID == "" {
		return set, errors.New("an ad set without an id")
	}
	if a.DailyBudget != "" {
		n, err := strconv.ParseInt(string(a.DailyBudget), 10, 64)
		if err != nil || n < 0 {
			return set, fmt.Errorf("ad set %s: daily_budget %q is not a whole number of minor units", set.ID, a.DailyBudget)
		}
		set.DailyBudget = n
	}
	for _, r := range a.Targeting.CustomAudiences {
		set.Included = append(set.Included, string(r.ID))
	}
	for _, r := range a.Targeting.ExcludedCustomAudiences {
		set.Excluded = append(set.Excluded, string(r.ID))
	}
	return set, nil
}

// page is one answer of a paged edge. ReportRunID is set instead when a POST meant as a GET
// created an asynchronous report (insights.go reads it).
type page struct {
	Data   json.RawMessage `json:"data"`
	Paging struct {
		Next string `json:"next"`
	} `json:"paging"`
	ReportRunID flexString `json:"report_run_id"`
}

// adsPages reads a paged edge from target: each page's data goes to each (which returns false
// to stop), paging.next is followed until absent. Every answer's headers go to seen, when set.
// A first answer that is a report run id instead of a page returns that id.
func (c *Client) adsPages(ctx context.Context, target, what string, fields []field, seen func(http.Header), each func(json.RawMessage) bool) (string, error) {
	fields = append([]field{stringField("method", "GET")}, fields...)
	for n := 0; n < maxPages; n++ {
		var p page
		h, err := c.adsCall(ctx, target, what, fields, &p)
		if seen != nil && h != nil {
			seen(h)
		}
		if err != nil {
			return "", err
		}
		if n == 0 && p.ReportRunID != "" && p.Data == nil {
			return string(p.ReportRunID), nil
		}
		if len(p.Data) > 0 && !each(p.Data) {
			return "", nil
		}
		if p.Paging.Next == "" {
			return "", nil
		}
		if target, fields, err = c.nextPage(p.Paging.Next, what); err != nil {
			return "", err
		}
	}
	return "", &ports.CAPIError{Class: ports.CAPIUnknown, Err: fmt.Errorf("metagraph: %s: more than %d pages", what, maxPages)}
}

// nextPage turns a paging.next URL into a call: its path on the configured host, its query
// parameters (the token and proof dropped: ours go in the body) and the method override.
func (c *Client) nextPage(next, what string) (string, []field, error) {
	u, err := url.Parse(next)
	if err != nil || u.Scheme+"://"+u.Host != c.ads.origin {
		// Never send the token to a host the config does not name.
		return "", nil, &ports.CAPIError{Class: ports.CAPIUnknown,
			Err: fmt.Errorf("metagraph: %s: paging.next is not on the Graph host %s", what, c.ads.origin)}
	}
	q := u.Query()
	q.Del("access_token")
	q.Del("appsecret_proof")
	q.Del("method")
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fields := []field{stringField("method", "GET")}
	for _, k := range keys {
		fields = append(fields, stringField(k, q.Get(k)))
	}
	return c.ads.origin + u.EscapedPath(), fields, nil
}

// adsCall sends one Marketing API call: POST target with fields and the credentials in the
// body, and decodes a successful answer into out. It returns the answer's headers (nil when
// there was no answer). Errors are *ports.CAPIError (ClassifyAds); a throttle carries the
// longest wait the answer announced, at least DefaultThrottleWait.
func (c *Client) adsCall(ctx context.Context, target, what string, fields []field, out any) (http.Header, error) {
	body, contentType := c.encodeFields(fields)
	ctx, cancel := context.WithTimeout(ctx, c.ads.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, &ports.CAPIError{Class: ports.CAPIUnknown, Err: fmt.Errorf("metagraph: %s: build request: %w", what, err)}
	}
	hreq.Header.Set("Content-Type", contentType)
	hreq.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		// The URL in err carries no token. A read is safe to repeat.
		return nil, &ports.CAPIError{Class: ports.CAPITransient, Err: fmt.Errorf("metagraph: %s: %w", what, err)}
	}
	defer resp.Body.Close()
	c.versionWarning(resp.Header)
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAdsResponseBytes))
	usage := ParseUsage(resp.Header)
	insights, _ := ParseInsightsUsage(resp.Header)

	var envelope struct {
		Error     *ports.MetaError `json:"error"`
		FBTraceID string           `json:"fbtrace_id"`
	}
	var parseErr error
	if readErr != nil {
		parseErr = fmt.Errorf("metagraph: %s: read answer: %w", what, readErr)
	} else if err := json.Unmarshal(raw, &envelope); err != nil {
		parseErr = fmt.Errorf("metagraph: %s: decode answer (http %d, %d bytes): %w", what, resp.StatusCode, len(raw), err)
	} else if resp.StatusCode == http.StatusOK && envelope.Error == nil {
		if err := json.Unmarshal(raw, out); err != nil {
			parseErr = fmt.Errorf("metagraph: %s: decode answer (%d bytes): %w", what, len(raw), err)
		} else {
			return resp.Header, nil
		}
	}

	e := &ports.CAPIError{HTTPStatus: resp.StatusCode, UsagePct: max(usage.MaxPct(), insights.UsagePct), Err: parseErr}
	if envelope.Error != nil {
		e.Meta = *envelope.Error
	}
	e.Meta.FBTraceID = firstNonEmpty(e.Meta.FBTraceID, envelope.FBTraceID, resp.Header.Get("X-Fb-Trace-Id"))
	if resp.StatusCode == http.StatusOK && envelope.Error == nil {
		e.Class = ports.CAPIUnknown // 200 with an unreadable answer
	} else {
		e.Class = ClassifyAds(resp.StatusCode, envelope.Error)
	}
	e.RetryAfter = max(usage.RegainAfter, insights.RegainAfter)
	if e.Class == ports.CAPIRateLimited || e.Class == ports.CAPIBlocked {
		e.RetryAfter = max(e.RetryAfter, retryAfterHeader(resp.Header), DefaultThrottleWait)
	}
	return resp.Header, e
}

// maxAdsResponseBytes bounds one answer: a page of 500 insights rows with their actions is a
// few hundred KiB.
const maxAdsResponseBytes = 16 << 20

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Insights error codes [ERR; BP; RL; AE] (reference meta-measurement.md section 1).
const (
	// subcodeTooMuchData (code 100): "Please reduce the amount of data you're asking for".
	subcodeTooMuchData = 1487534
	// subcodeInsightsTimeout (code 100): the synchronous call timed out.
	subcodeInsightsTimeout = 1504018
	// codeAsyncFailed (subcode 2490547): an async report job failed.
	codeAsyncFailed = -2
)

// ClassifyAds maps an answer to a Marketing API reading call to an error class. These come
// first; anything else is classified by Classify:
//
//   - 100/1504018 (the synchronous insights call timed out) and -2 (an async report failed,
//     subcode 2490547): Transient: the same request may succeed later (Insights itself moves a
//     timed-out synchronous call to the async flow);
//   - then, through Classify, the insights throttles, all HTTP 400 with an error envelope
//     rather than 429 [AE]: 4 (subcode 1504022, the app's insights limit) [ERR], 17 (2446079,
//     the user's) and 613 (1487742, the ad account's) [RL], 80000 (the ads_insights business
//     use case) [AE; ABPR]: RateLimited; 100/1487534 (too much data): InvalidParameter (the
//     request must be smaller or asynchronous); 2635: VersionExpired; 190 and 200-299: Auth.
//
// me may be nil when the body held no error envelope.
func ClassifyAds(status int, me *ports.MetaError) ports.CAPIErrorClass {
	if me != nil && (me.Code == 100 && me.Subcode == subcodeInsightsTimeout || me.Code == codeAsyncFailed) {
		return ports.CAPITransient
	}
	return Classify(status, me)
}

// ParseInsightsUsage reads the insights rate-limit headers: x-fb-ads-insights-throttle
// ({"app_id_util_pct":..,"acc_id_util_pct":..}, percentages) and the entries of type
// ads_insights of X-Business-Use-Case-Usage (call_count, total_cputime, total_time in percent,
// estimated_time_to_regain_access in minutes) [AB api.py; AE]; other use cases throttle other
// calls and are left out. ok is false when neither header was readable. The field names of
// x-fb-ads-insights-throttle are Airbyte's reading, unverified at Meta.
func ParseInsightsUsage(h http.Header) (u ports.InsightsUsage, ok bool) {
	if s := h.Get("X-Fb-Ads-Insights-Throttle"); s != "" {
		var v struct {
			App float64 `json:"app_id_util_pct"`
			Acc float64 `json:"acc_id_util_pct"`
		}
		if json.Unmarshal([]byte(s), &v) == nil {
			u.UsagePct, ok = max(u.UsagePct, v.App, v.Acc), true
		}
	}
	if s := h.Get("X-Business-Use-Case-Usage"); s != "" {
		var v map[string][]struct {
			Type         string  `json:"type"`
			CallCount    float64 `json:"call_count"`
			TotalTime    float64 `json:"total_time"`
			TotalCPUTime float64 `json:"total_cputime"`
			RegainMin    float64 `json:"estimated_time_to_regain_access"`
		}
		if json.Unmarshal([]byte(s), &v) == nil {
			for _, entries := range v {
				for _, e := range entries {
					if e.Type == "ads_insights" {
						ok = true
						u.UsagePct = max(u.UsagePct, e.CallCount, e.TotalTime, e.TotalCPUTime)
						u.RegainAfter = max(u.RegainAfter, seconds(e.RegainMin*60))
					}
				}
			}
		}
	}
	return u, ok
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

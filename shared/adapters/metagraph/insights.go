package metagraph

// Ads Insights: daily rows per ad set (reference meta-measurement.md section 1).
//
//	sync:  GET  act_{id}/insights?level=adset&time_increment=1&time_range={"since","until"}
//	            &fields=adset_id,date_start,spend,impressions,reach,clicks,actions,account_currency
//	            &action_attribution_windows=["7d_click","1d_view"]
//	            [&filtering=[{"field":"adset.id","operator":"IN","value":[...]}]]&limit=500
//	async: POST act_{id}/insights (same parameters) -> report_run_id; poll GET {report_run_id}
//	            (async_status, async_percent_completion) until "Job Completed" (error on "Job
//	            Failed" or "Job Skipped"); GET {report_run_id}/insights, paged
//
// Parameters and fields [CG AdAccount, AdsInsights, AdReportRun; INS; BP]; the async flow
// [CG AdSet; PY examples/async.py; AB async_job.py for the status strings]. A request of more
// than InsightsSyncMaxDays days or InsightsSyncMaxAdSets ad sets goes straight to the async
// flow (Meta: use async for large requests, a synchronous one may time out [BP]); a synchronous
// call answered with "too much data" (100/1487534) or a time-out (100/1504018, or our own
// deadline) is asked again asynchronously [ERR; BP].
//
// action_attribution_windows is pinned to ["7d_click","1d_view"], Meta's default attribution
// setting, so that the action counts mean the same thing whatever the ad account's default
// becomes, and match Ads Manager's standard columns; 7d_view and 28d_view were dropped on 12
// January 2026 [B25]. The report's outcomes come from our own counters, not from these
// attributed actions (attribution is not incrementality).
//
// spend is a decimal string in the currency's major units ("5339.5") [INS; CG AdsInsights;
// major units inferred, unverified]; it is parsed digit by digit into micros, never through a
// float. impressions, reach and clicks are strings of integers; actions a list of
// {action_type, value}.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Thresholds of the synchronous call, and the page size of insights reads.
const (
	// InsightsSyncMaxDays: a longer time range uses the async flow. A week of daily rows for a
	// few dozen ad sets is a few hundred rows, well within one synchronous call.
	InsightsSyncMaxDays = 7
	// InsightsSyncMaxAdSets: a filter on more ad sets uses the async flow.
	InsightsSyncMaxAdSets = 50
	insightsPageSize      = 500
)

// insightsFields are the fields asked of every row.
const insightsFields = "adset_id,date_start,spend,impressions,reach,clicks,actions,account_currency"

// AttributionWindows are the pinned action_attribution_windows (see the file comment).
var AttributionWindows = []string{"7d_click", "1d_view"}

// Report run statuses (async_status) [AB async_job.py].
const (
	jobCompleted = "Job Completed"
	jobFailed    = "Job Failed"
	jobSkipped   = "Job Skipped"
)

// Insights returns daily ad-set rows of req, from the synchronous call or the async flow, and
// the last insights rate-limit reading. Errors are *ports.CAPIError (ClassifyAds).
func (c *Client) Insights(ctx context.Context, req ports.InsightsRequest) ([]ports.InsightsRow, ports.InsightsUsage, error) {
	var usage ports.InsightsUsage
	seen := func(h http.Header) {
		if u, ok := ParseInsightsUsage(h); ok {
			usage = u
		}
	}
	if c.cfgErr != nil {
		e := *c.cfgErr
		return nil, usage, &e
	}
	days, err := checkInsights(req)
	if err != nil {
		return nil, usage, err
	}
	fields, err := insightsParams(req)
	if err != nil {
		return nil, usage, err
	}
	target := c.endpoint + req.AdAccountID + "/insights"
	var rows []ports.InsightsRow
	if days <= InsightsSyncMaxDays && len(req.AdSetIDs) <= InsightsSyncMaxAdSets {
		var runID string
		rows, runID, err = c.insightsPages(ctx, target, "read insights", fields, seen)
		switch {
		case err == nil && runID == "":
			return rows, usage, nil
		case err == nil:
			// The method override was taken as a POST: Meta started a report run; read it.
			rows, err = c.readReportRun(ctx, runID, seen)
			return rows, usage, err
		case !tooLargeForSync(ctx, err):
			return nil, usage, err
		}
	}
	runID, err := c.startReportRun(ctx, target, fields, seen)
	if err != nil {
		return nil, usage, err
	}
	rows, err = c.readReportRun(ctx, runID, seen)
	return rows, usage, err
}

// checkInsights validates req and returns the days it covers.
func checkInsights(req ports.InsightsRequest) (int, error) {
	if !validAdAccount(req.AdAccountID) {
		return 0, invalid("invalid ad account id %q (want act_<digits>)", req.AdAccountID)
	}
	since, err1 := time.Parse(time.DateOnly, req.Since)
	until, err2 := time.Parse(time.DateOnly, req.Until)
	if err1 != nil || err2 != nil || until.Before(since) {
		return 0, invalid("invalid insights time range %q to %q (want YYYY-MM-DD, since <= until)", req.Since, req.Until)
	}
	for _, id := range req.AdSetIDs {
		if !isDigits(id) {
			return 0, invalid("invalid ad set id %q", id)
		}
	}
	return int(until.Sub(since).Hours()/24) + 1, nil
}

func insightsParams(req ports.InsightsRequest) ([]field, error) {
	timeRange, err := json.Marshal(map[string]string{"since": req.Since, "until": req.Until})
	if err != nil {
		return nil, invalid("time range: %v", err)
	}
	windows, _ := json.Marshal(AttributionWindows)
	fields := []field{
		stringField("level", "adset"),
		stringField("time_increment", "1"),
		rawField("time_range", timeRange),
		stringField("fields", insightsFields),
		rawField("action_attribution_windows", windows),
		rawField("limit", []byte(strconv.Itoa(insightsPageSize))),
	}
	if len(req.AdSetIDs) > 0 {
		filter, _ := json.Marshal([]map[string]any{{"field": "adset.id", "operator": "IN", "value": req.AdSetIDs}})
		fields = append(fields, rawField("filtering", filter))
	}
	return fields, nil
}

// tooLargeForSync reports whether a synchronous call failed for its size: "too much data",
// Meta's time-out, or our own deadline while the caller's context is still alive.
func tooLargeForSync(ctx context.Context, err error) bool {
	var e *ports.CAPIError
	if !errors.As(err, &e) {
		return false
	}
	if e.Meta.Code == 100 && (e.Meta.Subcode == subcodeTooMuchData || e.Meta.Subcode == subcodeInsightsTimeout) {
		return true
	}
	return e.Class == ports.CAPITransient && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
}

// insightsPages reads the rows of a paged insights edge.
func (c *Client) insightsPages(ctx context.Context, target, what string, fields []field, seen func(http.Header)) ([]ports.InsightsRow, string, error) {
	var rows []ports.InsightsRow
	var rowErr error
	runID, err := c.adsPages(ctx, target, what, fields, seen, func(data json.RawMessage) bool {
		var page []insightsRowJSON
		if err := json.Unmarshal(data, &page); err != nil {
			rowErr = err
			return false
		}
		for _, r := range page {
			row, err := r.row()
			if err != nil {
				rowErr = err
				return false
			}
			rows = append(rows, row)
		}
		return true
	})
	if err != nil {
		return nil, "", err
	}
	if rowErr != nil {
		// A row we cannot read is spend we would lose: fail the pull rather than skip it.
		return nil, "", &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: %s: %w", what, rowErr)}
	}
	return rows, runID, nil
}

// startReportRun creates an async report run and returns its id.
func (c *Client) startReportRun(ctx context.Context, target string, fields []field, seen func(http.Header)) (string, error) {
	var answer struct {
		ReportRunID flexString `json:"report_run_id"`
	}
	h, err := c.adsCall(ctx, target, "start insights report", fields, &answer)
	if h != nil {
		seen(h)
	}
	if err != nil {
		return "", err
	}
	if !isDigits(string(answer.ReportRunID)) {
		return "", &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: start insights report: no report_run_id in the answer")}
	}
	return string(answer.ReportRunID), nil
}

// readReportRun polls a report run until it completes, backing off from
// Config.InsightsPollInterval to MaxInsightsPollInterval within Config.InsightsMaxWait, then
// reads its rows.
func (c *Client) readReportRun(ctx context.Context, runID string, seen func(http.Header)) ([]ports.InsightsRow, error) {
	if !isDigits(runID) {
		return nil, &ports.CAPIError{Class: ports.CAPIUnknown, Err: fmt.Errorf("metagraph: report run id %q is not a Graph id", runID)}
	}
	deadline := time.Now().Add(c.ads.maxWait)
	wait := c.ads.poll
	fields := []field{stringField("method", "GET"),
		stringField("fields", "id,async_status,async_percent_completion,error_code,error_subcode,error_message")}
	for {
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, &ports.CAPIError{Class: ports.CAPITransient, Err: fmt.Errorf("metagraph: insights report %s: %w", runID, err)}
		}
		var run struct {
			Status       string  `json:"async_status"`
			Percent      flexInt `json:"async_percent_completion"`
			ErrorCode    flexInt `json:"error_code"`
			ErrorSubcode flexInt `json:"error_subcode"`
			ErrorMessage string  `json:"error_message"`
		}
		h, err := c.adsCall(ctx, c.endpoint+runID, "poll insights report", fields, &run)
		if h != nil {
			seen(h)
		}
		if err != nil {
			return nil, err
		}
		switch run.Status {
		case jobCompleted:
			if run.Percent >= 100 {
				rows, _, err := c.insightsPages(ctx, c.endpoint+runID+"/insights", "read insights report",
					[]field{rawField("limit", []byte(strconv.Itoa(insightsPageSize)))}, seen)
				return rows, err
			}
		case jobFailed, jobSkipped:
			// Meta gives no reason it promises to keep; a new job may well succeed.
			return nil, &ports.CAPIError{Class: ports.CAPITransient,
				Meta: ports.MetaError{Code: int(run.ErrorCode), Subcode: int(run.ErrorSubcode), Message: run.ErrorMessage},
				Err:  fmt.Errorf("metagraph: insights report %s: %s (%d/%d %s)", runID, run.Status, run.ErrorCode, run.ErrorSubcode, run.ErrorMessage)}
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, &ports.CAPIError{Class: ports.CAPITransient,
				Err: fmt.Errorf("metagraph: insights report %s: still %q (%d%%) after %v", runID, run.Status, run.Percent, c.ads.maxWait)}
		}
		wait = min(wait*2, MaxInsightsPollInterval)
	}
}

// insightsRowJSON is a row as the Graph API sends it: numbers as strings.
type insightsRowJSON struct {
	AdSetID     flexString `json:"adset_id"`
	DateStart   string     `json:"date_start"`
	Spend       flexString `json:"spend"`
	Impressions flexString `json:"impressions"`
	Reach       flexString `json:"reach"`
	Clicks      flexString `json:"clicks"`
	Currency    string     `json:"account_currency"`
	Actions     []struct {
		Type  string     `json:"action_type"`
		Value flexString `json:"value"`
	} `json:"actions"`
}

func (r insightsRowJSON) row() (ports.InsightsRow, error) {
	row := ports.InsightsRow{AdSetID: string(r.AdSetID), Date: r.DateStart, Currency: r.Currency}
	if row.AdSetID == "" || row.Date == "" {
		return row, errors.New("a row without adset_id or date_start")
	}
	var err error
	if row.SpendMicros, err = ParseMicros(string(r.Spend)); err != nil {
		return row, fmt.Errorf("ad set %s on %s: spend: %w", row.AdSetID, row.Date, err)
	}
	for _, c := range []struct {
		name string
		text flexString
		dst  *int64
	}{{"impressions", r.Impressions, &row.Impressions}, {"reach", r.Reach, &row.Reach}, {"clicks", r.Clicks, &row.Clicks}} {
		if c.text == "" {
			continue
		}
		if *c.dst, err = strconv.ParseInt(string(c.text), 10, 64); err != nil {
			return row, fmt.Errorf("ad set %s on %s: %s %q is not an integer", row.AdSetID, row.Date, c.name, c.text)
		}
	}
	for _, a := range r.Actions {
		v, err := strconv.ParseFloat(string(a.Value), 64)
		if err != nil {
			return row, fmt.Errorf("ad set %s on %s: action %s value %q is not a number", row.AdSetID, row.Date, a.Type, a.Value)
		}
		if row.Actions == nil {
			row.Actions = map[string]float64{}
		}
		row.Actions[a.Type] += v
	}
	return row, nil
}

// ParseMicros parses a non-negative decimal amount in major units ("5339.5", "0.01", "12")
// into millionths, exactly: digits are read as digits, never through a float. "" is 0. More
// than six decimals are refused unless the extra ones are zeros; so are signs, exponents and
// amounts beyond int64.
func ParseMicros(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("%q is not a decimal amount", s)
	}
	if len(frac) > 6 {
		if strings.Trim(frac[6:], "0") != "" {
			return 0, fmt.Errorf("%q has more than 6 decimals", s)
		}
		frac = frac[:6]
	}
	frac += strings.Repeat("0", 6-len(frac))
	const maxWhole = (1<<63 - 1) / 1_000_000
	var w int64
	for i := 0; i < len(whole); i++ {
		w = w*10 + int64(whole[i]-'0')
		if w > maxWhole {
			return 0, fmt.Errorf("%q is too large", s)
		}
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	if w == maxWhole && f > (1<<63-1)%1_000_000 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return w*1_000_000 + f, nil
}

// allDigits reports whether s is only ASCII digits ("" included).
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

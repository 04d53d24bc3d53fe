package metasandbox

// # Ads Insights
//
//	GET  /{version}/act_{id}/insights?level=adset&time_increment=1&time_range={"since","until"}
//	     &fields=...&action_attribution_windows=[...]&filtering=[{"field":"adset.id",...}]
//	     -> {"data":[{"adset_id","date_start","date_stop","spend","impressions",...}], "paging"}
//	POST /{version}/act_{id}/insights (same parameters)  -> {"report_run_id": "<id>"}
//	GET  /{version}/{report_run_id}                      -> {"id","async_status","async_percent_completion",...}
//	GET  /{version}/{report_run_id}/insights             -> the rows, paged
//
// As at Meta (reference meta-measurement.md section 1): spend, impressions, reach and clicks
// are strings, spend a decimal in the account currency's major units ("5339.5"); actions is a
// list of {action_type, value}; a report run goes Job Not Started -> Job Running -> Job
// Completed (AdsConfig.AsyncPolls polls to complete; the async_status values are those
// Airbyte's connector handles, async_job.py) and its rows are read from its insights edge;
// days are the ad account's (timezone_name); an ad set with no delivery on a day has no row.
// Pages as for ad sets (adsets.go). Every answer of these endpoints carries the insights
// rate-limit headers: x-fb-ads-insights-throttle {app_id_util_pct, acc_id_util_pct} and an
// ads_insights entry of X-Business-Use-Case-Usage, both at AdsConfig.InsightsUtilPct
// (SetInsightsUtilPct).
//
// Checks, after those of adsets.go: a failure queued by FailNextInsights; level (adset only;
// another valid level answers 100 "the sandbox answers level=adset only"); fields known;
// time_range a JSON {since, until} of valid dates with since <= until; time_increment 1;
// action_attribution_windows a JSON list of known windows (7d_view and 28d_view were dropped
// on 12 January 2026 [B25]: 100); filtering on adset.id only (IN or EQUAL); a synchronous call
// whose rows exceed AdsConfig.SyncMaxRows, or any under SetForceAsync, answers 100/1487534
// "Please reduce the amount of data" (error codes [ERR; BP]); the messages are the sandbox's.
//
// # Synthetic spend
//
// Deterministic per (ad set, date), in the account currency's minor units, then micros:
//
//	budget  = daily_budget, or DefaultDailyBudget without one (a campaign budget)
//	size    = members now of the included audiences (0: no delivery, no row)
//	u       = FNV-1a 64 of "<ad set id>|<date>" as a fraction in [0, 1)
//	final   = floor(budget x (0.6 + 0.4 u) x min(1, size / 1000))
//	spend   = final, or floor(final x settle% / 100) on a settling day
//
// zero (no row) on a day before the ad set was created, after today, or on which it did not
// deliver (its effective status at the end of the day, or now for today, not ACTIVE).
// Restatement: a day 0, 1 or 2 days old (today, yesterday, the day before) is still settling:
// settle% = min(100, {50, 75, 90}[age] + 5 x times the row was served before), so each pull
// sees it grow and a day 3 or more days old is final; re-pulling recent days matters, as it
// does at Meta. SetAdSetSpend overrides a day with a final value (no settling).
// impressions = spend micros / 10,000 (a CPM of 10 major units), reach = 60% of them, clicks =
// 1%, actions link_click = clicks and app_custom_event.fb_mobile_activate_app = 30% of clicks.

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of AdsConfig.
const (
	// DefaultAsyncPolls: a report run completes at its third poll.
	DefaultAsyncPolls = 3
	// DefaultSyncMaxRows: a synchronous insights call of more rows is "too much data".
	DefaultSyncMaxRows = 1000
)

// Report run statuses (async_status).
const (
	JobNotStarted = "Job Not Started"
	JobRunning    = "Job Running"
	JobCompleted  = "Job Completed"
	JobFailed     = "Job Failed"
	JobSkipped    = "Job Skipped"
)

// Insights error subcodes (with code 100) and the async failure (code -2), from Meta's
// insights error codes [ERR; BP].
const (
	SubcodeTooMuchData     = 1487534
	SubcodeInsightsTimeout = 1504018
	CodeAsyncFailed        = -2
	SubcodeAsyncFailed     = 2490547
)

// insightsFields are the AdsInsights fields the sandbox answers.
var insightsFields = []string{"adset_id", "adset_name", "campaign_id", "account_id", "date_start", "date_stop",
	"spend", "impressions", "reach", "clicks", "actions", "account_currency"}

// attributionWindows are the windows action_attribution_windows takes; droppedWindows were
// removed on 12 January 2026 [B25].
var (
	attributionWindows = []string{"1d_click", "7d_click", "28d_click", "1d_view", "1d_ev", "dda", "default"}
	droppedWindows     = []string{"7d_view", "28d_view"}
)

// settleBasePct is the share of a day's final spend reported at ages 0, 1 and 2 days.
var settleBasePct = [3]int64{50, 75, 90}

// SetAdSetSpend makes the spend of an ad set on a date (YYYY-MM-DD) exactly micros, final.
func (s *Sandbox) SetAdSetSpend(adSetID, date string, micros int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ads.spend == nil {
		s.ads.spend = map[spendKey]int64{}
	}
	s.ads.spend[spendKey{adSetID, date}] = micros
}

// FailNextInsights makes the next insights call (sync, async creation or a report run's rows)
// answer Meta's error of that code and subcode (HTTP 400; throttling codes with the usage
// headers at 100%). Calls queue.
func (s *Sandbox) FailNextInsights(code, subcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ads.failNext = append(s.ads.failNext, errInsights(code, subcode, s.faults.RegainAccessMinutes))
}

// FailNextReportRun makes the next report run created end in status (JobFailed or
// JobSkipped) instead of JobCompleted. Calls queue.
func (s *Sandbox) FailNextReportRun(status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ads.failRuns = append(s.ads.failRuns, status)
}

// SetForceAsync makes every synchronous insights call answer "too much data" (or not).
func (s *Sandbox) SetForceAsync(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ads.forceAsync = on
}

// SetInsightsUtilPct sets the usage the insights rate-limit headers report.
func (s *Sandbox) SetInsightsUtilPct(pct float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ads.utilPct = pct
}

// insightsQuery is a validated insights request.
type insightsQuery struct {
	fields       []string
	since, until string
	adSets       []string // nil: all
	windows      []string
}

type reportRun struct {
	id, account string
	q           insightsQuery
	polls       int
	terminal    string // JobCompleted, or the scripted failure
	rows        []map[string]any
	started     time.Time
}

// insightsHeader is the usage headers of an insights answer.
func (s *Sandbox) insightsHeader(account string) http.Header {
	s.mu.Lock()
	pct := s.ads.utilPct
	s.mu.Unlock()
	h := http.Header{}
	throttle, _ := json.Marshal(map[string]any{"app_id_util_pct": pct, "acc_id_util_pct": pct, "ads_api_access_tier": "standard_access"})
	h.Set("X-Fb-Ads-Insights-Throttle", string(throttle))
	n := int(pct)
	buc, _ := json.Marshal(map[string][]bucUsage{account: {{Type: "ads_insights", CallCount: n, TotalCPUTime: n, TotalTime: n}}})
	h.Set("X-Business-Use-Case-Usage", string(buc))
	return h
}

// takeFailure pops the next scripted insights failure.
func (s *Sandbox) takeFailure() *graphError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ads.failNext) == 0 {
		return nil
	}
	e := s.ads.failNext[0]
	s.ads.failNext = s.ads.failNext[1:]
	return e
}

// answerInsights answers GET (sync) or POST (a report run) on act_{id}/insights.
func (s *Sandbox) answerInsights(r *http.Request, entry *RequestLog, p audienceParams, async bool) adsAnswer {
	header := s.insightsHeader(entry.AdAccount)
	if e := s.takeFailure(); e != nil {
		return adsAnswer{header: header, err: e, fault: "insights_failure"}
	}
	q, gerr := s.parseInsights(p)
	if gerr != nil {
		return adsAnswer{header: header, err: gerr}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if async {
		s.ads.lastRunID++
		id := strconv.FormatUint(firstReportRunID+s.ads.lastRunID, 10)
		run := &reportRun{id: id, account: entry.AdAccount, q: q, terminal: JobCompleted, started: entry.At}
		if len(s.ads.failRuns) > 0 {
			run.terminal, s.ads.failRuns = s.ads.failRuns[0], s.ads.failRuns[1:]
		}
		if s.ads.runs == nil {
			s.ads.runs = map[string]*reportRun{}
		}
		s.ads.runs[id] = run
		return adsAnswer{header: header, body: map[string]string{"report_run_id": id}}
	}
	offset, limit, gerr := parsePaging(p, 25)
	if gerr != nil {
		return adsAnswer{header: header, err: gerr}
	}
	rows, keys := s.insightsRowsLocked(entry.AdAccount, q)
	if s.ads.forceAsync || len(rows) > s.cfg.Ads.SyncMaxRows {
		return adsAnswer{header: header, err: errInsights(CodeInvalidParameter, SubcodeTooMuchData, 0)}
	}
	// Only the rows served count as pulled: the next page sees the same day as this one did.
	end := min(len(rows), offset+limit)
	if offset < end {
		s.countPullsLocked(keys[offset:end])
	}
	return adsAnswer{header: header, body: page(r, p, rows, offset, limit)}
}

// firstReportRunID: report run ids are numbers like Meta's.
const firstReportRunID = 6120000000000000

// answerReportRun answers a poll of a report run: each poll moves it on (see AdsConfig.AsyncPolls).
func (s *Sandbox) answerReportRun(id string, p audienceParams) adsAnswer {
	if _, gerr := parseFields(p, []string{"id", "account_id", "async_status", "async_percent_completion",
		"date_start", "date_stop", "time_ref", "time_completed", "error_code", "error_message", "error_subcode"}, "id"); gerr != nil {
		return adsAnswer{err: gerr}
	}
	s.mu.Lock()
	run := s.ads.runs[id]
	if run == nil {
		s.mu.Unlock()
		return adsAnswer{err: errUnsupportedMethod(http.MethodGet, id)}
	}
	run.polls++
	status, pct := s.runStatusLocked(run)
	account := run.account
	body := map[string]any{"id": id, "account_id": account, "async_status": status, "async_percent_completion": pct,
		"date_start": run.q.since, "date_stop": run.q.until, "time_ref": run.started.Unix()}
	if status == JobFailed {
		body["error_code"], body["error_subcode"] = CodeAsyncFailed, SubcodeAsyncFailed
		body["error_message"] = "The report run failed (scripted in the sandbox)"
	}
	s.mu.Unlock()
	return adsAnswer{header: s.insightsHeader(account), body: body}
}

// runStatusLocked is a run's status after its polls; the rows are computed (and counted as
// pulled) when it completes.
func (s *Sandbox) runStatusLocked(run *reportRun) (string, int) {
	n := max(s.cfg.Ads.AsyncPolls, 1)
	switch {
	case run.polls >= n && run.terminal != JobCompleted:
		return run.terminal, 100 * (n - 1) / n
	case run.polls >= n:
		if run.rows == nil {
			rows, keys := s.insightsRowsLocked(run.account, run.q)
			s.countPullsLocked(keys)
			run.rows = nonNil(rows)
		}
		return JobCompleted, 100
	case run.polls == 1:
		return JobNotStarted, 0
	}
	return JobRunning, 100 * (run.polls - 1) / n
}

// answerRunInsights answers GET /{report_run_id}/insights, paged; only a completed run has rows.
func (s *Sandbox) answerRunInsights(r *http.Request, id string, p audienceParams) adsAnswer {
	s.mu.Lock()
	run := s.ads.runs[id]
	s.mu.Unlock()
	if run == nil {
		return adsAnswer{err: errUnsupportedMethod(r.Method, id)}
	}
	header := s.insightsHeader(run.account)
	if e := s.takeFailure(); e != nil {
		return adsAnswer{header: header, err: e, fault: "insights_failure"}
	}
	offset, limit, gerr := parsePaging(p, 25)
	if gerr != nil {
		return adsAnswer{header: header, err: gerr}
	}
	s.mu.Lock()
	rows := run.rows
	s.mu.Unlock()
	if rows == nil {
		return adsAnswer{header: header, err: errParam("the report run " + id + " has not completed: poll it until async_status is Job Completed")}
	}
	return adsAnswer{header: header, body: page(r, p, rows, offset, limit)}
}

// parseInsights validates the parameters of an insights call.
func (s *Sandbox) parseInsights(p audienceParams) (insightsQuery, *graphError) {
	var q insightsQuery
	switch level := p.get("level"); level {
	case "adset":
	case "account", "campaign", "ad", "":
		return q, errParam("the sandbox answers level=adset only")
	default:
		return q, errParam("param level must be one of {ad, adset, campaign, account}")
	}
	fields, gerr := parseFields(p, insightsFields, "date_start")
	if gerr != nil {
		return q, gerr
	}
	q.fields = fields
	if ti := p.get("time_increment"); ti != "1" {
		return q, errParam("the sandbox answers time_increment=1 (daily rows) only")
	}
	var tr struct {
		Since string `json:"since"`
		Until string `json:"until"`
	}
	text := p.get("time_range")
	if text == "" || json.Unmarshal([]byte(text), &tr) != nil {
		return q, errParam("param time_range must be a JSON object {\"since\":\"YYYY-MM-DD\",\"until\":\"YYYY-MM-DD\"}")
	}
	since, err1 := time.Parse(time.DateOnly, tr.Since)
	until, err2 := time.Parse(time.DateOnly, tr.Until)
	if err1 != nil || err2 != nil {
		return q, errParam("param time_range: since and until must be dates in the format YYYY-MM-DD")
	}
	if since.After(until) {
		return q, errParam("param time_range: since must be on or before until")
	}
	q.since, q.until = tr.Since, tr.Until
	if text := p.get("action_attribution_windows"); text != "" {
		if json.Unmarshal([]byte(text), &q.windows) != nil {
			return q, errParam("param action_attribution_windows must be an array.")
		}
		for _, w := range q.windows {
			switch {
			case slices.Contains(droppedWindows, w):
				return q, errParam(fmt.Sprintf("action_attribution_windows: %s is no longer supported", w))
			case !slices.Contains(attributionWindows, w):
				return q, errParam(fmt.Sprintf("param action_attribution_windows[%s] must be one of {%s}", w, strings.Join(attributionWindows, ", ")))
			}
		}
	}
	if text := p.get("filtering"); text != "" {
		var filters []struct {
			Field    string          `json:"field"`
			Operator string          `json:"operator"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal([]byte(text), &filters) != nil {
			return q, errParam("param filtering must be a JSON array of {field, operator, value}")
		}
		for _, f := range filters {
			var ids []string
			var one string
			switch {
			case f.Field != "adset.id":
				return q, errParam("the sandbox filters insights on adset.id only")
			case f.Operator == "IN" && json.Unmarshal(f.Value, &ids) == nil:
			case f.Operator == "EQUAL" && json.Unmarshal(f.Value, &one) == nil:
				ids = []string{one}
			default:
				return q, errParam("filtering on adset.id takes IN with a list of ids or EQUAL with one")
			}
			q.adSets = append(nonNil(q.adSets), ids...)
		}
	}
	return q, nil
}

// location is the ad accounts' time zone (validated by New).
func (s *Sandbox) location() *time.Location {
	loc, err := time.LoadLocation(s.cfg.Ads.TimezoneName)
	if err != nil {
		return time.UTC
	}
	return loc
}

// insightsRowsLocked computes the rows of q for account, in (date, ad set) order, and the key
// of each row.
func (s *Sandbox) insightsRowsLocked(account string, q insightsQuery) ([]map[string]any, []spendKey) {
	s.resolveAutoAdSetsLocked()
	loc := s.location()
	now := s.cfg.Now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	since, _ := time.Parse(time.DateOnly, q.since)
	until, _ := time.Parse(time.DateOnly, q.until)
	var rows []map[string]any
	var keys []spendKey
	for d := since; !d.After(until) && !d.After(today); d = d.AddDate(0, 0, 1) {
		date := d.Format(time.DateOnly)
		dayEnd := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
		age := int(today.Sub(d).Hours() / 24)
		for _, id := range s.ads.order {
			a := s.ads.adSets[id]
			if a.AdAccount != account || (q.adSets != nil && !slices.Contains(q.adSets, id)) {
				continue
			}
			key := spendKey{id, date}
			micros := s.spendLocked(a, key, dayEnd, age)
			if micros <= 0 {
				continue
			}
			rows = append(rows, s.rowLocked(a, date, micros, q))
			keys = append(keys, key)
		}
	}
	return rows, keys
}

func (s *Sandbox) countPullsLocked(keys []spendKey) {
	if s.ads.pulls == nil {
		s.ads.pulls = map[spendKey]int{}
	}
	for _, k := range keys {
		s.ads.pulls[k]++
	}
}

// spendLocked is the formula of the file comment.
func (s *Sandbox) spendLocked(a *adSet, key spendKey, dayEnd time.Time, age int) int64 {
	if v, ok := s.ads.spend[key]; ok {
		return v
	}
	if !a.activeOn(dayEnd) {
		return 0
	}
	size := 0
	for _, id := range a.Included {
		if aud := s.aud.byID[id]; aud != nil {
			size += len(aud.members)
		}
	}
	if size == 0 {
		return 0
	}
	budget := a.DailyBudget
	if budget <= 0 {
		budget = DefaultDailyBudget
	}
	h := fnv.New64a()
	h.Write([]byte(key.adSet + "|" + key.date))
	u := float64(h.Sum64()>>11) / (1 << 53)
	final := int64(float64(budget) * (0.6 + 0.4*u) * min(1, float64(size)/1000))
	spend := final
	if age >= 0 && age < len(settleBasePct) {
		pct := min(100, settleBasePct[age]+5*int64(s.ads.pulls[key]))
		spend = final * pct / 100
	}
	return spend * microsPerMinor(s.cfg.Ads.Currency)
}

// microsPerMinor: budgets are in minor units, whose offset is 100 except for currencies
// without one (JPY, KRW, VND... [CUR]; the sandbox knows these three).
func microsPerMinor(currency string) int64 {
	switch currency {
	case "JPY", "KRW", "VND":
		return 1_000_000
	}
	return 10_000
}

// formatMajor writes micros as Meta writes spend: a decimal in major units without trailing
// zeros ("5339.5", "0.01", "12").
func formatMajor(micros int64) string {
	s := strconv.FormatInt(micros/1_000_000, 10)
	frac := micros % 1_000_000
	if frac == 0 {
		return s
	}
	return s + "." + strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
}

// rowLocked renders one insights row with the fields asked for (date_start and date_stop
// always, as Meta does).
func (s *Sandbox) rowLocked(a *adSet, date string, micros int64, q insightsQuery) map[string]any {
	impressions := micros / 10_000
	clicks := impressions / 100
	m := map[string]any{"date_start": date, "date_stop": date}
	for _, f := range q.fields {
		switch f {
		case "adset_id":
			m[f] = a.ID
		case "adset_name":
			m[f] = a.Name
		case "campaign_id":
			m[f] = a.CampaignID
		case "account_id":
			m[f] = a.AdAccount
		case "spend":
			m[f] = formatMajor(micros)
		case "impressions":
			m[f] = strconv.FormatInt(impressions, 10)
		case "reach":
			m[f] = strconv.FormatInt(impressions*6/10, 10)
		case "clicks":
			m[f] = strconv.FormatInt(clicks, 10)
		case "account_currency":
			m[f] = s.cfg.Ads.Currency
		case "actions":
			var actions []map[string]string
			for _, act := range []struct {
				name string
				n    int64
			}{{"link_click", clicks}, {"app_custom_event.fb_mobile_activate_app", clicks * 3 / 10}} {
				if act.n == 0 {
					continue
				}
				e := map[string]string{"action_type": act.name, "value": strconv.FormatInt(act.n, 10)}
				for _, w := range q.windows {
					if strings.HasSuffix(w, "_click") {
						e[w] = e["value"]
					} else {
						e[w] = "0"
					}
				}
				actions = append(actions, e)
			}
			if actions != nil {
				m[f] = actions
			}
		}
	}
	return m
}

// errInsights is Meta's answer of code (and subcode) to an insights call: throttles carry the
// insights usage headers at 100%.
func errInsights(code, subcode, regainMinutes int) *graphError {
	switch {
	case code == CodeInvalidParameter && subcode == SubcodeTooMuchData:
		return &graphError{Type: "OAuthException", Code: code, Subcode: subcode,
			Message:   "(#100) Please reduce the amount of data you're asking for, then retry your request",
			UserTitle: "Too much data", UserMsg: "Reduce the date range or the number of objects, or use an asynchronous report run."}
	case code == CodeInvalidParameter && subcode == SubcodeInsightsTimeout:
		return &graphError{Type: "OAuthException", Code: code, Subcode: subcode,
			Message: "(#100) The request timed out: reduce the amount of data, or use an asynchronous report run"}
	case code == CodeAsyncFailed:
		return &graphError{Type: "OAuthException", Code: code, Subcode: subcode, IsTransient: true,
			Message: "(#-2) The asynchronous report failed"}
	case code == 4 || code == 17 || code == 613 || (code >= 80000 && code <= 80014):
		e := errRateLimit(code, "0", regainMinutes)
		e.Subcode = subcode
		e.header.Del("X-Business-Use-Case-Usage")
		buc, _ := json.Marshal(map[string][]bucUsage{"0": {{Type: "ads_insights", CallCount: 100, TotalCPUTime: 100,
			TotalTime: 100, EstimatedTimeToRegainAccess: regainMinutes}}})
		e.withHeader("X-Business-Use-Case-Usage", string(buc))
		e.withHeader("X-Fb-Ads-Insights-Throttle", `{"app_id_util_pct":100,"acc_id_util_pct":100,"ads_api_access_tier":"standard_access"}`)
		return e
	}
	return &graphError{Type: "OAuthException", Code: code, Subcode: subcode,
		Message: fmt.Sprintf("(#%d) Failure scripted in the sandbox", code)}
}

package metasandbox

// # Ad accounts and ad sets (Marketing API reading)
//
//	GET /{version}/act_{id}?fields=currency,timezone_name      -> {"id","currency","timezone_name"}
//	GET /{version}/act_{id}/adsets?fields=...&effective_status=[...]&limit=N&after=C
//	    -> {"data":[{"id","name","campaign_id","status","effective_status","daily_budget",
//	        "targeting":{"custom_audiences":[{"id","name"}],"excluded_custom_audiences":[...],
//	        "targeting_automation":{"advantage_audience":0|1}}}], "paging":{"cursors":{...},"next"}}
//
// A GET may also come as a POST with method=GET (the Graph API's method override, which the
// adapter uses so that the token stays in the body). The fields of an ad set are those of
// Meta's AdSet object (facebook/facebook-business-sdk-codegen api_specs/specs/AdSet.json;
// reference meta-measurement.md section 2); daily_budget is a string of the account currency's
// minor units (cents for USD) [BUD]; the effective_status values are Meta's
// (adaccountadsets_effective_status_enum_param: ACTIVE, ADSET_PAUSED, ARCHIVED,
// CAMPAIGN_PAUSED, DELETED, DISAPPROVED, IN_PROCESS, PAUSED, PENDING_BILLING_INFO,
// PENDING_REVIEW, PREAPPROVED, WITH_ISSUES). Pages carry paging.cursors.{before,after} and
// paging.next (a full URL carrying access_token, as Meta's do) until the last page, which has
// no next [PAG]. Cursors are opaque offsets: an ad set added between two pages may be missed
// or seen twice, as with Meta's cursors.
//
// Checks, in order: Faults.ServerErrorRate; version; method (GET, or POST with method=GET);
// token and appsecret_proof (Faults.TokenExpired too); the ad account known (else 100/33);
// fields: each one the sandbox knows (else 100, "... is not valid for fields param");
// effective_status a JSON list of known values; limit a positive integer.
//
// The store keeps, per ad set, what the Marketing API reading needs and what writes will
// change (status with its history, daily_budget): its activity history decides on which days
// it spent (see insights.go).
//
// AdsConfig.AutoAdSets (on in `make dev`): every customer-list audience whose name does not
// end in " (holdout)" gets an ACTIVE ad set "Remarketing: <name>" that includes it and
// excludes the same account's audience named "<name> (holdout)" when there is one. They are
// made and their exclusion resolved whenever ad sets are read, so the order in which the
// audiences were created does not matter; once made, an ad set stays (deleting the audience
// leaves it targeting a missing audience, as at Meta).

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Ad set statuses (AdSet.Status, AdSet.EffectiveStatus).
const (
	StatusActive   = "ACTIVE"
	StatusPaused   = "PAUSED"
	StatusDeleted  = "DELETED"
	StatusArchived = "ARCHIVED"
)

// adSetEffectiveStatuses are the values of effective_status (see the file comment).
var adSetEffectiveStatuses = []string{"ACTIVE", "ADSET_PAUSED", "ARCHIVED", "CAMPAIGN_PAUSED", "DELETED",
	"DISAPPROVED", "IN_PROCESS", "PAUSED", "PENDING_BILLING_INFO", "PENDING_REVIEW", "PREAPPROVED", "WITH_ISSUES"}

// Defaults of AdsConfig.
const (
	// DefaultAdAccountCurrency is the currency of every ad account by default.
	DefaultAdAccountCurrency = "USD"
	// DefaultAdAccountTimezone is the ad accounts' timezone_name by default: UTC, so that an
	// insights day is a UTC day (what the outcome counters use) unless a test says otherwise.
	// Real accounts are often in America/Los_Angeles: set it to test the difference.
	DefaultAdAccountTimezone = "UTC"
	// DefaultDailyBudget is the daily budget of auto ad sets, in minor units ($20.00).
	DefaultDailyBudget = 2000
	// DefaultAutoCampaignID is the campaign of auto ad sets and of ad sets added without one.
	DefaultAutoCampaignID = "23840000000000001"
	// AutoAdSetPrefix starts the name of an auto ad set; HoldoutSuffix ends a holdout
	// audience's name.
	AutoAdSetPrefix = "Remarketing: "
	HoldoutSuffix   = " (holdout)"
)

// Ad set ids look like Meta's (17 digits). Auto ad sets take their audience's number in the
// 2386... range, so the same audience always gets the same ad set id; added ones count up from
// 2387....
const (
	autoAdSetIDOffset = 10_000_000_000_000
	firstAdSetID      = 23870000000000000
)

// AdsConfig configures the ad accounts, ad sets and Insights of the sandbox (Config.Ads).
type AdsConfig struct {
	// Currency and TimezoneName are every ad account's (defaults DefaultAdAccountCurrency and
	// DefaultAdAccountTimezone). TimezoneName must be an IANA name Go can load.
	Currency, TimezoneName string
	// AutoAdSets gives every treated audience an ad set (see the file comment).
	AutoAdSets bool
	// DailyBudget is the daily budget of auto ad sets in minor units (default
	// DefaultDailyBudget).
	DailyBudget int64
	// AsyncPolls is how many polls of a report run it takes to complete (default
	// DefaultAsyncPolls; see insights.go).
	AsyncPolls int
	// SyncMaxRows: a synchronous insights call that would return more rows answers "too much
	// data" (100/1487534), as Meta does for large synchronous requests (default
	// DefaultSyncMaxRows).
	SyncMaxRows int
	// InsightsUtilPct is the usage the insights rate-limit headers report (0 to 100).
	InsightsUtilPct float64
}

// AdSet is an ad set of the sandbox.
type AdSet struct {
	ID string `json:"id"`
	// AdAccount is the ad account id without "act_".
	AdAccount  string `json:"ad_account"`
	Name       string `json:"name"`
	CampaignID string `json:"campaign_id"`
	// Status is the configured status (ACTIVE, PAUSED, DELETED, ARCHIVED); EffectiveStatus,
	// when set, is what effective_status answers instead of Status (CAMPAIGN_PAUSED, ...).
	Status          string `json:"status"`
	EffectiveStatus string `json:"effective_status,omitempty"`
	// DailyBudget is in the account currency's minor units; 0: none (the campaign's budget).
	DailyBudget int64 `json:"daily_budget,omitempty"`
	// CampaignBudget: the ad set's campaign owns the budget (Advantage campaign budget):
	// DailyBudget is 0 and a daily_budget write is refused (adsetwrite.go).
	CampaignBudget bool `json:"campaign_budget,omitempty"`
	// Included and Excluded are audience ids (targeting.custom_audiences and
	// targeting.excluded_custom_audiences).
	Included          []string `json:"included,omitempty"`
	Excluded          []string `json:"excluded,omitempty"`
	AdvantageAudience bool     `json:"advantage_audience,omitempty"`
	// CreatedAt: no spend on days before it (the account's time zone).
	CreatedAt time.Time `json:"created_at"`
	// AutoFor is the audience an auto ad set was made for ("" for an added one).
	AutoFor string `json:"auto_for,omitempty"`
}

// effective is the effective status answered.
func (a *AdSet) effective() string { return cmp.Or(a.EffectiveStatus, a.Status) }

// delivering reports whether the ad set can spend in this state.
func (a *AdSet) delivering() bool { return a.effective() == StatusActive }

// --- state, guarded by Sandbox.mu ---

type adsStore struct {
	// lastAdSetID and lastRunID survive Reset, so ids are never handed out twice.
	lastAdSetID uint64
	lastRunID   uint64
	adSets      map[string]*adSet
	order       []string // adSets ids in creation order
	runs        map[string]*reportRun
	// spend holds the spends set by SetAdSetSpend (micros, final: no settling).
	spend map[spendKey]int64
	// pulls counts how often each (ad set, date) row was served: settling days grow with it.
	pulls map[spendKey]int
	// failNext are the errors of the next insights calls, failRuns the terminal status of the
	// next report runs.
	failNext   []*graphError
	failRuns   []string
	forceAsync bool
	utilPct    float64
	// writes: ad set writes, audience shares and ads (adsetwrite.go, sharing.go).
	writes writeStore
}

func (st *adsStore) reset() {
	st.adSets, st.order, st.runs, st.spend, st.pulls = nil, nil, nil, nil, nil
	st.failNext, st.failRuns, st.forceAsync = nil, nil, false
	st.writes.reset()
}

type adSet struct {
	AdSet
	// activity records each change of whether the ad set delivers, from its creation.
	activity []activityChange
	// targetingSet: its targeting was written (UpdateAdSet), so an auto ad set's targeting is
	// no longer derived from the audiences: a test (or a later ad set write) that drops the
	// holdout exclusion must see it dropped.
	targetingSet bool
}

type activityChange struct {
	at     time.Time
	active bool
}

// activeOn reports whether the ad set delivered on the day that ends at dayEnd: the state in
// force at the end of the day (or now, for today) counts for the whole day.
func (a *adSet) activeOn(dayEnd time.Time) bool {
	active := false
	for _, c := range a.activity {
		if !c.at.Before(dayEnd) {
			break
		}
		active = c.active
	}
	return active
}

type spendKey struct{ adSet, date string }

// --- scripting API ---

// AddAdSet adds an ad set to a.AdAccount (digits, with or without "act_") and returns it as
// stored: an empty ID, Status, CampaignID or CreatedAt takes a new id, ACTIVE,
// DefaultAutoCampaignID and now.
func (s *Sandbox) AddAdSet(a AdSet) (AdSet, error) {
	a.AdAccount = strings.TrimPrefix(a.AdAccount, "act_")
	if !s.adAccounts[a.AdAccount] {
		return AdSet{}, fmt.Errorf("metasandbox: unknown ad account %q", a.AdAccount)
	}
	a.Status = cmp.Or(a.Status, StatusActive)
	a.CampaignID = cmp.Or(a.CampaignID, DefaultAutoCampaignID)
	if a.CampaignBudget {
		a.DailyBudget = 0
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.cfg.Now()
	}
	a.Included, a.Excluded = slices.Clone(a.Included), slices.Clone(a.Excluded)
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.ID == "" {
		s.ads.lastAdSetID++
		a.ID = strconv.FormatUint(firstAdSetID+s.ads.lastAdSetID, 10)
	} else if s.ads.adSets[a.ID] != nil {
		return AdSet{}, fmt.Errorf("metasandbox: ad set %s exists", a.ID)
	}
	s.ads.put(&adSet{AdSet: a, activity: []activityChange{{a.CreatedAt, a.delivering()}}})
	return a, nil
}

func (st *adsStore) put(a *adSet) {
	if st.adSets == nil {
		st.adSets = map[string]*adSet{}
	}
	st.adSets[a.ID] = a
	st.order = append(st.order, a.ID)
}

// UpdateAdSet changes an ad set with f (its ID, AdAccount and AutoFor stay); a change of
// whether it delivers is recorded at now, so days before keep their spend.
func (s *Sandbox) UpdateAdSet(id string, f func(*AdSet)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveAutoAdSetsLocked()
	a := s.ads.adSets[id]
	if a == nil {
		return fmt.Errorf("metasandbox: no ad set %q", id)
	}
	next := a.AdSet
	next.Included, next.Excluded = slices.Clone(a.Included), slices.Clone(a.Excluded)
	f(&next)
	next.ID, next.AdAccount, next.AutoFor = a.ID, a.AdAccount, a.AutoFor
	if !slices.Equal(next.Included, a.Included) || !slices.Equal(next.Excluded, a.Excluded) {
		a.targetingSet = true
	}
	if next.delivering() != a.delivering() {
		a.activity = append(a.activity, activityChange{s.cfg.Now(), next.delivering()})
	}
	a.AdSet = next
	return nil
}

// AdSets returns the ad sets of an ad account (digits, with or without "act_"), auto ad sets
// included, in creation order.
func (s *Sandbox) AdSets(account string) []AdSet {
	account = strings.TrimPrefix(account, "act_")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveAutoAdSetsLocked()
	var out []AdSet
	for _, id := range s.ads.order {
		if a := s.ads.adSets[id]; a.AdAccount == account {
			c := a.AdSet
			c.Included, c.Excluded = slices.Clone(a.Included), slices.Clone(a.Excluded)
			out = append(out, c)
		}
	}
	return out
}

// resolveAutoAdSetsLocked makes the missing auto ad sets and resolves their targeting from
// the audiences as they are now.
func (s *Sandbox) resolveAutoAdSetsLocked() {
	if !s.cfg.Ads.AutoAdSets {
		return
	}
	for _, aid := range s.aud.order {
		aud := s.aud.byID[aid].info
		if strings.HasSuffix(aud.Name, HoldoutSuffix) {
			continue
		}
		n, err := strconv.ParseUint(aid, 10, 64)
		if err != nil {
			continue // not reached: audience ids are numbers
		}
		id := strconv.FormatUint(n+autoAdSetIDOffset, 10)
		if s.ads.adSets[id] != nil {
			continue
		}
		s.ads.put(&adSet{
			AdSet: AdSet{ID: id, AdAccount: aud.AdAccount, Name: AutoAdSetPrefix + aud.Name, CampaignID: DefaultAutoCampaignID,
				Status: StatusActive, DailyBudget: s.cfg.Ads.DailyBudget, CreatedAt: aud.CreatedAt, AutoFor: aid},
			activity: []activityChange{{aud.CreatedAt, true}},
		})
	}
	for _, id := range s.ads.order {
		a := s.ads.adSets[id]
		if a.AutoFor == "" || a.targetingSet {
			continue
		}
		a.Included = []string{a.AutoFor}
		a.Excluded = nil
		aud := s.aud.byID[a.AutoFor]
		if aud == nil {
			continue
		}
		for _, hid := range s.aud.order {
			h := s.aud.byID[hid].info
			if h.AdAccount == a.AdAccount && h.Name == aud.info.Name+HoldoutSuffix {
				a.Excluded = []string{hid}
				break
			}
		}
	}
}

// --- HTTP ---

const (
	edgeAdSets   = "adsets"
	edgeInsights = "insights"
)

// isAdsPath matches the Marketing API reading paths: /{version}/act_{id},
// /{version}/{object}/adsets|insights and /{version}/{report run id}.
func (s *Sandbox) isAdsPath(path string) bool {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segments) == 2 && segments[0] != "":
		if strings.HasPrefix(segments[1], "act_") || s.isAdSetObject(segments[1]) {
			return true
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.ads.runs[segments[1]] != nil
	case len(segments) == 3 && segments[0] != "" && segments[1] != "":
		return segments[2] == edgeAdSets || segments[2] == edgeInsights || isAudienceAuditEdge(segments[2])
	}
	return false
}

// adsAnswer is the outcome of one Marketing API reading request.
type adsAnswer struct {
	header  http.Header
	err     *graphError
	bare503 bool
	fault   string
	body    any
}

func (s *Sandbox) serveAds(w http.ResponseWriter, r *http.Request) {
	entry := RequestLog{At: s.cfg.Now(), Method: r.Method, Path: r.URL.Path}
	faults, d := s.drawFaults()
	trace := newTraceID()
	entry.FBTraceID = trace
	a := s.evaluateAds(r, &entry, faults, d)
	entry.Fault = a.fault
	for k, vs := range a.header {
		w.Header()[k] = vs
	}
	switch {
	case a.bare503:
		entry.Status, entry.FBTraceID = http.StatusServiceUnavailable, ""
		s.record(entry, nil)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>\n")
	case a.err != nil:
		s.writeGraphError(w, entry, trace, a.err)
	default:
		entry.Status = http.StatusOK
		s.record(entry, nil)
		s.graphHeaders(w, trace)
		writeJSON(w, http.StatusOK, a.body)
	}
}

// evaluateAds applies the faults and the common checks, then answers the call.
func (s *Sandbox) evaluateAds(r *http.Request, entry *RequestLog, faults Faults, d draw) adsAnswer {
	body, readErr := readBody(r)
	if d.serverError {
		if d.unavailable {
			return adsAnswer{bare503: true, fault: FaultUnavailable}
		}
		return adsAnswer{err: errServer(), fault: FaultServerError}
	}
	segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	entry.Version = segments[0]
	object, edge := segments[1], ""
	if len(segments) == 3 {
		edge = segments[2]
	}
	if strings.HasPrefix(object, "act_") {
		entry.AdAccount = strings.TrimPrefix(object, "act_")
	}
	if err := s.checkVersion(entry.Version); err != nil {
		return adsAnswer{err: err}
	}
	if readErr != nil {
		return adsAnswer{err: readErr}
	}
	p, gerr := readAudienceParams(r, body)
	if gerr != nil {
		return adsAnswer{err: gerr}
	}
	get := r.Method == http.MethodGet || (r.Method == http.MethodPost && strings.EqualFold(p.get("method"), http.MethodGet))
	// Only the insights edge of an ad account (an asynchronous report run) and an ad set
	// (a write, adsetwrite.go) take a real POST.
	adSetObject := edge == "" && entry.AdAccount == "" && s.isAdSetObject(object)
	if !get && !(r.Method == http.MethodPost && (edge == edgeInsights && entry.AdAccount != "" || adSetObject)) {
		return adsAnswer{err: errUnsupportedMethod(r.Method, object)}
	}
	if gerr, fault := s.checkAuth(p, faults, entry.At); gerr != nil {
		return adsAnswer{err: gerr, fault: fault}
	}
	switch {
	case entry.AdAccount != "" && !s.adAccounts[entry.AdAccount]:
		return adsAnswer{err: errUnsupportedMethod(r.Method, object)}
	case edge == "" && entry.AdAccount != "":
		return s.answerAdAccount(entry.AdAccount, p)
	case edge == edgeAdSets && entry.AdAccount != "":
		return s.listAdSets(r, entry.AdAccount, p)
	case edge == edgeInsights && entry.AdAccount != "":
		return s.answerInsights(r, entry, p, !get)
	case adSetObject && get:
		return s.answerAdSet(object, p)
	case adSetObject:
		return s.writeAdSet(object, p)
	case isAudienceAuditEdge(edge) && entry.AdAccount == "":
		return s.answerAudienceEdge(r, object, edge, p)
	case edge == "":
		return s.answerReportRun(object, p)
	case edge == edgeInsights:
		return s.answerRunInsights(r, object, p)
	}
	return adsAnswer{err: errUnsupportedMethod(r.Method, object)}
}

// adAccountFields are the AdAccount fields the sandbox answers.
var adAccountFields = []string{"id", "account_id", "currency", "timezone_name"}

func (s *Sandbox) answerAdAccount(account string, p audienceParams) adsAnswer {
	fields, gerr := parseFields(p, adAccountFields, "id")
	if gerr != nil {
		return adsAnswer{err: gerr}
	}
	all := map[string]any{"id": "act_" + account, "account_id": account,
		"currency": s.cfg.Ads.Currency, "timezone_name": s.cfg.Ads.TimezoneName}
	out := map[string]any{"id": "act_" + account}
	for _, f := range fields {
		out[f] = all[f]
	}
	return adsAnswer{body: out}
}

// adSetFields are the AdSet fields the sandbox answers.
var adSetFields = []string{"id", "name", "campaign_id", "account_id", "status", "effective_status",
	"daily_budget", "lifetime_budget", "targeting", "created_time"}

func (s *Sandbox) listAdSets(r *http.Request, account string, p audienceParams) adsAnswer {
	fields, gerr := parseFields(p, adSetFields, "id")
	if gerr != nil {
		return adsAnswer{err: gerr}
	}
	var statuses []string
	if text := p.get("effective_status"); text != "" {
		if json.Unmarshal([]byte(text), &statuses) != nil {
			return adsAnswer{err: errParam("param effective_status must be an array.")}
		}
		for _, st := range statuses {
			if !slices.Contains(adSetEffectiveStatuses, st) {
				return adsAnswer{err: errParam(fmt.Sprintf("param effective_status[%s] must be one of {%s}", st, strings.Join(adSetEffectiveStatuses, ", ")))}
			}
		}
	}
	offset, limit, gerr := parsePaging(p, 25)
	if gerr != nil {
		return adsAnswer{err: gerr}
	}

	s.mu.Lock()
	s.resolveAutoAdSetsLocked()
	var rows []map[string]any
	for _, id := range s.ads.order {
		a := s.ads.adSets[id]
		if a.AdAccount != account || (statuses != nil && !slices.Contains(statuses, a.effective())) {
			continue
		}
		// Without a filter, Meta leaves deleted ad sets out (the sandbox: deleted and archived).
		if statuses == nil && (a.Status == StatusDeleted || a.Status == StatusArchived) {
			continue
		}
		rows = append(rows, s.adSetJSONLocked(a, fields))
	}
	s.mu.Unlock()
	return adsAnswer{body: page(r, p, rows, offset, limit)}
}

// adSetJSONLocked renders an ad set with the fields asked for (id always).
func (s *Sandbox) adSetJSONLocked(a *adSet, fields []string) map[string]any {
	ref := func(ids []string) []map[string]string {
		out := []map[string]string{}
		for _, id := range ids {
			name := ""
			if aud := s.aud.byID[id]; aud != nil {
				name = aud.info.Name
			}
			out = append(out, map[string]string{"id": id, "name": name})
		}
		return out
	}
	m := map[string]any{"id": a.ID}
	for _, f := range fields {
		switch f {
		case "name":
			m[f] = a.Name
		case "campaign_id":
			m[f] = a.CampaignID
		case "account_id":
			m[f] = a.AdAccount
		case "status":
			m[f] = a.Status
		case "effective_status":
			m[f] = a.effective()
		case "daily_budget":
			if a.DailyBudget > 0 {
				m[f] = strconv.FormatInt(a.DailyBudget, 10) // Meta sends budgets as strings
			}
		case "lifetime_budget":
			m[f] = "0"
		case "created_time":
			m[f] = a.CreatedAt.UTC().Format("2006-01-02T15:04:05-0700")
		case "targeting":
			t := map[string]any{
				"targeting_automation": map[string]int{"advantage_audience": boolInt(a.AdvantageAudience)},
			}
			if len(a.Included) > 0 {
				t["custom_audiences"] = ref(a.Included)
			}
			if len(a.Excluded) > 0 {
				t["excluded_custom_audiences"] = ref(a.Excluded)
			}
			m[f] = t
		}
	}
	return m
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseFields reads the fields parameter: a comma-separated list of names from known (always
// at least def). An unknown name answers as Meta does.
func parseFields(p audienceParams, known []string, def string) ([]string, *graphError) {
	text := p.get("fields")
	if strings.TrimSpace(text) == "" {
		return []string{def}, nil
	}
	var out []string
	for _, f := range strings.Split(text, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(known, f) {
			return nil, errParam(fmt.Sprintf("%s is not valid for fields param. please check https://developers.facebook.com/docs/marketing-api/reference/ for all valid values", strconv.Quote(f)))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Cursors are "o<offset>" in URL-safe base64: opaque to clients, as Meta's are.
func encodeCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o" + strconv.Itoa(offset)))
}

func decodeCursor(c string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != 'o' {
		return 0, errors.New("bad cursor")
	}
	return strconv.Atoi(string(b[1:]))
}

// maxPageSize bounds limit as Meta does for most edges.
const maxPageSize = 5000

// parsePaging reads limit (default def) and after.
func parsePaging(p audienceParams, def int) (offset, limit int, gerr *graphError) {
	limit = def
	if text := p.get("limit"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n <= 0 {
			return 0, 0, errParam("param limit must be a positive integer")
		}
		limit = min(n, maxPageSize)
	}
	if c := p.get("after"); c != "" {
		n, err := decodeCursor(c)
		if err != nil || n < 0 {
			return 0, 0, errParam("Invalid cursor: " + strconv.Quote(c))
		}
		offset = n
	}
	return offset, limit, nil
}

// page cuts rows[offset:offset+limit] into a Graph page: data, paging.cursors and, unless it is
// the last page, paging.next: the request's URL with its parameters (the method override
// dropped) and the next cursor, and the access token, as Meta's next links carry it (whether
// Meta's carry appsecret_proof is unverified: the sandbox keeps it, so a next link works).
func page[T any](r *http.Request, p audienceParams, rows []T, offset, limit int) map[string]any {
	data := []T{}
	if offset < len(rows) {
		data = rows[offset:min(len(rows), offset+limit)]
	}
	out := map[string]any{"data": data}
	if len(data) == 0 {
		return out
	}
	paging := map[string]any{"cursors": map[string]string{"before": encodeCursor(offset), "after": encodeCursor(offset + len(data))}}
	if offset+len(data) < len(rows) {
		q := url.Values{}
		for k, vs := range p.query {
			q[k] = vs
		}
		for k, v := range p.fields {
			q.Set(k, v)
		}
		q.Del("method")
		q.Set("access_token", p.accessToken) // appsecret_proof stays when the request had one
		q.Set("limit", strconv.Itoa(limit))
		q.Set("after", encodeCursor(offset+len(data)))
		paging["next"] = (&url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}).String()
	}
	out["paging"] = paging
	return out
}

// setDefaults fills the zero fields and checks the rest.
func (c *AdsConfig) setDefaults() error {
	c.Currency = cmp.Or(c.Currency, DefaultAdAccountCurrency)
	c.TimezoneName = cmp.Or(c.TimezoneName, DefaultAdAccountTimezone)
	if _, err := time.LoadLocation(c.TimezoneName); err != nil {
		return fmt.Errorf("ads: timezone_name %q: %w", c.TimezoneName, err)
	}
	if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency {
		return fmt.Errorf("ads: currency %q is not an ISO 4217 code", c.Currency)
	}
	if c.DailyBudget <= 0 {
		c.DailyBudget = DefaultDailyBudget
	}
	if c.AsyncPolls <= 0 {
		c.AsyncPolls = DefaultAsyncPolls
	}
	if c.SyncMaxRows <= 0 {
		c.SyncMaxRows = DefaultSyncMaxRows
	}
	if c.InsightsUtilPct < 0 || c.InsightsUtilPct > 100 {
		return fmt.Errorf("ads: insights util pct %v is not in [0, 100]", c.InsightsUtilPct)
	}
	return nil
}

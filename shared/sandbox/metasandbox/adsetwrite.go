package metasandbox

// # Ad set reads and writes (Marketing API, ads_management)
//
//	GET  /{version}/{adset_id}?fields=id,name,campaign_id,account_id,status,effective_status,
//	     daily_budget,targeting                              -> the ad set, as in /adsets
//	POST /{version}/{adset_id}  status=ACTIVE|PAUSED and/or daily_budget=<minor units>
//	                                                         -> {"success": true}
//
// A GET may come as a POST with method=GET, as for the other reads. Sources: the write takes
// status and daily_budget [CG AdSet; reference meta-measurement.md section 2]; daily_budget is
// in the account currency's minor units [BUD]; Meta answers an update with {"success": true}
// (the SDKs' remote_update reads it). Checks of a write, in order (the first failing one
// answers; nothing of a refused write is applied):
//
//	what                                                   code  subcode  notes
//	Faults.ServerErrorRate; version; token; proof           as for the other reads
//	ad set unknown                                         100   33       GraphMethodException
//	FailNextAdSetWrite (scripted)                          any   any      as scripted
//	a parameter other than status, daily_budget            100   -        sandbox's wording
//	status not ACTIVE or PAUSED                            100   -        Meta also takes DELETED and
//	                                                                      ARCHIVED; the sandbox does not
//	daily_budget not a positive integer                    100   -
//	daily_budget below MinDailyBudget (100 minor units)    100   -        "Budget Is Too Low" (see below)
//	daily_budget on an ad set whose campaign owns the
//	budget (AdSet.CampaignBudget)                          100   1885621  "Budget Conflict" (see below)
//	a 5th budget change of the ad set within an hour, or
//	any while it is blocked                                17    -        "User request limit reached"
//
// The budget-change limit is Meta's "For each ad set, the budget is only allowed to change 4
// times per hour, if exceeds the limit, the budget change for that ad set will be blocked for
// an hour. Error, Code: 17, Message: User request limit reached." (Marketing API rate-limiting
// page, older copy: https://developers.facebook.com/docs/marketing-api/api-rate-limiting; the
// current page, .../marketing-apis/rate-limiting, keeps the same words). Meta names no
// subcode for it, so the sandbox sends none (whether Meta does is unverified). The hour is a
// sliding window on Config.Now; a refusal blocks the ad set's budget for an hour from then; a
// daily_budget equal to the current one is not a change (unverified at Meta). Status writes
// are not limited.
//
// The campaign budget refusal: Meta refuses a budget on an ad set whose campaign has one
// (Advantage campaign budget [ACB]) with code 100, subcode 1885621 and the title "Budget
// Conflict: Campaign Already Has a Budget", as integrators quote it (pipeboard-co/meta-ads-mcp
// pull requests 71 and 112, byadsco/meta-ads-mcp pull request 97); Meta's own page for the
// error was not found: unverified. "Budget Is Too Low" (code 100, no subcode known) is the
// title integrators quote for a budget under the ad set's minimum
// (facebook/facebook-php-business-sdk issues 148 and 338); Meta's minimum depends on the
// currency and the optimisation goal: MinDailyBudget is the sandbox's.
//
// A status change is recorded in the ad set's delivery history at Config.Now, as UpdateAdSet
// does, so the days before keep their spend (insights.go).

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MinDailyBudget is the lowest daily_budget the sandbox takes, in minor units (the sandbox's
// choice: Meta's minimum depends on the currency and the ad set).
const MinDailyBudget = 100

// Budget-change limit of one ad set [RLOLD]: BudgetChangesPerHour changes in a sliding hour,
// then BudgetChangeBlock without any.
const (
	BudgetChangesPerHour = 4
	BudgetChangeWindow   = time.Hour
	BudgetChangeBlock    = time.Hour
)

// Codes of the ad set write refusals (see the file comment for their sources).
const (
	// CodeUserRequestLimit is "(#17) User request limit reached": the budget-change limit.
	CodeUserRequestLimit = 17
	// SubcodeCampaignHasBudget (code 100) refuses an ad set budget under a campaign budget.
	SubcodeCampaignHasBudget = 1885621
)

// writeStore is the state of ad set writes, audience sharing and ads, guarded by Sandbox.mu
// (part of adsStore: Reset forgets it).
type writeStore struct {
	// budgetChanges are the times of each ad set's accepted budget changes within the window;
	// blockedUntil the end of a budget block.
	budgetChanges map[string][]time.Time
	blockedUntil  map[string]time.Time
	// failWrites are the errors of the next ad set writes (FailNextAdSetWrite).
	failWrites []*graphError
	// shares are each audience's shares to other ad accounts (sharing.go).
	shares map[string][]Share
	// extraAds are the ads AddAd added, by ad set.
	extraAds map[string][]string
	// lastAdID survives Reset, so an ad id is never handed out twice.
	lastAdID uint64
}

func (st *writeStore) reset() {
	st.budgetChanges, st.blockedUntil, st.failWrites, st.shares, st.extraAds = nil, nil, nil, nil, nil
}

// FailNextAdSetWrite makes the next ad set write (POST /{adset_id}) answer HTTP 400 with Meta's
// envelope: code, subcode (0: none) and message (empty: "(#code) Scripted failure"). Calls
// queue: each write takes the oldest. A code 1 or 2 answer is transient (HTTP 500).
func (s *Sandbox) FailNextAdSetWrite(code, subcode int, message string) {
	e := &graphError{Type: "OAuthException", Code: code, Subcode: subcode,
		Message: cmp.Or(message, fmt.Sprintf("(#%d) Scripted failure", code))}
	if code == 1 || code == CodeServiceUnavailable {
		e.IsTransient, e.status = true, http.StatusInternalServerError
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ads.writes.failWrites = append(s.ads.writes.failWrites, e)
}

// BudgetChanges returns the times of the ad set's budget changes within the last hour, oldest
// first.
func (s *Sandbox) BudgetChanges(adSetID string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ads.writes.recentChanges(adSetID, s.cfg.Now()))
}

// recentChanges drops the changes older than the window and returns the rest.
func (st *writeStore) recentChanges(id string, now time.Time) []time.Time {
	kept := slices.DeleteFunc(st.budgetChanges[id], func(t time.Time) bool { return !t.After(now.Add(-BudgetChangeWindow)) })
	if len(kept) == 0 {
		delete(st.budgetChanges, id)
		return nil
	}
	st.budgetChanges[id] = kept
	return kept
}

// isAdSetObject reports whether id is an ad set of the sandbox (auto ad sets included).
func (s *Sandbox) isAdSetObject(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveAutoAdSetsLocked()
	return s.ads.adSets[id] != nil
}

// answerAdSet answers GET /{adset_id}.
func (s *Sandbox) answerAdSet(id string, p audienceParams) adsAnswer {
	fields, gerr := parseFields(p, adSetFields, "id")
	if gerr != nil {
		return adsAnswer{err: gerr}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.ads.adSets[id]
	if a == nil {
		return adsAnswer{err: errUnsupportedMethod(http.MethodGet, id)}
	}
	return adsAnswer{body: s.adSetJSONLocked(a, fields)}
}

// adSetWriteParams are the parameters a write may carry besides the credentials.
var adSetWriteParams = []string{"status", "daily_budget"}

// writeAdSet answers POST /{adset_id}: validates, checks the limits, applies.
func (s *Sandbox) writeAdSet(id string, p audienceParams) adsAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.ads.adSets[id]
	if a == nil {
		return adsAnswer{err: errUnsupportedMethod(http.MethodPost, id)}
	}
	if w := &s.ads.writes; len(w.failWrites) > 0 {
		e := w.failWrites[0]
		w.failWrites = w.failWrites[1:]
		c := *e
		return adsAnswer{err: &c, fault: "scripted"}
	}
	names := make([]string, 0, len(p.fields)+len(p.query))
	for k := range p.fields {
		names = append(names, k)
	}
	for k := range p.query {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		// method=POST is the override saying what the request already is.
		if k == "access_token" || k == "appsecret_proof" || k == "method" || slices.Contains(adSetWriteParams, k) {
			continue
		}
		return adsAnswer{err: errParam(fmt.Sprintf("param %s is not a parameter of an ad set update (the sandbox takes %s)", k, strings.Join(adSetWriteParams, ", ")))}
	}
	status, hasStatus := p.lookup("status")
	if hasStatus && status != StatusActive && status != StatusPaused {
		return adsAnswer{err: errParam(fmt.Sprintf("param status must be one of {%s, %s}", StatusActive, StatusPaused))}
	}
	text, hasBudget := p.lookup("daily_budget")
	var budget int64
	if hasBudget {
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil || n <= 0 {
			return adsAnswer{err: errParam("param daily_budget must be a positive integer (minor units of the account currency)")}
		}
		budget = n
		switch {
		case n < MinDailyBudget:
			return adsAnswer{err: errBudgetTooLow()}
		case a.CampaignBudget:
			return adsAnswer{err: errCampaignHasBudget()}
		}
	}
	now := s.cfg.Now()
	if hasBudget && budget != a.DailyBudget {
		w := &s.ads.writes
		if until := w.blockedUntil[id]; now.Before(until) || len(w.recentChanges(id, now)) >= BudgetChangesPerHour {
			if !now.Before(until) {
				if w.blockedUntil == nil {
					w.blockedUntil = map[string]time.Time{}
				}
				w.blockedUntil[id] = now.Add(BudgetChangeBlock)
			}
			return adsAnswer{err: errBudgetChangeLimit()}
		}
		if w.budgetChanges == nil {
			w.budgetChanges = map[string][]time.Time{}
		}
		w.budgetChanges[id] = append(w.budgetChanges[id], now)
		a.DailyBudget = budget
	}
	if hasStatus {
		was := a.delivering()
		a.Status = status
		if a.delivering() != was {
			a.activity = append(a.activity, activityChange{now, a.delivering()})
		}
	}
	return adsAnswer{body: map[string]bool{"success": true}}
}

func errBudgetTooLow() *graphError {
	return &graphError{Type: "OAuthException", Code: CodeInvalidParameter, Message: "(#100) Invalid parameter",
		UserTitle: "Budget Is Too Low",
		UserMsg:   fmt.Sprintf("The budget for this ad set must be at least %d (minor units of the account currency).", MinDailyBudget)}
}

func errCampaignHasBudget() *graphError {
	return &graphError{Type: "OAuthException", Code: CodeInvalidParameter, Subcode: SubcodeCampaignHasBudget,
		Message:   "(#100) Invalid parameter",
		UserTitle: "Budget Conflict: Campaign Already Has a Budget",
		UserMsg:   "This ad set's campaign uses Advantage campaign budget: set the budget on the campaign, not on its ad sets."}
}

func errBudgetChangeLimit() *graphError {
	return &graphError{Type: "OAuthException", Code: CodeUserRequestLimit, Message: "(#17) User request limit reached",
		UserMsg: fmt.Sprintf("The budget of this ad set changed %d times within an hour: budget changes are blocked for an hour.", BudgetChangesPerHour)}
}

// --- /_sandbox/adsets ---

// AdSetView is an ad set as GET /_sandbox/adsets shows it: what the automation reads and
// writes, the ads, and the budget changes of the last hour.
type AdSetView struct {
	AdSet
	Ads           []string    `json:"ads"`
	BudgetChanges []time.Time `json:"budget_changes,omitempty"`
	BudgetBlocked *time.Time  `json:"budget_blocked_until,omitempty"`
}

// AllAdSets returns every ad set of every ad account, auto ad sets included, in creation
// order, with their ads and recent budget changes.
func (s *Sandbox) AllAdSets() []AdSetView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveAutoAdSetsLocked()
	now := s.cfg.Now()
	out := []AdSetView{}
	for _, id := range s.ads.order {
		a := s.ads.adSets[id]
		v := AdSetView{AdSet: a.AdSet, Ads: s.adsOfLocked(id), BudgetChanges: slices.Clone(s.ads.writes.recentChanges(id, now))}
		v.Included, v.Excluded = slices.Clone(a.Included), slices.Clone(a.Excluded)
		if until, ok := s.ads.writes.blockedUntil[id]; ok && now.Before(until) {
			v.BudgetBlocked = &until
		}
		out = append(out, v)
	}
	return out
}

// serveAdSetAdmin answers GET /_sandbox/adsets; it reports whether the path was its own.
func (s *Sandbox) serveAdSetAdmin(w http.ResponseWriter, r *http.Request, allow func(string) bool) bool {
	if r.URL.Path != "/_sandbox/adsets" {
		return false
	}
	if allow(http.MethodGet) {
		writeJSON(w, http.StatusOK, s.AllAdSets())
	}
	return true
}

package ports

import "context"

// Ad set statuses the automation writes.
const (
	AdSetActive = "ACTIVE"
	AdSetPaused = "PAUSED"
)

// AdSetChange is one write to an ad set (POST /{adset_id}): a zero field is left as it is.
type AdSetChange struct {
	AdSetID string
	// Status is AdSetActive or AdSetPaused; "" leaves it.
	Status string
	// DailyBudget is the new daily budget in the account currency's minor units; 0 leaves it.
	DailyBudget int64
}

// AdsWriter reads and writes single ad sets (Marketing API, ads_management). Errors are
// *CAPIError: a refused write (too many budget changes, a budget the campaign owns, a rate
// limit) says so in its class and Meta's code, subcode and message, which the caller records.
type AdsWriter interface {
	// AdSet reads one ad set with its status, budget and targeting.
	AdSet(ctx context.Context, id string) (AdSet, error)
	UpdateAdSet(ctx context.Context, c AdSetChange) error
}

// AudienceUse is an ad that uses a Custom Audience (GET /{audience_id}/ads).
type AudienceUse struct {
	AdID, AdSetID, CampaignID string
	AdAccountID               string // act_<digits>
}

// AudienceAuditAPI reads who holds and who uses a Custom Audience.
type AudienceAuditAPI interface {
	// AudienceAdAccounts lists the ad accounts the audience is shared with or owned by
	// (GET /{audience_id}/adaccounts), as act_<digits>.
	AudienceAdAccounts(ctx context.Context, audienceID string) ([]string, error)
	// AudienceSharedAccounts lists the accounts of other businesses it is shared with
	// (GET /{audience_id}/shared_account_info), as act_<digits>.
	AudienceSharedAccounts(ctx context.Context, audienceID string) ([]string, error)
	// AudienceAds lists the ads that use it (GET /{audience_id}/ads).
	AudienceAds(ctx context.Context, audienceID string) ([]AudienceUse, error)
}

// AdSetSettings are what an automation action changes: before and after.
type AdSetSettings struct {
	Status      string `json:"status"`
	DailyBudget int64  `json:"daily_budget"`
}

// Automation action statuses.
const (
	ActionProposed = "proposed"
	ActionApplied  = "applied"
	ActionUndone   = "undone"
	ActionRefused  = "refused"
)

// Automation action kinds.
const (
	ActionPause  = "pause"
	ActionResume = "resume"
	ActionScale  = "scale_budget"
)

// ActionEvent is one step of an action's history (proposed, applied, refused, undone).
type ActionEvent struct {
	At     int64  `json:"at"` // unix seconds
	Status string `json:"status"`
	// By is "rule:<id>" or "operator".
	By   string `json:"by"`
	Note string `json:"note,omitempty"`
}

// AutomationAction is one change an automation rule proposed or made to one ad set, audited
// without personal data.
type AutomationAction struct {
	App string `json:"app"`
	// ID is unique per app and stable: the rule, the ad set and the UTC day it was decided.
	ID          string `json:"id"`
	Rule        string `json:"rule"`
	Segment     string `json:"segment"`
	AdAccountID string `json:"ad_account_id"`
	AdSetID     string `json:"adset_id"`
	AdSetName   string `json:"adset_name,omitempty"`
	// Action is ActionPause, ActionResume or ActionScale.
	Action string `json:"action"`
	// Status is ActionProposed, ActionApplied, ActionUndone or ActionRefused.
	Status string        `json:"status"`
	Before AdSetSettings `json:"before"`
	After  AdSetSettings `json:"after"`
	// Reason is what the rule saw (e.g. "audience size 12 below 1000"); Refusal Meta's answer
	// to a refused write.
	Reason  string `json:"reason"`
	Refusal string `json:"refusal,omitempty"`
	// Day is the UTC date the action was decided (the per-ad-set daily cap counts by it).
	Day       string        `json:"day"`
	CreatedAt int64         `json:"created_at"`
	UpdatedAt int64         `json:"updated_at"`
	History   []ActionEvent `json:"history"`
	// Version is the optimistic lock: 1 when created, +1 on every write.
	Version int64 `json:"version"`
}

// AutomationStore keeps the automation's actions (the audit trail) and the daily KPI snapshots
// the cost condition reads.
type AutomationStore interface {
	// PutAction writes a: created when a.Version is 1 (ErrVersionConflict if it exists), else
	// replaced if the stored version is a.Version-1 (else ErrVersionConflict).
	PutAction(ctx context.Context, a AutomationAction) error
	Action(ctx context.Context, app, id string) (AutomationAction, bool, error)
	// Actions lists app's actions decided from fromDay to toDay (YYYY-MM-DD, inclusive), oldest
	// first.
	Actions(ctx context.Context, app, fromDay, toDay string) ([]AutomationAction, error)
	PutKPIs(ctx context.Context, days []KPIDay) error
	// KPIs lists one audience's snapshots from fromDay to toDay, oldest first.
	KPIs(ctx context.Context, app, segment, fromDay, toDay string) ([]KPIDay, error)
}

// KPIDay is the daily snapshot of one audience's KPIs that the insights run records (the
// report over the trailing 28 join days): what "above X for N days" conditions read.
type KPIDay struct {
	App     string `json:"app"`
	Segment string `json:"segment"`
	Date    string `json:"date"` // UTC
	// CostPerIncremental is the cost per incremental re-engagement (nil: none computed);
	// Significant whether the 7-day lift was significant that day.
	CostPerIncremental *float64 `json:"cost_per_incremental,omitempty"`
	Significant        bool     `json:"significant"`
	Members            int64    `json:"members"`
	Currency           string   `json:"currency,omitempty"`
}

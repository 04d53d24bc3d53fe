package ports

import (
	"context"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
)

// OutcomeKey names one cohort: the users of one app's audience (by segment) who joined on one
// UTC day (days since 1970-01-01) and were assigned to one arm.
type OutcomeKey struct {
	App     string
	Segment string
	JoinDay int64
	Arm     holdout.Arm
}

// OutcomeCounts are a cohort's counters, each user counted once per window: how many joined,
// came back (any re-engagement event) within 1, 7 and 28 days of joining, bought within 28
// days, and the revenue of those purchases (millionths of the reporting currency).
type OutcomeCounts struct {
	Users         int64
	Reengaged1d   int64
	Reengaged7d   int64
	Reengaged28d  int64
	Purchasers28d int64
	RevenueMicros int64
}

// Add adds o to c.
func (c *OutcomeCounts) Add(o OutcomeCounts) {
	c.Users += o.Users
	c.Reengaged1d += o.Reengaged1d
	c.Reengaged7d += o.Reengaged7d
	c.Reengaged28d += o.Reengaged28d
	c.Purchasers28d += o.Purchasers28d
	c.RevenueMicros += o.RevenueMicros
}

// IsZero reports whether every counter is 0.
func (c OutcomeCounts) IsZero() bool { return c == OutcomeCounts{} }

// Outcome is a cohort and its counters (a stored total, or a delta to add).
type Outcome struct {
	OutcomeKey
	OutcomeCounts
}

// OutcomeStore keeps the cohort counters (DynamoDB in AWS: one item per cohort, updated with
// ADD).
type OutcomeStore interface {
	// AddOutcomes adds each delta to its cohort's counters: one write per distinct key, however
	// many deltas name it (the caller aggregates a batch, the store merges what is left).
	AddOutcomes(ctx context.Context, deltas []Outcome) error
	// Outcomes returns the counters of the cohorts of app's audience of segment that joined
	// from fromDay to toDay (inclusive, days since the epoch), in (day, arm) order.
	Outcomes(ctx context.Context, app, segment string, fromDay, toDay int64) ([]Outcome, error)
}

// AdAccount is what the insights run needs of an ad account.
type AdAccount struct {
	ID           string // act_<digits>
	Currency     string // ISO 4217
	TimezoneName string // e.g. "America/Los_Angeles": insights days are in it
}

// AdSet is an ad set with its targeting's custom audiences.
type AdSet struct {
	ID, Name, CampaignID string
	// Status is the configured status (ACTIVE, PAUSED, DELETED, ARCHIVED); EffectiveStatus adds
	// the campaign's (CAMPAIGN_PAUSED, IN_PROCESS, WITH_ISSUES...).
	Status, EffectiveStatus string
	// DailyBudget is in the account currency's minor units (cents for USD); 0 when the ad set
	// has none (a lifetime budget, or the campaign's budget).
	DailyBudget int64
	// Included and Excluded are the ids of targeting.custom_audiences and
	// targeting.excluded_custom_audiences.
	Included, Excluded []string
	// AdvantageAudience is targeting_automation.advantage_audience = 1: delivery may go beyond
	// the included audiences (only exclusions hold).
	AdvantageAudience bool
}

// Active reports whether the ad set can deliver.
func (a *AdSet) Active() bool {
	return a.EffectiveStatus == "ACTIVE" || a.EffectiveStatus == "" && a.Status == "ACTIVE"
}

// InsightsRequest asks for daily ad-set-level insights of an account.
type InsightsRequest struct {
	AdAccountID string
	// Since and Until are dates (YYYY-MM-DD, the account's time zone), inclusive.
	Since, Until string
	// AdSetIDs restricts the rows to these ad sets (filtering on adset.id); empty: all.
	AdSetIDs []string
}

// InsightsRow is one ad set's insights on one day.
type InsightsRow struct {
	AdSetID string
	Date    string // date_start, YYYY-MM-DD
	// SpendMicros is spend in millionths of the account currency (Meta sends a decimal string
	// in major units).
	SpendMicros int64
	Currency    string
	Impressions int64
	Reach       int64
	Clicks      int64
	// Actions are the action counts by action_type (e.g. "app_custom_event.fb_mobile_purchase").
	Actions map[string]float64
}

// InsightsUsage is what the insights rate-limit headers said on the last call.
type InsightsUsage struct {
	// UsagePct is the highest of x-fb-ads-insights-throttle's app_id_util_pct and
	// acc_id_util_pct and the ads_insights entries of X-Business-Use-Case-Usage.
	UsagePct float64
	// RegainAfter is estimated_time_to_regain_access, 0 when none.
	RegainAfter time.Duration
}

// AdsAPI reads ad accounts, ad sets and insights from the Marketing API. Errors are
// *CAPIError classified as for AudienceAPI (throttles are CAPIRateLimited with RetryAfter).
// Implementations follow paging.next to the end and use the asynchronous report flow
// (POST .../insights, poll, read pages) for requests too large for a synchronous call.
type AdsAPI interface {
	AdAccount(ctx context.Context, id string) (AdAccount, error)
	// AdSets lists the account's ad sets that are not deleted, with their targeting.
	AdSets(ctx context.Context, adAccountID string) ([]AdSet, error)
	// Insights returns daily ad-set rows; usage is the last rate-limit reading.
	Insights(ctx context.Context, req InsightsRequest) (rows []InsightsRow, usage InsightsUsage, err error)
}

// SpendDay is the spend of one ad set on one day, as stored for reports: which managed
// audiences (by segment) its targeting included and excluded on the day of the pull.
type SpendDay struct {
	App     string
	Date    string // YYYY-MM-DD, the ad account's time zone
	AdSetID string
	AdSet   string // name
	// Audiences are the managed treated audiences (segments) the ad set includes, sorted: more
	// than one means the spend belongs to that group of audiences, not split between them.
	Audiences []string
	// Contaminated lists the segments whose treated audience the ad set includes without
	// excluding its holdout audience (holdout users may be reached: the comparison is biased
	// toward zero for those days).
	Contaminated []string
	SpendMicros  int64
	Currency     string
	Impressions  int64
	Reach        int64
	Clicks       int64
	PulledAt     int64 // unix seconds
}

// SpendStore keeps the pulled spend rows (one item per app, date and ad set, replaced by every
// pull that covers the date: Meta restates recent days).
type SpendStore interface {
	PutSpend(ctx context.Context, rows []SpendDay) error
	// Spend returns app's rows from fromDate to toDate (inclusive), in (date, ad set) order.
	Spend(ctx context.Context, app, fromDate, toDate string) ([]SpendDay, error)
}

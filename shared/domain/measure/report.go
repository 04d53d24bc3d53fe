// Package measure turns cohort counters and spend into the remarketing KPIs of one app: per
// audience, treated against holdout re-engagement with the difference, its 95% confidence
// interval and significance; incremental re-engaged users and revenue; cost per incremental
// re-engagement; incremental ROAS; retention at day 1, 7 and 28; 28-day value per user. Every
// KPI below the minimum sample is null with a note saying "not enough data".
//
// The JSON form of Report is the contract of GET /v1/reports/audiences and `retarget report
// --json`.
package measure

import (
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Input is everything one app's report is computed from.
type Input struct {
	App string
	// From and To are the join days reported (YYYY-MM-DD, UTC), inclusive.
	From, To string
	// AsOf is when the report is made: windows that have not closed yet are said so.
	AsOf time.Time
	// ReportingCurrency is the currency of revenue (the app's reporting_currency).
	ReportingCurrency string
	// MinSample is the fewest users per arm a KPI is computed from.
	MinSample int
	Audiences []AudienceInput
	// Spend are the app's spend rows of the period (dates in the ad account's time zone).
	Spend []ports.SpendDay
}

// AudienceInput is one measured audience: its ids and its cohorts' counters.
type AudienceInput struct {
	Segment           string
	AudienceID        string // "" until the sync created it
	HoldoutAudienceID string
	HoldoutFraction   float64
	// Outcomes are this audience's cohort counters (any order; join days outside From..To are
	// ignored).
	Outcomes []ports.Outcome
}

// Report is one app's report.
type Report struct {
	App         string           `json:"app"`
	From        string           `json:"from"`
	To          string           `json:"to"`
	GeneratedAt string           `json:"generated_at"` // RFC 3339
	Audiences   []AudienceReport `json:"audiences"`
	// Groups is the spend of ad sets that include several managed audiences: reported for the
	// group, never split between them by guesswork.
	Groups []GroupSpend `json:"groups"`
}

// ArmStats are one arm's totals over the period and the rates derived from them (null below
// the minimum sample).
type ArmStats struct {
	Users         int64    `json:"users"`
	Reengaged1d   int64    `json:"reengaged_1d"`
	Reengaged7d   int64    `json:"reengaged_7d"`
	Reengaged28d  int64    `json:"reengaged_28d"`
	Purchasers28d int64    `json:"purchasers_28d"`
	Revenue28d    float64  `json:"revenue_28d"`
	Retention1d   *float64 `json:"retention_1d"`
	Retention7d   *float64 `json:"retention_7d"`
	Retention28d  *float64 `json:"retention_28d"`
	// ValuePerUser28d is revenue within 28 days of joining per user (the segment's 28-day
	// lifetime value).
	ValuePerUser28d *float64 `json:"value_per_user_28d"`
}

// Lift compares the treated and holdout rates of one window: Difference = treated − holdout,
// with its 95% confidence interval; Significant when the two-sided z-test on the pooled
// proportion rejects "no difference" at 5%. Null numbers and a Note when the sample is too
// small.
type Lift struct {
	Difference  *float64 `json:"difference"`
	CILow       *float64 `json:"ci_low"`
	CIHigh      *float64 `json:"ci_high"`
	PValue      *float64 `json:"p_value"`
	Significant bool     `json:"significant"`
	Note        string   `json:"note,omitempty"`
}

// AudienceReport is one audience's KPIs over the period.
type AudienceReport struct {
	App               string   `json:"app"`
	Segment           string   `json:"segment"`
	AudienceID        string   `json:"audience_id"`
	HoldoutAudienceID string   `json:"holdout_audience_id"`
	HoldoutFraction   float64  `json:"holdout_fraction"`
	Treated           ArmStats `json:"treated"`
	Holdout           ArmStats `json:"holdout"`
	// HoldoutShare is holdout users / all users (compare with HoldoutFraction).
	HoldoutShare *float64 `json:"holdout_share"`
	Lift1d       Lift     `json:"lift_1d"`
	Lift7d       Lift     `json:"lift_7d"`
	Lift28d      Lift     `json:"lift_28d"`
	// IncrementalReengaged7d = lift_7d.difference × treated users; IncrementalRevenue28d the
	// same for revenue per user (reporting currency).
	IncrementalReengaged7d *float64 `json:"incremental_reengaged_7d"`
	IncrementalRevenue28d  *float64 `json:"incremental_revenue_28d"`
	// Spend of the ad sets that include this audience alone (account currency); null when none.
	Spend    *float64 `json:"spend"`
	Currency string   `json:"currency"`
	// CostPerIncrementalReengagement = spend / incremental re-engaged users: null (with Notes)
	// without spend, below the minimum sample, or when the lift is not positive.
	CostPerIncrementalReengagement *float64 `json:"cost_per_incremental_reengagement"`
	// IncrementalROAS = incremental revenue / spend, when revenue and spend share a currency.
	IncrementalROAS *float64 `json:"incremental_roas"`
	// ContaminatedDays are the days an active ad set included the audience without excluding
	// its holdout audience: holdout users could see the ads, and the lift is biased toward 0.
	Contaminated     bool     `json:"contaminated"`
	ContaminatedDays []string `json:"contaminated_days"`
	// WindowsOpen: some cohorts joined less than 28 days before AsOf, so their counts can
	// still grow (both arms alike: the comparison stays fair).
	WindowsOpen bool       `json:"windows_open"`
	Days        []DayPoint `json:"days"`
	Notes       []string   `json:"notes"`
}

// DayPoint is one join day of an audience, for the charts.
type DayPoint struct {
	Day                string   `json:"day"`
	TreatedUsers       int64    `json:"treated_users"`
	HoldoutUsers       int64    `json:"holdout_users"`
	TreatedReengaged7d int64    `json:"treated_reengaged_7d"`
	HoldoutReengaged7d int64    `json:"holdout_reengaged_7d"`
	TreatedRate7d      *float64 `json:"treated_rate_7d"`
	HoldoutRate7d      *float64 `json:"holdout_rate_7d"`
	Spend              float64  `json:"spend"`
}

// GroupSpend is the spend of ad sets that include several managed audiences.
type GroupSpend struct {
	Audiences []string `json:"audiences"`
	Spend     float64  `json:"spend"`
	Currency  string   `json:"currency"`
	AdSets    []string `json:"adsets"`
	Note      string   `json:"note"`
}

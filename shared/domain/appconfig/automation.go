package appconfig

// The automation schema: rules that adjust the app's ad sets to how its segments behave, off
// unless present, proposing by default.
//
//	"automation": {
//	  "mode": "propose",
//	  "max_changes_per_adset_per_day": 1,
//	  "rules": [
//	    {"id": "pause-small", "segment": "cart_abandoner",
//	     "when": {"audience_size_below": 1000}, "then": {"pause_adsets": true}},
//	    {"id": "resume-grown", "segment": "cart_abandoner",
//	     "when": {"audience_size_at_least": 1500}, "then": {"resume_adsets": true}},
//	    {"id": "trim-costly", "segment": "lapsed_7d",
//	     "when": {"cost_per_incremental_reengagement_above": 4.0, "for_days": 3},
//	     "then": {"scale_budget": {"factor": 0.8, "floor": 1000, "cap": 50000}}},
//	    {"id": "idle", "segment": "vip", "when": {"no_spend_for_days": 3}, "then": {"resume_adsets": true}}
//	  ]
//	}
//
// A rule acts on the ad sets that include the treated audience of its segment, in the app's ad
// accounts and, when meta.allowed_campaigns is set, in those campaigns only: no other ad set is
// ever touched. Conditions (exactly one per rule): the audience's size (members acknowledged by
// Meta) below or at least N; its cost per incremental re-engagement (the daily KPI, trailing 28
// join days) above X on each of the last for_days days, counted only on days the lift was
// significant; no spend on any of its ad sets for N days while it has members. Actions (exactly
// one): pause or resume the ad sets, or scale each one's daily budget by factor, kept within
// floor and cap (the ad account currency's minor units, cents for USD).
//
// mode "propose" (the default) records proposals and alerts; "apply" acts. Either way an ad set
// gets at most max_changes_per_adset_per_day changes per UTC day (default 1; Meta allows few
// budget changes per ad set per hour), and every action is audited.

import (
	"fmt"
	"regexp"
)

// Automation modes.
const (
	AutomationPropose = "propose"
	AutomationApply   = "apply"
)

// Bounds of the automation settings.
const (
	DefaultMaxChangesPerAdSetPerDay = 1
	// MaxChangesPerAdSetPerDay: Meta blocks an ad set's budget for an hour after 4 changes in
	// one (reference meta-measurement.md section 2, an older copy of the rate-limiting page).
	MaxChangesPerAdSetPerDay = 4
	MaxAutomationDays        = 28
	// MaxBudgetFactor bounds one scaling step: a rule that multiplies a budget tenfold in a
	// day is a typo, not a strategy.
	MaxBudgetFactor = 10
)

var (
	ruleIDPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	campaignPattern = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// Automation is an app's guarded campaign automation.
type Automation struct {
	// Mode is AutomationPropose ("" means it) or AutomationApply.
	Mode string `json:"mode,omitempty"`
	// MaxChangesPerAdSetPerDay caps the changes to one ad set per UTC day; 0 means the default.
	MaxChangesPerAdSetPerDay int              `json:"max_changes_per_adset_per_day,omitempty"`
	Rules                    []AutomationRule `json:"rules"`
}

// AutomationRule is one condition on a segment's audience and the action it triggers.
type AutomationRule struct {
	ID      string        `json:"id"`
	Segment string        `json:"segment"`
	When    RuleCondition `json:"when"`
	Then    RuleAction    `json:"then"`
}

// RuleCondition holds exactly one condition.
type RuleCondition struct {
	AudienceSizeBelow   int64 `json:"audience_size_below,omitempty"`
	AudienceSizeAtLeast int64 `json:"audience_size_at_least,omitempty"`
	// CostAbove (account currency, major units) on each of the last ForDays days, counted only
	// on days the lift was significant.
	CostAbove      float64 `json:"cost_per_incremental_reengagement_above,omitempty"`
	ForDays        int     `json:"for_days,omitempty"`
	NoSpendForDays int     `json:"no_spend_for_days,omitempty"`
}

// RuleAction holds exactly one action.
type RuleAction struct {
	PauseAdSets  bool         `json:"pause_adsets,omitempty"`
	ResumeAdSets bool         `json:"resume_adsets,omitempty"`
	ScaleBudget  *BudgetScale `json:"scale_budget,omitempty"`
}

// BudgetScale multiplies an ad set's daily budget by Factor, kept within Floor and Cap (minor
// units of the ad account's currency).
type BudgetScale struct {
	Factor float64 `json:"factor"`
	Floor  int64   `json:"floor"`
	Cap    int64   `json:"cap"`
}

// Apply reports whether the automation acts (mode "apply") rather than proposes.
func (a *Automation) Apply() bool { return a != nil && a.Mode == AutomationApply }

// MaxChanges returns the per-ad-set daily cap with the default applied.
func (a *Automation) MaxChanges() int {
	if a == nil || a.MaxChangesPerAdSetPerDay == 0 {
		return DefaultMaxChangesPerAdSetPerDay
	}
	return a.MaxChangesPerAdSetPerDay
}

// checkAutomation validates the app's automation and meta.allowed_campaigns; it reads the
// audiences, so it runs after checkAudiences.
func (a *App) checkAutomation(bad func(field, format string, args ...any)) {
	for i, c := range a.Meta.AllowedCampaigns {
		if !campaignPattern.MatchString(c) {
			bad(fmt.Sprintf("meta.allowed_campaigns[%d]", i), "must be a campaign's numeric id (got %q)", c)
		}
	}
	au := a.Automation
	if au == nil {
		return
	}
	if au.Mode != "" && au.Mode != AutomationPropose && au.Mode != AutomationApply {
		bad("automation.mode", "must be %q (the default: record proposals) or %q (act) (got %q)", AutomationPropose, AutomationApply, au.Mode)
	}
	if n := au.MaxChangesPerAdSetPerDay; n < 0 || n > MaxChangesPerAdSetPerDay {
		bad("automation.max_changes_per_adset_per_day", "must be 0 (the default, %d) or 1..%d: Meta blocks an ad set's budget changes for an hour after 4 in one (got %d)",
			DefaultMaxChangesPerAdSetPerDay, MaxChangesPerAdSetPerDay, n)
	}
	if len(au.Rules) == 0 {
		bad("automation.rules", "list at least one rule (leave automation out to turn it off)")
	}
	mapped := map[string]bool{}
	for _, x := range a.Audiences {
		mapped[x.Segment] = true
	}
	ids := map[string]int{}
	for i := range au.Rules {
		r := &au.Rules[i]
		where := fmt.Sprintf("automation.rules[%d]", i)
		switch {
		case !ruleIDPattern.MatchString(r.ID):
			bad(where+".id", "must be 1-63 lowercase letters, digits or '-' (got %q)", r.ID)
		default:
			if j, dup := ids[r.ID]; dup {
				bad(where+".id", "%q duplicates rules[%d]", r.ID, j)
			}
			ids[r.ID] = i
		}
		if !mapped[r.Segment] {
			bad(where+".segment", "%q is not mapped to an audience (a rule acts on the ad sets that include a segment's audience)", r.Segment)
		}
		checkCondition(&r.When, where+".when", bad)
		checkAction(&r.Then, where+".then", bad)
	}
}

func checkCondition(w *RuleCondition, where string, bad func(field, format string, args ...any)) {
	set := 0
	for _, on := range []bool{w.AudienceSizeBelow != 0, w.AudienceSizeAtLeast != 0, w.CostAbove != 0, w.NoSpendForDays != 0} {
		if on {
			set++
		}
	}
	if set != 1 {
		bad(where, "set exactly one of audience_size_below, audience_size_at_least, cost_per_incremental_reengagement_above (with for_days), no_spend_for_days")
	}
	if w.AudienceSizeBelow < 0 || w.AudienceSizeAtLeast < 0 {
		bad(where, "audience sizes must be positive")
	}
	if w.CostAbove < 0 {
		bad(where+".cost_per_incremental_reengagement_above", "must be a positive amount in the ad account's currency (got %v)", w.CostAbove)
	}
	switch {
	case w.CostAbove != 0 && (w.ForDays < 1 || w.ForDays > MaxAutomationDays):
		bad(where+".for_days", "must be 1..%d with cost_per_incremental_reengagement_above (got %d)", MaxAutomationDays, w.ForDays)
	case w.CostAbove == 0 && w.ForDays != 0:
		bad(where+".for_days", "goes with cost_per_incremental_reengagement_above only")
	}
	if d := w.NoSpendForDays; d < 0 || d > MaxAutomationDays {
		bad(where+".no_spend_for_days", "must be 1..%d (got %d)", MaxAutomationDays, d)
	}
}

func checkAction(t *RuleAction, where string, bad func(field, format string, args ...any)) {
	set := 0
	for _, on := range []bool{t.PauseAdSets, t.ResumeAdSets, t.ScaleBudget != nil} {
		if on {
			set++
		}
	}
	if set != 1 {
		bad(where, "set exactly one of pause_adsets, resume_adsets, scale_budget")
	}
	if s := t.ScaleBudget; s != nil {
		if !(s.Factor > 0 && s.Factor <= MaxBudgetFactor) || s.Factor == 1 {
			bad(where+".scale_budget.factor", "must be above 0, not 1, and at most %d (got %v)", MaxBudgetFactor, s.Factor)
		}
		if s.Floor < 1 || s.Cap < s.Floor {
			bad(where+".scale_budget", "floor must be at least 1 and cap at least floor, in the ad account currency's minor units (got floor %d, cap %d)", s.Floor, s.Cap)
		}
	}
}

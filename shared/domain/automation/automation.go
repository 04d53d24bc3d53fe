// Package automation decides what an app's automation rules do to its ad sets: from the facts
// of each rule's audience (members, daily KPI snapshots, spend), the ad sets the rule may touch
// and the actions already decided today, it produces proposals, each a change to one ad set
// with its before and after state. It does no I/O: the use case (shared/app/automation) reads
// the facts, records the proposals and applies them.
//
// Guards the evaluation keeps, whatever the rules say:
//   - A rule only touches the ad sets in the app's ad accounts whose targeting includes the
//     treated audience of its segment and, when meta.allowed_campaigns is set, that sit in one
//     of those campaigns. No other ad set is ever proposed.
//   - An ad set gets at most Automation.MaxChanges() actions per UTC day, counting the
//     proposed, applied and refused actions of the day of any rule, and at most one proposal
//     per evaluation (a second rule's "before" would be stale once the first is applied).
//   - A change that changes nothing is skipped with its reason: pausing a paused ad set,
//     resuming an active one, a scale that the floor or cap leaves as it is, and a scale of an
//     ad set without a daily budget of its own (the campaign owns the budget: Meta would refuse).
package automation

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// DateLayout is the layout of days (UTC) in ids, KPI snapshots and actions.
const DateLayout = "2006-01-02"

// AudienceFacts is what the evaluation knows of one segment's treated audience.
type AudienceFacts struct {
	// AudienceID is Meta's id of the treated audience; "" when not created yet (no ad set can
	// include it, so its rules do nothing).
	AudienceID string
	// Members is the membership Meta acknowledged (the audience sync state's Size).
	Members int64
	// KPIs are the audience's daily snapshots; the cost condition reads the last for_days days
	// up to Input.Today.
	KPIs []ports.KPIDay
	// Spend are the app's spend rows (any ad set); the no-spend condition sums those whose
	// Audiences include the segment over the last no_spend_for_days days up to Input.Today.
	Spend []ports.SpendDay
}

// Input is one evaluation of one app.
type Input struct {
	App *appconfig.App
	// Today is the UTC date of the evaluation (YYYY-MM-DD): the day of the ids and the cap.
	Today string
	// Audiences are the facts by segment.
	Audiences map[string]AudienceFacts
	// AdSets are the ad sets of each of the app's ad accounts (by act_<digits>); ad sets of
	// other accounts are ignored.
	AdSets map[string][]ports.AdSet
	// Decided are the actions already recorded today (any rule, any status).
	Decided []ports.AutomationAction
}

// Proposal is one change a rule decided for one ad set.
type Proposal struct {
	ID          string
	Rule        string
	Segment     string
	AdAccountID string
	AdSetID     string
	AdSetName   string
	// Action is ports.ActionPause, ports.ActionResume or ports.ActionScale.
	Action        string
	Before, After ports.AdSetSettings
	Reason        string
}

// Skip is an ad set a rule whose condition held left alone, and why.
type Skip struct {
	Rule, AdSetID, Reason string
}

// Result is what an evaluation decided.
type Result struct {
	Proposals []Proposal
	// Skipped lists the no-ops, the capped ad sets and the ad sets already decided today.
	Skipped []Skip
}

// ActionID is the stable id of rule's action on an ad set on a UTC day: the day, then a hash
// of the app, rule, ad set and day. The day leads so that ids sort (and are stored) by day.
func ActionID(app, rule, adSetID, day string) string {
	sum := sha256.Sum256([]byte(app + "\x00" + rule + "\x00" + adSetID + "\x00" + day))
	return day + "-" + hex.EncodeToString(sum[:8])
}

// DayOfID returns the day an action id carries, or "" if id is not an action id.
func DayOfID(id string) string {
	if len(id) != len(DateLayout)+1+16 || id[len(DateLayout)] != '-' {
		return ""
	}
	day := id[:len(DateLayout)]
	if t, err := time.Parse(DateLayout, day); err != nil || t.Format(DateLayout) != day {
		return ""
	}
	for _, c := range id[len(DateLayout)+1:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return day
}

// Counts reports whether an action of status counts toward the daily cap.
func Counts(status string) bool {
	return status == ports.ActionProposed || status == ports.ActionApplied || status == ports.ActionRefused
}

// ScaledBudget is round(budget × factor) kept within [floor, cap].
func ScaledBudget(budget int64, s appconfig.BudgetScale) int64 {
	b := int64(math.Round(float64(budget) * s.Factor))
	return min(max(b, s.Floor), s.Cap)
}

// Evaluate decides the proposals of in.App's rules, in rule order, then ad account and ad set
// id order.
func Evaluate(in Input) Result {
	var res Result
	au := in.App.Automation
	if au == nil {
		return res
	}
	accounts := Accounts(in.App)
	allowed := in.App.Meta.AllowedCampaigns
	decided := map[string]bool{}  // action ids recorded today
	changes := map[string]int{}   // ad set -> actions of the day counting toward the cap
	proposed := map[string]bool{} // ad sets with a proposal in this evaluation
	for _, a := range in.Decided {
		decided[a.ID] = true
		if a.Day == in.Today && Counts(a.Status) {
			changes[a.AdSetID]++
		}
	}
	for i := range au.Rules {
		r := &au.Rules[i]
		facts := in.Audiences[r.Segment]
		if facts.AudienceID == "" {
			continue
		}
		ok, reason := holds(r, facts, in.Today)
		if !ok {
			continue
		}
		for _, acc := range accounts {
			adSets := slices.Clone(in.AdSets[acc])
			slices.SortFunc(adSets, func(a, b ports.AdSet) int { return strings.Compare(a.ID, b.ID) })
			for _, as := range adSets {
				if !slices.Contains(as.Included, facts.AudienceID) || len(allowed) > 0 && !slices.Contains(allowed, as.CampaignID) {
					continue // not this rule's ad set: never touched
				}
				if as.Status != ports.AdSetActive && as.Status != ports.AdSetPaused {
					continue // archived or deleted: nothing to change
				}
				id := ActionID(in.App.ID, r.ID, as.ID, in.Today)
				skip := func(why string) { res.Skipped = append(res.Skipped, Skip{Rule: r.ID, AdSetID: as.ID, Reason: why}) }
				switch {
				case decided[id]:
					skip("already decided today")
					continue
				case proposed[as.ID]:
					skip("another rule proposed a change to this ad set in this evaluation")
					continue
				case changes[as.ID] >= au.MaxChanges():
					skip(fmt.Sprintf("daily cap reached: %d change(s) today, at most %d", changes[as.ID], au.MaxChanges()))
					continue
				}
				p := Proposal{ID: id, Rule: r.ID, Segment: r.Segment, AdAccountID: acc, AdSetID: as.ID, AdSetName: as.Name,
					Before: ports.AdSetSettings{Status: as.Status, DailyBudget: as.DailyBudget}, Reason: reason}
				p.After = p.Before
				switch t := r.Then; {
				case t.PauseAdSets:
					p.Action, p.After.Status = ports.ActionPause, ports.AdSetPaused
					if as.Status == ports.AdSetPaused {
						skip("already paused")
						continue
					}
				case t.ResumeAdSets:
					p.Action, p.After.Status = ports.ActionResume, ports.AdSetActive
					if as.Status == ports.AdSetActive {
						skip("already active")
						continue
					}
				case t.ScaleBudget != nil:
					p.Action = ports.ActionScale
					if as.DailyBudget <= 0 {
						skip("no daily budget of its own (the campaign's budget or a lifetime budget): Meta would refuse the change")
						continue
					}
					p.After.DailyBudget = ScaledBudget(as.DailyBudget, *t.ScaleBudget)
					if p.After.DailyBudget == as.DailyBudget {
						skip(fmt.Sprintf("daily budget %d unchanged by factor %v within floor %d and cap %d",
							as.DailyBudget, t.ScaleBudget.Factor, t.ScaleBudget.Floor, t.ScaleBudget.Cap))
						continue
					}
				default:
					continue
				}
				proposed[as.ID] = true
				changes[as.ID]++
				res.Proposals = append(res.Proposals, p)
			}
		}
	}
	return res
}

// holds evaluates r's condition on facts and says what it saw.
func holds(r *appconfig.AutomationRule, f AudienceFacts, today string) (bool, string) {
	w := r.When
	switch {
	case w.AudienceSizeBelow > 0:
		return f.Members < w.AudienceSizeBelow, fmt.Sprintf("audience size %d below %d", f.Members, w.AudienceSizeBelow)
	case w.AudienceSizeAtLeast > 0:
		return f.Members >= w.AudienceSizeAtLeast, fmt.Sprintf("audience size %d at least %d", f.Members, w.AudienceSizeAtLeast)
	case w.CostAbove > 0:
		byDate := map[string]ports.KPIDay{}
		for _, k := range f.KPIs {
			byDate[k.Date] = k
		}
		days := lastDays(today, w.ForDays)
		lowest := math.Inf(1)
		currency := ""
		for _, d := range days {
			k, ok := byDate[d]
			if !ok || k.CostPerIncremental == nil || !k.Significant || !(*k.CostPerIncremental > w.CostAbove) {
				return false, ""
			}
			lowest = min(lowest, *k.CostPerIncremental)
			currency = k.Currency
		}
		return true, fmt.Sprintf("cost per incremental re-engagement above %v %s on each of the last %d day(s) with a significant lift (lowest %.2f)",
			w.CostAbove, currency, w.ForDays, lowest)
	case w.NoSpendForDays > 0:
		if f.Members <= 0 {
			return false, ""
		}
		days := lastDays(today, w.NoSpendForDays)
		var spend int64
		for _, s := range f.Spend {
			if s.Date >= days[0] && s.Date <= today && slices.Contains(s.Audiences, r.Segment) {
				spend += s.SpendMicros
			}
		}
		return spend == 0, fmt.Sprintf("no spend on the audience's ad sets for %d day(s) while it has %d members", w.NoSpendForDays, f.Members)
	}
	return false, ""
}

// lastDays returns the n days ending with today, oldest first.
func lastDays(today string, n int) []string {
	t, err := time.Parse(DateLayout, today)
	if err != nil || n < 1 {
		return []string{today}
	}
	out := make([]string, n)
	for i := range n {
		out[i] = t.AddDate(0, 0, i-(n-1)).Format(DateLayout)
	}
	return out
}

// FirstDay returns the first of the n days ending with today (what a caller reads facts from).
func FirstDay(today string, n int) string { return lastDays(today, max(n, 1))[0] }

// Accounts lists the app's ad accounts (its own and its audiences'), sorted: the only
// accounts whose ad sets an evaluation reads.
func Accounts(a *appconfig.App) []string {
	var out []string
	if a.Meta.AdAccountID != "" {
		out = append(out, a.Meta.AdAccountID)
	}
	for i := range a.Audiences {
		if acc := a.Audiences[i].AccountID(a); acc != "" {
			out = append(out, acc)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

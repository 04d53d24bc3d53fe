package appconfig

import (
	"strings"
	"testing"
)

func automationDoc(auto string) string {
	return audiencesDoc(`, "audiences": [{"segment": "a", "name": "A", "create": true}, {"segment": "b", "name": "B", "create": true}]` + auto)
}

func TestAutomationAccepted(t *testing.T) {
	cfg, err := Parse([]byte(automationDoc(`, "automation": {"rules": [
		{"id": "pause-small", "segment": "a", "when": {"audience_size_below": 1000}, "then": {"pause_adsets": true}},
		{"id": "resume", "segment": "a", "when": {"audience_size_at_least": 1500}, "then": {"resume_adsets": true}},
		{"id": "trim", "segment": "b", "when": {"cost_per_incremental_reengagement_above": 4, "for_days": 3},
		 "then": {"scale_budget": {"factor": 0.8, "floor": 1000, "cap": 50000}}},
		{"id": "idle", "segment": "b", "when": {"no_spend_for_days": 3}, "then": {"resume_adsets": true}}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	au := cfg.Apps[0].Automation
	if au.Apply() || au.MaxChanges() != DefaultMaxChangesPerAdSetPerDay || len(au.Rules) != 4 || au.Rules[2].Then.ScaleBudget.Cap != 50000 {
		t.Errorf("automation %+v: want propose mode, the default cap and 4 rules", au)
	}
	var off *Automation
	if off.Apply() || off.MaxChanges() != DefaultMaxChangesPerAdSetPerDay {
		t.Error("no automation must neither apply nor change its cap")
	}
}

func TestAutomationErrors(t *testing.T) {
	p := `apps[0] ("shop").`
	tests := []struct {
		name, auto string
		want       []string
	}{
		{"mode, cap and no rules", `, "automation": {"mode": "yolo", "max_changes_per_adset_per_day": 5, "rules": []}`, []string{
			p + `automation.mode: must be "propose" (the default: record proposals) or "apply" (act) (got "yolo")`,
			p + `automation.max_changes_per_adset_per_day: must be 0 (the default, 1) or 1..4: Meta blocks an ad set's budget changes for an hour after 4 in one (got 5)`,
			p + `automation.rules: list at least one rule (leave automation out to turn it off)`}},
		{"rule shape", `, "automation": {"rules": [
			{"id": "X", "segment": "c", "when": {}, "then": {"pause_adsets": true, "resume_adsets": true}},
			{"id": "cost", "segment": "a", "when": {"cost_per_incremental_reengagement_above": 2}, "then": {"scale_budget": {"factor": 1, "floor": 10, "cap": 5}}},
			{"id": "cost", "segment": "b", "when": {"no_spend_for_days": 3, "for_days": 2}, "then": {"pause_adsets": true}}]}`, []string{
			p + `automation.rules[0].id: must be 1-63 lowercase letters, digits or '-' (got "X")`,
			p + `automation.rules[0].segment: "c" is not mapped to an audience (a rule acts on the ad sets that include a segment's audience)`,
			p + `automation.rules[0].when: set exactly one of audience_size_below, audience_size_at_least, cost_per_incremental_reengagement_above (with for_days), no_spend_for_days`,
			p + `automation.rules[0].then: set exactly one of pause_adsets, resume_adsets, scale_budget`,
			p + `automation.rules[1].when.for_days: must be 1..28 with cost_per_incremental_reengagement_above (got 0)`,
			p + `automation.rules[1].then.scale_budget.factor: must be above 0, not 1, and at most 10 (got 1)`,
			p + `automation.rules[1].then.scale_budget: floor must be at least 1 and cap at least floor, in the ad account currency's minor units (got floor 10, cap 5)`,
			p + `automation.rules[2].id: "cost" duplicates rules[1]`,
			p + `automation.rules[2].when.for_days: goes with cost_per_incremental_reengagement_above only`}},
		{"allowed campaigns", `, "automation": {"rules": [{"id": "p", "segment": "a", "when": {"audience_size_below": 5}, "then": {"pause_adsets": true}}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(automationDoc(tt.auto)))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	_, err := Parse([]byte(strings.Replace(automationDoc(""), `"ad_account_id": "act_456"`, `"ad_account_id": "act_456", "allowed_campaigns": ["12", "c-1"]`, 1)))
	if err == nil || err.Error() != p+`meta.allowed_campaigns[1]: must be a campaign's numeric id (got "c-1")` {
		t.Errorf("allowed_campaigns: %v", err)
	}
}

package stack

import (
	"testing"

	"github.com/retarget-dev/retarget/shared/handlers/insights"
)

func TestAuditMetricName(t *testing.T) {
	if MetricAudienceMisuseFindings != insights.MetricAudienceMisuseFindings {
		t.Errorf("the stack watches %q, the handler emits %q", MetricAudienceMisuseFindings, insights.MetricAudienceMisuseFindings)
	}
}

// TestAuditAlarms: one alarm per configured audience on its misuse findings: at least one in
// one daily period, missing data not breaching, notifying the topic.
func TestAuditAlarms(t *testing.T) {
	alarms := alarmsOf(opsTempl)
	for _, app := range opsConfig.Apps {
		for _, au := range app.Audiences {
			name := "AudienceMisuse-" + app.ID + "-" + au.Segment
			a := opsStack.Alarms.Alarms[name]
			if a == nil {
				t.Errorf("no alarm %s", name)
				continue
			}
			p := alarms[logicalID(a)]
			want := map[string]any{"MetricName": MetricAudienceMisuseFindings, "Namespace": MetricsNamespace, "Threshold": 1,
				"ComparisonOperator": "GreaterThanOrEqualToThreshold", "EvaluationPeriods": 1, "Period": 86400, "Statistic": "Maximum",
				"TreatMissingData": "notBreaching",
				"Dimensions": []any{map[string]any{"Name": "App", "Value": app.ID}, map[string]any{"Name": "Audience", "Value": au.Segment},
					map[string]any{"Name": "Function", "Value": "insights"}}}
			for k, v := range want {
				if !sameJSON(p[k], v) {
					t.Errorf("%s %s = %v, want %v", name, k, p[k], v)
				}
			}
			if acts, _ := p["AlarmActions"].([]any); len(acts) == 0 {
				t.Errorf("%s notifies nobody", name)
			}
		}
	}
	// A stack without the insights run has nothing to alarm on.
	for _, p := range alarmsOf(templ) {
		if p["MetricName"] == MetricAudienceMisuseFindings {
			t.Errorf("a stack without the insights run declares a misuse alarm: %v", p)
		}
	}
}

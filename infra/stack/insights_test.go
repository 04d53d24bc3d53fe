package stack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/handlers/insights"
)

func TestInsights(t *testing.T) {
	in := segStack.Insights
	if in == nil {
		t.Fatal("SegmentsEnabled stack has no Insights")
	}
	if testStack.Insights != nil {
		t.Error("a stack without segments declares the insights run")
	}
	fnArn := getAtt(in.Function.Function, "Arn")

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"function: 512 MB, 15 min, reserved concurrency 1, the audience sync's environment", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::Lambda::Function")[logicalID(in.Function.Function)]
			if res == nil {
				t.Fatal("insights function not in the template")
			}
			props := res["Properties"].(map[string]any)
			for k, v := range map[string]any{"MemorySize": 512, "Timeout": 900, "ReservedConcurrentExecutions": 1,
				"Runtime": "provided.al2023", "Architectures": []any{"arm64"}} {
				if !sameJSON(props[k], v) {
					t.Errorf("%s = %v, want %v", k, props[k], v)
				}
			}
			want := map[string]any{
				"STATE_TABLE_NAME": ref(segStack.Segments.Table), "APP_CONFIG_FILE": "/var/task/config.json",
				"META_GRAPH_URL": "https://graph.facebook.com", "META_MARKETING_VERSION": "v27.0",
				"META_SECRET_ID": ref(segStack.Meta.Secret), "LOG_LEVEL": "info", "METRICS_NAMESPACE": "Retarget",
			}
			if vars := functionEnv(t, segTempl, in.Function.Function); !sameJSON(vars, want) {
				g, _ := json.Marshal(vars)
				w, _ := json.Marshal(want)
				t.Errorf("environment\n got %s\nwant %s", g, w)
			}
		}},
		{"schedule: daily, retries, dead letters, input", func(t *testing.T) {
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
					"ScheduleExpression": "rate(1 day)",
					"State":              "ENABLED",
					"Target": map[string]any{
						"Arn":              fnArn,
						"RoleArn":          assertions.Match_AnyValue(),
						"Input":            InsightsInput,
						"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 6 * 3600},
						"DeadLetterConfig": map[string]any{"Arn": getAtt(in.DeadLetters, "Arn")},
					},
				})
			})
		}},
		{"grants: the table actions it uses on the table only, the Meta secret's value", func(t *testing.T) {
			roleRef, _ := json.Marshal(ref(in.Function.Function.Role()))
			var actions []string
			for id, p := range resourcesIn(segTempl, "AWS::IAM::Policy") {
				props := p["Properties"].(map[string]any)
				if roles, _ := json.Marshal(props["Roles"]); !strings.Contains(string(roles), string(roleRef)) {
					continue
				}
				for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					st := st.(map[string]any)
					acts, ok := st["Action"].([]any)
					if !ok {
						acts = []any{st["Action"]}
					}
					for _, a := range acts {
						a := a.(string)
						switch {
						case strings.HasPrefix(a, "dynamodb:"):
							actions = append(actions, a)
							if !sameJSON(st["Resource"], getAtt(segStack.Segments.Table, "Arn")) {
								t.Errorf("policy %s: %s on %v, want the table only", id, a, st["Resource"])
							}
						case a == "secretsmanager:GetSecretValue":
							if !sameJSON(st["Resource"], ref(segStack.Meta.Secret)) {
								t.Errorf("policy %s: secret %v", id, st["Resource"])
							}
						}
					}
				}
			}
			slices.Sort(actions)
			if want := []string{"dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"}; !slices.Equal(actions, want) {
				t.Errorf("table actions %v, want %v", actions, want)
			}
		}},
		{"function alarms: errors, throttles, dead letters", func(t *testing.T) {
			for _, name := range []string{"InsightsErrors", "InsightsThrottles", "InsightsDeadLettersDepth"} {
				if segStack.Alarms.Alarms[name] == nil {
					t.Errorf("no alarm %s", name)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestInsightsMetricNames(t *testing.T) {
	for _, p := range [][2]string{
		{InsightsMetricFunction, insights.Consumer},
		{MetricAudienceSpend, insights.MetricAudienceSpend},
		{MetricZeroSpendWithMembers, insights.MetricZeroSpendWithMembers},
		{MetricCostPerIncrementalReeng, insights.MetricCostPerIncremental},
		{MetricHoldoutContaminated, insights.MetricHoldoutContaminated},
		{MetricAutomationProposals, insights.MetricAutomationProposals},
	} {
		if p[0] != p[1] {
			t.Errorf("the stack watches %q, the handler emits %q", p[0], p[1])
		}
	}
}

func TestInsightsAlarms(t *testing.T) {
	// opsConfig: app shop, audiences cart_abandoner and vip, target 4.5, alarm_days 2.
	alarms := resourcesIn(opsTempl, "AWS::CloudWatch::Alarm")
	find := func(metric, segment string) map[string]any {
		for _, a := range alarms {
			p := a["Properties"].(map[string]any)
			if p["MetricName"] != metric {
				continue
			}
			for _, d := range p["Dimensions"].([]any) {
				if d.(map[string]any)["Value"] == segment {
					return p
				}
			}
		}
		return nil
	}
	for _, seg := range []string{"cart_abandoner", "vip"} {
		cost := find(MetricCostPerIncrementalReeng, seg)
		want := map[string]any{"Threshold": 4.5, "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 2,
			"DatapointsToAlarm": 2, "Period": 86400, "Statistic": "Maximum", "TreatMissingData": "notBreaching", "Namespace": MetricsNamespace,
			"Dimensions": []any{map[string]any{"Name": "App", "Value": "shop"}, map[string]any{"Name": "Audience", "Value": seg},
				map[string]any{"Name": "Function", "Value": "insights"}}}
		for k, v := range want {
			if cost == nil || !sameJSON(cost[k], v) {
				t.Errorf("%s cost alarm %s = %v, want %v", seg, k, cost[k], v)
			}
		}
		zero := find(MetricZeroSpendWithMembers, seg)
		want = map[string]any{"Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "EvaluationPeriods": 2,
			"DatapointsToAlarm": 2, "Period": 86400, "TreatMissingData": "notBreaching"}
		for k, v := range want {
			if zero == nil || !sameJSON(zero[k], v) {
				t.Errorf("%s zero-spend alarm %s = %v, want %v", seg, k, zero[k], v)
			}
		}
		if zero != nil && len(zero["AlarmActions"].([]any)) == 0 {
			t.Errorf("%s zero-spend alarm notifies nobody", seg)
		}
	}
	// The dashboard graphs spend and cost per audience.
	for _, d := range resourcesIn(opsTempl, "AWS::CloudWatch::Dashboard") {
		body, _ := json.Marshal(d["Properties"].(map[string]any)["DashboardBody"])
		for _, want := range []string{"Audience spend per day", "Cost per incremental re-engagement", MetricAudienceSpend} {
			if !strings.Contains(string(body), want) {
				t.Errorf("dashboard lacks %q", want)
			}
		}
	}
}

// TestAutomationProposalsAlarm: an app with automation gets one alarm on its proposals (a day's
// sum of at least one notifies), an app without none.
func TestAutomationProposalsAlarm(t *testing.T) {
	cfg := &appconfig.Config{Apps: []appconfig.App{
		{ID: "shop", Automation: &appconfig.Automation{Rules: []appconfig.AutomationRule{{ID: "r"}}}},
		{ID: "plain"},
	}}
	stack := awscdk.NewStack(awscdk.NewApp(nil), jsii.String("Auto"), nil)
	var names []string
	insightsAlarms(stack, cfg, func(name string, a awscloudwatch.Alarm) { names = append(names, name) })
	if want := []string{"AutomationProposals-shop"}; !slices.Equal(names, want) {
		t.Fatalf("alarms %v, want %v", names, want)
	}
	for _, a := range resourcesIn(plain(t, assertions.Template_FromStack(stack, nil)), "AWS::CloudWatch::Alarm") {
		p := a["Properties"].(map[string]any)
		want := map[string]any{"MetricName": MetricAutomationProposals, "Statistic": "Sum", "Threshold": 1, "EvaluationPeriods": 1,
			"Period": 86400, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
			"Dimensions": []any{map[string]any{"Name": "App", "Value": "shop"}, map[string]any{"Name": "Function", "Value": "insights"}}}
		for k, v := range want {
			if !sameJSON(p[k], v) {
				t.Errorf("proposals alarm %s = %v, want %v", k, p[k], v)
			}
		}
	}
}

func TestInsightsAlarmsWithoutTarget(t *testing.T) {
	// A target of 0 means no cost alarm; the zero-spend alarm stays, over the default 3 days.
	cfg := &appconfig.Config{Apps: []appconfig.App{{ID: "shop", Audiences: []appconfig.Audience{{Segment: "vip"}}}}}
	stack := awscdk.NewStack(awscdk.NewApp(nil), jsii.String("Bare"), nil)
	var names []string
	var periods []float64
	insightsAlarms(stack, cfg, func(name string, a awscloudwatch.Alarm) { names = append(names, name) })
	for _, a := range resourcesIn(plain(t, assertions.Template_FromStack(stack, nil)), "AWS::CloudWatch::Alarm") {
		periods = append(periods, a["Properties"].(map[string]any)["EvaluationPeriods"].(float64))
	}
	if want := []string{"ZeroSpendWithMembers-shop-vip"}; !slices.Equal(names, want) || !slices.Equal(periods, []float64{3}) {
		t.Errorf("alarms %v over %v periods, want %v over 3", names, periods, want)
	}
}

func plain(t *testing.T, tpl assertions.Template) map[string]any {
	t.Helper()
	m, err := plainTemplate(tpl)
	if err != nil {
		t.Fatal(fmt.Errorf("template: %w", err))
	}
	return m
}

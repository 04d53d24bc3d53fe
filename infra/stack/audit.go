package stack

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// MetricAudienceMisuseFindings is the insights run's count of an audience's misuse findings
// (handler insights, audit.go; a test keeps the names equal).
const MetricAudienceMisuseFindings = "AudienceMisuseFindings"

// auditAlarms declares, per configured audience, the alarm on the daily misuse audit: any
// finding in one daily period (a foreign account holding or using the audience or its holdout
// audience, an ad set outside meta.allowed_campaigns including it, an active ad set not
// excluding its holdout audience). Missing data (no run, or an incomplete audit that found
// nothing) does not alarm: the audit's own ALERT says why it is incomplete.
func auditAlarms(c constructs.Construct, cfg *appconfig.Config, add func(name string, alarm awscloudwatch.Alarm)) {
	period := awscdk.Duration_Hours(jsii.Number(insightsAlarmPeriodHours))
	for _, app := range cfg.Apps {
		for _, au := range app.Audiences {
			name := "AudienceMisuse-" + app.ID + "-" + au.Segment
			add(name, awscloudwatch.NewAlarm(c, jsii.String(name), &awscloudwatch.AlarmProps{
				AlarmDescription: jsii.String(fmt.Sprintf("The daily audit found audience %s of app %s (or its holdout audience) held or used against the app's config: see the insights function's ALERT lines and retarget audiences audit",
					au.Segment, app.ID)),
				Metric:             emfMetricStat(MetricAudienceMisuseFindings, period, "Maximum", "Function", InsightsMetricFunction, "App", app.ID, "Audience", au.Segment),
				Threshold:          jsii.Number(1),
				ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
				EvaluationPeriods:  jsii.Number(1),
				TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			}))
		}
	}
}

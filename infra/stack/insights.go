package stack

import (
	"cmp"
	"errors"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// InsightsFunctionName is the function's folder under functions/ and under the build directory.
const InsightsFunctionName = "insights"

// Environment of the insights function (a contract with functions/insights), besides the
// common APP_CONFIG_FILE, LOG_LEVEL and METRICS_NAMESPACE: the audience sync's
// env.StateTableName, env.GraphURL, env.MarketingVersion and env.MetaSecretID.

// Sizes and schedule of Insights.
const (
	// InsightsIntervalMinutes: once a day (Meta's insights settle over days; the run re-pulls
	// the last 28).
	InsightsIntervalMinutes = 24 * 60
	InsightsMemoryMiB       = 512
	// InsightsTimeoutSeconds leaves room for Meta's asynchronous report jobs.
	InsightsTimeoutSeconds = 900
	// InsightsReservedConcurrency: one run at a time (a scheduled run and an on-demand one
	// would pull the same days and spend the same rate-limit budget).
	InsightsReservedConcurrency = 1
	InsightsRetryAttempts       = 2
	InsightsMaxEventAgeHours    = 6
)

// InsightsInput is the payload every scheduled run receives (the sweeper's shape).
const InsightsInput = SweepInput

// The insights run's EMF metrics (handler insights; the stack links no handler, a test keeps
// the names equal) and its Function dimension.
const (
	InsightsMetricFunction        = "insights"
	MetricAudienceSpend           = "AudienceSpend"
	MetricZeroSpendWithMembers    = "ZeroSpendWithMembers"
	MetricCostPerIncrementalReeng = "CostPerIncrementalReengagement"
	MetricHoldoutContaminated     = "HoldoutContaminated"
	MetricAutomationProposals     = "AutomationProposals"
	insightsAlarmPeriodHours      = 24
)

// DynamoDB actions of the insights run: GetItem reads the audience sync state and an automation
// action, Query reads the spend rows, the cohort counters, the KPI snapshots and the day's
// actions of one partition, BatchWriteItem writes spend rows and KPI snapshots, PutItem writes
// an automation action (conditionally, on its version).
var insightsTableActions = []string{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:PutItem"}

// InsightsProps configures the insights run.
type InsightsProps struct {
	Config       *appconfig.Config
	FunctionsDir string
	// Table is the segment state table.
	Table awsdynamodb.ITableV2
	// MetaSecret holds the Meta credentials (the forwarder's secret).
	MetaSecret awssecretsmanager.ISecret
	// MetaGraphURL and MetaMarketingVersion: as for AudienceSyncProps.
	MetaGraphURL, MetaMarketingVersion string

	QueueRemovalPolicy awscdk.RemovalPolicy
	LogRetention       awslogs.RetentionDays
	LogRemovalPolicy   awscdk.RemovalPolicy
}

// Insights pulls Ads Insights spend daily into the state table.
type Insights struct {
	constructs.Construct
	Function    *GoFunction
	Schedule    awsscheduler.Schedule
	DeadLetters awssqs.Queue
}

// NewInsights declares the function, its daily schedule and dead-letter queue, and grants
// exactly the table and secret actions it uses.
func NewInsights(scope constructs.Construct, id string, props *InsightsProps) *Insights {
	if props == nil || props.Config == nil || props.FunctionsDir == "" || props.Table == nil || props.MetaSecret == nil {
		panic(errors.New("insights: Config, FunctionsDir, Table and MetaSecret are required"))
	}
	graphURL, apiVersion := marketingEndpoint("insights", props.MetaGraphURL, props.MetaMarketingVersion)
	queueRemoval := retainByDefault(props.QueueRemovalPolicy)
	c := constructs.NewConstruct(scope, jsii.String(id))
	deadLetters := newDeadLetterQueue(c, "DeadLetters", queueRemoval)
	fn := NewGoFunction(c, "Function", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         InsightsFunctionName,
		Config:       props.Config,
		Description:  "Pulls Ads Insights spend per ad set and day and checks the holdout exclusions",
		Environment: map[string]*string{
			env.StateTableName:   props.Table.TableName(),
			env.GraphURL:         jsii.String(graphURL),
			env.MarketingVersion: jsii.String(apiVersion),
			env.MetaSecretID:     props.MetaSecret.SecretArn(),
		},
		MemoryMiB:           InsightsMemoryMiB,
		Timeout:             awscdk.Duration_Seconds(jsii.Number(InsightsTimeoutSeconds)),
		ReservedConcurrency: InsightsReservedConcurrency,
		DeadLetterQueue:     deadLetters,
		LogRetention:        props.LogRetention,
		LogRemovalPolicy:    props.LogRemovalPolicy,
	})
	allowTable(fn.Function, insightsTableActions, props.Table.TableArn())
	fn.Function.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
		Resources: jsii.Strings(*props.MetaSecret.SecretArn()),
	}))
	schedule := newScheduledRun(c, "Schedule", "Runs the insights pull", fn.Function, InsightsIntervalMinutes,
		InsightsInput, InsightsRetryAttempts, InsightsMaxEventAgeHours, deadLetters)
	return &Insights{Construct: c, Function: fn, Schedule: schedule, DeadLetters: deadLetters}
}

// insightsAlarms declares, per configured audience, the alarms on the insights metrics (daily
// periods, alarm_days of them): cost per incremental re-engagement above the app's target
// (only when a target is set), and zero spend while the audience has members. Missing data
// (no pull, not enough data for a cost) never alarms.
func insightsAlarms(c constructs.Construct, cfg *appconfig.Config, add func(name string, alarm awscloudwatch.Alarm)) {
	period := awscdk.Duration_Hours(jsii.Number(insightsAlarmPeriodHours))
	for _, app := range cfg.Apps {
		if app.Automation != nil {
			// An operator reviews what the rules decided: proposals to apply in propose mode,
			// changes made in apply mode.
			name := "AutomationProposals-" + app.ID
			add(name, awscloudwatch.NewAlarm(c, jsii.String(name), &awscloudwatch.AlarmProps{
				AlarmDescription: jsii.String(fmt.Sprintf("The automation of app %s recorded actions (mode %q): review them with retarget automation list",
					app.ID, cmp.Or(app.Automation.Mode, appconfig.AutomationPropose))),
				Metric:             emfMetricStat(MetricAutomationProposals, period, "Sum", "Function", InsightsMetricFunction, "App", app.ID),
				Threshold:          jsii.Number(1),
				ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
				EvaluationPeriods:  jsii.Number(1),
				TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			}))
		}
		days := float64(app.Measurement.Days())
		for _, au := range app.Audiences {
			dims := []string{"Function", InsightsMetricFunction, "App", app.ID, "Audience", au.Segment}
			if target := app.Measurement.TargetCostPerIncrementalReengagement; target > 0 {
				name := "CostPerIncrementalReengagement-" + app.ID + "-" + au.Segment
				add(name, awscloudwatch.NewAlarm(c, jsii.String(name), &awscloudwatch.AlarmProps{
					AlarmDescription: jsii.String(fmt.Sprintf("The cost per incremental re-engagement of audience %s of app %s stayed above %v (measurement.target_cost_per_incremental_reengagement) for %.0f days: see retarget report",
						au.Segment, app.ID, target, days)),
					Metric:             emfMetricStat(MetricCostPerIncrementalReeng, period, "Maximum", dims...),
					Threshold:          jsii.Number(target),
					ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
					EvaluationPeriods:  jsii.Number(days),
					DatapointsToAlarm:  jsii.Number(days),
					TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
				}))
			}
			name := "ZeroSpendWithMembers-" + app.ID + "-" + au.Segment
			add(name, awscloudwatch.NewAlarm(c, jsii.String(name), &awscloudwatch.AlarmProps{
				AlarmDescription: jsii.String(fmt.Sprintf("Audience %s of app %s has members but its ad sets spent nothing for %.0f days (paused, out of budget, or the audience is in no ad set)",
					au.Segment, app.ID, days)),
				Metric:             emfMetricStat(MetricZeroSpendWithMembers, period, "Maximum", dims...),
				Threshold:          jsii.Number(1),
				ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
				EvaluationPeriods:  jsii.Number(days),
				DatapointsToAlarm:  jsii.Number(days),
				TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
			}))
		}
	}
}

// insightsWidgets are the dashboard's spend and cost graphs, one line per audience.
func insightsWidgets(cfg *appconfig.Config) []awscloudwatch.IWidget {
	period := awscdk.Duration_Hours(jsii.Number(insightsAlarmPeriodHours))
	var spend, cost []awscloudwatch.IMetric
	for _, app := range cfg.Apps {
		for _, au := range app.Audiences {
			dims := []string{"Function", InsightsMetricFunction, "App", app.ID, "Audience", au.Segment}
			label := &awscloudwatch.MetricOptions{Label: jsii.String(app.ID + " " + au.Segment)}
			spend = append(spend, emfMetricStat(MetricAudienceSpend, period, "Maximum", dims...).With(label))
			cost = append(cost, emfMetricStat(MetricCostPerIncrementalReeng, period, "Maximum", dims...).With(label))
		}
	}
	if len(spend) == 0 {
		return nil
	}
	graph := func(title string, left []awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &left, Width: jsii.Number(12), Height: jsii.Number(6),
		})
	}
	return []awscloudwatch.IWidget{graph("Audience spend per day (account currency)", spend),
		graph("Cost per incremental re-engagement (28 join days)", cost)}
}

package stack

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
)

// Alarm thresholds. The functions' EMF metrics are in MetricsNamespace (see functions/README.md, the metrics of each function).
const (
	// IteratorAgeAlarmMinutes: a stream consumer this far behind for 15 minutes alarms.
	IteratorAgeAlarmMinutes = 15
	// CapiFailureAlarmPercent of the events a forwarder batch could not deliver (retried or
	// dead-lettered), over 15 minutes.
	CapiFailureAlarmPercent = 5
	// AudienceStaleAlarmSeconds since an audience's last complete sync.
	AudienceStaleAlarmSeconds = 3600
	// IngestAnomalyStdDevs is the width of the ingest volume's expected band.
	IngestAnomalyStdDevs = 3
	alarmPeriodMinutes   = 5
	// versionAlarmPeriodHours is the period of the Meta version alarms: their metric comes
	// with cold starts only.
	versionAlarmPeriodHours = 6
)

// MetaVersionDaysLeftMetric is the EMF metric of the days left of a function's Meta API version
// (metagraph.MetricVersionDaysLeft; the stack links no adapter, a test keeps the names equal).
const MetaVersionDaysLeftMetric = "MetaAPIVersionDaysLeft"

// versionSetting names the setting of each API's version, for the alarm descriptions.
var versionSetting = map[metaversions.API]string{
	metaversions.Conversions: "context metaCapiVersion, META_CAPI_VERSION",
	metaversions.Marketing:   "context metaMarketingVersion, META_MARKETING_VERSION",
}

// AlarmsProps wires the alarms to the pipeline's parts; Segments and AudienceSync may be nil.
type AlarmsProps struct {
	Config       *appconfig.Config
	Ingest       *IngestApi
	Stream       awskinesis.IStream
	Forwarder    *CapiForwarder
	Segments     *SegmentState
	AudienceSync *AudienceSync
	// Insights, when set, adds its function's alarms, the per-audience spend and cost alarms
	// and their dashboard widgets.
	Insights *Insights
	// Channels, when set, adds the depth alarm of each channel's dead-letter queue.
	Channels *Channels
	// Archive, when set, adds the transformation's alarms and the delivery stream's (see
	// archiveAlarms).
	Archive *Archive
	// ArchivePurge, when set, adds the purge function's alarms and its dead letters'.
	ArchivePurge *ArchivePurge
	// AudienceSyncIntervalMinutes is the sync's schedule (to tell a stopped sync).
	AudienceSyncIntervalMinutes int
	// Email, when set, is subscribed to the topic (the address must confirm).
	Email string
	// KeyRemovalPolicy of the topic's key; defaults to RETAIN.
	KeyRemovalPolicy awscdk.RemovalPolicy
}

// Alarms is the on-call view of the stack: CloudWatch alarms on every consumer's iterator age,
// every function's errors and throttles, every dead-letter queue's depth, the CAPI failure
// rate, each audience's staleness and the ingest volume (anomaly band), all notifying one SNS
// topic (encrypted with its own key), and a dashboard of the pipeline end to end.
type Alarms struct {
	constructs.Construct
	// Topic receives every alarm and its return to OK.
	Topic awssns.Topic
	// Key encrypts the topic; CloudWatch may use it to publish.
	Key awskms.Key
	// Alarms by name (also the suffix of their construct ids).
	Alarms map[string]awscloudwatch.IAlarm
	// Dashboard shows ingested, forwarded, rejected, segment changes, audience rows, backlog and
	// latency.
	Dashboard awscloudwatch.Dashboard
}

// NewAlarms declares the topic, the alarms and the dashboard.
func NewAlarms(scope constructs.Construct, id string, props *AlarmsProps) *Alarms {
	if props == nil || props.Config == nil || props.Ingest == nil || props.Stream == nil || props.Forwarder == nil {
		panic(errors.New("alarms: Config, Ingest, Stream and Forwarder are required"))
	}
	c := constructs.NewConstruct(scope, jsii.String(id))
	removal := props.KeyRemovalPolicy
	if removal == "" {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	key := awskms.NewKey(c, jsii.String("TopicKey"), &awskms.KeyProps{
		Description:       jsii.String("Encrypts the retarget alarm topic"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     removal,
	})
	// CloudWatch publishes alarms to the encrypted topic: it needs the key, for this account.
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Stack_Of(c).Account()}},
	}), nil)
	topic := awssns.NewTopic(c, jsii.String("Topic"), &awssns.TopicProps{
		DisplayName: jsii.String("retarget alarms"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	if props.Email != "" {
		// Notifications SNS could not deliver after its retries wait here, not lost.
		undelivered := newDeadLetterQueue(c, "UndeliveredNotifications", removal)
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(props.Email), &awssnssubscriptions.EmailSubscriptionProps{
			DeadLetterQueue: undelivered,
		}))
	}
	a := &Alarms{Construct: c, Topic: topic, Key: key, Alarms: map[string]awscloudwatch.IAlarm{}}
	action := awscloudwatchactions.NewSnsAction(topic)
	add := func(name string, alarm awscloudwatch.Alarm) {
		alarm.AddAlarmAction(action)
		alarm.AddOkAction(action)
		a.Alarms[name] = alarm
	}
	period := awscdk.Duration_Minutes(jsii.Number(alarmPeriodMinutes))
	threshold := func(name, description string, metric awscloudwatch.IMetric, over float64, periods float64, missing awscloudwatch.TreatMissingData) {
		add(name, awscloudwatch.NewAlarm(c, jsii.String(name), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(over),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(periods),
			DatapointsToAlarm:  jsii.Number(periods),
			TreatMissingData:   missing,
		}))
	}
	notBreaching := awscloudwatch.TreatMissingData_NOT_BREACHING

	// Functions: errors and throttles; consumers: iterator age.
	type fn struct {
		name     string
		f        *GoFunction
		consumer bool
		// throttlePeriods: the audience sync (reserved concurrency 1) is throttled when a long
		// run overlaps the next schedule; only a lasting throttle is news.
		throttlePeriods float64
	}
	fns := []fn{{"Ingest", props.Ingest.Ingest, false, 1}, {"Forwarder", props.Forwarder.Function, true, 1}}
	if s := props.Segments; s != nil {
		fns = append(fns, fn{"Updater", s.Updater, true, 1}, fn{"Sweeper", s.Sweeper, false, 1}, fn{"Reader", s.Reader, false, 1})
	}
	if s := props.AudienceSync; s != nil {
		fns = append(fns, fn{"AudienceSync", s.Function, false, 3})
	}
	if s := props.Insights; s != nil {
		fns = append(fns, fn{"Insights", s.Function, false, 1})
	}
	if s := props.Archive; s != nil {
		fns = append(fns, fn{"ArchiveTransform", s.Transform, false, 1})
		archiveAlarms(c, s, period, add)
	}
	if s := props.ArchivePurge; s != nil {
		fns = append(fns, fn{"ArchivePurge", s.Function, false, 1})
	}
	for _, f := range fns {
		opts := &awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}
		threshold(f.name+"Errors", fmt.Sprintf("The %s function failed (errors in 5 minutes): see its log group", f.name),
			f.f.Function.MetricErrors(opts), 0, 1, notBreaching)
		threshold(f.name+"Throttles", "Invocations were throttled: reserved concurrency or the account's limit",
			f.f.Function.MetricThrottles(opts), 0, f.throttlePeriods, notBreaching)
		if f.consumer {
			age := f.f.Function.Metric(jsii.String("IteratorAge"), &awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Maximum")})
			threshold(f.name+"IteratorAge", fmt.Sprintf("The consumer is more than %d minutes behind the stream for 15 minutes", IteratorAgeAlarmMinutes),
				age, IteratorAgeAlarmMinutes*60_000, 3, notBreaching)
		}
	}

	// Stream capacity: the ingest function retries throttled records within the request, then
	// answers them retryable; throttling through three periods means the stream is too small
	// (provisioned shards) or growing faster than on-demand adapts.
	throttled := props.Stream.MetricPutRecordsThrottledRecords(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")})
	threshold("StreamWritesThrottled", "Kinesis throttled record writes for 15 minutes: clients are told to retry; add shards (-c streamShards) or check the on-demand stream's limits",
		throttled, 0, 3, notBreaching)

	// Dead letters: any message waits for a person.
	queues := map[string]awssqs.IQueue{"ForwarderDeadLetters": props.Forwarder.DeadLetters, "ForwarderEsmFailures": props.Forwarder.EsmFailures}
	if s := props.Segments; s != nil {
		queues["UpdaterEsmFailures"], queues["SweepDeadLetters"] = s.EsmFailures, s.SweepDeadLetters
	}
	if s := props.AudienceSync; s != nil {
		queues["AudienceSyncDeadLetters"] = s.DeadLetters
	}
	if s := props.Insights; s != nil {
		queues["InsightsDeadLetters"] = s.DeadLetters
	}
	if s := props.ArchivePurge; s != nil {
		queues["ArchivePurgeDeadLetters"] = s.DeadLetters
	}
	if s := props.Channels; s != nil {
		for _, d := range s.Deliveries {
			queues["ChannelDeadLetters-"+d.App+"-"+d.Channel] = d.DeadLetters
		}
	}
	for _, name := range sortedKeys(queues) {
		depth := queues[name].MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Maximum")})
		threshold(name+"Depth", "Messages are waiting in a dead-letter queue: inspect and replay them (infra/docs/operations.md, dead letters)", depth, 0, 1, notBreaching)
	}

	// CAPI failure rate: events the forwarder could not deliver (retried or dead-lettered).
	fwd := func(metric string) awscloudwatch.Metric {
		return emfMetric(metric, period, "Function", "capi-forwarder")
	}
	failureRate := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String("100 * (retry + dead) / MAX([ok + retry + dead, 1])"),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"ok": fwd("EventsForwarded"), "retry": fwd("EventsToRetry"), "dead": fwd("EventsDeadLettered"),
		},
		Label:  jsii.String("CAPI failure %"),
		Period: period,
	})
	threshold("CapiFailureRate", fmt.Sprintf("More than %d%% of the events sent to the Conversions API failed for 15 minutes (check CAPIAuthFailures, Meta's status, the dead letters)", CapiFailureAlarmPercent),
		failureRate, CapiFailureAlarmPercent, 3, notBreaching)

	// Meta API versions: the functions that call Meta emit the days left of their configured
	// version at cold start (MetaVersionDaysLeftMetric, only once Meta has published its
	// expiry); under metaversions.AlarmDays someone must configure a newer version. The metric
	// comes only with cold starts: missing data keeps the alarm's state rather than clearing it.
	versionCallers := []struct{ name, function string }{{"Forwarder", "capi-forwarder"}}
	versionAPIs := map[string]metaversions.API{"capi-forwarder": metaversions.Conversions, "audience-sync": metaversions.Marketing}
	if props.AudienceSync != nil {
		versionCallers = append(versionCallers, struct{ name, function string }{"AudienceSync", "audience-sync"})
	}
	for _, vc := range versionCallers {
		api := versionAPIs[vc.function]
		days := emfMetricStat(MetaVersionDaysLeftMetric, awscdk.Duration_Hours(jsii.Number(versionAlarmPeriodHours)), "Minimum",
			"Function", vc.function, "API", string(api))
		add(vc.name+"MetaVersionExpiring", awscloudwatch.NewAlarm(c, jsii.String(vc.name+"MetaVersionExpiring"), &awscloudwatch.AlarmProps{
			AlarmDescription: jsii.String(fmt.Sprintf("The %s API version of the %s function expires in less than %d days: set a newer one (%s; retarget doctor lists the expiries)",
				api, vc.function, metaversions.AlarmDays, versionSetting[api])),
			Metric:             days,
			Threshold:          jsii.Number(metaversions.AlarmDays),
			ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_IGNORE,
		}))
	}

	// Audiences: staleness per audience, and a sync that stopped running at all.
	if s := props.AudienceSync; s != nil {
		for _, app := range props.Config.Apps {
			for _, au := range app.Audiences {
				stale := emfMetricStat("AudienceSecondsSinceSync", period, "Maximum", "Function", "audience-sync", "App", app.ID, "Audience", au.Segment)
				threshold("AudienceStale-"+app.ID+"-"+au.Segment, fmt.Sprintf("Audience %s of app %s has not completed a sync for an hour (rate limit, removal guard, refused upload: see the sync's logs)", au.Segment, app.ID),
					stale, AudienceStaleAlarmSeconds, 1, notBreaching)
			}
		}
		interval := props.AudienceSyncIntervalMinutes
		if interval <= 0 {
			interval = DefaultAudienceSyncIntervalMinutes
		}
		window := math.Max(float64(3*interval), 15)
		runs := s.Function.Function.MetricInvocations(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(window)), Statistic: jsii.String("Sum")})
		add("AudienceSyncNotRunning", awscloudwatch.NewAlarm(c, jsii.String("AudienceSyncNotRunning"), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(fmt.Sprintf("The audience sync has not run for %.0f minutes: check its schedule", window)),
			Metric:             runs,
			Threshold:          jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
		}))
	}

	if props.Insights != nil {
		insightsAlarms(c, props.Config, add)
		auditAlarms(c, props.Config, add)
	}

	// Ingest volume: outside the band CloudWatch learned for each app.
	for _, app := range props.Config.Apps {
		accepted := emfMetric("EventsAccepted", awscdk.Duration_Minutes(jsii.Number(15)), "Function", "ingest", "App", app.ID)
		alarm := awscloudwatch.NewAnomalyDetectionAlarm(c, jsii.String("IngestVolume-"+app.ID), &awscloudwatch.AnomalyDetectionAlarmProps{
			AlarmDescription:   jsii.String(fmt.Sprintf("Events accepted for app %s left their usual band (a broken release, an SDK outage, a flood)", app.ID)),
			Metric:             accepted,
			StdDevs:            jsii.Number(IngestAnomalyStdDevs),
			ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD,
			EvaluationPeriods:  jsii.Number(2),
			DatapointsToAlarm:  jsii.Number(2),
			TreatMissingData:   notBreaching,
		})
		alarm.AddAlarmAction(action)
		alarm.AddOkAction(action)
		a.Alarms["IngestVolume-"+app.ID] = alarm
	}

	a.Dashboard = newDashboard(c, props, fns[0].f, a)
	return a
}

// emfMetric is a Sum of one of the functions' EMF metrics with its exact dimensions (name,
// value pairs): EMF publishes one metric per dimension set.
func emfMetric(name string, period awscdk.Duration, dims ...string) awscloudwatch.Metric {
	return emfMetricStat(name, period, "Sum", dims...)
}

func emfMetricStat(name string, period awscdk.Duration, stat string, dims ...string) awscloudwatch.Metric {
	m := map[string]*string{}
	for i := 0; i+1 < len(dims); i += 2 {
		m[dims[i]] = jsii.String(dims[i+1])
	}
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String(MetricsNamespace), MetricName: jsii.String(name), DimensionsMap: &m,
		Period: period, Statistic: jsii.String(stat),
	})
}

// newDashboard lays the pipeline out from left to right: ingest, stream consumers, segments,
// audiences, dead letters, then every alarm's state.
func newDashboard(c constructs.Construct, props *AlarmsProps, ingest *GoFunction, a *Alarms) awscloudwatch.Dashboard {
	period := awscdk.Duration_Minutes(jsii.Number(alarmPeriodMinutes))
	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.GraphWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &left, Width: jsii.Number(8), Height: jsii.Number(6),
		})
	}
	var accepted, rejected []awscloudwatch.IMetric
	for _, app := range props.Config.Apps {
		ac := emfMetric("EventsAccepted", period, "Function", "ingest", "App", app.ID)
		rj := emfMetric("EventsRejected", period, "Function", "ingest", "App", app.ID)
		accepted = append(accepted, ac.With(&awscloudwatch.MetricOptions{Label: jsii.String("accepted " + app.ID)}))
		rejected = append(rejected, rj.With(&awscloudwatch.MetricOptions{Label: jsii.String("rejected " + app.ID)}))
	}
	apiLatency := props.Ingest.Latency
	latency := []awscloudwatch.IMetric{
		apiLatency(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("p50"), Label: jsii.String("API p50 ms")}),
		apiLatency(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("p99"), Label: jsii.String("API p99 ms")}),
		ingest.Function.MetricDuration(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("p99"), Label: jsii.String("ingest p99 ms")}),
	}
	fwd := func(m string) awscloudwatch.IMetric { return emfMetric(m, period, "Function", "capi-forwarder") }
	ages := []awscloudwatch.IMetric{props.Forwarder.Function.Function.Metric(jsii.String("IteratorAge"),
		&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Maximum"), Label: jsii.String("forwarder iterator age ms")})}
	rows := [][]awscloudwatch.IWidget{
		{graph("Ingested events", accepted...), graph("Rejected events", rejected...), graph("Latency", latency...)},
		{graph("Conversions API", fwd("EventsForwarded"), fwd("EventsToRetry"), fwd("EventsDeadLettered"), fwd("EventsSkippedNoConsent")),
			graph("CAPI requests", fwd("CAPIRequests"), fwd("CAPIRetries"), fwd("CAPIAuthFailures"))},
	}
	if s := props.Segments; s != nil {
		ages = append(ages, s.Updater.Function.Metric(jsii.String("IteratorAge"),
			&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Maximum"), Label: jsii.String("segment updater iterator age ms")}))
		upd := func(m string) awscloudwatch.IMetric { return emfMetric(m, period, "Function", "segment-updater") }
		rows = append(rows, []awscloudwatch.IWidget{
			graph("Segments", upd("EventsApplied"), upd("SegmentChanges"), upd("EventsDuplicate"), emfMetric("UsersSwept", period, "Function", "segment-sweeper")),
		})
	}
	rows[1] = append(rows[1], graph("Stream backlog (iterator age)", ages...))
	if props.AudienceSync != nil {
		var added, removed, pending []awscloudwatch.IMetric
		for _, app := range props.Config.Apps {
			pending = append(pending, emfMetricStat("PendingChanges", period, "Maximum", "Function", "audience-sync", "App", app.ID).
				With(&awscloudwatch.MetricOptions{Label: jsii.String("pending " + app.ID)}))
			for _, au := range app.Audiences {
				dims := []string{"Function", "audience-sync", "App", app.ID, "Audience", au.Segment}
				added = append(added, emfMetric("AudienceRowsAdded", period, dims...).With(&awscloudwatch.MetricOptions{Label: jsii.String("+" + au.Segment)}))
				removed = append(removed, emfMetric("AudienceRowsRemoved", period, dims...).With(&awscloudwatch.MetricOptions{Label: jsii.String("-" + au.Segment)}))
			}
		}
		rows = append(rows, []awscloudwatch.IWidget{graph("Audience rows added", added...), graph("Audience rows removed", removed...), graph("Audience backlog (pending changes)", pending...)})
	}
	if props.Insights != nil {
		if w := insightsWidgets(props.Config); len(w) > 0 {
			rows = append(rows, w)
		}
	}
	var alarms []interfacesawscloudwatch.IAlarmRef
	for _, name := range sortedKeys(a.Alarms) {
		alarms = append(alarms, a.Alarms[name])
	}
	rows = append(rows, []awscloudwatch.IWidget{awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
		Title: jsii.String("Alarms"), Alarms: &alarms, Width: jsii.Number(24), Height: jsii.Number(6),
	})})
	widgets := make([]*[]awscloudwatch.IWidget, len(rows))
	for i := range rows {
		widgets[i] = &rows[i]
	}
	d := awscloudwatch.NewDashboard(c, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DefaultInterval: awscdk.Duration_Hours(jsii.Number(6)),
		Widgets:         &widgets,
	})
	// CloudFormation takes Tags on a dashboard (the stack's tags land there), but cfn-lint
	// 1.51's schema of AWS::CloudWatch::Dashboard predates the property and reports it as
	// E3002 (additional property).
	ignoreCfnLint(d, "E3002")
	return d
}

// sortedKeys returns m's keys in order, so that construct ids and widgets are stable.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

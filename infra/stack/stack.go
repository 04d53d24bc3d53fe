// Package stack declares the retarget CloudFormation stack: one construct per concern
// (event stream, secrets, ingest API, CAPI forwarder, ...) with typed props and typed fields,
// composed by NewRetargetStack. The functions' code is prebuilt by `make build`; synth only
// stages it.
package stack

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// Defaults of RetargetStackProps.
const (
	DefaultFunctionsDir = "build/lambda"
	DefaultStage        = "dev"
	// ProdStage keeps logs for a year and retains the stream, log groups and dead-letter queues
	// on deletion.
	ProdStage = "prod"
)

// Output names of the stack (`cdk deploy --outputs-file`, scripts, the CLI (--stack) and the docs use them).
const (
	OutputApiUrl          = "ApiUrl"
	OutputEventStreamName = "EventStreamName"
	OutputPepperSecretArn = "PepperSecretArn"
	OutputMetaSecretArn   = "MetaSecretArn"
	// OutputDeadLetterQueueUrl is the forwarder's dead letters (one message per event).
	OutputDeadLetterQueueUrl = "DeadLetterQueueUrl"
	// OutputEsmFailureQueueUrl is the event source mapping's on-failure destination.
	OutputEsmFailureQueueUrl = "EsmFailureQueueUrl"
	// OutputStateTableName is the segment state table (only with SegmentsEnabled).
	OutputStateTableName = "StateTableName"
	// The segment functions' queues (only with SegmentsEnabled).
	OutputSegmentEsmFailureQueueUrl      = "SegmentEsmFailureQueueUrl"
	OutputSweepDeadLetterQueueUrl        = "SweepDeadLetterQueueUrl"
	OutputAudienceSyncDeadLetterQueueUrl = "AudienceSyncDeadLetterQueueUrl"
	// OutputEventBusName is the EventBridge bus of the segment changes (only with
	// SegmentsEnabled).
	OutputEventBusName = "EventBusName"
	// OutputAlarmTopicArn receives every alarm; OutputDashboardUrl opens the dashboard.
	OutputAlarmTopicArn = "AlarmTopicArn"
	OutputDashboardUrl  = "DashboardUrl"
	// OutputBackendPolicyArn is the managed policy allowing the IAM (SigV4) routes: attach it
	// to the role of an app's backend.
	OutputBackendPolicyArn = "BackendPolicyArn"
	// OutputMetaCapiVersion and OutputMetaMarketingVersion are the Meta API versions the
	// forwarder and the audience sync call (`retarget doctor --stack` checks their expiry).
	OutputMetaCapiVersion      = "MetaCapiVersion"
	OutputMetaMarketingVersion = "MetaMarketingVersion"
	// OutputArchiveBucketName and OutputArchiveTable are the event archive's bucket and Glue
	// table (<database>.<table>; only with ArchiveEnabled).
	OutputArchiveBucketName = "ArchiveBucketName"
	OutputArchiveTable      = "ArchiveTable"
)

// stagePattern keeps the stage usable as an API Gateway stage name and in resource names.
var stagePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// emailPattern is a plausibility check of the alarm address (SNS sends it a confirmation).
var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// RetargetStackProps configures the stack.
type RetargetStackProps struct {
	awscdk.StackProps
	// Config is the app config; required. It is validated again here.
	Config *appconfig.Config
	// FunctionsDir holds <fn>/bootstrap for each function; defaults to build/lambda.
	FunctionsDir string
	// Stage names the deployment (dev, prod, ...) and is the API Gateway stage name; defaults
	// to dev. "prod" keeps logs for a year and retains the stream, logs and queues on deletion.
	Stage string
	// PepperSecretArn reuses an existing pepper secret (complete ARN) instead of creating one.
	PepperSecretArn string
	// ApiGatewayCloudWatchRole makes this stack set the account's API Gateway logging role.
	ApiGatewayCloudWatchRole bool
	// MetaSecretArn reuses an existing Meta credentials secret (complete ARN) instead of
	// creating one.
	MetaSecretArn string
	// MetaGraphURL defaults to DefaultMetaGraphURL; MetaCAPIVersion (the forwarder's) and
	// MetaMarketingVersion (the audience sync's) to DefaultMetaCAPIVersion and
	// DefaultMetaMarketingVersion.
	MetaGraphURL, MetaCAPIVersion, MetaMarketingVersion string
	// MetaAPIVersion, when set, is the version of both where MetaCAPIVersion or
	// MetaMarketingVersion is empty.
	//
	// Deprecated: set MetaCAPIVersion and MetaMarketingVersion; Meta retires Marketing API
	// versions about a year after release, Graph API versions after two.
	MetaAPIVersion string
	// ForwarderReservedConcurrency caps the CAPI forwarder's concurrency; unset (0) by default.
	ForwarderReservedConcurrency float64
	// SegmentsEnabled declares the segment state (table, updater, sweeper, read route) and the
	// audience sync. Off by default: synth needs the bootstraps of segment-updater,
	// segment-sweeper, users-api and audience-sync. Off, the template holds nothing of it.
	SegmentsEnabled bool
	// UserTTLDays is how long an inactive user's segment state is kept; defaults to
	// DefaultUserTTLDays.
	UserTTLDays float64
	// ErasureTombstoneDays and ErasureAuditDays: see SegmentStateProps.
	ErasureTombstoneDays, ErasureAuditDays float64
	// SweepIntervalMinutes between segment sweeps; defaults to DefaultSweepIntervalMinutes.
	SweepIntervalMinutes float64
	// AudienceSyncIntervalMinutes between audience syncs; defaults to
	// DefaultAudienceSyncIntervalMinutes.
	AudienceSyncIntervalMinutes float64
	// WafRateLimit, when not 0, puts a WAF web ACL in front of the API that blocks a client IP
	// above this many requests per 5 minutes (see IngestApiProps.WafRateLimit).
	WafRateLimit float64
	// Api is the front door: ApiRest (default: REST API, API keys, usage plans, optional WAF) or
	// ApiHTTP (HTTP API, key authorizer, per-app limit in the function; infra/docs/front-door.md).
	Api string
	// SystemLogLevel is the level of Lambda's own log records in every function's log group:
	// "" or "INFO" (the default: platform.start and platform.report per invocation) or "WARN"
	// (those records dropped, about 680 bytes per invocation; see infra/docs/cost.md for what
	// that loses).
	SystemLogLevel string
	// AlarmEmail, when set, subscribes this address to the alarm topic (it must confirm).
	AlarmEmail string
	// StreamShards, when not 0, makes the event stream provisioned with this many shards
	// (1..MaxStreamShards) instead of on-demand: see EventStreamProps.Shards.
	StreamShards float64
	// ArchiveEnabled declares the event archive (Firehose from the stream to Parquet in S3,
	// the Glue table): see NewArchive. Off by default: synth needs the archive-transform
	// bootstrap. ArchiveExpiryDays deletes its files after this many days; 0 keeps them.
	ArchiveEnabled    bool
	ArchiveExpiryDays float64
}

// MaxStreamShards is the most shards StreamShards may ask for (the default shard quota of an
// account in the largest regions).
const MaxStreamShards = 500

// RetargetStack is the whole pipeline.
type RetargetStack struct {
	awscdk.Stack
	// Stage is the resolved stage name.
	Stage string
	// Events is the Kinesis event stream.
	Events *EventStream
	// Pepper is the secret keying pseudonymous user ids.
	Pepper *PepperSecret
	// Ingest is the REST API with the ingest function.
	Ingest *IngestApi
	// Routes holds the REST API's methods, declared from the access table, and the backend
	// policy; nil with the HTTP door.
	Routes *ApiRoutes
	// HTTP is the HTTP API front door; nil with the REST door.
	HTTP *HttpFrontDoor
	// Meta holds the Meta credentials every Graph API caller reads.
	Meta *MetaSecret
	// Forwarder sends the stream to the Conversions API.
	Forwarder *CapiForwarder
	// Segments keeps per-user state and segment membership; nil unless SegmentsEnabled.
	Segments *SegmentState
	// AudienceSync pushes membership changes to Meta Custom Audiences; nil unless
	// SegmentsEnabled.
	AudienceSync *AudienceSync
	// Insights pulls Ads Insights spend daily; nil unless SegmentsEnabled.
	Insights *Insights
	// Channels is the bus of the segment changes and the app channels' deliveries; nil unless
	// SegmentsEnabled.
	Channels *Channels
	// Archive is the event archive; nil unless ArchiveEnabled.
	Archive *Archive
	// ArchivePurge takes erased users' rows out of the archive; nil unless both the archive
	// and the segment state (where erasures are recorded) are declared.
	ArchivePurge *ArchivePurge
	// Alarms holds the alarm topic, the alarms and the dashboard.
	Alarms *Alarms
}

// NewRetargetStack declares the stack. It panics with a descriptive error when props are
// invalid (config, stage, Meta endpoint, segment settings) or a function bootstrap is missing;
// a CDK app's main recovers it.
func NewRetargetStack(scope constructs.Construct, id string, props *RetargetStackProps) *RetargetStack {
	p, err := resolveProps(props)
	if err != nil {
		panic(err)
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &p.StackProps)
	awscdk.Tags_Of(stack).Add(jsii.String("project"), jsii.String("retarget"), nil)
	awscdk.Tags_Of(stack).Add(jsii.String("stage"), jsii.String(p.Stage), nil)

	// Data, dead letters and logs of prod outlive a deleted stack; a dev stack cleans up after
	// itself. The secrets are retained everywhere (see PepperSecret and MetaSecret).
	removal, retention := awscdk.RemovalPolicy_DESTROY, awslogs.RetentionDays_ONE_MONTH
	if p.Stage == ProdStage {
		removal, retention = awscdk.RemovalPolicy_RETAIN, awslogs.RetentionDays_ONE_YEAR
	}

	events := NewEventStream(stack, "Events", &EventStreamProps{RemovalPolicy: removal, Shards: p.StreamShards})
	pepper := NewPepperSecret(stack, "Pepper", &PepperSecretProps{ExistingSecretArn: p.PepperSecretArn})
	ingest := NewIngestApi(stack, "IngestApi", &IngestApiProps{
		Config:           p.Config,
		FunctionsDir:     p.FunctionsDir,
		StageName:        p.Stage,
		Stream:           events.Stream,
		PepperSecret:     pepper.Secret,
		LogRetention:     retention,
		LogRemovalPolicy: removal,
		CloudWatchRole:   p.ApiGatewayCloudWatchRole,
		WafRateLimit:     p.WafRateLimit,
		Api:              p.Api,
	})

	meta := NewMetaSecret(stack, "MetaCredentials", &MetaSecretProps{ExistingSecretArn: p.MetaSecretArn})
	forwarder := NewCapiForwarder(stack, "CapiForwarder", &CapiForwarderProps{
		Config:              p.Config,
		FunctionsDir:        p.FunctionsDir,
		Stream:              events.Stream,
		MetaSecret:          meta.Secret,
		MetaGraphURL:        p.MetaGraphURL,
		MetaCAPIVersion:     p.MetaCAPIVersion,
		ReservedConcurrency: p.ForwarderReservedConcurrency,
		QueueRemovalPolicy:  removal,
		LogRetention:        retention,
		LogRemovalPolicy:    removal,
	})

	var segments *SegmentState
	var audienceSync *AudienceSync
	var insights *Insights
	var chans *Channels
	if p.SegmentsEnabled {
		segments = NewSegmentState(stack, "Segments", &SegmentStateProps{
			Config:               p.Config,
			FunctionsDir:         p.FunctionsDir,
			Stream:               events.Stream,
			Api:                  ingest,
			PepperSecret:         pepper.Secret,
			UserTTLDays:          p.UserTTLDays,
			ErasureTombstoneDays: p.ErasureTombstoneDays,
			ErasureAuditDays:     p.ErasureAuditDays,
			SweepIntervalMinutes: p.SweepIntervalMinutes,
			TableRemovalPolicy:   removal,
			DeletionProtection:   p.Stage == ProdStage,
			QueueRemovalPolicy:   removal,
			LogRetention:         retention,
			LogRemovalPolicy:     removal,
		})
		forwarder.ReadConsents(segments.Table)
		audienceSync = NewAudienceSync(stack, "AudienceSync", &AudienceSyncProps{
			Config:               p.Config,
			FunctionsDir:         p.FunctionsDir,
			Table:                segments.Table,
			MetaSecret:           meta.Secret,
			MetaGraphURL:         p.MetaGraphURL,
			MetaMarketingVersion: p.MetaMarketingVersion,
			IntervalMinutes:      p.AudienceSyncIntervalMinutes,
			QueueRemovalPolicy:   removal,
			LogRetention:         retention,
			LogRemovalPolicy:     removal,
		})
		insights = NewInsights(stack, "Insights", &InsightsProps{
			Config:               p.Config,
			FunctionsDir:         p.FunctionsDir,
			Table:                segments.Table,
			MetaSecret:           meta.Secret,
			MetaGraphURL:         p.MetaGraphURL,
			MetaMarketingVersion: p.MetaMarketingVersion,
			QueueRemovalPolicy:   removal,
			LogRetention:         retention,
			LogRemovalPolicy:     removal,
		})
		// The sweeper publishes the recorded changes (it runs every sweep interval).
		chans = NewChannels(stack, "Channels", &ChannelsProps{
			Config:             p.Config,
			Publisher:          segments.Sweeper.Function,
			QueueRemovalPolicy: removal,
		})
	}

	var archive *Archive
	if p.ArchiveEnabled {
		archive = NewArchive(stack, "Archive", &ArchiveProps{
			Config:           p.Config,
			FunctionsDir:     p.FunctionsDir,
			Stream:           events.Stream,
			Stage:            p.Stage,
			ExpiryDays:       p.ArchiveExpiryDays,
			LogRetention:     retention,
			LogRemovalPolicy: removal,
		})
	}
	var archivePurge *ArchivePurge
	if archive != nil && segments != nil {
		archivePurge = NewArchivePurge(stack, "ArchivePurge", &ArchivePurgeProps{
			Config:             p.Config,
			FunctionsDir:       p.FunctionsDir,
			Archive:            archive,
			Table:              segments.Table,
			ExpiryDays:         p.ArchiveExpiryDays,
			QueueRemovalPolicy: removal,
			LogRetention:       retention,
			LogRemovalPolicy:   removal,
		})
	}

	// The methods last: the users routes need the users function of the segment state.
	var usersAPI awslambda.IFunction
	if segments != nil {
		usersAPI = segments.Reader.Function
	}
	var routes *ApiRoutes
	var door *HttpFrontDoor
	apiURL, backendPolicy := (*string)(nil), awsiam.IManagedPolicy(nil)
	if p.Api == ApiHTTP {
		var users awslambda.Function
		if segments != nil {
			users = segments.Reader.Function
		}
		door = NewHttpFrontDoor(stack, "HttpApi", &HttpFrontDoorProps{Config: p.Config, FunctionsDir: p.FunctionsDir,
			StageName: p.Stage, Ingest: ingest.Ingest, UsersAPI: users, LogRetention: retention, LogRemovalPolicy: removal})
		ingest.Latency = door.Api.MetricLatency
		apiURL, backendPolicy = door.Stage.Url(), door.BackendPolicy
	} else {
		routes = NewApiRoutes(stack, "Routes", &ApiRoutesProps{Api: ingest, UsersAPI: usersAPI})
		apiURL, backendPolicy = ingest.Api.Url(), routes.BackendPolicy
	}

	syncInterval, _ := wholeOrDefault("audience sync interval minutes", p.AudienceSyncIntervalMinutes, DefaultAudienceSyncIntervalMinutes)
	alarms := NewAlarms(stack, "Alarms", &AlarmsProps{
		Config:                      p.Config,
		Ingest:                      ingest,
		Stream:                      events.Stream,
		Forwarder:                   forwarder,
		Segments:                    segments,
		AudienceSync:                audienceSync,
		Insights:                    insights,
		Channels:                    chans,
		Archive:                     archive,
		ArchivePurge:                archivePurge,
		AudienceSyncIntervalMinutes: syncInterval,
		Email:                       p.AlarmEmail,
		KeyRemovalPolicy:            removal,
	})

	output := func(id, description string, value *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(description), Value: value})
	}
	output(OutputApiUrl, "Base URL of the ingest API (append v1/events)", apiURL)
	if door != nil {
		secretArns := map[string]any{}
		for app, s := range door.KeySecrets {
			secretArns[app] = *s.SecretArn()
		}
		output(OutputAppKeySecrets, `Each app's key secret, {"<app>": "<secret arn>"}: its "key" is the app's x-api-key`, stack.ToJsonString(secretArns, nil))
	}
	output(OutputEventStreamName, "Kinesis stream receiving the accepted events", events.Stream.StreamName())
	output(OutputPepperSecretArn, "Secret keying pseudonymous user ids (retained; reuse it with -c pepperSecretArn=... if the stack is recreated)", pepper.Secret.SecretArn())
	output(OutputMetaSecretArn, `Meta credentials {"access_token", "app_secret"} (retained; set them with aws secretsmanager put-secret-value)`, meta.Secret.SecretArn())
	output(OutputDeadLetterQueueUrl, "Events the CAPI forwarder gave up on, one message each with its reason", forwarder.DeadLetters.QueueUrl())
	output(OutputEsmFailureQueueUrl, "Stream ranges the event source mapping skipped after its retries (shard and sequence numbers)", forwarder.EsmFailures.QueueUrl())

	if segments != nil {
		output(OutputStateTableName, "DynamoDB table of per-user segment state and membership changes", segments.Table.TableName())
		output(OutputSegmentEsmFailureQueueUrl, "Stream ranges the segment updater's event source mapping skipped after its retries", segments.EsmFailures.QueueUrl())
		output(OutputSweepDeadLetterQueueUrl, "Segment sweeper runs that failed or could not be delivered", segments.SweepDeadLetters.QueueUrl())
		output(OutputAudienceSyncDeadLetterQueueUrl, "Audience sync runs that failed or could not be delivered", audienceSync.DeadLetters.QueueUrl())
		output(OutputEventBusName, "EventBridge bus of the segment changes (source retarget, detail-types Segment Joined and Segment Left)", chans.Bus.EventBusName())
	}
	if archive != nil {
		output(OutputArchiveBucketName, "S3 bucket of the event archive (Parquet, app=<app>/day=<YYYY-MM-DD>/; errors under errors/)", archive.Bucket.BucketName())
		output(OutputArchiveTable, "Glue table of the event archive, <database>.<table> (query it with Athena; keep one row per app and event_id)",
			jsii.String(archive.DatabaseName+"."+archive.TableName))
	}
	output(OutputMetaCapiVersion, "Conversions API (Graph API) version of the CAPI forwarder (-c metaCapiVersion)", jsii.String(p.MetaCAPIVersion))
	output(OutputMetaMarketingVersion, "Marketing API version of the Custom Audiences calls (-c metaMarketingVersion)", jsii.String(p.MetaMarketingVersion))
	output(OutputBackendPolicyArn, "Managed policy allowing execute-api:Invoke on the IAM (SigV4) routes of this stage: attach it to your app backend's role", backendPolicy.ManagedPolicyArn())
	output(OutputAlarmTopicArn, "SNS topic of every alarm (subscribe on-call, or deploy with -c alarmEmail=...)", alarms.Topic.TopicArn())
	output(OutputDashboardUrl, "CloudWatch dashboard of the pipeline", awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("https://console.aws.amazon.com/cloudwatch/home?region="), awscdk.Aws_REGION(),
		jsii.String("#dashboards:name="), alarms.Dashboard.DashboardName(),
	}))

	if p.SystemLogLevel == "WARN" {
		setSystemLogLevel(stack, awslambda.SystemLogLevel_WARN)
	}
	return &RetargetStack{Stack: stack, Stage: p.Stage, Events: events, Pepper: pepper, Ingest: ingest, Routes: routes, HTTP: door, Meta: meta, Forwarder: forwarder,
		Segments: segments, AudienceSync: audienceSync, Insights: insights, Channels: chans, Archive: archive, ArchivePurge: archivePurge, Alarms: alarms}
}

// resolveProps validates props and fills in defaults without touching jsii, so bad input
// fails before any construct exists.
func resolveProps(props *RetargetStackProps) (RetargetStackProps, error) {
	if props == nil || props.Config == nil {
		return RetargetStackProps{}, errors.New("retarget stack: Config is required")
	}
	p := *props
	if err := p.Config.Validate(); err != nil {
		return p, fmt.Errorf("retarget stack: app config: %w", err)
	}
	if err := CheckDeployableChannels(p.Config); err != nil {
		return p, fmt.Errorf("retarget stack: %w", err)
	}
	if !p.SegmentsEnabled {
		if err := channelsNeedSegments(p.Config); err != nil {
			return p, fmt.Errorf("retarget stack: %w", err)
		}
	}
	if p.FunctionsDir == "" {
		p.FunctionsDir = DefaultFunctionsDir
	}
	if p.Stage == "" {
		p.Stage = DefaultStage
	}
	if !stagePattern.MatchString(p.Stage) {
		return p, fmt.Errorf("retarget stack: stage %q must be 1-32 lowercase letters, digits or '-', starting with a letter", p.Stage)
	}
	if p.MetaGraphURL == "" {
		p.MetaGraphURL = DefaultMetaGraphURL
	}
	p.MetaCAPIVersion = cmp.Or(p.MetaCAPIVersion, p.MetaAPIVersion, DefaultMetaCAPIVersion)
	p.MetaMarketingVersion = cmp.Or(p.MetaMarketingVersion, p.MetaAPIVersion, DefaultMetaMarketingVersion)
	for _, v := range []string{p.MetaCAPIVersion, p.MetaMarketingVersion} {
		if err := validateMetaEndpoint(p.MetaGraphURL, v); err != nil {
			return p, fmt.Errorf("retarget stack: %w", err)
		}
	}
	if rc := p.ForwarderReservedConcurrency; rc < 0 || rc != math.Trunc(rc) {
		return p, fmt.Errorf("retarget stack: forwarder reserved concurrency %v must be a positive whole number (or 0 for unset)", rc)
	}
	if _, err := wholeOrDefault("erasure tombstone days", p.ErasureTombstoneDays, DefaultErasureTombstoneDays); err != nil {
		return p, fmt.Errorf("retarget stack: %w", err)
	}
	if _, err := wholeOrDefault("erasure audit days", p.ErasureAuditDays, DefaultErasureAuditDays); err != nil {
		return p, fmt.Errorf("retarget stack: %w", err)
	}
	if _, err := wholeOrDefault("user ttl days", p.UserTTLDays, DefaultUserTTLDays); err != nil {
		return p, fmt.Errorf("retarget stack: %w", err)
	}
	if _, err := wholeOrDefault("sweep interval minutes", p.SweepIntervalMinutes, DefaultSweepIntervalMinutes); err != nil {
		return p, fmt.Errorf("retarget stack: %w", err)
	}
	if _, err := wholeOrDefault("audience sync interval minutes", p.AudienceSyncIntervalMinutes, DefaultAudienceSyncIntervalMinutes); err != nil {
		return p, fmt.Errorf("retarget stack: %w", err)
	}
	switch p.SystemLogLevel {
	case "", "INFO", "WARN":
	default:
		return p, fmt.Errorf("retarget stack: system log level %q must be INFO (the default) or WARN", p.SystemLogLevel)
	}
	switch p.Api {
	case "":
		p.Api = ApiRest
	case ApiRest, ApiHTTP:
	default:
		return p, fmt.Errorf("retarget stack: api %q must be %q (REST API, the default) or %q (HTTP API)", p.Api, ApiRest, ApiHTTP)
	}
	if p.Api == ApiHTTP && p.WafRateLimit != 0 {
		return p, fmt.Errorf("retarget stack: WAF rate limit %v needs the REST API: WAF cannot be attached to an HTTP API (-c api=http); see infra/docs/front-door.md", p.WafRateLimit)
	}
	if w := p.WafRateLimit; w != 0 && (w < MinWafRateLimit || w > MaxWafRateLimit || w != math.Trunc(w)) {
		return p, fmt.Errorf("retarget stack: WAF rate limit %v must be 0 (no WAF) or a whole number of requests per 5 minutes in %d..%d", w, MinWafRateLimit, MaxWafRateLimit)
	}
	if n := p.StreamShards; n != 0 && (n < 1 || n > MaxStreamShards || n != math.Trunc(n)) {
		return p, fmt.Errorf("retarget stack: stream shards %v must be 0 (on-demand) or a whole number in 1..%d", n, MaxStreamShards)
	}
	if d := p.ArchiveExpiryDays; d < 0 || d != math.Trunc(d) {
		return p, fmt.Errorf("retarget stack: archive expiry days %v must be a whole number (0: never expire)", d)
	}
	if e := p.AlarmEmail; e != "" && !emailPattern.MatchString(e) {
		return p, fmt.Errorf("retarget stack: alarm e-mail %q is not an e-mail address", e)
	}
	if p.Description == nil {
		p.Description = jsii.String(fmt.Sprintf("retarget (%s): mobile app events to Meta Conversions API and Custom Audiences", p.Stage))
	}
	return p, nil
}

// setSystemLogLevel sets the system log level of every Lambda function of the stack (each is
// declared with the JSON log format, which the setting needs).
func setSystemLogLevel(stack awscdk.Stack, level awslambda.SystemLogLevel) {
	for _, c := range *stack.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		if fn, ok := c.(awslambda.CfnFunction); ok {
			fn.AddPropertyOverride(jsii.String("LoggingConfig.SystemLogLevel"), jsii.String(string(level)))
		}
	}
}

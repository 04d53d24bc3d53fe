package stack

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Folders of the segment functions under functions/ and under the build directory.
const (
	SegmentUpdaterFunctionName = "segment-updater"
	SegmentSweeperFunctionName = "segment-sweeper"
	UsersAPIFunctionName       = "users-api"
)

// Schema of the segment state table: a contract with the DynamoDB segment store. All key
// attributes are strings except dueAt (a number, unix seconds).
const (
	StateTablePartitionKey   = "pk"
	StateTableSortKey        = "sk"
	StateTableTTLAttribute   = "expiresAt"
	PendingIndexName         = "pending"
	PendingIndexPartitionKey = "pendingPk"
	PendingIndexSortKey      = "sk"
	DueIndexName             = "due"
	DueIndexPartitionKey     = "dueBucket"
	DueIndexSortKey          = "dueAt"
	// The unpublished index lists the membership changes not yet published on the bus (the
	// publisher's change feed; sparse like pending).
	UnpublishedIndexName         = "unpublished"
	UnpublishedIndexPartitionKey = "unpubPk"
	UnpublishedIndexSortKey      = "sk"
)

// Erasure settings of the users function (ERASURE_TOMBSTONE_DAYS, ERASURE_AUDIT_DAYS).
const (
	DefaultErasureTombstoneDays = 30
	DefaultErasureAuditDays     = 1095
)

// Defaults and sizes of SegmentState.
const (
	// DefaultUserTTLDays keeps an inactive user's state a little over a year.
	DefaultUserTTLDays = 400
	// DefaultSweepIntervalMinutes is how often the sweeper runs.
	DefaultSweepIntervalMinutes = 5
	// DefaultSweepLookbackHours lets a sweep catch up with users that fell due during an
	// outage of up to two days.
	DefaultSweepLookbackHours = 48

	// SegmentBatchSize and SegmentBatchingWindowSeconds: about 100 users per batch at 5 events
	// each, one conditional write per user.
	SegmentBatchSize             = env.UpdaterBatchSize
	SegmentBatchingWindowSeconds = int(env.UpdaterBatchingWindow / time.Second)
	// SegmentRetryAttempts and SegmentMaxRecordAgeHours are the forwarder's: retries bounded
	// by record age, leaving 18 h of the stream's 24 h to replay a skipped range (the updater
	// is idempotent, so replaying is always safe).
	SegmentRetryAttempts     = DefaultForwarderRetryAttempts
	SegmentMaxRecordAgeHours = DefaultForwarderMaxRecordAgeHours
	// SegmentParallelization is one batch per shard at a time.
	SegmentParallelization = 1

	SegmentUpdaterMemoryMiB      = 512
	SegmentUpdaterTimeoutSeconds = 60
	SegmentSweeperMemoryMiB      = 256
	SegmentSweeperTimeoutSeconds = 300
	UsersAPIMemoryMiB            = 256
	UsersAPITimeoutSeconds       = 10

	// SweepRetryAttempts and SweepMaxEventAgeHours bound the Scheduler's retries of a failed
	// invocation; a missed run costs nothing, the next one reads the same due users.
	SweepRetryAttempts    = 2
	SweepMaxEventAgeHours = 1
)

// SweepInput is the payload every scheduled sweep receives: Scheduler sends it as is (no
// CloudWatch event envelope) with the run's time substituted, e.g. 2026-03-22T18:55:00Z.
const SweepInput = `{"source":"schedule","scheduled_time":"<aws.scheduler.scheduled-time>"}`

// DynamoDB actions of each function. Written out rather than GrantReadWriteData or
// GrantReadData, which add Scan, Query on every index, DescribeTable and more.
var (
	// The updater reads each user's partition (state and explicit consent decision) with one
	// Query of the table (no index: the policy names the table's ARN only), re-reads a user
	// item after a concurrent write (GetItem), conditionally writes user items, batch-writes
	// membership changes (BatchWriteItem covers puts and deletes of whole items, never
	// conditional) and adds to the outcome counters of measured audiences (UpdateItem ADD).
	updaterTableActions = []string{"dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"}
	// The sweeper does the same for due users, which it finds by querying the due index.
	sweeperTableActions    = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"}
	sweeperDueIndexActions = []string{"dynamodb:Query"}
	// As the publisher of segment changes it queries the unpublished index (marking a change
	// published is an UpdateItem, which it has) and batch-reads the users' last channel
	// deliveries (the cross-channel cool-down).
	publisherTableActions            = []string{"dynamodb:BatchGetItem"}
	publisherUnpublishedIndexActions = []string{"dynamodb:Query"}
	// The users function reads a user item; for consent and erasure it also batch-reads the
	// decision, writes it, the user item (conditionally), the audit record (PutItem) and the
	// membership changes (BatchWriteItem). The report route queries the table (not an index)
	// for an audience's cohort counters and the app's spend rows.
	readTableActions = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
)

// SegmentStateProps configures the segment state.
type SegmentStateProps struct {
	// Config is the validated app config (segment rules of each app).
	Config *appconfig.Config
	// FunctionsDir holds segment-updater/, segment-sweeper/ and users-api/ with their
	// bootstraps (see GoFunctionProps).
	FunctionsDir string
	// Stream is the event stream the updater reads through its event source mapping.
	Stream awskinesis.IStream
	// Api gives the users function API_KEY_APP_IDS (its routes are declared by ApiRoutes).
	Api *IngestApi
	// PepperSecret keys the pseudonymous user ids; the read function gets read access.
	PepperSecret awssecretsmanager.ISecret

	// UserTTLDays is how long an inactive user's state is kept; defaults to 400.
	UserTTLDays float64
	// ErasureTombstoneDays keeps an erased user's hashed identifiers for the audience removals
	// (default 30); ErasureAuditDays keeps erasure audit records (default 1095).
	ErasureTombstoneDays, ErasureAuditDays float64
	// SweepIntervalMinutes between sweeps; defaults to 5.
	SweepIntervalMinutes float64
	// SweepLookbackHours is how far back a sweep reads; defaults to 48.
	SweepLookbackHours float64

	// TableRemovalPolicy of the table; defaults to RETAIN.
	TableRemovalPolicy awscdk.RemovalPolicy
	// DeletionProtection refuses to delete the table until it is turned off (prod).
	DeletionProtection bool
	// QueueRemovalPolicy of both queues; defaults to RETAIN.
	QueueRemovalPolicy awscdk.RemovalPolicy
	// LogRetention of the functions' logs; defaults to one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy of the functions' log groups; defaults to RETAIN.
	LogRemovalPolicy awscdk.RemovalPolicy
}

// SegmentState keeps per-user state and segment membership: the table, the updater fed by the
// event stream, the sweeper run on a schedule for time-based transitions, and the users
// function.
type SegmentState struct {
	constructs.Construct
	// Table is the single state table: user items, membership changes, the pending and due
	// indexes.
	Table awsdynamodb.TableV2
	// Updater folds the stream into user state (segment-updater).
	Updater *GoFunction
	// UpdaterSource is the updater's Kinesis event source.
	UpdaterSource awslambdaeventsources.KinesisEventSource
	// EsmFailures is the updater mapping's on-failure destination (shard and sequence ranges).
	EsmFailures awssqs.Queue
	// Sweeper applies time-based transitions to due users (segment-sweeper).
	Sweeper *GoFunction
	// SweepSchedule runs the sweeper.
	SweepSchedule awsscheduler.Schedule
	// SweepDeadLetters receives the scheduled invocations Scheduler gave up on.
	SweepDeadLetters awssqs.Queue
	// Reader is the users-api function: ApiRoutes puts it behind the /v1/users and /v1/me
	// routes.
	Reader *GoFunction
}

// NewSegmentState declares the table, the three functions with their triggers, and grants each
// function the table actions it uses, nothing more.
func NewSegmentState(scope constructs.Construct, id string, props *SegmentStateProps) *SegmentState {
	if props == nil || props.Config == nil || props.FunctionsDir == "" || props.Stream == nil || props.Api == nil || props.PepperSecret == nil {
		panic(errors.New("segment state: Config, FunctionsDir, Stream, Api and PepperSecret are required"))
	}
	tombstoneDays, err := wholeOrDefault("erasure tombstone days", props.ErasureTombstoneDays, DefaultErasureTombstoneDays)
	if err != nil {
		panic(fmt.Errorf("segment state: %w", err))
	}
	auditDays, err := wholeOrDefault("erasure audit days", props.ErasureAuditDays, DefaultErasureAuditDays)
	if err != nil {
		panic(fmt.Errorf("segment state: %w", err))
	}
	ttlDays, err := wholeOrDefault("user ttl days", props.UserTTLDays, DefaultUserTTLDays)
	if err != nil {
		panic(fmt.Errorf("segment state: %w", err))
	}
	interval, err := wholeOrDefault("sweep interval minutes", props.SweepIntervalMinutes, DefaultSweepIntervalMinutes)
	if err != nil {
		panic(fmt.Errorf("segment state: %w", err))
	}
	lookback, err := wholeOrDefault("sweep lookback hours", props.SweepLookbackHours, DefaultSweepLookbackHours)
	if err != nil {
		panic(fmt.Errorf("segment state: %w", err))
	}
	tableRemoval, queueRemoval := retainByDefault(props.TableRemovalPolicy), retainByDefault(props.QueueRemovalPolicy)
	c := constructs.NewConstruct(scope, jsii.String(id))

	str := awsdynamodb.AttributeType_STRING
	table := awsdynamodb.NewTableV2(c, jsii.String("Table"), &awsdynamodb.TablePropsV2{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(StateTablePartitionKey), Type: str},
		SortKey:      &awsdynamodb.Attribute{Name: jsii.String(StateTableSortKey), Type: str},
		Billing:      awsdynamodb.Billing_OnDemand(nil),
		// The AWS-managed key (aws/dynamodb): encryption visible in KMS and CloudTrail, no key
		// policy to keep and nothing to grant to the functions.
		Encryption:          awsdynamodb.TableEncryptionV2_AwsManagedKey(),
		TimeToLiveAttribute: jsii.String(StateTableTTLAttribute),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		DeletionProtection: jsii.Bool(props.DeletionProtection),
		RemovalPolicy:      tableRemoval,
		GlobalSecondaryIndexes: &[]*awsdynamodb.GlobalSecondaryIndexPropsV2{
			{
				// Sparse: only membership changes not yet synced carry pendingPk.
				IndexName:      jsii.String(PendingIndexName),
				PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(PendingIndexPartitionKey), Type: str},
				SortKey:        &awsdynamodb.Attribute{Name: jsii.String(PendingIndexSortKey), Type: str},
				ProjectionType: awsdynamodb.ProjectionType_ALL,
			},
			{
				// Sparse: only membership changes not yet published on the bus carry unpubPk.
				IndexName:      jsii.String(UnpublishedIndexName),
				PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(UnpublishedIndexPartitionKey), Type: str},
				SortKey:        &awsdynamodb.Attribute{Name: jsii.String(UnpublishedIndexSortKey), Type: str},
				ProjectionType: awsdynamodb.ProjectionType_ALL,
			},
			{
				// Sparse: only users with a next due time carry dueBucket; keys are all a
				// sweep needs before it reads the user item itself.
				IndexName:      jsii.String(DueIndexName),
				PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(DueIndexPartitionKey), Type: str},
				SortKey:        &awsdynamodb.Attribute{Name: jsii.String(DueIndexSortKey), Type: awsdynamodb.AttributeType_NUMBER},
				ProjectionType: awsdynamodb.ProjectionType_KEYS_ONLY,
			},
		},
	})
	dueIndexArn := jsii.String(*table.TableArn() + "/index/" + DueIndexName)
	ttl := jsii.String(strconv.Itoa(ttlDays))

	esmFailures := newDeadLetterQueue(c, "SegmentEsmFailures", queueRemoval)
	updater := NewGoFunction(c, "Updater", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         SegmentUpdaterFunctionName,
		Config:       props.Config,
		Description:  "Folds the event stream into per-user state and segment membership",
		Environment: map[string]*string{
			env.StateTableName: table.TableName(),
			env.UserTTLDays:    ttl,
		},
		MemoryMiB:          SegmentUpdaterMemoryMiB,
		Timeout:            awscdk.Duration_Seconds(jsii.Number(SegmentUpdaterTimeoutSeconds)),
		LogRetention:       props.LogRetention,
		LogRemovalPolicy:   props.LogRemovalPolicy,
		NoAsyncDeadLetters: "invoked only by its Kinesis event source mapping, whose on-failure destination (an SQS queue) receives the ranges it gives up on; there is no asynchronous invocation to dead-letter",
	})
	allowTable(updater.Function, updaterTableActions, table.TableArn())
	// The forwarder's safety settings (see NewCapiForwarder and infra/docs/operations.md).
	updaterSource := awslambdaeventsources.NewKinesisEventSource(props.Stream, &awslambdaeventsources.KinesisEventSourceProps{
		StartingPosition:        awslambda.StartingPosition_TRIM_HORIZON,
		BatchSize:               jsii.Number(SegmentBatchSize),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(SegmentBatchingWindowSeconds)),
		ReportBatchItemFailures: jsii.Bool(true),
		BisectBatchOnError:      jsii.Bool(true),
		RetryAttempts:           jsii.Number(SegmentRetryAttempts),
		MaxRecordAge:            awscdk.Duration_Hours(jsii.Number(SegmentMaxRecordAgeHours)),
		ParallelizationFactor:   jsii.Number(SegmentParallelization),
		OnFailure:               awslambdaeventsources.NewSqsDlq(esmFailures),
	})
	updater.Function.AddEventSource(updaterSource)

	sweepDeadLetters := newDeadLetterQueue(c, "SweepDeadLetters", queueRemoval)
	sweeper := NewGoFunction(c, "Sweeper", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         SegmentSweeperFunctionName,
		Config:       props.Config,
		Description:  "Applies time-based segment transitions to the users due now",
		Environment: map[string]*string{
			env.StateTableName:     table.TableName(),
			env.SweepLookbackHours: jsii.String(strconv.Itoa(lookback)),
			env.UserTTLDays:        ttl,
		},
		MemoryMiB: SegmentSweeperMemoryMiB,
		Timeout:   awscdk.Duration_Seconds(jsii.Number(SegmentSweeperTimeoutSeconds)),
		// Scheduler invokes asynchronously: a run that fails after Lambda's retries lands here
		// as well as the invocations Scheduler could not deliver.
		DeadLetterQueue:  sweepDeadLetters,
		LogRetention:     props.LogRetention,
		LogRemovalPolicy: props.LogRemovalPolicy,
	})
	allowTable(sweeper.Function, sweeperTableActions, table.TableArn())
	allowTable(sweeper.Function, sweeperDueIndexActions, dueIndexArn)
	allowTable(sweeper.Function, publisherTableActions, table.TableArn())
	allowTable(sweeper.Function, publisherUnpublishedIndexActions, jsii.String(*table.TableArn()+"/index/"+UnpublishedIndexName))
	schedule := newScheduledRun(c, "SweepSchedule", "Runs the segment sweeper", sweeper.Function, interval,
		SweepInput, SweepRetryAttempts, SweepMaxEventAgeHours, sweepDeadLetters)

	reader := NewGoFunction(c, "Reader", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         UsersAPIFunctionName,
		Config:       props.Config,
		Description:  "Answers the /v1/users and /v1/me routes: segments, consent, erasure",
		Environment: map[string]*string{
			env.StateTableName:       table.TableName(),
			env.PepperSecretID:       props.PepperSecret.SecretArn(),
			env.APIKeyAppIDs:         props.Api.ApiKeyAppIDs,
			env.UserTTLDays:          ttl,
			env.ErasureTombstoneDays: jsii.String(strconv.Itoa(tombstoneDays)),
			env.ErasureAuditDays:     jsii.String(strconv.Itoa(auditDays)),
		},
		MemoryMiB:          UsersAPIMemoryMiB,
		Timeout:            awscdk.Duration_Seconds(jsii.Number(UsersAPITimeoutSeconds)),
		LogRetention:       props.LogRetention,
		LogRemovalPolicy:   props.LogRemovalPolicy,
		NoAsyncDeadLetters: "invoked only synchronously by API Gateway: the caller gets the error; there is no asynchronous invocation to dead-letter",
	})
	allowTable(reader.Function, readTableActions, table.TableArn())
	props.PepperSecret.GrantRead(reader.Function, nil)

	return &SegmentState{
		Construct:        c,
		Table:            table,
		Updater:          updater,
		UpdaterSource:    updaterSource,
		EsmFailures:      esmFailures,
		Sweeper:          sweeper,
		SweepSchedule:    schedule,
		SweepDeadLetters: sweepDeadLetters,
		Reader:           reader,
	}
}

// allowTable lets fn perform actions on resource (the table or one of its indexes).
func allowTable(fn awslambda.IFunction, actions []string, resource *string) {
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings(actions...),
		Resources: jsii.Strings(*resource),
	}))
}

// wholeOrDefault returns def for 0, v for a positive whole number, and an error otherwise.
func wholeOrDefault(name string, v float64, def int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0 || v != math.Trunc(v) || v > math.MaxInt32:
		return 0, fmt.Errorf("%s %v must be a positive whole number (or 0 for the default %d)", name, v, def)
	}
	return int(v), nil
}

// newScheduledRun invokes fn every intervalMinutes through EventBridge Scheduler with input,
// retrying a failed invocation at most retries times within maxEventAgeHours and then sending
// it to deadLetters. The target creates the Scheduler's role, allowed to invoke fn and to send
// to deadLetters, nothing else.
func newScheduledRun(scope constructs.Construct, id, description string, fn awslambda.IFunction, intervalMinutes int,
	input string, retries, maxEventAgeHours float64, deadLetters awssqs.IQueue) awsscheduler.Schedule {
	// The role the target would create is the same (Scheduler may assume it only for this
	// account); declaring it here puts it next to the schedule and lets the finding below be
	// suppressed on this role alone.
	role := awsiam.NewRole(scope, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Stack_Of(scope).Account()}},
		}),
		Description: jsii.String(description + ": the scheduler's role"),
	})
	target := awsschedulertargets.NewLambdaInvoke(fn, &awsschedulertargets.ScheduleTargetBaseProps{
		Role:            role,
		Input:           awsscheduler.ScheduleTargetInput_FromText(jsii.String(input)),
		RetryAttempts:   jsii.Number(retries),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(maxEventAgeHours)),
		DeadLetterQueue: deadLetters,
	})
	schedule := awsscheduler.NewSchedule(scope, jsii.String(id), &awsscheduler.ScheduleProps{
		Description: jsii.String(description),
		Schedule:    awsscheduler.ScheduleExpression_Rate(awscdk.Duration_Minutes(jsii.Number(float64(intervalMinutes)))),
		Target:      target,
	})
	suppress(role, true, nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{`/^Resource::<[A-Za-z0-9]+\.Arn>:\*$/`},
		reason: "lambda:InvokeFunction on this one function and its versions/aliases (<function arn>:*), as aws-scheduler-targets grants it; the role can do nothing else"})
	return schedule
}

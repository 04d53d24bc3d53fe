package stack

import (
	"errors"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// ArchivePurgeFunctionName is the purge's folder under functions/ and under the build directory.
const ArchivePurgeFunctionName = "archive-purge"

// Environment of the archive purge (a contract with functions/archive-purge), besides the
// common APP_CONFIG_FILE, LOG_LEVEL and METRICS_NAMESPACE: env.StateTableName,
// env.ArchiveBucketName, env.ArchivePurgeSettle and env.ArchivePurgeLookbackDays.

// Sizes and schedule of the archive purge.
const (
	// ArchivePurgeIntervalMinutes: hourly. A run with nothing pending is one Query per app.
	ArchivePurgeIntervalMinutes = 60
	// ArchivePurgeSettleSeconds is how long after an erasure the purge waits: the archive's
	// staleness alarm threshold (two Firehose buffer intervals). Events of the user still in
	// Firehose after that are what ArchiveDeliveryStale reports.
	ArchivePurgeSettleSeconds = ArchiveFreshnessAlarmSeconds
	// ArchivePurgeMemoryMiB: a file is decoded whole, its rows held while it is written again;
	// Firehose's files come from buffers of at most 128 MiB of JSON.
	ArchivePurgeMemoryMiB = 2048
	// ArchivePurgeTimeoutSeconds: the longest Lambda allows; a run cut short leaves its
	// erasures pending for the next.
	ArchivePurgeTimeoutSeconds = 900
	// ArchivePurgeReservedConcurrency: one run at a time. Two runs rewriting the same file for
	// different erasures would each write back the rows the other removed.
	ArchivePurgeReservedConcurrency = 1
	ArchivePurgeRetryAttempts       = 2
	ArchivePurgeMaxEventAgeHours    = 1
	// ArchivePurgeDefaultLookbackDays is the lookback when the archive never expires: the Glue
	// table's projected range (ten years).
	ArchivePurgeDefaultLookbackDays = 3650
)

// ArchivePurgeInput is the payload every scheduled run receives (the sweeper's shape; the
// function ignores it).
const ArchivePurgeInput = SweepInput

// DynamoDB actions of the purge (dynamostate's PendingPurges and PurgeDone): Query reads an
// app's pending purge items, DeleteItem removes one once its erasure is purged.
var archivePurgeTableActions = []string{"dynamodb:Query", "dynamodb:DeleteItem"}

// ArchivePurgeProps configures the archive purge.
type ArchivePurgeProps struct {
	Config       *appconfig.Config
	FunctionsDir string
	Archive      *Archive
	// Table is the segment state table (the erasures' pending purge items).
	Table awsdynamodb.ITableV2
	// ExpiryDays is the archive's expiry (0: never), which the lookback covers.
	ExpiryDays float64

	QueueRemovalPolicy awscdk.RemovalPolicy
	LogRetention       awslogs.RetentionDays
	LogRemovalPolicy   awscdk.RemovalPolicy
}

// ArchivePurge is the scheduled function that makes erasure reach the archive bucket.
type ArchivePurge struct {
	constructs.Construct
	Function    *GoFunction
	Schedule    awsscheduler.Schedule
	DeadLetters awssqs.Queue
}

// NewArchivePurge declares the purge function, its hourly schedule and dead-letter queue, and
// grants exactly what it uses: the pending purge items of the state table, the archive
// bucket's objects and the archive's key.
func NewArchivePurge(scope constructs.Construct, id string, props *ArchivePurgeProps) *ArchivePurge {
	if props == nil || props.Config == nil || props.FunctionsDir == "" || props.Archive == nil || props.Table == nil {
		panic(errors.New("archive purge: Config, FunctionsDir, Archive and Table are required"))
	}
	lookback := archivePurgeLookback(props.ExpiryDays)
	queueRemoval := retainByDefault(props.QueueRemovalPolicy)
	c := constructs.NewConstruct(scope, jsii.String(id))
	deadLetters := newDeadLetterQueue(c, "DeadLetters", queueRemoval)
	fn := NewGoFunction(c, "Function", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         ArchivePurgeFunctionName,
		Config:       props.Config,
		Description:  "Rewrites the event archive's files without the rows of erased users",
		Environment: map[string]*string{
			env.StateTableName:           props.Table.TableName(),
			env.ArchiveBucketName:        props.Archive.Bucket.BucketName(),
			env.ArchivePurgeSettle:       jsii.String(fmt.Sprintf("%ds", ArchivePurgeSettleSeconds)),
			env.ArchivePurgeLookbackDays: jsii.String(fmt.Sprint(lookback)),
		},
		MemoryMiB:           ArchivePurgeMemoryMiB,
		Timeout:             awscdk.Duration_Seconds(jsii.Number(ArchivePurgeTimeoutSeconds)),
		ReservedConcurrency: ArchivePurgeReservedConcurrency,
		DeadLetterQueue:     deadLetters,
		LogRetention:        props.LogRetention,
		LogRemovalPolicy:    props.LogRemovalPolicy,
	})
	allowTable(fn.Function, archivePurgeTableActions, props.Table.TableArn())
	bucketArn := *props.Archive.Bucket.BucketArn()
	fn.Function.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
		Resources: jsii.Strings(bucketArn + "/*"),
	}))
	fn.Function.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: jsii.Strings(bucketArn),
	}))
	fn.Function.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("kms:Decrypt", "kms:GenerateDataKey"),
		Resources: jsii.Strings(*props.Archive.Key.KeyArn()),
	}))
	suppress(fn.Role, true, nagRule{"AwsSolutions-IAM5", []string{"/^Resource::<Archive[A-Za-z]*Bucket[0-9A-F]+\\.Arn>\\/\\*$/"},
		"The purge reads, rewrites and deletes archive files of any name (Firehose names them) in the archive bucket only"})
	schedule := newScheduledRun(c, "Schedule", "Runs the archive purge", fn.Function, ArchivePurgeIntervalMinutes,
		ArchivePurgeInput, ArchivePurgeRetryAttempts, ArchivePurgeMaxEventAgeHours, deadLetters)
	return &ArchivePurge{Construct: c, Function: fn, Schedule: schedule, DeadLetters: deadLetters}
}

// archivePurgeLookback is the purge's lookback: the archive's expiry (no older file exists), or
// the Glue table's projected ten years when files never expire.
func archivePurgeLookback(expiryDays float64) int {
	if expiryDays > 0 {
		return int(expiryDays)
	}
	return ArchivePurgeDefaultLookbackDays
}

package stack

import (
	"errors"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
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

// AudienceSyncFunctionName is the function's folder under functions/ and under the build
// directory.
const AudienceSyncFunctionName = "audience-sync"

// Environment of the audience sync function (a contract with functions/audience-sync), besides
// the common APP_CONFIG_FILE, LOG_LEVEL and METRICS_NAMESPACE: env.StateTableName,
// env.GraphURL, env.MarketingVersion and env.MetaSecretID: the forwarder's secret and Graph
// endpoint, and the Marketing API's version (Custom Audiences follow its schedule, about a
// year per version, not the Graph API's two).

// Defaults and sizes of AudienceSync.
const (
	// DefaultAudienceSyncIntervalMinutes is how often a sync runs.
	DefaultAudienceSyncIntervalMinutes = 5

	AudienceSyncMemoryMiB      = 512
	AudienceSyncTimeoutSeconds = 600
	// AudienceSyncReservedConcurrency runs one sync at a time per account and stack. The
	// function also takes a lease item in the state table, which guards against overlap the
	// cap cannot see (a run outliving its invocation, a manual invoke, a second stack on the
	// same table).
	AudienceSyncReservedConcurrency = 1

	// AudienceSyncRetryAttempts and AudienceSyncMaxEventAgeHours bound the Scheduler's
	// retries; a missed run costs nothing, the next one reads the same pending changes.
	AudienceSyncRetryAttempts    = 2
	AudienceSyncMaxEventAgeHours = 1
)

// AudienceSyncInput is the payload every scheduled sync receives (the sweeper's shape: sent as
// is, the run's time substituted).
const AudienceSyncInput = SweepInput

// DynamoDB actions of the audience sync, written out (no Scan, no Query on other indexes).
var (
	// GetItem reads user items and the sync state, PutItem writes the sync state and takes the
	// lease, DeleteItem releases the lease, UpdateItem marks membership changes synced (which
	// removes them from the pending index), BatchWriteItem puts and deletes member index items,
	// Query reads an audience's member index (one partition; the function can GetItem any item
	// anyway, so a leading-keys condition would protect nothing more).
	audienceSyncTableActions = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem",
		"dynamodb:BatchWriteItem", "dynamodb:Query"}
	// Query finds the changes not yet synced.
	audienceSyncPendingIndexActions = []string{"dynamodb:Query"}
)

// AudienceSyncProps configures the audience sync.
type AudienceSyncProps struct {
	// Config is the validated app config (audiences of each app).
	Config *appconfig.Config
	// FunctionsDir holds audience-sync/bootstrap (see GoFunctionProps).
	FunctionsDir string
	// Table is the segment state table (SegmentState.Table) with its pending index.
	Table awsdynamodb.ITableV2
	// MetaSecret holds the Meta credentials (the forwarder's secret); the function may read it.
	MetaSecret awssecretsmanager.ISecret
	// MetaGraphURL and MetaMarketingVersion (the Marketing API version of the Custom Audiences
	// calls) default to DefaultMetaGraphURL and DefaultMetaMarketingVersion.
	MetaGraphURL, MetaMarketingVersion string
	// IntervalMinutes between syncs; defaults to 5.
	IntervalMinutes float64

	// QueueRemovalPolicy of the dead-letter queue; defaults to RETAIN.
	QueueRemovalPolicy awscdk.RemovalPolicy
	// LogRetention of the function's logs; defaults to one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy of the function's log group; defaults to RETAIN.
	LogRemovalPolicy awscdk.RemovalPolicy
}

// AudienceSync pushes pending segment membership changes to Meta Custom Audiences on a
// schedule.
type AudienceSync struct {
	constructs.Construct
	// Function is the audience-sync function (reserved concurrency 1).
	Function *GoFunction
	// Schedule runs the function.
	Schedule awsscheduler.Schedule
	// DeadLetters receives the scheduled invocations Scheduler gave up on.
	DeadLetters awssqs.Queue
}

// NewAudienceSync declares the function, its schedule and dead-letter queue, and grants the
// function exactly the table and secret actions it uses.
func NewAudienceSync(scope constructs.Construct, id string, props *AudienceSyncProps) *AudienceSync {
	if props == nil || props.Config == nil || props.FunctionsDir == "" || props.Table == nil || props.MetaSecret == nil {
		panic(errors.New("audience sync: Config, FunctionsDir, Table and MetaSecret are required"))
	}
	graphURL, apiVersion := marketingEndpoint("audience sync", props.MetaGraphURL, props.MetaMarketingVersion)
	interval, err := wholeOrDefault("audience sync interval minutes", props.IntervalMinutes, DefaultAudienceSyncIntervalMinutes)
	if err != nil {
		panic(fmt.Errorf("audience sync: %w", err))
	}
	queueRemoval := retainByDefault(props.QueueRemovalPolicy)
	c := constructs.NewConstruct(scope, jsii.String(id))

	deadLetters := newDeadLetterQueue(c, "DeadLetters", queueRemoval)
	fn := NewGoFunction(c, "Function", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         AudienceSyncFunctionName,
		Config:       props.Config,
		Description:  "Syncs pending segment membership changes to Meta Custom Audiences",
		Environment: map[string]*string{
			env.StateTableName:   props.Table.TableName(),
			env.GraphURL:         jsii.String(graphURL),
			env.MarketingVersion: jsii.String(apiVersion),
			env.MetaSecretID:     props.MetaSecret.SecretArn(),
		},
		MemoryMiB:           AudienceSyncMemoryMiB,
		Timeout:             awscdk.Duration_Seconds(jsii.Number(AudienceSyncTimeoutSeconds)),
		ReservedConcurrency: AudienceSyncReservedConcurrency,
		// Scheduler invokes asynchronously: a run that fails after Lambda's retries lands here
		// as well as the invocations Scheduler could not deliver.
		DeadLetterQueue:  deadLetters,
		LogRetention:     props.LogRetention,
		LogRemovalPolicy: props.LogRemovalPolicy,
	})
	pendingIndexArn := jsii.String(*props.Table.TableArn() + "/index/" + PendingIndexName)
	allowTable(fn.Function, audienceSyncTableActions, props.Table.TableArn())
	allowTable(fn.Function, audienceSyncPendingIndexActions, pendingIndexArn)
	// GetSecretValue only (GrantRead adds DescribeSecret); the secret uses the AWS-managed key,
	// so there is no KMS key to grant.
	fn.Function.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
		Resources: jsii.Strings(*props.MetaSecret.SecretArn()),
	}))

	schedule := newScheduledRun(c, "Schedule", "Runs the audience sync", fn.Function, interval,
		AudienceSyncInput, AudienceSyncRetryAttempts, AudienceSyncMaxEventAgeHours, deadLetters)

	return &AudienceSync{Construct: c, Function: fn, Schedule: schedule, DeadLetters: deadLetters}
}

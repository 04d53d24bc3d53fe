package stack

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// CapiForwarderFunctionName is the function's folder under functions/ and under the build
// directory.
const CapiForwarderFunctionName = "capi-forwarder"

// Defaults of CapiForwarderProps. The event source mapping's are chosen so that a full CAPI
// request (1,000 events) is the common case under load, and so that nothing blocks a shard for
// long: AWS's own defaults retry forever and keep records until the stream drops them.
const (
	DefaultMetaGraphURL = "https://graph.facebook.com"
	// DefaultMetaCAPIVersion is the Graph API version of the Conversions API calls, and
	// DefaultMetaMarketingVersion the Marketing API version of the Custom Audiences calls:
	// the project's defaults (shared/domain/metaversions, with each version's expiry).
	DefaultMetaCAPIVersion      = metaversions.DefaultConversions
	DefaultMetaMarketingVersion = metaversions.DefaultMarketing
	// DefaultMetaAPIVersion is the default of the deprecated single version setting.
	//
	// Deprecated: use DefaultMetaCAPIVersion or DefaultMetaMarketingVersion.
	DefaultMetaAPIVersion = DefaultMetaCAPIVersion

	// DefaultForwarderBatchSize is Meta's maximum number of events per CAPI request.
	DefaultForwarderBatchSize = env.ForwarderBatchSize
	// DefaultForwarderBatchingWindowSeconds bounds the wait of an event at low volume.
	DefaultForwarderBatchingWindowSeconds = int(env.ForwarderBatchingWindow / time.Second)
	// DefaultForwarderRetryAttempts is AWS's maximum: retries are bounded by the record age
	// instead, so that an outage at Meta or a revoked token holds events on the stream for up to
	// DefaultForwarderMaxRecordAgeHours rather than skipping them after a few minutes. A retry comes
	// only from a Meta-side failure: bad records are dead-lettered, never failed.
	DefaultForwarderRetryAttempts = env.MappingRetryAttempts
	// DefaultForwarderMaxRecordAgeHours gives up on records long before the stream's 24 h
	// retention (and Meta's 7-day limit on event_time), leaving a day to replay them.
	DefaultForwarderMaxRecordAgeHours = int(env.MappingMaxRecordAge / time.Hour)
	// DefaultForwarderParallelization is one batch at a time per shard.
	DefaultForwarderParallelization = 1

	// ForwarderMemoryMiB and ForwarderTimeoutSeconds size the function for a batch of 1,000:
	// Meta calls take up to 1.5 s each, retried with backoff and bisected on invalid events.
	ForwarderMemoryMiB      = 512
	ForwarderTimeoutSeconds = 60

	// DeadLetterMaxMessageBytes is the queues' message size limit; it must stay equal to
	// deadletters.MaxMessageBytes, which refuses larger letters rather than truncating them.
	DeadLetterMaxMessageBytes = 1 << 20
	// DeadLetterRetentionDays is SQS's maximum: time to look, fix and replay.
	DeadLetterRetentionDays = 14
)

var metaAPIVersionPattern = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// CapiForwarderProps configures the forwarder.
type CapiForwarderProps struct {
	// Config is the validated app config (datasets and test event codes of each app).
	Config *appconfig.Config
	// FunctionsDir holds capi-forwarder/bootstrap (see GoFunctionProps).
	FunctionsDir string
	// Stream is the event stream the forwarder reads through its event source mapping.
	Stream awskinesis.IStream
	// MetaSecret holds the Meta credentials; the function gets read access.
	MetaSecret awssecretsmanager.ISecret
	// MetaGraphURL and MetaCAPIVersion (the Conversions API's Graph API version) default to
	// DefaultMetaGraphURL and DefaultMetaCAPIVersion.
	MetaGraphURL, MetaCAPIVersion string

	// BatchSize of the event source mapping; defaults to 1,000 (one full CAPI request).
	BatchSize float64
	// MaxBatchingWindow of the event source mapping; defaults to 5 seconds.
	MaxBatchingWindow awscdk.Duration
	// RetryAttempts of a failing batch; nil means DefaultForwarderRetryAttempts, jsii.Number(0) disables retries.
	RetryAttempts *float64
	// MaxRecordAge after which records go to the on-failure queue; defaults to 6 hours.
	MaxRecordAge awscdk.Duration
	// ParallelizationFactor: concurrent batches per shard (order per partition key is kept);
	// defaults to 1.
	ParallelizationFactor float64
	// ReservedConcurrency caps concurrent invocations, e.g. to stay under Meta's rate limits;
	// unset (0) by default. Keep it at or above shards x ParallelizationFactor, or shards wait.
	ReservedConcurrency float64

	// QueueRemovalPolicy of both queues; defaults to RETAIN.
	QueueRemovalPolicy awscdk.RemovalPolicy
	// LogRetention of the function's logs; defaults to one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy of the function's log group; defaults to RETAIN.
	LogRemovalPolicy awscdk.RemovalPolicy
}

// CapiForwarder sends the event stream to Meta's Conversions API: the forwarder function, its
// Kinesis event source mapping, and two queues that never mix their message shapes:
//   - DeadLetters receives what the function gives up on, one message per event (the hashed
//     envelope with the reason, Meta's error and the stream position), written by the function;
//   - EsmFailures is the mapping's on-failure destination: when retries or record age run out,
//     Lambda sends the shard and sequence-number range of the batch it skipped (no payload).
type CapiForwarder struct {
	constructs.Construct
	// Function is the forwarder function with its log group.
	Function *GoFunction
	// DeadLetters is the function's dead-letter queue (DEAD_LETTER_QUEUE_URL).
	DeadLetters awssqs.Queue
	// EsmFailures is the event source mapping's on-failure destination.
	EsmFailures awssqs.Queue
	// MetaSecret is the Meta credentials secret the function reads (META_SECRET_ID).
	MetaSecret awssecretsmanager.ISecret
	// EventSource is the Kinesis event source bound to the function.
	EventSource awslambdaeventsources.KinesisEventSource
}

// NewCapiForwarder declares the forwarder, its queues and its event source mapping, and grants
// the function what it needs: read the stream (through the mapping), read the Meta secret,
// send to both queues (the mapping's destination is written with the function's role).
func NewCapiForwarder(scope constructs.Construct, id string, props *CapiForwarderProps) *CapiForwarder {
	if props == nil || props.Config == nil || props.Stream == nil || props.MetaSecret == nil || props.FunctionsDir == "" {
		panic(errors.New("capi forwarder: Config, FunctionsDir, Stream and MetaSecret are required"))
	}
	graphURL, apiVersion := props.MetaGraphURL, props.MetaCAPIVersion
	if graphURL == "" {
		graphURL = DefaultMetaGraphURL
	}
	if apiVersion == "" {
		apiVersion = DefaultMetaCAPIVersion
	}
	if err := validateMetaEndpoint(graphURL, apiVersion); err != nil {
		panic(fmt.Errorf("capi forwarder: %w", err))
	}
	batchSize := props.BatchSize
	if batchSize == 0 {
		batchSize = DefaultForwarderBatchSize
	}
	window := props.MaxBatchingWindow
	if window == nil {
		window = awscdk.Duration_Seconds(jsii.Number(DefaultForwarderBatchingWindowSeconds))
	}
	retries := props.RetryAttempts
	if retries == nil {
		retries = jsii.Number(DefaultForwarderRetryAttempts)
	}
	maxAge := props.MaxRecordAge
	if maxAge == nil {
		maxAge = awscdk.Duration_Hours(jsii.Number(DefaultForwarderMaxRecordAgeHours))
	}
	parallelization := props.ParallelizationFactor
	if parallelization == 0 {
		parallelization = DefaultForwarderParallelization
	}
	queueRemoval := retainByDefault(props.QueueRemovalPolicy)
	c := constructs.NewConstruct(scope, jsii.String(id))

	deadLetters := newDeadLetterQueue(c, "DeadLetters", queueRemoval)
	esmFailures := newDeadLetterQueue(c, "EsmFailures", queueRemoval)

	fn := NewGoFunction(c, "Forwarder", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         CapiForwarderFunctionName,
		Config:       props.Config,
		Description:  "Forwards the event stream to Meta's Conversions API, 1,000 events per request",
		Environment: map[string]*string{
			env.GraphURL:           jsii.String(graphURL),
			env.CAPIVersion:        jsii.String(apiVersion),
			env.MetaSecretID:       props.MetaSecret.SecretArn(),
			env.DeadLetterQueueURL: deadLetters.QueueUrl(),
		},
		MemoryMiB:           ForwarderMemoryMiB,
		Timeout:             awscdk.Duration_Seconds(jsii.Number(ForwarderTimeoutSeconds)),
		ReservedConcurrency: props.ReservedConcurrency,
		LogRetention:        props.LogRetention,
		LogRemovalPolicy:    props.LogRemovalPolicy,
		NoAsyncDeadLetters:  "invoked only by its Kinesis event source mapping, whose on-failure destination (an SQS queue) receives the ranges it gives up on; there is no asynchronous invocation to dead-letter",
	})
	props.MetaSecret.GrantRead(fn.Function, nil)
	deadLetters.GrantSendMessages(fn.Function)

	// Binding grants the function read access to this stream only, and send access to the
	// on-failure queue (Lambda writes the destination with the function's role).
	source := awslambdaeventsources.NewKinesisEventSource(props.Stream, &awslambdaeventsources.KinesisEventSourceProps{
		StartingPosition:  awslambda.StartingPosition_TRIM_HORIZON,
		BatchSize:         jsii.Number(batchSize),
		MaxBatchingWindow: window,
		// The handler answers with the first record to retry and never returns an error for a
		// bad record: without ReportBatchItemFailures Lambda would read that answer as
		// success and drop the records to retry. Not a prop for that reason.
		ReportBatchItemFailures: jsii.Bool(true),
		// A crash or timeout fails the whole batch; halving it isolates a poison record.
		BisectBatchOnError:    jsii.Bool(true),
		RetryAttempts:         retries,
		MaxRecordAge:          maxAge,
		ParallelizationFactor: jsii.Number(parallelization),
		OnFailure:             awslambdaeventsources.NewSqsDlq(esmFailures),
	})
	fn.Function.AddEventSource(source)

	return &CapiForwarder{
		Construct:   c,
		Function:    fn,
		DeadLetters: deadLetters,
		EsmFailures: esmFailures,
		MetaSecret:  props.MetaSecret,
		EventSource: source,
	}
}

// newDeadLetterQueue declares a queue for messages that wait for a person: encrypted at rest
// with SQS-managed keys (no KMS key for Lambda's destination writer to be granted), TLS only,
// kept as long as SQS allows.
func newDeadLetterQueue(scope constructs.Construct, id string, removal awscdk.RemovalPolicy) awssqs.Queue {
	q := awssqs.NewQueue(scope, jsii.String(id), &awssqs.QueueProps{
		Encryption:          awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:          jsii.Bool(true),
		RetentionPeriod:     awscdk.Duration_Days(jsii.Number(DeadLetterRetentionDays)),
		MaxMessageSizeBytes: jsii.Number(DeadLetterMaxMessageBytes),
		RemovalPolicy:       removal,
	})
	const why = "this queue is itself a dead-letter queue (terminal): nothing consumes it automatically; an operator inspects and replays its messages (dlq replay), and its depth alarms"
	suppress(q, false, nagRule{id: "AwsSolutions-SQS3", reason: why}, nagRule{id: "Serverless-SQSRedrivePolicy", reason: why})
	return q
}

// ReadConsents lets the forwarder read the users' explicit consent decisions (the consent and
// erasure API) from the segment state table: STATE_TABLE_NAME and BatchGetItem on the table.
func (f *CapiForwarder) ReadConsents(table awsdynamodb.ITableV2) {
	f.Function.Function.AddEnvironment(jsii.String(env.StateTableName), table.TableName(), nil)
	allowTable(f.Function.Function, []string{"dynamodb:BatchGetItem"}, table.TableArn())
}

// retainByDefault is a removal policy with the stack's default: retain (a prod stack keeps its
// data and dead letters; dev stacks pass destroy).
func retainByDefault(p awscdk.RemovalPolicy) awscdk.RemovalPolicy {
	if p == "" {
		return awscdk.RemovalPolicy_RETAIN
	}
	return p
}

// marketingEndpoint returns the Graph API root and Marketing API version a function calls (the
// defaults when empty), and panics, naming the construct, when they are not usable.
func marketingEndpoint(construct, graphURL, version string) (string, string) {
	if graphURL == "" {
		graphURL = DefaultMetaGraphURL
	}
	if version == "" {
		version = DefaultMetaMarketingVersion
	}
	if err := validateMetaEndpoint(graphURL, version); err != nil {
		panic(fmt.Errorf("%s: %w", construct, err))
	}
	return graphURL, version
}

// validateMetaEndpoint checks the Graph API settings: an https URL (the token travels in the
// requests) without query or fragment, since the client appends /<version>/<dataset>/events,
// and a version like v26.0.
func validateMetaEndpoint(graphURL, apiVersion string) error {
	u, err := url.Parse(graphURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("meta graph url %q must be an https URL without query or fragment, like %s", graphURL, DefaultMetaGraphURL)
	}
	if !metaAPIVersionPattern.MatchString(apiVersion) {
		return fmt.Errorf("meta api version %q must look like %s", apiVersion, DefaultMetaAPIVersion)
	}
	return nil
}

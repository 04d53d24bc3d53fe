package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// EventStreamProps configures the event stream.
type EventStreamProps struct {
	// Retention of records; defaults to 24 hours, the cheapest. Consumers that may fall further
	// behind (a long Meta outage) need more.
	Retention awscdk.Duration
	// RemovalPolicy of the stream; defaults to RETAIN.
	RemovalPolicy awscdk.RemovalPolicy
	// Shards, when not 0, makes the stream provisioned with this many shards instead of
	// on-demand. Each shard takes 1,000 records or 1 MiB a second and is paid by the hour
	// (with PUT payload units of 25 KB); on-demand is paid per GB in and out, each record
	// rounded up to 1 KB. For steady traffic, provisioned costs a fraction (see
	// infra/docs/cost.md, load test and cost model); on-demand needs no capacity planning.
	Shards float64
}

// EventStream is the Kinesis stream between the ingest function and the consumers: on-demand
// capacity by default (no shard planning; it scales with traffic), or a fixed number of
// provisioned shards, and encryption at rest with the AWS-managed key alias/aws/kinesis.
// Records are partitioned by pseudonymous user id.
type EventStream struct {
	constructs.Construct
	// Stream is the Kinesis stream; grant producers GrantWrite and consumers GrantRead.
	Stream awskinesis.Stream
}

// NewEventStream declares the event stream.
func NewEventStream(scope constructs.Construct, id string, props *EventStreamProps) *EventStream {
	if props == nil {
		props = &EventStreamProps{}
	}
	retention := props.Retention
	if retention == nil {
		retention = awscdk.Duration_Hours(jsii.Number(24))
	}
	removal := props.RemovalPolicy
	if removal == "" {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	c := constructs.NewConstruct(scope, jsii.String(id))
	sp := &awskinesis.StreamProps{
		StreamMode:      awskinesis.StreamMode_ON_DEMAND,
		Encryption:      awskinesis.StreamEncryption_MANAGED,
		RetentionPeriod: retention,
		RemovalPolicy:   removal,
	}
	if props.Shards > 0 {
		sp.StreamMode, sp.ShardCount = awskinesis.StreamMode_PROVISIONED, jsii.Number(props.Shards)
	}
	stream := awskinesis.NewStream(c, jsii.String("Stream"), sp)
	return &EventStream{Construct: c, Stream: stream}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// StreamSample is what a sample of the stream's records says about their size and how many
// events each holds (a version 1 record holds one event, a version 2 record the events of one
// user from one request).
type StreamSample struct {
	Records int `json:"records"`
	// Events: the events the records hold; V1Records, V2Records: records of each version.
	Events    int `json:"events"`
	V1Records int `json:"v1_records,omitempty"`
	V2Records int `json:"v2_records,omitempty"`
	// RecordsPerEvent is Records/Events: what the stream's per-record prices are multiplied
	// by per event.
	RecordsPerEvent float64 `json:"records_per_event"`
	// MeanBytes is the mean of data + partition key, what Kinesis counts as a record's size.
	MeanBytes float64 `json:"mean_bytes"`
	// BilledKB is the mean of ceil(size / 1 KB): on-demand streams bill data in and out per
	// record rounded up to the next KB.
	BilledKB float64 `json:"billed_kb"`
	// PutUnits is the mean of ceil(size / 25 KB): the PUT payload units a provisioned stream
	// bills per record.
	PutUnits float64 `json:"put_units"`
	// SingleEventBytes, SingleEventBilledKB: the same events each written alone as a version
	// 2 record (the naive design's record).
	SingleEventBytes    float64 `json:"single_event_mean_bytes"`
	SingleEventBilledKB float64 `json:"single_event_billed_kb"`
}

// sampleStream reads up to n records of the run runID (by the event ids' prefix), reading every
// shard from its start.
func sampleStream(ctx context.Context, endpoint, stream string, n int, runID string) ([]types.Record, error) {
	cfg, err := emulators.AWSConfig(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	client := kinesis.NewFromConfig(cfg)
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return nil, fmt.Errorf("list shards of %s: %w", stream, err)
	}
	var out []types.Record
	perShard := n/max(1, len(shards.Shards)) + 1
	for _, sh := range shards.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return nil, fmt.Errorf("shard iterator: %w", err)
		}
		iter, got := it.ShardIterator, 0
		for iter != nil && got < perShard {
			recs, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, fmt.Errorf("get records: %w", err)
			}
			for _, r := range recs.Records {
				if ofRun(r.Data, runID) && got < perShard {
					out = append(out, r)
					got++
				}
			}
			if len(recs.Records) == 0 || aws.ToInt64(recs.MillisBehindLatest) == 0 && len(recs.Records) < 10000 {
				break
			}
			iter = recs.NextShardIterator
		}
	}
	return out, nil
}

// ofRun reports whether a record (of any version) holds events of the run runID: event ids
// start with the run's id.
func ofRun(data []byte, runID string) bool {
	evs, err := envelope.Decode(data)
	return err == nil && strings.HasPrefix(evs[0].Event.ID, runID+"-")
}

// sizeOf summarises record sizes and events per record. Records that do not decode count as
// records of one event.
func sizeOf(recs []types.Record) StreamSample {
	s := StreamSample{Records: len(recs)}
	if len(recs) == 0 {
		return s
	}
	var bytes, kb, units, single, singleKB float64
	var buf []byte
	for _, r := range recs {
		key := len(aws.ToString(r.PartitionKey))
		size := float64(len(r.Data) + key)
		bytes += size
		kb += math.Ceil(size / 1024)
		units += math.Ceil(size / (25 * 1024))
		evs, err := envelope.Decode(r.Data)
		if err != nil {
			s.Events++
			single += size
			singleKB += math.Ceil(size / 1024)
			continue
		}
		s.Events += len(evs)
		if evs[0].V == 1 {
			s.V1Records++
		} else {
			s.V2Records++
		}
		for i := range evs {
			buf = envelope.Append(buf[:0], &evs[i])
			one := float64(len(buf) + key)
			single += one
			singleKB += math.Ceil(one / 1024)
		}
	}
	n := float64(len(recs))
	s.MeanBytes, s.BilledKB, s.PutUnits = bytes/n, kb/n, units/n
	s.RecordsPerEvent = n / float64(s.Events)
	s.SingleEventBytes, s.SingleEventBilledKB = single/float64(s.Events), singleKB/float64(s.Events)
	return s
}

// singleEventRecords returns records of one event each, the first event of each of recs
// written alone as a version 2 record: the naive design's invocation of one event.
func singleEventRecords(recs []types.Record) []types.Record {
	out := make([]types.Record, 0, len(recs))
	for _, r := range recs {
		evs, err := envelope.Decode(r.Data)
		if err != nil {
			continue
		}
		one := r
		one.Data = envelope.Append(nil, &evs[0])
		out = append(out, one)
	}
	return out
}

// kinesisEvent wraps records as the event source mapping delivers them to a function.
func kinesisEvent(recs []types.Record, stream string) events.KinesisEvent {
	var ev events.KinesisEvent
	for _, r := range recs {
		seq := aws.ToString(r.SequenceNumber)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			AwsRegion:      emulators.Region,
			EventID:        "shardId-000000000000:" + seq,
			EventName:      "aws:kinesis:record",
			EventSource:    "aws:kinesis",
			EventSourceArn: "arn:aws:kinesis:us-east-1:123456789012:stream/" + stream,
			EventVersion:   "1.0",
			Kinesis: events.KinesisRecord{
				ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: aws.ToTime(r.ApproximateArrivalTimestamp)},
				Data:                        r.Data,
				KinesisSchemaVersion:        "1.0",
				PartitionKey:                aws.ToString(r.PartitionKey),
				SequenceNumber:              seq,
			},
		})
	}
	return ev
}

// Calibration is the handler time of the stream functions, measured by invoking them again
// with records of the run.
type Calibration struct {
	Stream StreamSample `json:"stream_sample"`
	// ForwarderBatch, UpdaterBatch: the batch sizes replayed, in records (the run's mean
	// records per invocation; a version 2 record holds several events).
	ForwarderBatch int `json:"forwarder_batch"`
	UpdaterBatch   int `json:"updater_batch"`
	// ForwarderMs, UpdaterMs: handler time per invocation at those batch sizes (each
	// invocation's time rounded up to the ms, then averaged, as Lambda bills).
	ForwarderMs float64 `json:"forwarder_billed_ms"`
	UpdaterMs   float64 `json:"updater_billed_ms"`
	// ForwarderSingleMs, UpdaterSingleMs: the same for batches of one record of one event (the
	// naive design; see singleEventRecords).
	ForwarderSingleMs float64 `json:"forwarder_single_billed_ms"`
	UpdaterSingleMs   float64 `json:"updater_single_billed_ms"`
}

// CalibrateOptions say what to replay against.
type CalibrateOptions struct {
	Endpoints      Endpoints
	Stream         string
	ConfigFile     string
	WorkDir        string // for the forwarder's dead letters
	RunID          string // replay only the run's records
	ForwarderBatch int
	UpdaterBatch   int
	Repeats        int // invocations per measurement (after one warm-up)
}

// Calibrate replays records of the run through the forwarder and the updater, built by the
// same constructors as the Lambda functions (package runtime) and pointed at the same emulators and
// Meta sandbox, and times each invocation. The load has ended by then, so each invocation has
// the machine to itself, closer to a Lambda function's own CPU than the busy dev stack. The
// forwarder sends its batches to the sandbox again (after the run has been measured); the
// updater writes to a scratch table, deleted afterwards, so that its writes are real writes
// and the run's state is untouched.
func Calibrate(ctx context.Context, o CalibrateOptions) (Calibration, error) {
	c := Calibration{ForwarderBatch: max(1, o.ForwarderBatch), UpdaterBatch: max(1, o.UpdaterBatch)}
	repeats := max(1, o.Repeats)
	need := c.ForwarderBatch + (repeats+1)*c.UpdaterBatch + 2*(repeats+1)
	recs, err := sampleStream(ctx, o.Endpoints.Kinesis, o.Stream, need, o.RunID)
	if err != nil {
		return c, err
	}
	c.Stream = sizeOf(recs)
	if len(recs) == 0 {
		return c, fmt.Errorf("the stream is empty")
	}
	c.ForwarderBatch = min(c.ForwarderBatch, len(recs))
	c.UpdaterBatch = min(c.UpdaterBatch, len(recs)/(repeats+1))
	if c.UpdaterBatch == 0 {
		c.UpdaterBatch = 1
	}
	quiet := slog.New(slog.DiscardHandler)

	dynamoCfg, err := emulators.AWSConfig(ctx, o.Endpoints.DynamoDB)
	if err != nil {
		return c, err
	}
	d := runtime.Deps{AWS: dynamoCfg, Log: quiet, Metrics: io.Discard}
	fwd, err := runtime.NewForwarder(ctx, env.Forwarder{
		Common:         env.Common{ConfigFile: o.ConfigFile},
		Meta:           env.Meta{GraphURL: o.Endpoints.Sandbox, AccessToken: devenv.MetaAccessToken, AppSecret: devenv.MetaAppSecret},
		DeadLetterFile: filepath.Join(o.WorkDir, "calibration-dead-letters.jsonl"),
		StateTable:     devenv.StateTable,
		DynamoEndpoint: o.Endpoints.DynamoDB,
	}, d)
	if err != nil {
		return c, fmt.Errorf("forwarder: %w", err)
	}
	fwdBatch := kinesisEvent(recs[:c.ForwarderBatch], o.Stream)
	if c.ForwarderMs, err = timeInvocations(ctx, repeats, func(int) events.KinesisEvent { return fwdBatch }, fwd.Handle); err != nil {
		return c, fmt.Errorf("forwarder: %w", err)
	}
	singles := singleEventRecords(recs)
	if len(singles) == 0 {
		return c, fmt.Errorf("no record of the run decodes")
	}
	if c.ForwarderSingleMs, err = timeInvocations(ctx, 2*repeats, func(i int) events.KinesisEvent {
		return kinesisEvent(singles[i%len(singles):i%len(singles)+1], o.Stream)
	}, fwd.Handle); err != nil {
		return c, fmt.Errorf("forwarder: %w", err)
	}

	// The updater on a scratch table: every batch brings new records, as on the stream.
	scratch := "loadtest-calibration-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ddb := dynamodb.NewFromConfig(dynamoCfg)
	if err := dynamostate.CreateTable(ctx, ddb, scratch); err != nil {
		return c, err
	}
	defer ddb.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(scratch)})
	upd, err := runtime.NewUpdater(env.Updater{Common: env.Common{ConfigFile: o.ConfigFile}, State: env.State{Table: scratch}}, d)
	if err != nil {
		return c, fmt.Errorf("updater: %w", err)
	}
	if c.UpdaterMs, err = timeInvocations(ctx, repeats, func(i int) events.KinesisEvent {
		return kinesisEvent(recs[i*c.UpdaterBatch:(i+1)*c.UpdaterBatch], o.Stream)
	}, upd.Handle); err != nil {
		return c, fmt.Errorf("updater: %w", err)
	}
	// Single events from the end of the sample, not replayed above.
	if c.UpdaterSingleMs, err = timeInvocations(ctx, 2*repeats, func(i int) events.KinesisEvent {
		j := len(singles) - 1 - i%len(singles)
		return kinesisEvent(singles[j:j+1], o.Stream)
	}, upd.Handle); err != nil {
		return c, fmt.Errorf("updater: %w", err)
	}
	return c, nil
}

// timeInvocations invokes handle with batch(0) once to warm up (connections, caches: a warm
// Lambda), then with batch(1..n), and returns the mean billed duration of those n. A handler
// that reports batch item failures did not do its work: that is an error.
func timeInvocations(ctx context.Context, n int, batch func(i int) events.KinesisEvent,
	handle func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error)) (float64, error) {
	var ms []float64
	for i := 0; i <= n; i++ {
		ev := batch(i)
		start := time.Now()
		resp, err := handle(ctx, ev)
		took := time.Since(start)
		if err != nil {
			return 0, err
		}
		if len(resp.BatchItemFailures) > 0 {
			return 0, fmt.Errorf("batch of %d records: %d item failures", len(ev.Records), len(resp.BatchItemFailures))
		}
		if i > 0 {
			ms = append(ms, float64(took.Microseconds())/1000)
		}
	}
	slices.Sort(ms)
	return MeanBilledMs(ms), nil
}

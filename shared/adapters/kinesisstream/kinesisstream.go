// Package kinesisstream is the Kinesis Data Streams adapter: Writer implements
// ports.StreamWriter with one PutRecords call, EnsureStream creates a stream for the dev stack
// and tests, and Tailer follows a stream's records (tests, dev stack).
//
// The functions take narrow interfaces that *kinesis.Client satisfies. Writer does not retry
// failed entries: stream.Publisher does. Give the Writer's client few or no SDK retries
// (aws.NopRetryer, or RetryMaxAttempts 1-2), or the two layers multiply their attempts.
package kinesisstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/ports"
)

// PutRecordsAPI is the part of *kinesis.Client the Writer uses.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Writer writes batches to one stream.
type Writer struct {
	client     PutRecordsAPI
	streamName string
	streamARN  string
}

var _ ports.StreamWriter = (*Writer)(nil)

// NewWriter returns a Writer for the stream with the given name. streamARN may be empty; when
// set it is sent too (AWS recommends it; kinesalite ignores it).
func NewWriter(client PutRecordsAPI, streamName, streamARN string) *Writer {
	return &Writer{client: client, streamName: streamName, streamARN: streamARN}
}

// PutRecords sends the records in one PutRecords call and returns the per-entry results,
// aligned by index. An empty batch makes no call. The caller keeps within the per-call
// limits of package ports.
func (w *Writer) PutRecords(ctx context.Context, records []ports.StreamRecord) ([]ports.PutResult, error) {
	if len(records) == 0 {
		return nil, nil
	}
	in := &kinesis.PutRecordsInput{Records: make([]types.PutRecordsRequestEntry, len(records))}
	for i, r := range records {
		in.Records[i] = types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: aws.String(r.PartitionKey)}
	}
	if w.streamName != "" {
		in.StreamName = aws.String(w.streamName)
	}
	if w.streamARN != "" {
		in.StreamARN = aws.String(w.streamARN)
	}
	out, err := w.client.PutRecords(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("put records to %s: %w", w.stream(), err)
	}
	if len(out.Records) != len(records) {
		return nil, fmt.Errorf("put records to %s: %d results for %d records", w.stream(), len(out.Records), len(records))
	}
	results := make([]ports.PutResult, len(records))
	for i, r := range out.Records {
		results[i] = ports.PutResult{ErrorCode: aws.ToString(r.ErrorCode), ErrorMessage: aws.ToString(r.ErrorMessage)}
	}
	return results, nil
}

func (w *Writer) stream() string {
	if w.streamName != "" {
		return w.streamName
	}
	return w.streamARN
}

// StreamAdminAPI is the part of *kinesis.Client EnsureStream uses.
type StreamAdminAPI interface {
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// pollInterval is how often EnsureStream and callers of Tailer look again.
const pollInterval = 50 * time.Millisecond

// EnsureStream creates a provisioned stream with the given shard count unless one with that
// name exists, and waits until it is ACTIVE (or ctx ends). For the dev stack and tests; the
// deployed stream is created by CDK.
func EnsureStream(ctx context.Context, client StreamAdminAPI, name string, shards int32) error {
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("ensure stream %s: %w", name, err)
	}
	for {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("ensure stream %s: %w", name, err)
		}
		if out.StreamDescriptionSummary != nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		if err := backoff.Sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("ensure stream %s: waiting for ACTIVE: %w", name, err)
		}
	}
}

// ReaderAPI is the part of *kinesis.Client the Tailer uses.
type ReaderAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// TailFrom is where a Tailer starts reading.
type TailFrom int

// Starting positions.
const (
	// TrimHorizon reads every record still retained.
	TrimHorizon TailFrom = iota
	// Latest reads the records written after the Tailer's first Next call.
	Latest
)

// TailedRecord is one record read from the stream.
type TailedRecord struct {
	ShardID            string
	SequenceNumber     string
	PartitionKey       string
	Data               []byte
	ApproximateArrival time.Time
}

// Tailer follows every shard of a stream by polling. It is not safe for concurrent use.
type Tailer struct {
	client ReaderAPI
	stream string
	from   TailFrom

	shards    []string           // in ListShards order
	iterators map[string]*string // next iterator per shard; nil once the shard is closed
	behind    bool               // a shard reported MillisBehindLatest > 0 in the last Next
}

// NewTailer returns a Tailer of the named stream. Shards are listed by stream name, because
// kinesalite does not support ListShards by ARN.
func NewTailer(client ReaderAPI, stream string, from TailFrom) *Tailer {
	return &Tailer{client: client, stream: stream, from: from, iterators: make(map[string]*string)}
}

// Next polls every open shard once and returns what it read, shard by shard, each shard in
// sequence order; an empty result means nothing new. Shards that appear later (resharding) are
// read from their start.
func (t *Tailer) Next(ctx context.Context) ([]TailedRecord, error) {
	if err := t.listShards(ctx); err != nil {
		return nil, err
	}
	var out []TailedRecord
	t.behind = false
	for _, id := range t.shards {
		it := t.iterators[id]
		if it == nil {
			continue
		}
		res, err := t.client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil {
			return out, fmt.Errorf("tail %s: get records of %s: %w", t.stream, id, err)
		}
		for _, r := range res.Records {
			out = append(out, TailedRecord{
				ShardID:            id,
				SequenceNumber:     aws.ToString(r.SequenceNumber),
				PartitionKey:       aws.ToString(r.PartitionKey),
				Data:               r.Data,
				ApproximateArrival: aws.ToTime(r.ApproximateArrivalTimestamp),
			})
		}
		t.iterators[id] = res.NextShardIterator
		if aws.ToInt64(res.MillisBehindLatest) > 0 {
			t.behind = true
		}
	}
	return out, nil
}

// Drain calls Next until a round reads nothing and no shard is behind, and returns everything
// read: the stream's content from the Tailer's position up to now.
func (t *Tailer) Drain(ctx context.Context) ([]TailedRecord, error) {
	var all []TailedRecord
	for {
		recs, err := t.Next(ctx)
		all = append(all, recs...)
		if err != nil {
			return all, err
		}
		if len(recs) == 0 && !t.behind {
			return all, nil
		}
	}
}

// listShards learns new shards and opens an iterator for each.
func (t *Tailer) listShards(ctx context.Context) error {
	first := len(t.shards) == 0
	in := &kinesis.ListShardsInput{StreamName: aws.String(t.stream)}
	for {
		out, err := t.client.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("tail %s: list shards: %w", t.stream, err)
		}
		for _, s := range out.Shards {
			id := aws.ToString(s.ShardId)
			if _, known := t.iterators[id]; known {
				continue
			}
			typ := types.ShardIteratorTypeTrimHorizon
			if first && t.from == Latest {
				typ = types.ShardIteratorTypeLatest
			}
			it, err := t.client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String(t.stream), ShardId: aws.String(id), ShardIteratorType: typ,
			})
			if err != nil {
				return fmt.Errorf("tail %s: shard iterator of %s: %w", t.stream, id, err)
			}
			t.shards = append(t.shards, id)
			t.iterators[id] = it.ShardIterator
		}
		if out.NextToken == nil {
			return nil
		}
		// With NextToken, ListShards rejects StreamName.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

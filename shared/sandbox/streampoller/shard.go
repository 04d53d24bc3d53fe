package streampoller

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
)

// shard is the poller of one shard. Fields above state belong to its goroutine.
type shard struct {
	p       *Poller
	id      string
	parents []string
	atStart bool            // listed by Run's first listing: starts at StartingPosition
	waitFor []chan struct{} // done channels of the parents the poller knows
	done    chan struct{}   // closed once the shard is closed and fully processed

	iterator *string
	lastRead string    // sequence number of the last record read
	buf      []*record // read, not yet handed over; at most BatchSize
	closed   bool      // GetRecords returned no next iterator
	nextPoll time.Time // no GetRecords call before this

	state shardState // guarded by p.mu
}

// shardState is what WaitIdle and Stats see of a shard.
type shardState struct {
	checkpoint string
	buffered   int
	busy       bool   // a batch is being processed
	reading    bool   // parents done and an iterator obtained
	caughtUpAt uint64 // clock tick at the start of the last GetRecords that found nothing (0 if it found records)
	finished   bool
	lastErr    string
}

// record is one stream record, converted and encoded once when read.
type record struct {
	seq     string
	arrival time.Time
	json    []byte    // the events.KinesisEventRecord as the Lambda payload carries it
	readAt  time.Time // starts the batching window
}

// run polls the shard and hands batches to process until ctx ends or the shard is finished.
func (s *shard) run(ctx context.Context) {
	for _, parent := range s.waitFor {
		select {
		case <-parent:
		case <-ctx.Done():
			return
		}
	}
	if err := s.openIterator(ctx); err != nil {
		return // ctx ended
	}
	s.p.update(func() { s.state.reading = true })

	for ctx.Err() == nil {
		now := time.Now()
		if s.wantsRecords() && !now.Before(s.nextPoll) {
			s.poll(ctx)
			continue
		}
		if n, ready := s.batchReady(now); ready {
			batch := s.buf[:n:n]
			s.buf = s.buf[n:]
			s.p.update(func() { s.state.busy, s.state.buffered = true, len(s.buf) })
			err := s.p.process(ctx, s, batch)
			s.p.update(func() { s.state.busy = false })
			if err != nil {
				return // ctx ended
			}
			continue
		}
		if s.closed && len(s.buf) == 0 {
			s.p.update(func() { s.state.finished = true })
			close(s.done)
			s.p.requestRelist() // the children can start
			return
		}
		wake := s.nextPoll
		if len(s.buf) > 0 {
			if deadline := s.buf[0].readAt.Add(s.p.cfg.BatchingWindow); deadline.Before(wake) {
				wake = deadline
			}
		}
		if backoff.Sleep(ctx, time.Until(wake)) != nil {
			return
		}
	}
}

// wantsRecords reports whether the buffer has room and the shard is open.
func (s *shard) wantsRecords() bool {
	if s.closed || len(s.buf) >= s.p.cfg.BatchSize {
		return false
	}
	n, _ := batchLen(s.buf, s.p.cfg.BatchSize, s.p.cfg.MaxBatchBytes)
	return n == len(s.buf) // else the next batch is already cut by MaxBatchBytes
}

// batchReady returns the size of the next batch and whether it is to be handed over now.
func (s *shard) batchReady(now time.Time) (int, bool) {
	if len(s.buf) == 0 {
		return 0, false
	}
	n, full := batchLen(s.buf, s.p.cfg.BatchSize, s.p.cfg.MaxBatchBytes)
	windowOver := !now.Before(s.buf[0].readAt.Add(s.p.cfg.BatchingWindow))
	return n, full || windowOver || s.closed
}

// payloadOverhead is the size of {"Records":[]}.
const payloadOverhead = len(`{"Records":[]}`)

// batchLen returns how many records from the front of buf make the next batch, and whether
// that batch is full (by count or by payload size). The first record always fits.
func batchLen(buf []*record, maxCount, maxBytes int) (n int, full bool) {
	size := payloadOverhead
	for n < len(buf) && n < maxCount {
		add := len(buf[n].json)
		if n > 0 {
			add++ // comma
		}
		if n > 0 && size+add > maxBytes {
			return n, true
		}
		size += add
		n++
	}
	return n, n == maxCount
}

// poll makes one GetRecords call and buffers what it returns.
func (s *shard) poll(ctx context.Context) {
	tick := s.p.clock.Add(1)
	limit := s.p.cfg.BatchSize - len(s.buf)
	callCtx, cancel := kinesisCallContext(ctx)
	out, err := s.p.client.GetRecords(callCtx, &kinesis.GetRecordsInput{ShardIterator: s.iterator, Limit: aws.Int32(int32(limit))})
	cancel()
	now := time.Now()
	if ctx.Err() != nil {
		return // stopping: what was read is dropped with the poller
	}
	if err != nil {
		s.nextPoll = now.Add(s.p.cfg.PollInterval)
		s.noteError("get records", err)
		var expired *types.ExpiredIteratorException
		if errors.As(err, &expired) {
			s.openIterator(ctx) // from the last record read
		}
		return
	}
	for _, r := range out.Records {
		rec := s.p.newRecord(s.id, r, now)
		if s.lastRead != "" && compareSeq(rec.seq, s.lastRead) <= 0 {
			s.p.log.Error("GetRecords returned records out of sequence order", "shard", s.id, "sequence_number", rec.seq, "after", s.lastRead)
		}
		s.lastRead = rec.seq
		s.buf = append(s.buf, rec)
	}
	s.iterator = out.NextShardIterator
	s.closed = s.iterator == nil
	s.nextPoll = now.Add(s.p.cfg.PollInterval)
	if len(out.Records) == limit || aws.ToInt64(out.MillisBehindLatest) > 0 {
		s.nextPoll = now // there may be more: read on once the buffer has room
	}
	s.p.update(func() {
		s.state.buffered = len(s.buf)
		s.state.lastErr = ""
		s.state.caughtUpAt = 0
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			s.state.caughtUpAt = tick
		}
	})
}

// openIterator gets a shard iterator: after the last record read, else at the starting
// position. It retries until it succeeds or ctx ends.
func (s *shard) openIterator(ctx context.Context) error {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(s.p.cfg.Stream), ShardId: aws.String(s.id)}
	switch {
	case s.lastRead != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(s.lastRead)
	case s.atStart && s.p.cfg.StartingPosition == Latest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	for {
		callCtx, cancel := kinesisCallContext(ctx)
		out, err := s.p.client.GetShardIterator(callCtx, in)
		cancel()
		if err == nil {
			s.iterator = out.ShardIterator
			s.closed = s.iterator == nil
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.noteError("get shard iterator", err)
		if err := backoff.Sleep(ctx, s.p.cfg.PollInterval); err != nil {
			return err
		}
	}
}

// noteError logs a Kinesis error once per distinct message and shows it in Stats.
func (s *shard) noteError(op string, err error) {
	msg := op + ": " + err.Error()
	var repeated bool
	s.p.update(func() {
		repeated = s.state.lastErr == msg
		s.state.lastErr = msg
	})
	if !repeated {
		s.p.log.Warn("kinesis call failed; will try again", "shard", s.id, "err", msg)
	}
}

// kinesisCallTimeout bounds one Kinesis call.
const kinesisCallTimeout = 10 * time.Second

// kinesisCallContext returns the context of one Kinesis call: bounded, but not cancelled when
// Run's context ends. kinesalite 3.3.3 crashes when a client aborts a request in flight (it
// rethrows the request's "aborted" error), and a Go HTTP request cancelled by its context is
// aborted; so a stopping poller lets its last call finish (kinesalite answers in
// milliseconds) and checks its context afterwards.
func kinesisCallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), kinesisCallTimeout)
}

// newRecord converts a Kinesis record to the event record the ESM hands to Lambda.
func (p *Poller) newRecord(shardID string, r types.Record, readAt time.Time) *record {
	seq := aws.ToString(r.SequenceNumber)
	// The ESM sends the arrival time in seconds with millisecond precision.
	arrival := time.UnixMilli(aws.ToTime(r.ApproximateArrivalTimestamp).UnixMilli())
	ev := events.KinesisEventRecord{
		AwsRegion:         p.region,
		EventID:           shardID + ":" + seq,
		EventName:         "aws:kinesis:record",
		EventSource:       "aws:kinesis",
		EventSourceArn:    p.cfg.EventSourceARN,
		EventVersion:      "1.0",
		InvokeIdentityArn: p.roleARN,
		Kinesis: events.KinesisRecord{
			ApproximateArrivalTimestamp: events.SecondsEpochTime{Time: arrival},
			Data:                        r.Data,
			PartitionKey:                aws.ToString(r.PartitionKey),
			SequenceNumber:              seq,
			KinesisSchemaVersion:        "1.0",
		},
	}
	if r.EncryptionType == types.EncryptionTypeKms {
		ev.Kinesis.EncryptionType = string(types.EncryptionTypeKms)
	}
	if ev.Kinesis.Data == nil {
		ev.Kinesis.Data = []byte{} // AWS always sends "data"
	}
	js, err := json.Marshal(ev)
	if err != nil {
		panic("streampoller: encode event record: " + err.Error()) // only strings, bytes and a time
	}
	return &record{seq: seq, arrival: arrival, json: js, readAt: readAt}
}

package streampoller

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
)

// pending is a run of consecutive records of one shard that has not succeeded yet.
type pending struct {
	recs    []*record
	retries int  // retry attempts consumed, compared with MaxRetryAttempts
	invokes int  // invocations of these records so far (approximateInvokeCount)
	retry   bool // the last invocation failed: wait PollInterval before the next
}

// process invokes the handler with one batch until every record of it has succeeded or been
// given to OnFailure, checkpointing as it goes. It returns an error only when ctx ends; the
// records not checkpointed then are simply dropped with the poller.
func (p *Poller) process(ctx context.Context, s *shard, recs []*record) error {
	queue := []*pending{{recs: recs}} // in sequence order
	for len(queue) > 0 {
		b := queue[0]
		if n := p.expiredPrefix(b.recs, time.Now()); n > 0 {
			if err := p.giveUp(ctx, s, b.recs[:n], ReasonRecordAgeExceeded, b.invokes); err != nil {
				return err
			}
			b.recs = b.recs[n:]
			if len(b.recs) == 0 {
				queue = queue[1:]
				continue
			}
		}
		if b.retry {
			b.retry = false
			if err := backoff.Sleep(ctx, p.cfg.PollInterval); err != nil {
				return err
			}
			continue // records may have expired meanwhile
		}

		b.invokes++
		v := p.invoke(ctx, s, b.recs, b.invokes)
		if err := ctx.Err(); err != nil {
			return err
		}
		switch v.kind {
		case complete:
			p.checkpoint(s, b.recs)
			queue = queue[1:]
			continue
		case partial:
			p.checkpoint(s, b.recs[:v.from])
			b.recs = b.recs[v.from:]
		case failed:
			if p.cfg.BisectOnError && len(b.recs) > 1 {
				half := len(b.recs) / 2
				first := &pending{recs: b.recs[:half], retries: b.retries, invokes: b.invokes}
				second := &pending{recs: b.recs[half:], retries: b.retries, invokes: b.invokes}
				queue = append([]*pending{first, second}, queue[1:]...)
				p.update(func() { p.stats.Bisections++ })
				continue
			}
		}
		if b.retries >= p.cfg.MaxRetryAttempts {
			if err := p.giveUp(ctx, s, b.recs, ReasonRetryAttemptsExhausted, b.invokes); err != nil {
				return err
			}
			queue = queue[1:]
			continue
		}
		b.retries++
		b.retry = true
		p.update(func() { p.stats.Retries++ })
	}
	return nil
}

// expiredPrefix returns how many records from the front of recs go to OnFailure for their
// age: up to and including the last one older than MaxRecordAge, so the discarded records stay
// one contiguous sequence range.
func (p *Poller) expiredPrefix(recs []*record, now time.Time) int {
	if p.cfg.MaxRecordAge == 0 {
		return 0
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if now.Sub(recs[i].arrival) > p.cfg.MaxRecordAge {
			return i + 1
		}
	}
	return 0
}

// checkpoint records that recs (a prefix of what is left of the batch) are done.
func (p *Poller) checkpoint(s *shard, recs []*record) {
	if len(recs) == 0 {
		return
	}
	p.update(func() { s.state.checkpoint = recs[len(recs)-1].seq })
}

// giveUp sends the metadata of recs to OnFailure, retrying until it succeeds or ctx ends, and
// checkpoints past them.
func (p *Poller) giveUp(ctx context.Context, s *shard, recs []*record, reason string, invokes int) error {
	f := FailureRecord{
		Shard:                           s.id,
		StartSequenceNumber:             recs[0].seq,
		EndSequenceNumber:               recs[len(recs)-1].seq,
		BatchSize:                       len(recs),
		ApproximateArrivalOfFirstRecord: recs[0].arrival,
		ApproximateArrivalOfLastRecord:  recs[len(recs)-1].arrival,
		StreamARN:                       p.cfg.EventSourceARN,
		Reason:                          reason,
		Attempts:                        invokes,
	}
	p.log.Warn("giving up on records", "shard", s.id, "reason", reason, "attempts", invokes,
		"batch_size", len(recs), "start_sequence_number", f.StartSequenceNumber, "end_sequence_number", f.EndSequenceNumber)
	for {
		err := p.cfg.OnFailure(ctx, f)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Error("on-failure destination failed; the shard waits and tries again", "shard", s.id, "err", err)
		if err := backoff.Sleep(ctx, p.cfg.PollInterval); err != nil {
			return err
		}
	}
	p.update(func() {
		p.stats.FailureBatches++
		p.stats.RecordsToOnFailure += len(recs)
		s.state.checkpoint = f.EndSequenceNumber
	})
	return nil
}

// verdictKind is the outcome of one invocation.
type verdictKind int

const (
	complete verdictKind = iota // checkpoint the whole batch
	partial                     // checkpoint before recs[from], retry from there
	failed                      // the whole batch failed
)

type verdict struct {
	kind   verdictKind
	from   int    // partial: index of the lowest reported record
	reason string // failed: why
}

// lateWarning is how long after its deadline a handler still running is reported as ignoring
// its context.
const lateWarning = time.Second

// invoke calls the handler once with recs, as Lambda would, and judges the outcome.
func (p *Poller) invoke(ctx context.Context, s *shard, recs []*record, attempt int) verdict {
	payload := encodePayload(recs)
	var ev events.KinesisEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		panic("streampoller: decode own payload: " + err.Error())
	}
	ictx, cancel := context.WithTimeout(ctx, p.cfg.FunctionTimeout)
	defer cancel()
	ictx = lambdacontext.NewContext(ictx, &lambdacontext.LambdaContext{AwsRequestID: newRequestID(), InvokedFunctionArn: p.functionARN})
	p.update(func() {
		p.stats.Invocations++
		p.stats.RecordsDelivered += len(recs)
	})

	// Lambda would stop an overrunning function; here the shard can only wait for it.
	watchdog := time.AfterFunc(p.cfg.FunctionTimeout+lateWarning, func() {
		p.log.Warn("handler still running after its deadline (Lambda would have stopped it); the shard waits for it to return",
			"shard", s.id, "function_timeout", p.cfg.FunctionTimeout)
	})
	resp, err := p.call(ictx, ev)
	watchdog.Stop()
	timedOut := errors.Is(ictx.Err(), context.DeadlineExceeded)
	if ctx.Err() != nil {
		return verdict{kind: failed, reason: "poller stopped during the invocation"}
	}

	var v verdict
	switch {
	case timedOut:
		v = verdict{kind: failed, reason: fmt.Sprintf("timed out after %s", p.cfg.FunctionTimeout)}
	case err != nil:
		v = verdict{kind: failed, reason: "function error: " + err.Error()}
	default:
		if !p.cfg.ReportBatchItemFailures && len(resp.BatchItemFailures) > 0 {
			p.warnsOnce.Do(func() {
				p.log.Warn("handler reports batch item failures but ReportBatchItemFailures is off: the response is ignored, as AWS does")
			})
		}
		seqs := make([]string, len(recs))
		for i, r := range recs {
			seqs[i] = r.seq
		}
		v = judgeResponse(seqs, resp, p.cfg.ReportBatchItemFailures)
	}
	if p.cfg.Crash != nil {
		var cp events.KinesisEvent
		if err := json.Unmarshal(payload, &cp); err != nil {
			panic("streampoller: decode own payload: " + err.Error())
		}
		if p.cfg.Crash(cp, attempt) && v.kind != failed {
			v = verdict{kind: failed, reason: "crash injected by the Crash hook"}
		}
	}

	first, last := recs[0].seq, recs[len(recs)-1].seq
	switch v.kind {
	case failed:
		p.update(func() { p.stats.FunctionErrors++ })
		p.log.Warn("invocation failed", "shard", s.id, "attempt", attempt, "batch_size", len(recs),
			"first_sequence_number", first, "last_sequence_number", last, "reason", v.reason)
	case partial:
		p.update(func() { p.stats.PartialFailures++ })
		p.log.Info("invocation reported batch item failures", "shard", s.id, "attempt", attempt, "batch_size", len(recs),
			"first_sequence_number", first, "retry_from", recs[v.from].seq)
	default:
		p.log.Debug("invocation succeeded", "shard", s.id, "attempt", attempt, "batch_size", len(recs),
			"first_sequence_number", first, "last_sequence_number", last)
	}
	return v
}

// call runs the handler; a panic is a function error, as in the Lambda Go runtime.
func (p *Poller) call(ctx context.Context, ev events.KinesisEvent) (resp events.KinesisEventResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
			p.log.Error("handler panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	return p.handler(ctx, ev)
}

// judgeResponse applies the ESM's rules to a normal return. seqs are the batch's sequence
// numbers, in order.
//
//   - ReportBatchItemFailures off, or no batch item failures: the whole batch succeeded.
//   - Every itemIdentifier names a record of the batch: checkpoint before the lowest one and
//     retry from it.
//   - An itemIdentifier that is empty, not a sequence number or not in the batch: the whole
//     batch failed.
func judgeResponse(seqs []string, resp events.KinesisEventResponse, reportItemFailures bool) verdict {
	if !reportItemFailures || len(resp.BatchItemFailures) == 0 {
		return verdict{kind: complete}
	}
	index := make(map[string]int, len(seqs))
	for i, s := range seqs {
		index[normSeq(s)] = i
	}
	lowest := ""
	for _, f := range resp.BatchItemFailures {
		id := f.ItemIdentifier
		if !validSeq(id) {
			return verdict{kind: failed, reason: fmt.Sprintf("batch item failure with itemIdentifier %q, not a sequence number", id)}
		}
		if _, ok := index[normSeq(id)]; !ok {
			return verdict{kind: failed, reason: fmt.Sprintf("batch item failure %s is not a record of this batch", id)}
		}
		if lowest == "" || compareSeq(id, lowest) < 0 {
			lowest = id
		}
	}
	return verdict{kind: partial, from: index[normSeq(lowest)]}
}

// encodePayload builds the invocation payload {"Records":[...]}.
func encodePayload(recs []*record) []byte {
	size := payloadOverhead + len(recs)
	for _, r := range recs {
		size += len(r.json)
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(`{"Records":[`)
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r.json)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// newRequestID returns a random UUID (version 4), like Lambda's request ids.
func newRequestID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

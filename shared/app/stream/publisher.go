// Package stream publishes records to the event stream through any ports.StreamWriter: it cuts
// them into PutRecords-sized chunks and retries the entries that fail, with backoff, within a
// bounded number of attempts and the caller's deadline.
//
// PutRecords does not keep order across the entries of a call, and retries resend only the
// failed entries, later; a whole-call error may also have written part of the call, so a retry
// can duplicate records. Consumers therefore order events by event time and dedupe on the
// event id, never on arrival order or sequence numbers.
package stream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Error codes the Publisher reports for records it could not hand to Kinesis. Entries that
// Kinesis failed keep Kinesis' code (ProvisionedThroughputExceededException, InternalFailure).
const (
	// CodeRecordTooLarge: data plus partition key exceed ports.MaxRecordBytes; never sent.
	CodeRecordTooLarge = "RecordTooLarge"
	// CodeInvalidPartitionKey: the partition key is empty or longer than MaxPartitionKeyLen;
	// never sent, because Kinesis would reject the whole call that carries it.
	CodeInvalidPartitionKey = "InvalidPartitionKey"
	// CodeCallFailed: the last call carrying the record failed as a whole (or, when the context
	// ended before the first call, no call was made); ErrorMessage holds the error text.
	CodeCallFailed = "CallFailed"
)

// MaxPartitionKeyLen is the longest partition key Kinesis accepts.
const MaxPartitionKeyLen = 256

// Options tunes a Publisher. Zero fields take the defaults.
type Options struct {
	// MaxAttempts bounds how often a record is sent (default 6).
	MaxAttempts int
	// BaseDelay and MaxDelay shape the full-jitter exponential backoff between attempts:
	// the delay before attempt n+1 is uniform in [0, min(MaxDelay, BaseDelay*2^(n-1))).
	// Defaults 20ms and 800ms.
	BaseDelay, MaxDelay time.Duration
	// DeadlineMargin: no retry starts when the ctx deadline is closer than margin plus the
	// next delay, so the caller keeps time to answer (default 300ms).
	DeadlineMargin time.Duration
	// Concurrency is how many calls of one attempt run at once (default 4).
	Concurrency int
	// Sleep waits between attempts (default: a timer that honours ctx). Tests pass a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for the jitter (default math/rand/v2.Float64).
	Rand func() float64
}

// Publisher writes records through a StreamWriter. It is safe for concurrent use.
type Publisher struct {
	w ports.StreamWriter
	o Options
}

// NewPublisher returns a Publisher writing through w.
func NewPublisher(w ports.StreamWriter, o Options) *Publisher {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 20 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 800 * time.Millisecond
	}
	if o.DeadlineMargin <= 0 {
		o.DeadlineMargin = 300 * time.Millisecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Sleep == nil {
		o.Sleep = backoff.Sleep
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return &Publisher{w: w, o: o}
}

// Publish writes records and reports those it could not write. Records that cannot be written
// at all (too large, bad partition key) are reported without a call. The others go out in
// chunks of at most ports.MaxPutRecords records and ports.MaxPutBytes bytes; entries that
// fail, alone or with their whole call, are retried with backoff until they succeed,
// MaxAttempts is reached, or the ctx deadline is too close. Order across records is not kept
// (see the package doc).
func (p *Publisher) Publish(ctx context.Context, records []ports.StreamRecord) ports.PublishReport {
	var rep ports.PublishReport
	last := make(map[int]ports.PublishFailure) // last error of each pending record
	pending := make([]int, 0, len(records))
	for i, r := range records {
		switch size := len(r.Data) + len(r.PartitionKey); {
		case size > ports.MaxRecordBytes:
			rep.Failed = append(rep.Failed, ports.PublishFailure{Index: i, ErrorCode: CodeRecordTooLarge,
				ErrorMessage: fmt.Sprintf("record of %d bytes exceeds %d", size, ports.MaxRecordBytes)})
		case len(r.PartitionKey) == 0 || len(r.PartitionKey) > MaxPartitionKeyLen:
			rep.Failed = append(rep.Failed, ports.PublishFailure{Index: i, ErrorCode: CodeInvalidPartitionKey,
				ErrorMessage: fmt.Sprintf("partition key of %d bytes, want 1..%d", len(r.PartitionKey), MaxPartitionKeyLen)})
		default:
			pending = append(pending, i)
		}
	}

	for attempt := 1; len(pending) > 0; attempt++ {
		if ctx.Err() != nil {
			break
		}
		rep.Attempts = attempt
		if attempt > 1 {
			rep.RetriedRecords += len(pending)
		}
		chunks := chunk(records, pending)
		rep.Calls += len(chunks)
		pending = p.send(ctx, records, chunks, last)
		if len(pending) == 0 || attempt == p.o.MaxAttempts {
			break
		}
		delay := p.backoff(attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < p.o.DeadlineMargin+delay {
			break
		}
		if err := p.o.Sleep(ctx, delay); err != nil {
			break
		}
	}

	for _, i := range pending {
		f, sent := last[i]
		if !sent {
			f = ports.PublishFailure{Index: i, ErrorCode: CodeCallFailed, ErrorMessage: fmt.Sprintf("not sent: %v", context.Cause(ctx))}
		}
		rep.Failed = append(rep.Failed, f)
	}
	slices.SortFunc(rep.Failed, func(a, b ports.PublishFailure) int { return a.Index - b.Index })
	return rep
}

// send makes one call per chunk, at most Concurrency at a time, records the errors in last and
// returns the indices still to write, sorted.
func (p *Publisher) send(ctx context.Context, records []ports.StreamRecord, chunks [][]int, last map[int]ports.PublishFailure) []int {
	failed := make([][]ports.PublishFailure, len(chunks))
	sem := make(chan struct{}, p.o.Concurrency)
	var wg sync.WaitGroup
	for c, idx := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			failed[c] = p.call(ctx, records, idx)
		}()
	}
	wg.Wait()

	var pending []int
	for _, fs := range failed {
		for _, f := range fs {
			last[f.Index] = f
			pending = append(pending, f.Index)
		}
	}
	slices.Sort(pending)
	return pending
}

// call writes one chunk and returns its failed entries.
func (p *Publisher) call(ctx context.Context, records []ports.StreamRecord, idx []int) []ports.PublishFailure {
	batch := make([]ports.StreamRecord, len(idx))
	for j, i := range idx {
		batch[j] = records[i]
	}
	results, err := p.w.PutRecords(ctx, batch)
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("writer returned %d results for %d records", len(results), len(batch))
	}
	var failed []ports.PublishFailure
	if err != nil {
		for _, i := range idx {
			failed = append(failed, ports.PublishFailure{Index: i, ErrorCode: CodeCallFailed, ErrorMessage: err.Error()})
		}
		return failed
	}
	for j, r := range results {
		if r.ErrorCode != "" {
			failed = append(failed, ports.PublishFailure{Index: idx[j], ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage})
		}
	}
	return failed
}

// backoff returns the full-jitter delay after the given attempt (1-based).
func (p *Publisher) backoff(attempt int) time.Duration {
	return backoff.FullJitter(attempt, p.o.BaseDelay, p.o.MaxDelay, p.o.Rand)
}

// chunk cuts the pending indices into PutRecords-sized groups, keeping their order.
func chunk(records []ports.StreamRecord, pending []int) [][]int {
	var chunks [][]int
	var cur []int
	bytes := 0
	for _, i := range pending {
		size := len(records[i].Data) + len(records[i].PartitionKey)
		if len(cur) == ports.MaxPutRecords || (len(cur) > 0 && bytes+size > ports.MaxPutBytes) {
			chunks = append(chunks, cur)
			cur, bytes = nil, 0
		}
		cur = append(cur, i)
		bytes += size
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

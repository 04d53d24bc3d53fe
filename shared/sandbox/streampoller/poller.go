package streampoller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// Handler is a Kinesis-triggered Lambda function: the same signature lambda.Start accepts.
type Handler func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error)

// KinesisAPI is the part of *kinesis.Client the Poller uses.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// Starting positions (Config.StartingPosition).
const (
	TrimHorizon = "TRIM_HORIZON"
	Latest      = "LATEST"
)

// Defaults and limits of Config; the limits are AWS's unless said otherwise.
const (
	DefaultBatchSize       = 100
	MaxBatchSize           = 10000
	MaxBatchingWindow      = 300 * time.Second
	DefaultMaxBatchBytes   = 6 << 20 // Lambda's synchronous invocation payload limit
	MaxRetryAttemptsLimit  = 10000
	MaxRecordAgeLimit      = 604800 * time.Second
	DefaultFunctionTimeout = 10 * time.Second // this package's default; Lambda's is 3 s
	MaxFunctionTimeout     = 15 * time.Minute
	DefaultPollInterval    = 200 * time.Millisecond
)

// Reasons of a FailureRecord (the on-failure record's requestContext.condition).
const (
	ReasonRetryAttemptsExhausted = "RetryAttemptsExhausted"
	ReasonRecordAgeExceeded      = "RecordAgeExceeded"
)

// Config mirrors the settings of a Kinesis event source mapping. The zero value of each field
// means its default, except MaxRetryAttempts, whose zero means no retries.
type Config struct {
	// Stream is the stream name; shards are listed by name (kinesalite has no ListShards by ARN).
	Stream string
	// BatchSize is the most records per invocation: 1 to 10000, default 100.
	BatchSize int
	// BatchingWindow is MaximumBatchingWindowInSeconds: how long to gather records after the
	// first one before invoking with fewer than BatchSize. 0 (default) invokes as soon as
	// records are read; at most 300 s.
	BatchingWindow time.Duration
	// MaxBatchBytes caps the JSON payload of one invocation; default and maximum 6 MiB.
	// A single larger record is still delivered, alone.
	MaxBatchBytes int
	// BisectOnError is BisectBatchOnFunctionError.
	BisectOnError bool
	// MaxRetryAttempts is MaximumRetryAttempts: how many times failed records are retried
	// before they go to OnFailure; 0 to 10000. AWS's -1 (infinite, its default) is refused.
	MaxRetryAttempts int
	// MaxRecordAge is MaximumRecordAgeInSeconds; 0 means unbounded, at most 7 days. Any
	// positive value is allowed (AWS's minimum is 60 s).
	MaxRecordAge time.Duration
	// ReportBatchItemFailures is FunctionResponseTypes: [ReportBatchItemFailures]. Without it
	// the response is ignored, as AWS does.
	ReportBatchItemFailures bool
	// FunctionTimeout is the deadline of each invocation's context; default 10 s, at most
	// 15 min. An invocation whose handler returns after the deadline has failed, whatever the
	// handler returns.
	FunctionTimeout time.Duration
	// StartingPosition is TrimHorizon (default) or Latest.
	StartingPosition string
	// PollInterval is how long a shard waits after a GetRecords call that found nothing new
	// before the next, and before retrying a failed batch. Default 200 ms (AWS polls each
	// shard about once per second).
	PollInterval time.Duration
	// EventSourceARN is put into each record's eventSourceARN; its region and account also
	// give awsRegion and the fake role and function ARNs. Default
	// arn:aws:kinesis:us-east-1:000000000000:stream/<Stream>.
	EventSourceARN string
	// OnFailure is the on-failure destination: it receives the metadata of records given up on
	// (as AWS sends to SQS or SNS). An error makes the poller call again after PollInterval;
	// the shard waits meanwhile. Default: log at error level.
	OnFailure func(ctx context.Context, f FailureRecord) error
	// Crash is a test hook, called after each handler return with a copy of the batch and the
	// attempt (1 for the first invocation of these records, then +1 per invocation; halves and
	// remainders continue their parent's count). Returning true makes the poller treat that
	// invocation as failed although the handler ran, as when the function crashes after some
	// side effects: tests use it to prove idempotency under redelivery.
	Crash func(batch events.KinesisEvent, attempt int) bool
	// Logger receives the poller's logs; default slog.Default().
	Logger *slog.Logger
}

// FailureRecord describes records the poller gave up on. It mirrors the on-failure invocation
// record AWS sends to an SQS/SNS destination:
//
//	Shard                            KinesisBatchInfo.shardId
//	StartSequenceNumber              KinesisBatchInfo.startSequenceNumber
//	EndSequenceNumber                KinesisBatchInfo.endSequenceNumber
//	BatchSize                        KinesisBatchInfo.batchSize
//	ApproximateArrivalOfFirstRecord  KinesisBatchInfo.approximateArrivalOfFirstRecord
//	ApproximateArrivalOfLastRecord   KinesisBatchInfo.approximateArrivalOfLastRecord
//	StreamARN                        KinesisBatchInfo.streamArn
//	Reason                           requestContext.condition
//	Attempts                         requestContext.approximateInvokeCount
//
// Like AWS's record it carries no data: read the records from the stream by shard and
// sequence range (GetShardIterator AT_SEQUENCE_NUMBER).
type FailureRecord struct {
	Shard               string
	StartSequenceNumber string
	EndSequenceNumber   string
	BatchSize           int

	ApproximateArrivalOfFirstRecord time.Time
	ApproximateArrivalOfLastRecord  time.Time

	StreamARN string
	// Reason is ReasonRetryAttemptsExhausted or ReasonRecordAgeExceeded.
	Reason string
	// Attempts is how many times these records were invoked (0 when they expired unread by
	// the handler).
	Attempts int
}

// Stats counts what the poller did since Run started.
type Stats struct {
	// Invocations counts handler calls.
	Invocations int
	// RecordsDelivered counts records handed to the handler, redeliveries included.
	RecordsDelivered int
	// FunctionErrors counts invocations that failed as a whole: returned error, panic,
	// timeout, Crash hook, or a response naming an unknown item.
	FunctionErrors int
	// PartialFailures counts invocations answered with batch item failures (and honoured).
	PartialFailures int
	// Retries counts retry attempts consumed.
	Retries int
	// Bisections counts batches split in two.
	Bisections int
	// FailureBatches counts OnFailure calls that succeeded, RecordsToOnFailure their records.
	FailureBatches     int
	RecordsToOnFailure int
	// Shards holds the state of every shard seen, by shard id.
	Shards map[string]ShardStats
}

// ShardStats is the state of one shard.
type ShardStats struct {
	// Checkpoint is the sequence number of the last record handled or given to OnFailure;
	// empty before the first.
	Checkpoint string
	// Buffered counts records read but not yet handed to the handler.
	Buffered int
	// Finished is true once a closed shard (after resharding) was fully processed.
	Finished bool
	// LastError is the last Kinesis error of this shard, cleared by the next success.
	LastError string
}

// Errors callers branch on.
var (
	// ErrInvalidConfig wraps every configuration error of New.
	ErrInvalidConfig = errors.New("invalid stream poller config")
	// ErrRunCalled is returned by a second call of Run.
	ErrRunCalled = errors.New("stream poller: Run already called")
	// ErrStopped is returned by WaitIdle once Run has returned.
	ErrStopped = errors.New("stream poller stopped")
)

// relistInterval is how often Run lists the shards again to find children of a reshard.
const relistInterval = 5 * time.Second

// Poller runs one event source mapping. Create it with New, start it with Run.
type Poller struct {
	client  KinesisAPI
	cfg     Config
	handler Handler
	log     *slog.Logger

	region      string
	roleARN     string
	functionARN string

	clock     atomic.Uint64 // logical time: orders WaitIdle calls against polls and listings
	relist    chan struct{} // asks Run to list the shards now
	started   atomic.Bool
	warnsOnce sync.Once // warns once about item failures while ReportBatchItemFailures is off

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every state change (WaitIdle waits on it)
	stopped  bool
	listedAt uint64 // clock tick at the start of the last successful listing
	shards   map[string]*shard
	stats    Stats // Shards unused here: see shard.state
}

// New checks cfg, applies its defaults and returns a Poller that invokes h. client is usually a
// *kinesis.Client pointed at kinesalite.
func New(client KinesisAPI, cfg Config, h Handler) (*Poller, error) {
	if client == nil || h == nil {
		return nil, fmt.Errorf("%w: client and handler are required", ErrInvalidConfig)
	}
	if err := applyDefaults(&cfg); err != nil {
		return nil, err
	}
	arn := strings.SplitN(cfg.EventSourceARN, ":", 6)
	if len(arn) != 6 || arn[0] != "arn" || arn[2] != "kinesis" || arn[3] == "" || arn[4] == "" {
		return nil, fmt.Errorf("%w: EventSourceARN %q is not a Kinesis stream ARN", ErrInvalidConfig, cfg.EventSourceARN)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "streampoller", "stream", cfg.Stream)
	p := &Poller{
		client:      client,
		cfg:         cfg,
		handler:     h,
		log:         log,
		region:      arn[3],
		roleARN:     fmt.Sprintf("arn:%s:iam::%s:role/streampoller", arn[1], arn[4]),
		functionARN: fmt.Sprintf("arn:%s:lambda:%s:%s:function:streampoller-%s", arn[1], arn[3], arn[4], cfg.Stream),
		relist:      make(chan struct{}, 1),
		changed:     make(chan struct{}),
		shards:      make(map[string]*shard),
	}
	if p.cfg.OnFailure == nil {
		p.cfg.OnFailure = p.logFailure
	}
	return p, nil
}

func applyDefaults(c *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.Stream == "" {
		return bad("Stream is required")
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		return bad("BatchSize %d not in 1..%d", c.BatchSize, MaxBatchSize)
	}
	if c.BatchingWindow < 0 || c.BatchingWindow > MaxBatchingWindow {
		return bad("BatchingWindow %s not in 0..%s", c.BatchingWindow, MaxBatchingWindow)
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxBatchBytes < 0 || c.MaxBatchBytes > DefaultMaxBatchBytes {
		return bad("MaxBatchBytes %d not in 1..%d", c.MaxBatchBytes, DefaultMaxBatchBytes)
	}
	if c.MaxRetryAttempts < 0 {
		return bad("MaxRetryAttempts %d: infinite retries block a shard for the whole retention period; set a bound in 0..%d", c.MaxRetryAttempts, MaxRetryAttemptsLimit)
	}
	if c.MaxRetryAttempts > MaxRetryAttemptsLimit {
		return bad("MaxRetryAttempts %d above %d", c.MaxRetryAttempts, MaxRetryAttemptsLimit)
	}
	if c.MaxRecordAge < 0 || c.MaxRecordAge > MaxRecordAgeLimit {
		return bad("MaxRecordAge %s not in 0..%s", c.MaxRecordAge, MaxRecordAgeLimit)
	}
	if c.FunctionTimeout == 0 {
		c.FunctionTimeout = DefaultFunctionTimeout
	}
	if c.FunctionTimeout < 0 || c.FunctionTimeout > MaxFunctionTimeout {
		return bad("FunctionTimeout %s not in 0..%s", c.FunctionTimeout, MaxFunctionTimeout)
	}
	switch c.StartingPosition {
	case "":
		c.StartingPosition = TrimHorizon
	case TrimHorizon, Latest:
	default:
		return bad("StartingPosition %q: want %s or %s", c.StartingPosition, TrimHorizon, Latest)
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.PollInterval < 0 {
		return bad("PollInterval %s is negative", c.PollInterval)
	}
	if c.EventSourceARN == "" {
		c.EventSourceARN = "arn:aws:kinesis:us-east-1:000000000000:stream/" + c.Stream
	}
	return nil
}

// Run polls every shard of the stream and invokes the handler until ctx ends, then waits for
// every shard goroutine to stop, including running invocations: their context is cancelled,
// and a handler must return when it is (one that does not keeps Run from returning). It
// returns nil after ctx ends, or an error if the first shard listing fails (for example, the
// stream does not exist). Later Kinesis errors are logged and retried. Run may be called once.
func (p *Poller) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return ErrRunCalled
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		p.mu.Lock()
		p.stopped = true
		p.notifyLocked()
		p.mu.Unlock()
	}()

	if err := p.listShards(ctx, true, &wg); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	timer := time.NewTimer(relistInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.relist:
		}
		if err := p.listShards(ctx, false, &wg); err != nil && ctx.Err() == nil {
			p.log.Warn("list shards failed; will try again", "err", err)
		}
		timer.Reset(relistInterval)
	}
}

// listShards learns the stream's shards and starts a goroutine for each new one.
func (p *Poller) listShards(ctx context.Context, first bool, wg *sync.WaitGroup) error {
	tick := p.clock.Add(1)
	var listed []*shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(p.cfg.Stream)}
	for {
		callCtx, cancel := kinesisCallContext(ctx)
		out, err := p.client.ListShards(callCtx, in)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			return fmt.Errorf("list shards of %s: %w", p.cfg.Stream, err)
		}
		for _, s := range out.Shards {
			sh := &shard{p: p, id: aws.ToString(s.ShardId), atStart: first, done: make(chan struct{})}
			for _, parent := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
				if aws.ToString(parent) != "" {
					sh.parents = append(sh.parents, *parent)
				}
			}
			listed = append(listed, sh)
		}
		if out.NextToken == nil {
			break
		}
		// With NextToken, ListShards rejects StreamName.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}

	p.mu.Lock()
	var fresh []*shard
	for _, sh := range listed {
		if _, known := p.shards[sh.id]; !known {
			p.shards[sh.id] = sh
			fresh = append(fresh, sh)
		}
	}
	for _, sh := range fresh {
		for _, id := range sh.parents {
			if parent, ok := p.shards[id]; ok {
				sh.waitFor = append(sh.waitFor, parent.done)
			}
		}
	}
	p.listedAt = tick
	p.notifyLocked()
	p.mu.Unlock()

	for _, sh := range fresh {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.run(ctx)
		}()
	}
	return nil
}

// requestRelist asks Run to list the shards soon.
func (p *Poller) requestRelist() {
	select {
	case p.relist <- struct{}{}:
	default:
	}
}

// WaitIdle returns nil once the poller has dealt with every record that was on the stream
// when WaitIdle was called: a shard listing started after the call, and for every shard then
// known, either the shard is finished (closed and fully processed) or a GetRecords call
// started after the call found nothing new, nothing is buffered and no batch is being
// processed (handled, retried, or given to OnFailure). Records put after the call may or may
// not have been processed. It returns ErrStopped once Run has returned, or ctx's error.
func (p *Poller) WaitIdle(ctx context.Context) error {
	since := p.clock.Add(1)
	p.requestRelist()
	for {
		p.mu.Lock()
		idle := p.idleSinceLocked(since)
		stopped := p.stopped
		changed := p.changed
		p.mu.Unlock()
		switch {
		case idle:
			return nil
		case stopped:
			return ErrStopped
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait idle: %w", ctx.Err())
		}
	}
}

func (p *Poller) idleSinceLocked(since uint64) bool {
	if p.listedAt <= since {
		return false
	}
	for _, sh := range p.shards {
		st := &sh.state
		if st.finished {
			continue
		}
		if !st.reading || st.busy || st.buffered > 0 || st.caughtUpAt <= since {
			return false
		}
	}
	return true
}

// Stats returns a snapshot of the counters and of every shard's state.
func (p *Poller) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Shards = make(map[string]ShardStats, len(p.shards))
	for id, sh := range p.shards {
		s.Shards[id] = ShardStats{
			Checkpoint: sh.state.checkpoint,
			Buffered:   sh.state.buffered,
			Finished:   sh.state.finished,
			LastError:  sh.state.lastErr,
		}
	}
	return s
}

// update changes shared state under the lock and wakes WaitIdle.
func (p *Poller) update(fn func()) {
	p.mu.Lock()
	fn()
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *Poller) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// logFailure is the default OnFailure.
func (p *Poller) logFailure(_ context.Context, f FailureRecord) error {
	p.log.Error("records given up on (no OnFailure destination configured)",
		"shard", f.Shard, "reason", f.Reason, "attempts", f.Attempts, "batch_size", f.BatchSize,
		"start_sequence_number", f.StartSequenceNumber, "end_sequence_number", f.EndSequenceNumber)
	return nil
}

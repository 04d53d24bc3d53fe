package streampoller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// fastPoll keeps the tests quick; AWS polls about once per second.
const fastPoll = 10 * time.Millisecond

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// testLogger sends the poller's logs to the test log (shown with -v or on failure).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func awsConfigOf(c *kinesis.Client) aws.Config {
	o := c.Options()
	return aws.Config{Region: o.Region, Credentials: o.Credentials, BaseEndpoint: o.BaseEndpoint}
}

// kinesaliteClient starts kinesalite for the test and returns a client of it.
func kinesaliteClient(t *testing.T) *kinesis.Client {
	t.Helper()
	emu := emulators.StartForTest(t, emulators.Kinesis)
	cfg, err := emulators.AWSConfig(context.Background(), emu.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg)
}

var streams atomic.Int64

// newStream creates a fresh stream with the given number of shards.
func newStream(t *testing.T, client *kinesis.Client, shards int32) string {
	t.Helper()
	name := fmt.Sprintf("poller-%d", streams.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := kinesisstream.EnsureStream(ctx, client, name, shards); err != nil {
		t.Fatal(err)
	}
	return name
}

// put is one record written by putRecords.
type put struct {
	shard, seq, key string
	data            []byte
}

// putRecords writes one record per key in a single PutRecords call and returns them in
// (shard, sequence number) order. Data is "<prefix><i>".
func putRecords(t *testing.T, client *kinesis.Client, stream, prefix string, keys ...string) []put {
	t.Helper()
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for i, k := range keys {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: fmt.Appendf(nil, "%s%d", prefix, i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	out, err := client.PutRecords(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %d failed", aws.ToInt32(out.FailedRecordCount))
	}
	puts := make([]put, len(keys))
	for i, r := range out.Records {
		puts[i] = put{shard: aws.ToString(r.ShardId), seq: aws.ToString(r.SequenceNumber), key: keys[i], data: in.Records[i].Data}
	}
	slices.SortFunc(puts, func(a, b put) int {
		if c := strings.Compare(a.shard, b.shard); c != 0 {
			return c
		}
		return compareSeq(a.seq, b.seq)
	})
	return puts
}

func sameKey(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-1"
	}
	return keys
}

// invocation is what the handler saw in one call.
type invocation struct {
	shard string
	seqs  []string
	ev    events.KinesisEvent
	ctx   context.Context
}

// recorder records invocations and checks that a shard never has two at once.
type recorder struct {
	t        *testing.T
	mu       sync.Mutex
	calls    []invocation
	inflight map[string]bool
	// next decides the outcome of call n (1-based); nil means success.
	next func(ctx context.Context, n int, inv invocation) (events.KinesisEventResponse, error)
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, inflight: make(map[string]bool)}
}

func (r *recorder) handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	inv := invocation{ev: ev, ctx: ctx}
	for _, rec := range ev.Records {
		shard, _, _ := strings.Cut(rec.EventID, ":")
		if inv.shard != "" && inv.shard != shard {
			r.t.Errorf("one batch holds records of %s and %s", inv.shard, shard)
		}
		inv.shard = shard
		inv.seqs = append(inv.seqs, rec.Kinesis.SequenceNumber)
	}
	r.mu.Lock()
	if r.inflight[inv.shard] {
		r.t.Errorf("two invocations at once on %s", inv.shard)
	}
	r.inflight[inv.shard] = true
	r.calls = append(r.calls, inv)
	n := len(r.calls)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight[inv.shard] = false
		r.mu.Unlock()
	}()
	if r.next == nil {
		return events.KinesisEventResponse{}, nil
	}
	return r.next(ctx, n, inv)
}

func (r *recorder) invocations() []invocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// batches returns the batches seen, as indexes into puts.
func (r *recorder) batches(puts []put) [][]int {
	var out [][]int
	for _, inv := range r.invocations() {
		out = append(out, indexes(puts, inv.seqs))
	}
	return out
}

func indexes(puts []put, seqs []string) []int {
	out := make([]int, len(seqs))
	for i, s := range seqs {
		out[i] = slices.IndexFunc(puts, func(p put) bool { return p.seq == s })
	}
	return out
}

func span(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// onFailure collects FailureRecords.
type onFailure struct {
	mu  sync.Mutex
	got []FailureRecord
}

func (o *onFailure) send(_ context.Context, f FailureRecord) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, f)
	return nil
}

func (o *onFailure) records() []FailureRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

// startPoller runs a poller until the end of the test and checks that Run stops cleanly.
func startPoller(t *testing.T, client KinesisAPI, cfg Config, h Handler) *Poller {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = fastPoll
	}
	cfg.Logger = testLogger(t)
	p, err := New(client, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	return p
}

func waitIdle(t *testing.T, p *Poller) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := p.WaitIdle(ctx); err != nil {
		t.Fatalf("WaitIdle: %v (stats %+v)", err, p.Stats())
	}
}

// The end-to-end behaviours, each on a fresh stream of one shared kinesalite.
func TestPollerWithKinesalite(t *testing.T) {
	client := kinesaliteClient(t)

	t.Run("delivers every record once, in order per shard", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 3)
		keys := make([]string, 300)
		for i := range keys {
			keys[i] = fmt.Sprintf("user-%d", i%37)
		}
		puts := putRecords(t, client, stream, "event-", keys...)
		rec := newRecorder(t)
		p := startPoller(t, client, Config{Stream: stream, BatchSize: 25, MaxRetryAttempts: 0}, rec.handle)
		waitIdle(t, p)

		byShard := map[string][]string{}
		for _, inv := range rec.invocations() {
			if len(inv.seqs) > 25 {
				t.Errorf("batch of %d records, BatchSize 25", len(inv.seqs))
			}
			byShard[inv.shard] = append(byShard[inv.shard], inv.seqs...)
			checkEventRecords(t, stream, inv.ev, puts)
		}
		wantByShard := map[string][]string{}
		for _, p := range puts {
			wantByShard[p.shard] = append(wantByShard[p.shard], p.seq)
		}
		if len(wantByShard) < 2 {
			t.Fatalf("records landed on %d shards; the test wants several", len(wantByShard))
		}
		st := p.Stats()
		for shard, want := range wantByShard {
			if got := byShard[shard]; !slices.Equal(got, want) {
				t.Errorf("shard %s: delivered %d records, want each of %d once in sequence order", shard, len(got), len(want))
			}
			if cp := st.Shards[shard].Checkpoint; cp != want[len(want)-1] {
				t.Errorf("shard %s: checkpoint %s, want the last record %s", shard, cp, want[len(want)-1])
			}
		}
		if st.RecordsDelivered != 300 || st.FunctionErrors != 0 || st.Retries != 0 {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("batch size", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(25)...)
		rec := newRecorder(t)
		p := startPoller(t, client, Config{Stream: stream, BatchSize: 10}, rec.handle)
		waitIdle(t, p)
		want := [][]int{span(0, 9), span(10, 19), span(20, 24)}
		if got := rec.batches(puts); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("batches %v, want %v", got, want)
		}
	})

	t.Run("batching window gathers records", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		rec := newRecorder(t)
		p := startPoller(t, client, Config{Stream: stream, BatchSize: 100, BatchingWindow: time.Second}, rec.handle)
		waitIdle(t, p) // reading
		first := putRecords(t, client, stream, "a", sameKey(3)...)
		time.Sleep(100 * time.Millisecond)
		second := putRecords(t, client, stream, "b", sameKey(2)...)
		waitIdle(t, p)
		invs := rec.invocations()
		if len(invs) != 1 || len(invs[0].seqs) != 5 {
			t.Fatalf("got %d invocations (%v), want one of the 5 records", len(invs), rec.batches(append(first, second...)))
		}
	})

	t.Run("payload limit cuts batches", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
		for range 6 {
			in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), Data: bytes.Repeat([]byte("x"), 1000)})
		}
		if _, err := client.PutRecords(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder(t)
		const limit = 4000 // two records of ~1.7 KB of JSON each
		p := startPoller(t, client, Config{Stream: stream, MaxBatchBytes: limit}, rec.handle)
		waitIdle(t, p)
		var sizes []int
		for _, inv := range rec.invocations() {
			sizes = append(sizes, len(inv.seqs))
			if b, _ := json.Marshal(inv.ev); len(b) > limit {
				t.Errorf("payload of %d bytes, limit %d", len(b), limit)
			}
		}
		if !slices.Equal(sizes, []int{2, 2, 2}) {
			t.Errorf("batch sizes %v, want [2 2 2]", sizes)
		}
	})

	t.Run("partial batch response redelivers from the lowest failure", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(10)...)
		rec := newRecorder(t)
		rec.next = func(_ context.Context, n int, inv invocation) (events.KinesisEventResponse, error) {
			if n == 1 { // report 7 then 3: the lowest (3) counts
				return failItems(inv.seqs[7], inv.seqs[3]), nil
			}
			return events.KinesisEventResponse{}, nil
		}
		p := startPoller(t, client, Config{Stream: stream, ReportBatchItemFailures: true, MaxRetryAttempts: 2}, rec.handle)
		waitIdle(t, p)
		want := [][]int{span(0, 9), span(3, 9)}
		if got := rec.batches(puts); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("batches %v, want %v", got, want)
		}
		if st := p.Stats(); st.PartialFailures != 1 || st.Shards[puts[0].shard].Checkpoint != puts[9].seq {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("whole-batch error retries the same batch", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(5)...)
		rec := newRecorder(t)
		rec.next = func(_ context.Context, n int, _ invocation) (events.KinesisEventResponse, error) {
			if n <= 2 {
				return events.KinesisEventResponse{}, errors.New("downstream unavailable")
			}
			return events.KinesisEventResponse{}, nil
		}
		fails := &onFailure{}
		p := startPoller(t, client, Config{Stream: stream, BatchSize: 10, MaxRetryAttempts: 3, OnFailure: fails.send}, rec.handle)
		waitIdle(t, p)
		want := [][]int{span(0, 4), span(0, 4), span(0, 4)}
		if got := rec.batches(puts); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("batches %v, want %v", got, want)
		}
		if got := fails.records(); len(got) != 0 {
			t.Errorf("OnFailure got %+v, want nothing", got)
		}
	})

	t.Run("exhausted retries go to OnFailure and the shard moves on", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(5)...)
		rec := newRecorder(t)
		rec.next = func(_ context.Context, _ int, inv invocation) (events.KinesisEventResponse, error) {
			if slices.Contains(inv.seqs, puts[0].seq) {
				return events.KinesisEventResponse{}, errors.New("cannot handle")
			}
			return events.KinesisEventResponse{}, nil
		}
		fails := &onFailure{}
		p := startPoller(t, client, Config{Stream: stream, MaxRetryAttempts: 1, OnFailure: fails.send}, rec.handle)
		waitIdle(t, p)
		later := putRecords(t, client, stream, "later", sameKey(2)...)
		waitIdle(t, p)

		got := fails.records()
		if len(got) != 1 {
			t.Fatalf("OnFailure got %+v, want one record", got)
		}
		f := got[0]
		if f.Shard != puts[0].shard || f.StartSequenceNumber != puts[0].seq || f.EndSequenceNumber != puts[4].seq ||
			f.BatchSize != 5 || f.Attempts != 2 || f.Reason != ReasonRetryAttemptsExhausted ||
			f.StreamARN != "arn:aws:kinesis:us-east-1:000000000000:stream/"+stream ||
			f.ApproximateArrivalOfFirstRecord.IsZero() || f.ApproximateArrivalOfLastRecord.Before(f.ApproximateArrivalOfFirstRecord) {
			t.Errorf("FailureRecord = %+v", f)
		}
		invs := rec.invocations()
		if last := invs[len(invs)-1]; !slices.Equal(last.seqs, []string{later[0].seq, later[1].seq}) {
			t.Errorf("last invocation %v, want the later records", last.seqs)
		}
		if st := p.Stats(); st.RecordsToOnFailure != 5 || st.Shards[puts[0].shard].Checkpoint != later[1].seq {
			t.Errorf("Stats = %+v", st)
		}
	})

	t.Run("bisect isolates a poison record", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(16)...)
		poison := puts[5].seq
		rec := newRecorder(t)
		rec.next = func(_ context.Context, _ int, inv invocation) (events.KinesisEventResponse, error) {
			if slices.Contains(inv.seqs, poison) {
				return events.KinesisEventResponse{}, errors.New("poison")
			}
			return events.KinesisEventResponse{}, nil
		}
		fails := &onFailure{}
		p := startPoller(t, client, Config{Stream: stream, BisectOnError: true, MaxRetryAttempts: 2, OnFailure: fails.send}, rec.handle)
		waitIdle(t, p)

		want := [][]int{
			span(0, 15),
			span(0, 7), span(0, 3), span(4, 7),
			span(4, 5), {4}, {5}, {5}, {5}, // alone, then MaxRetryAttempts retries
			span(6, 7),
			span(8, 15),
		}
		if got := rec.batches(puts); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("batches\n  %v\nwant\n  %v", got, want)
		}
		got := fails.records()
		if len(got) != 1 || got[0].StartSequenceNumber != poison || got[0].EndSequenceNumber != poison || got[0].BatchSize != 1 ||
			got[0].Reason != ReasonRetryAttemptsExhausted || got[0].Attempts != 7 {
			t.Errorf("OnFailure got %+v, want the poison record alone after 7 invocations", got)
		}
		// Every other record was part of exactly one successful invocation.
		succeeded := map[string]int{}
		for _, inv := range rec.invocations() {
			if !slices.Contains(inv.seqs, poison) {
				for _, s := range inv.seqs {
					succeeded[s]++
				}
			}
		}
		for i, p := range puts {
			if want := 1; i != 5 && succeeded[p.seq] != want {
				t.Errorf("record %d succeeded %d times, want once", i, succeeded[p.seq])
			}
		}
		if st := p.Stats(); st.Bisections != 4 || st.Retries != 2 {
			t.Errorf("Stats = %+v, want 4 bisections, 2 retries", st)
		}
	})

	t.Run("max record age sends old records to OnFailure unseen", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(3)...)
		time.Sleep(300 * time.Millisecond)
		rec := newRecorder(t)
		fails := &onFailure{}
		p := startPoller(t, client, Config{Stream: stream, MaxRecordAge: 200 * time.Millisecond, OnFailure: fails.send}, rec.handle)
		waitIdle(t, p)
		if n := len(rec.invocations()); n != 0 {
			t.Errorf("handler invoked %d times, want never", n)
		}
		got := fails.records()
		if len(got) != 1 || got[0].Reason != ReasonRecordAgeExceeded || got[0].Attempts != 0 ||
			got[0].StartSequenceNumber != puts[0].seq || got[0].EndSequenceNumber != puts[2].seq {
			t.Errorf("OnFailure got %+v", got)
		}
	})

	t.Run("max record age ends retries", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(3)...)
		rec := newRecorder(t)
		rec.next = func(context.Context, int, invocation) (events.KinesisEventResponse, error) {
			return events.KinesisEventResponse{}, errors.New("down")
		}
		fails := &onFailure{}
		p := startPoller(t, client, Config{Stream: stream, MaxRetryAttempts: MaxRetryAttemptsLimit, MaxRecordAge: 300 * time.Millisecond, OnFailure: fails.send}, rec.handle)
		waitIdle(t, p)
		// Every record reaches OnFailure once, for its age, after retries. Usually in one batch;
		// on a loaded machine the puts land far enough apart that the oldest record ages out
		// first, alone, and the rest after it (AWS splits the same way: age is per record).
		got := fails.records()
		total := 0
		for _, f := range got {
			if f.Reason != ReasonRecordAgeExceeded || f.Attempts < 2 {
				t.Errorf("OnFailure got %+v, want every record given up for its age after retries", f)
			}
			total += f.BatchSize
		}
		if total != 3 || len(got) == 0 || got[0].StartSequenceNumber != puts[0].seq {
			t.Errorf("OnFailure got %+v, want the 3 records from the first on", got)
		}
	})

	t.Run("crash hook redelivers a batch whose handler ran", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(5)...)
		var mu sync.Mutex
		applied := map[string]int{} // side effects of the handler
		rec := newRecorder(t)
		rec.next = func(_ context.Context, _ int, inv invocation) (events.KinesisEventResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range inv.seqs {
				applied[s]++
			}
			return events.KinesisEventResponse{}, nil
		}
		var crashes atomic.Int64
		crash := func(ev events.KinesisEvent, attempt int) bool {
			if attempt == 1 && len(ev.Records) == 5 {
				crashes.Add(1)
				return true
			}
			return false
		}
		p := startPoller(t, client, Config{Stream: stream, MaxRetryAttempts: 1, Crash: crash}, rec.handle)
		waitIdle(t, p)
		want := [][]int{span(0, 4), span(0, 4)}
		if got := rec.batches(puts); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("batches %v, want %v", got, want)
		}
		for _, p := range puts {
			if applied[p.seq] != 2 {
				t.Errorf("record %s handled %d times, want twice", p.seq, applied[p.seq])
			}
		}
		if crashes.Load() != 1 || p.Stats().FunctionErrors != 1 {
			t.Errorf("crashes %d, stats %+v", crashes.Load(), p.Stats())
		}
	})

	t.Run("function timeout is a failure", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 1)
		puts := putRecords(t, client, stream, "e", sameKey(3)...)
		rec := newRecorder(t)
		rec.next = func(ctx context.Context, n int, _ invocation) (events.KinesisEventResponse, error) {
			if n == 1 {
				<-ctx.Done() // too slow: returns success only after the deadline
			}
			return events.KinesisEventResponse{}, nil
		}
		fails := &onFailure{}
		// Retries to spare: on a loaded machine a quick call may overrun 200 ms too.
		p := startPoller(t, client, Config{Stream: stream, FunctionTimeout: 200 * time.Millisecond, MaxRetryAttempts: 5, OnFailure: fails.send}, rec.handle)
		waitIdle(t, p)
		got := rec.batches(puts)
		if len(got) < 2 || slices.ContainsFunc(got, func(b []int) bool { return !slices.Equal(b, span(0, 2)) }) {
			t.Errorf("batches %v, want the same batch at least twice", got)
		}
		inv := rec.invocations()[0]
		if d, ok := inv.ctx.Deadline(); !ok || time.Until(d) > 0 {
			t.Errorf("invocation context deadline %v, %v: want one, passed", d, ok)
		}
		if lc, ok := lambdacontext.FromContext(inv.ctx); !ok || lc.AwsRequestID == "" || !strings.HasPrefix(lc.InvokedFunctionArn, "arn:aws:lambda:us-east-1:000000000000:function:") {
			t.Errorf("lambda context %+v, %v", lc, ok)
		}
		if st := p.Stats(); st.FunctionErrors != len(got)-1 || st.Retries != len(got)-1 || len(fails.records()) != 0 {
			t.Errorf("Stats = %+v, OnFailure %+v: want every invocation but the last failed, nothing given up", st, fails.records())
		}
	})

	t.Run("starting position LATEST skips older records", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 2)
		putRecords(t, client, stream, "old", "a", "b", "c", "d")
		rec := newRecorder(t)
		p := startPoller(t, client, Config{Stream: stream, StartingPosition: Latest}, rec.handle)
		waitIdle(t, p)
		fresh := putRecords(t, client, stream, "new", "a", "b", "c", "d")
		waitIdle(t, p)
		var got []string
		for _, inv := range rec.invocations() {
			got = append(got, inv.seqs...)
		}
		slices.SortFunc(got, compareSeq)
		var want []string
		for _, f := range fresh {
			want = append(want, f.seq)
		}
		slices.SortFunc(want, compareSeq)
		if !slices.Equal(got, want) {
			t.Errorf("delivered %v, want only the new records %v", got, want)
		}
	})

	t.Run("after a merge, the child shard waits for its parents", func(t *testing.T) {
		t.Parallel()
		stream := newStream(t, client, 2)
		keys := make([]string, 40)
		for i := range keys {
			keys[i] = fmt.Sprintf("user-%d", i%11)
		}
		before := putRecords(t, client, stream, "before", keys...)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if _, err := client.MergeShards(ctx, &kinesis.MergeShardsInput{
			StreamName: aws.String(stream), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000001"),
		}); err != nil {
			t.Fatal(err)
		}
		if err := kinesisstream.EnsureStream(ctx, client, stream, 2); err != nil { // ACTIVE again
			t.Fatal(err)
		}
		after := putRecords(t, client, stream, "after", keys[:10]...)
		rec := newRecorder(t)
		p := startPoller(t, client, Config{Stream: stream, BatchSize: 7}, rec.handle)
		waitIdle(t, p)

		child := after[0].shard
		var delivered []string
		firstChild := -1
		for i, inv := range rec.invocations() {
			if inv.shard == child && firstChild < 0 {
				firstChild = i
			}
			if inv.shard != child && firstChild >= 0 {
				t.Errorf("invocation %d on parent %s after the child %s started", i, inv.shard, child)
			}
			delivered = append(delivered, inv.seqs...)
		}
		if len(delivered) != len(before)+len(after) {
			t.Errorf("delivered %d records, want %d", len(delivered), len(before)+len(after))
		}
		st := p.Stats()
		if !st.Shards["shardId-000000000000"].Finished || !st.Shards["shardId-000000000001"].Finished || st.Shards[child].Finished {
			t.Errorf("shard states %+v", st.Shards)
		}
	})
}

// checkEventRecords compares the records of ev with what was put, field by field, in the form
// AWS delivers them.
func checkEventRecords(t *testing.T, stream string, ev events.KinesisEvent, puts []put) {
	t.Helper()
	for _, r := range ev.Records {
		i := slices.IndexFunc(puts, func(p put) bool { return p.seq == r.Kinesis.SequenceNumber })
		if i < 0 {
			t.Errorf("unknown record %s", r.Kinesis.SequenceNumber)
			continue
		}
		p := puts[i]
		want := events.KinesisEventRecord{
			AwsRegion:         "us-east-1",
			EventID:           p.shard + ":" + p.seq,
			EventName:         "aws:kinesis:record",
			EventSource:       "aws:kinesis",
			EventSourceArn:    "arn:aws:kinesis:us-east-1:000000000000:stream/" + stream,
			EventVersion:      "1.0",
			InvokeIdentityArn: "arn:aws:iam::000000000000:role/streampoller",
			Kinesis: events.KinesisRecord{
				ApproximateArrivalTimestamp: r.Kinesis.ApproximateArrivalTimestamp,
				Data:                        p.data,
				PartitionKey:                p.key,
				SequenceNumber:              p.seq,
				KinesisSchemaVersion:        "1.0",
			},
		}
		gotJSON, _ := json.Marshal(r)
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("event record\n  %s\nwant\n  %s", gotJSON, wantJSON)
		}
		if age := time.Since(r.Kinesis.ApproximateArrivalTimestamp.Time); age < 0 || age > time.Minute {
			t.Errorf("approximateArrivalTimestamp %v is not recent", r.Kinesis.ApproximateArrivalTimestamp)
		}
	}
}

// pollerGoroutines returns the stacks of goroutines running code of this package's types.
func pollerGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "streampoller.(*") {
			out = append(out, g)
		}
	}
	return out
}

func TestRunStopsCleanly(t *testing.T) {
	admin := kinesaliteClient(t)
	stream := newStream(t, admin, 3)
	// The poller's own client, on a transport whose idle connections the test can close.
	transport := &http.Transport{}
	client := kinesis.NewFromConfig(awsConfigOf(admin), func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: transport} })
	if g := pollerGoroutines(); len(g) != 0 {
		t.Fatalf("poller goroutines before the test:\n%s", strings.Join(g, "\n\n"))
	}
	before := runtime.NumGoroutine()
	entered := make(chan struct{}, 1)
	h := func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // in flight when Run is cancelled
		return events.KinesisEventResponse{}, ctx.Err()
	}
	p, err := New(client, Config{Stream: stream, PollInterval: fastPoll, FunctionTimeout: time.Minute, Logger: testLogger(t)}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	putRecords(t, admin, stream, "e", "a", "b", "c")
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("handler never invoked")
	}
	if len(pollerGoroutines()) < 3 {
		t.Errorf("want a goroutine per shard while running")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not return after cancel")
	}
	// A goroutine that has called wg.Done may still be on its way out: allow it a moment.
	transport.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for (len(pollerGoroutines()) > 0 || runtime.NumGoroutine() > before) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := pollerGoroutines(); len(g) != 0 {
		t.Errorf("goroutines left after Run returned:\n%s", strings.Join(g, "\n\n"))
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Run, %d before", n, before)
	}

	if err := p.WaitIdle(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("WaitIdle after Run = %v, want ErrStopped", err)
	}
	if err := p.Run(context.Background()); !errors.Is(err, ErrRunCalled) {
		t.Errorf("second Run = %v, want ErrRunCalled", err)
	}
}

func TestRunFailsWithoutStream(t *testing.T) {
	client := kinesaliteClient(t)
	p, err := New(client, Config{Stream: "does-not-exist", PollInterval: fastPoll, Logger: testLogger(t)}, func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var notFound *types.ResourceNotFoundException
	if err := p.Run(ctx); !errors.As(err, &notFound) {
		t.Errorf("Run = %v, want ResourceNotFoundException", err)
	}
}

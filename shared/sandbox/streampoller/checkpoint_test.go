package streampoller

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// These tests drive the batch state machine (process) and the response rules directly,
// without Kinesis.

// noKinesis satisfies KinesisAPI for tests that never call Run.
type noKinesis struct{}

func (noKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return nil, errors.New("no kinesis here")
}

func (noKinesis) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return nil, errors.New("no kinesis here")
}

func (noKinesis) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	return nil, errors.New("no kinesis here")
}

// testSeq returns the sequence number of test record i: 56 digits, like Kinesis's.
func testSeq(i int) string {
	base, _ := new(big.Int).SetString("49590338271490256608559692538361571095921575989136588898", 10)
	return base.Add(base, big.NewInt(int64(i)*1_000_000_007)).String()
}

// failItems builds a partial batch response naming the given identifiers.
func failItems(ids ...string) events.KinesisEventResponse {
	var r events.KinesisEventResponse
	for _, id := range ids {
		r.BatchItemFailures = append(r.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: id})
	}
	return r
}

func TestCompareSeq(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "2", -1},
		{"10", "9", 1}, // as strings "10" < "9"
		{"009", "9", 0},
		{"0", "000", 0},
		{testSeq(1), testSeq(2), -1},
		// Differ only beyond float64 precision.
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899", -1},
		{"100000000000000000000000000000000000000000000000000000000", "99999999999999999999999999999999999999999999999999999999", 1},
	}
	for _, tt := range tests {
		if got := compareSeq(tt.a, tt.b); got != tt.want {
			t.Errorf("compareSeq(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareSeq(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareSeq(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestJudgeResponse(t *testing.T) {
	seqs := []string{testSeq(0), testSeq(1), testSeq(2), testSeq(3)}
	tests := []struct {
		name     string
		resp     events.KinesisEventResponse
		report   bool
		wantKind verdictKind
		wantFrom int
	}{
		{"no failures", events.KinesisEventResponse{}, true, complete, 0},
		{"empty failure list", events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}, true, complete, 0},
		{"one failure", failItems(seqs[2]), true, partial, 2},
		{"lowest of several wins", failItems(seqs[3], seqs[1], seqs[2]), true, partial, 1},
		{"first record", failItems(seqs[0]), true, partial, 0},
		{"leading zeros still match", failItems("000" + seqs[2]), true, partial, 2},
		{"empty itemIdentifier fails the batch", failItems(""), true, failed, 0},
		{"unknown itemIdentifier fails the batch", failItems(seqs[1], testSeq(99)), true, failed, 0},
		{"not a number fails the batch", failItems("shardId-000000000000:" + seqs[1]), true, failed, 0},
		{"ignored when ReportBatchItemFailures is off", failItems(seqs[1]), false, complete, 0},
		{"even an invalid one", failItems(""), false, complete, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judgeResponse(seqs, tt.resp, tt.report)
			if v.kind != tt.wantKind || (v.kind == partial && v.from != tt.wantFrom) {
				t.Errorf("judgeResponse = %+v, want kind %d from %d", v, tt.wantKind, tt.wantFrom)
			}
		})
	}
}

// failure is a FailureRecord by record index, for compact expectations.
type failure struct {
	first, last, attempts int
	reason                string
}

func TestProcess(t *testing.T) {
	poisonIn := func(poison int) func(call int, batch []int) (events.KinesisEventResponse, error) {
		return func(_ int, batch []int) (events.KinesisEventResponse, error) {
			if slices.Contains(batch, poison) {
				return events.KinesisEventResponse{}, errors.New("poison")
			}
			return events.KinesisEventResponse{}, nil
		}
	}
	tests := []struct {
		name    string
		n       int           // records in the batch
		old     int           // the first old records arrived 10 s ago
		cfg     func(*Config) // on top of MaxRetryAttempts 2, PollInterval 1 ms
		handler func(call int, batch []int) (events.KinesisEventResponse, error)
		want    [][]int // the batches the handler saw, by record index
		fails   []failure
		stats   Stats // the counters to compare (Shards ignored)
	}{
		{
			name:  "success checkpoints the whole batch",
			n:     5,
			want:  [][]int{{0, 1, 2, 3, 4}},
			stats: Stats{Invocations: 1, RecordsDelivered: 5},
		},
		{
			name: "partial failure redelivers from the lowest reported record",
			n:    5,
			cfg:  func(c *Config) { c.ReportBatchItemFailures = true },
			handler: func(call int, _ []int) (events.KinesisEventResponse, error) {
				if call == 1 {
					return failItems(testSeq(3), testSeq(1)), nil
				}
				return events.KinesisEventResponse{}, nil
			},
			want:  [][]int{{0, 1, 2, 3, 4}, {1, 2, 3, 4}},
			stats: Stats{Invocations: 2, RecordsDelivered: 9, PartialFailures: 1, Retries: 1},
		},
		{
			name: "partial failures consume retries, then the rest goes to OnFailure",
			n:    5,
			cfg:  func(c *Config) { c.ReportBatchItemFailures = true; c.MaxRetryAttempts = 1 },
			handler: func(call int, _ []int) (events.KinesisEventResponse, error) {
				return failItems(testSeq(2)), nil
			},
			want:  [][]int{{0, 1, 2, 3, 4}, {2, 3, 4}},
			fails: []failure{{2, 4, 2, ReasonRetryAttemptsExhausted}},
			stats: Stats{Invocations: 2, RecordsDelivered: 8, PartialFailures: 2, Retries: 1, FailureBatches: 1, RecordsToOnFailure: 3},
		},
		{
			name: "unknown itemIdentifier fails the whole batch",
			n:    3,
			cfg:  func(c *Config) { c.ReportBatchItemFailures = true },
			handler: func(call int, _ []int) (events.KinesisEventResponse, error) {
				if call == 1 {
					return failItems(testSeq(1), testSeq(7)), nil
				}
				return events.KinesisEventResponse{}, nil
			},
			want:  [][]int{{0, 1, 2}, {0, 1, 2}},
			stats: Stats{Invocations: 2, RecordsDelivered: 6, FunctionErrors: 1, Retries: 1},
		},
		{
			name: "empty itemIdentifier fails the whole batch",
			n:    3,
			cfg:  func(c *Config) { c.ReportBatchItemFailures = true },
			handler: func(call int, _ []int) (events.KinesisEventResponse, error) {
				if call == 1 {
					return failItems(""), nil
				}
				return events.KinesisEventResponse{}, nil
			},
			want:  [][]int{{0, 1, 2}, {0, 1, 2}},
			stats: Stats{Invocations: 2, RecordsDelivered: 6, FunctionErrors: 1, Retries: 1},
		},
		{
			name: "item failures are ignored without ReportBatchItemFailures",
			n:    3,
			handler: func(int, []int) (events.KinesisEventResponse, error) {
				return failItems(testSeq(1)), nil
			},
			want:  [][]int{{0, 1, 2}},
			stats: Stats{Invocations: 1, RecordsDelivered: 3},
		},
		{
			name: "error retries the same batch MaxRetryAttempts times",
			n:    3,
			handler: func(int, []int) (events.KinesisEventResponse, error) {
				return events.KinesisEventResponse{}, errors.New("boom")
			},
			want:  [][]int{{0, 1, 2}, {0, 1, 2}, {0, 1, 2}},
			fails: []failure{{0, 2, 3, ReasonRetryAttemptsExhausted}},
			stats: Stats{Invocations: 3, RecordsDelivered: 9, FunctionErrors: 3, Retries: 2, FailureBatches: 1, RecordsToOnFailure: 3},
		},
		{
			name: "no retries with MaxRetryAttempts 0",
			n:    2,
			cfg:  func(c *Config) { c.MaxRetryAttempts = 0 },
			handler: func(int, []int) (events.KinesisEventResponse, error) {
				return events.KinesisEventResponse{}, errors.New("boom")
			},
			want:  [][]int{{0, 1}},
			fails: []failure{{0, 1, 1, ReasonRetryAttemptsExhausted}},
			stats: Stats{Invocations: 1, RecordsDelivered: 2, FunctionErrors: 1, FailureBatches: 1, RecordsToOnFailure: 2},
		},
		{
			name:    "bisect isolates a poison record; splitting consumes no retries",
			n:       8,
			cfg:     func(c *Config) { c.BisectOnError = true; c.MaxRetryAttempts = 1 },
			handler: poisonIn(5),
			want: [][]int{
				{0, 1, 2, 3, 4, 5, 6, 7},
				{0, 1, 2, 3}, {4, 5, 6, 7},
				{4, 5}, {4}, {5}, {5}, // alone, then its one retry
				{6, 7},
			},
			fails: []failure{{5, 5, 5, ReasonRetryAttemptsExhausted}},
			stats: Stats{Invocations: 8, RecordsDelivered: 8 + 4 + 4 + 2 + 1 + 1 + 1 + 2, FunctionErrors: 5, Retries: 1, Bisections: 3, FailureBatches: 1, RecordsToOnFailure: 1},
		},
		{
			name: "bisect does not split on a partial failure",
			n:    4,
			cfg:  func(c *Config) { c.BisectOnError = true; c.ReportBatchItemFailures = true },
			handler: func(call int, _ []int) (events.KinesisEventResponse, error) {
				if call == 1 {
					return failItems(testSeq(1)), nil
				}
				return events.KinesisEventResponse{}, nil
			},
			want:  [][]int{{0, 1, 2, 3}, {1, 2, 3}},
			stats: Stats{Invocations: 2, RecordsDelivered: 7, PartialFailures: 1, Retries: 1},
		},
		{
			name: "a panic is a function error",
			n:    2,
			handler: func(call int, _ []int) (events.KinesisEventResponse, error) {
				if call == 1 {
					panic("handler bug")
				}
				return events.KinesisEventResponse{}, nil
			},
			want:  [][]int{{0, 1}, {0, 1}},
			stats: Stats{Invocations: 2, RecordsDelivered: 4, FunctionErrors: 1, Retries: 1},
		},
		{
			name: "crash hook fails an invocation whose handler succeeded",
			n:    3,
			cfg: func(c *Config) {
				c.Crash = func(_ events.KinesisEvent, attempt int) bool { return attempt == 1 }
			},
			want:  [][]int{{0, 1, 2}, {0, 1, 2}},
			stats: Stats{Invocations: 2, RecordsDelivered: 6, FunctionErrors: 1, Retries: 1},
		},
		{
			name: "expired records go to OnFailure before any invocation",
			n:    5,
			old:  2,
			cfg:  func(c *Config) { c.MaxRecordAge = time.Second },
			want: [][]int{{2, 3, 4}},
			fails: []failure{
				{0, 1, 0, ReasonRecordAgeExceeded},
			},
			stats: Stats{Invocations: 1, RecordsDelivered: 3, FailureBatches: 1, RecordsToOnFailure: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got [][]int
			var fails []failure
			cfg := Config{Stream: "s", MaxRetryAttempts: 2, PollInterval: time.Millisecond, Logger: testLogger(t)}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			cfg.OnFailure = func(_ context.Context, f FailureRecord) error {
				mu.Lock()
				defer mu.Unlock()
				fails = append(fails, failure{seqIndex(t, f.StartSequenceNumber), seqIndex(t, f.EndSequenceNumber), f.Attempts, f.Reason})
				if f.BatchSize != seqIndex(t, f.EndSequenceNumber)-seqIndex(t, f.StartSequenceNumber)+1 || f.Shard != "shardId-000000000000" {
					t.Errorf("FailureRecord %+v: inconsistent shard or batch size", f)
				}
				return nil
			}
			h := func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
				batch := make([]int, len(ev.Records))
				for i, r := range ev.Records {
					batch[i] = seqIndex(t, r.Kinesis.SequenceNumber)
				}
				mu.Lock()
				got = append(got, batch)
				call := len(got)
				mu.Unlock()
				if tt.handler == nil {
					return events.KinesisEventResponse{}, nil
				}
				return tt.handler(call, batch)
			}
			p, err := New(noKinesis{}, cfg, h)
			if err != nil {
				t.Fatal(err)
			}
			s := &shard{p: p, id: "shardId-000000000000"}
			now := time.Now()
			recs := make([]*record, tt.n)
			for i := range recs {
				arrival := now
				if i < tt.old {
					arrival = now.Add(-10 * time.Second)
				}
				recs[i] = p.newRecord(s.id, types.Record{
					SequenceNumber: aws.String(testSeq(i)), PartitionKey: aws.String("k"),
					Data: []byte(fmt.Sprint(i)), ApproximateArrivalTimestamp: aws.Time(arrival),
				}, now)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.process(ctx, s, recs); err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("handler saw\n  %v\nwant\n  %v", got, tt.want)
			}
			if !slices.Equal(fails, tt.fails) {
				t.Errorf("OnFailure got %+v, want %+v", fails, tt.fails)
			}
			st := p.Stats()
			st.Shards = nil
			if !reflect.DeepEqual(st, tt.stats) {
				t.Errorf("Stats = %+v, want %+v", st, tt.stats)
			}
			if s.state.checkpoint != testSeq(tt.n-1) {
				t.Errorf("checkpoint = %s, want the last record %s", s.state.checkpoint, testSeq(tt.n-1))
			}
		})
	}
}

// seqIndex maps a testSeq value back to its index.
func seqIndex(t *testing.T, seq string) int {
	t.Helper()
	for i := range 100 {
		if testSeq(i) == seq {
			return i
		}
	}
	t.Fatalf("unknown sequence number %s", seq)
	return -1
}

// Records keep expiring while a failing batch is retried: the age bound ends the retries.
func TestProcessRecordAgeEndsRetries(t *testing.T) {
	var got []FailureRecord
	cfg := Config{
		Stream: "s", MaxRetryAttempts: MaxRetryAttemptsLimit, MaxRecordAge: 50 * time.Millisecond, PollInterval: 5 * time.Millisecond, Logger: testLogger(t),
		OnFailure: func(_ context.Context, f FailureRecord) error { got = append(got, f); return nil },
	}
	p, err := New(noKinesis{}, cfg, func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{}, errors.New("down")
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &shard{p: p, id: "shardId-000000000000"}
	now := time.Now()
	recs := []*record{
		p.newRecord(s.id, types.Record{SequenceNumber: aws.String(testSeq(0)), ApproximateArrivalTimestamp: aws.Time(now)}, now),
		p.newRecord(s.id, types.Record{SequenceNumber: aws.String(testSeq(1)), ApproximateArrivalTimestamp: aws.Time(now)}, now),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.process(ctx, s, recs); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != ReasonRecordAgeExceeded || got[0].BatchSize != 2 || got[0].Attempts < 2 {
		t.Fatalf("OnFailure got %+v, want one RecordAgeExceeded record of 2 after several attempts", got)
	}
	if st := p.Stats(); st.Invocations != got[0].Attempts {
		t.Errorf("Invocations = %d, Attempts = %d: want equal", st.Invocations, got[0].Attempts)
	}
}

// A failing on-failure destination blocks the shard until it accepts the record.
func TestProcessRetriesOnFailureDestination(t *testing.T) {
	calls := 0
	cfg := Config{
		Stream: "s", PollInterval: time.Millisecond, Logger: testLogger(t),
		OnFailure: func(context.Context, FailureRecord) error {
			calls++
			if calls < 3 {
				return errors.New("queue unavailable")
			}
			return nil
		},
	}
	p, err := New(noKinesis{}, cfg, func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{}, errors.New("boom")
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &shard{p: p, id: "shardId-000000000000"}
	now := time.Now()
	rec := p.newRecord(s.id, types.Record{SequenceNumber: aws.String(testSeq(0)), ApproximateArrivalTimestamp: aws.Time(now)}, now)
	if err := p.process(context.Background(), s, []*record{rec}); err != nil {
		t.Fatal(err)
	}
	if calls != 3 || p.Stats().FailureBatches != 1 || s.state.checkpoint != testSeq(0) {
		t.Errorf("OnFailure calls = %d, stats %+v, checkpoint %s; want 3 calls, 1 batch, checkpoint past the record", calls, p.Stats(), s.state.checkpoint)
	}
}

func TestBatchLen(t *testing.T) {
	rec := func(size int) *record { return &record{json: make([]byte, size)} }
	buf := []*record{rec(100), rec(100), rec(100), rec(100)}
	tests := []struct {
		name     string
		buf      []*record
		count    int
		bytes    int
		wantN    int
		wantFull bool
	}{
		{"under both limits", buf, 10, 1000, 4, false},
		{"count limit", buf, 3, 1000, 3, true},
		// payload = 14 + 100 + 1 + 100 = 215 for two records.
		{"bytes limit, exact fit", buf, 10, 215, 2, true},
		{"bytes limit, one byte short", buf, 10, 214, 1, true},
		{"a single oversized record is still a batch", []*record{rec(5000), rec(10)}, 10, 1000, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, full := batchLen(tt.buf, tt.count, tt.bytes)
			if n != tt.wantN || full != tt.wantFull {
				t.Errorf("batchLen = %d, %v; want %d, %v", n, full, tt.wantN, tt.wantFull)
			}
			if got := len(encodePayload(tt.buf[:n])); n > 1 && got > tt.bytes {
				t.Errorf("payload of %d records is %d bytes, above %d", n, got, tt.bytes)
			}
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	h := func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{}, nil
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no stream", Config{}},
		{"infinite retries", Config{Stream: "s", MaxRetryAttempts: -1}},
		{"too many retries", Config{Stream: "s", MaxRetryAttempts: 10001}},
		{"batch too big", Config{Stream: "s", BatchSize: 10001}},
		{"negative batch size", Config{Stream: "s", BatchSize: -1}},
		{"window too long", Config{Stream: "s", BatchingWindow: 301 * time.Second}},
		{"payload above 6 MiB", Config{Stream: "s", MaxBatchBytes: 7 << 20}},
		{"negative age", Config{Stream: "s", MaxRecordAge: -time.Second}},
		{"AT_TIMESTAMP", Config{Stream: "s", StartingPosition: "AT_TIMESTAMP"}},
		{"not a stream ARN", Config{Stream: "s", EventSourceARN: "arn:aws:sqs:us-east-1:1:q"}},
		{"timeout above 15 min", Config{Stream: "s", FunctionTimeout: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(noKinesis{}, tt.cfg, h); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New error = %v, want ErrInvalidConfig", err)
			}
		})
	}
	p, err := New(noKinesis{}, Config{Stream: "events"}, h)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Stream: "events", BatchSize: 100, MaxBatchBytes: 6 << 20, FunctionTimeout: 10 * time.Second,
		StartingPosition: TrimHorizon, PollInterval: 200 * time.Millisecond,
		EventSourceARN: "arn:aws:kinesis:us-east-1:000000000000:stream/events",
	}
	got := p.cfg
	got.OnFailure = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if p.region != "us-east-1" || p.roleARN != "arn:aws:iam::000000000000:role/streampoller" {
		t.Errorf("region %q, role %q", p.region, p.roleARN)
	}
}

package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstream"
)

// funcWriter answers each call with respond(call number, records).
type funcWriter struct {
	mu      sync.Mutex
	calls   int
	sizes   []int
	respond func(call int, records []ports.StreamRecord) ([]ports.PutResult, error)
}

func (w *funcWriter) PutRecords(ctx context.Context, records []ports.StreamRecord) ([]ports.PutResult, error) {
	w.mu.Lock()
	call := w.calls
	w.calls++
	w.sizes = append(w.sizes, len(records))
	w.mu.Unlock()
	if w.respond == nil {
		return make([]ports.PutResult, len(records)), nil
	}
	return w.respond(call, records)
}

func recs(n, dataLen int) []ports.StreamRecord {
	out := make([]ports.StreamRecord, n)
	for i := range out {
		data := []byte(fmt.Sprintf("%06d", i))
		if dataLen > len(data) {
			data = append(data, make([]byte, dataLen-len(data))...)
		}
		out[i] = ports.StreamRecord{PartitionKey: fmt.Sprintf("user-%d", i%7), Data: data}
	}
	return out
}

// noSleep makes retries instant and records the requested delays.
type noSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *noSleep) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

func TestChunk(t *testing.T) {
	big := ports.MaxRecordBytes - 10 // 10-byte partition keys below
	tests := []struct {
		name    string
		records []ports.StreamRecord
		want    []int // chunk sizes
	}{
		{"empty", nil, nil},
		{"one", recs(1, 10), []int{1}},
		{"exactly 500", recs(500, 10), []int{500}},
		{"501", recs(501, 10), []int{500, 1}},
		{"1234", recs(1234, 10), []int{500, 500, 234}},
		{"five 1 MiB records fill 5 MiB", sized(5, big), []int{5}},
		{"six 1 MiB records", sized(6, big), []int{5, 1}},
		{"byte cap before count cap", recs(400, 20<<10), []int{255, 145}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pending := make([]int, len(tt.records))
			for i := range pending {
				pending[i] = i
			}
			var got []int
			next := 0
			for _, c := range chunk(tt.records, pending) {
				got = append(got, len(c))
				bytes := 0
				for _, i := range c {
					if i != next {
						t.Fatalf("chunk order: got index %d, want %d", i, next)
					}
					next++
					bytes += len(tt.records[i].Data) + len(tt.records[i].PartitionKey)
				}
				if len(c) > ports.MaxPutRecords || bytes > ports.MaxPutBytes {
					t.Errorf("chunk of %d records, %d bytes exceeds the limits", len(c), bytes)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("chunk sizes = %v, want %v", got, tt.want)
			}
		})
	}
}

// sized returns n records whose data plus 10-byte partition key is dataLen+10 bytes.
func sized(n, dataLen int) []ports.StreamRecord {
	out := make([]ports.StreamRecord, n)
	for i := range out {
		out[i] = ports.StreamRecord{PartitionKey: fmt.Sprintf("key-%06d", i), Data: make([]byte, dataLen)}
	}
	return out
}

func TestBackoff(t *testing.T) {
	p := NewPublisher(nil, Options{BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond, Rand: func() float64 { return 0.5 }})
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, 5 * time.Millisecond},
		{2, 10 * time.Millisecond},
		{3, 20 * time.Millisecond},
		{4, 40 * time.Millisecond},
		{5, 50 * time.Millisecond}, // capped at MaxDelay
		{64, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := p.backoff(tt.attempt); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestPublish(t *testing.T) {
	throttle := func(pred func(call, i int) bool) func(int, []ports.StreamRecord) ([]ports.PutResult, error) {
		return func(call int, rs []ports.StreamRecord) ([]ports.PutResult, error) {
			res := make([]ports.PutResult, len(rs))
			for i := range rs {
				if pred(call, i) {
					res[i] = ports.PutResult{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "slow down"}
				}
			}
			return res, nil
		}
	}
	oversized := recs(3, 10)
	oversized[1].Data = make([]byte, ports.MaxRecordBytes)
	badKeys := recs(3, 10)
	badKeys[0].PartitionKey = ""
	badKeys[2].PartitionKey = strings.Repeat("k", MaxPartitionKeyLen+1)

	tests := []struct {
		name         string
		records      []ports.StreamRecord
		opts         Options
		respond      func(int, []ports.StreamRecord) ([]ports.PutResult, error)
		wantFailed   []ports.PublishFailure // messages not compared
		wantCalls    int
		wantRetried  int
		wantAttempts int
	}{
		{name: "nil input", records: nil},
		{name: "empty input", records: []ports.StreamRecord{}},
		{name: "all succeed", records: recs(10, 10), wantCalls: 1, wantAttempts: 1},
		{name: "1234 records in 3 calls", records: recs(1234, 10), wantCalls: 3, wantAttempts: 1},
		{
			name: "oversized record is not sent", records: oversized,
			wantFailed: []ports.PublishFailure{{Index: 1, ErrorCode: CodeRecordTooLarge}}, wantCalls: 1, wantAttempts: 1,
		},
		{
			name: "bad partition keys are not sent", records: badKeys,
			wantFailed: []ports.PublishFailure{{Index: 0, ErrorCode: CodeInvalidPartitionKey}, {Index: 2, ErrorCode: CodeInvalidPartitionKey}},
			wantCalls:  1, wantAttempts: 1,
		},
		{
			name: "only oversized: no call", records: oversized[1:2],
			wantFailed: []ports.PublishFailure{{Index: 0, ErrorCode: CodeRecordTooLarge}},
		},
		{
			name: "failed entries are retried alone", records: recs(10, 10),
			respond:   throttle(func(call, i int) bool { return call == 0 && i%3 == 0 }),
			wantCalls: 2, wantRetried: 4, wantAttempts: 2,
		},
		{
			name: "whole-call error is retried", records: recs(10, 10),
			respond: func(call int, rs []ports.StreamRecord) ([]ports.PutResult, error) {
				if call < 2 {
					return nil, errors.New("connection reset")
				}
				return make([]ports.PutResult, len(rs)), nil
			},
			wantCalls: 3, wantRetried: 20, wantAttempts: 3,
		},
		{
			name: "persistent entry failure reported with its code", records: recs(5, 10),
			opts:       Options{MaxAttempts: 3},
			respond:    throttle(func(call, i int) bool { return i == 0 }),
			wantFailed: []ports.PublishFailure{{Index: 0, ErrorCode: "ProvisionedThroughputExceededException"}},
			wantCalls:  3, wantRetried: 2, wantAttempts: 3,
		},
		{
			name: "persistent call failure reported as CallFailed", records: recs(2, 10),
			opts: Options{MaxAttempts: 2},
			respond: func(int, []ports.StreamRecord) ([]ports.PutResult, error) {
				return nil, errors.New("boom")
			},
			wantFailed: []ports.PublishFailure{{Index: 0, ErrorCode: CodeCallFailed}, {Index: 1, ErrorCode: CodeCallFailed}},
			wantCalls:  2, wantRetried: 2, wantAttempts: 2,
		},
		{
			name: "wrong result count is a call failure", records: recs(3, 10),
			opts: Options{MaxAttempts: 1},
			respond: func(int, []ports.StreamRecord) ([]ports.PutResult, error) {
				return make([]ports.PutResult, 1), nil
			},
			wantFailed: []ports.PublishFailure{{Index: 0, ErrorCode: CodeCallFailed}, {Index: 1, ErrorCode: CodeCallFailed}, {Index: 2, ErrorCode: CodeCallFailed}},
			wantCalls:  1, wantAttempts: 1,
		},
		{
			name: "last code wins", records: recs(1, 10),
			opts: Options{MaxAttempts: 2},
			respond: func(call int, rs []ports.StreamRecord) ([]ports.PutResult, error) {
				if call == 0 {
					return nil, errors.New("timeout")
				}
				return []ports.PutResult{{ErrorCode: "InternalFailure"}}, nil
			},
			wantFailed: []ports.PublishFailure{{Index: 0, ErrorCode: "InternalFailure"}},
			wantCalls:  2, wantRetried: 1, wantAttempts: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &funcWriter{respond: tt.respond}
			s := &noSleep{}
			o := tt.opts
			o.Sleep = s.Sleep
			rep := NewPublisher(w, o).Publish(context.Background(), tt.records)
			if got := stripMessages(rep.Failed); !slices.Equal(got, tt.wantFailed) {
				t.Errorf("Failed = %+v, want %+v", rep.Failed, tt.wantFailed)
			}
			if rep.Calls != tt.wantCalls || w.calls != tt.wantCalls {
				t.Errorf("Calls = %d (writer saw %d), want %d", rep.Calls, w.calls, tt.wantCalls)
			}
			if rep.RetriedRecords != tt.wantRetried || rep.Attempts != tt.wantAttempts {
				t.Errorf("RetriedRecords, Attempts = %d, %d, want %d, %d", rep.RetriedRecords, rep.Attempts, tt.wantRetried, tt.wantAttempts)
			}
			if len(s.delays) != max(tt.wantAttempts-1, 0) {
				t.Errorf("slept %d times, want %d", len(s.delays), max(tt.wantAttempts-1, 0))
			}
			if (rep.Err() == nil) != (len(tt.wantFailed) == 0) || (rep.Err() != nil && !errors.Is(rep.Err(), ports.ErrNotWritten)) {
				t.Errorf("Err() = %v", rep.Err())
			}
		})
	}
}

func stripMessages(fs []ports.PublishFailure) []ports.PublishFailure {
	var out []ports.PublishFailure
	for _, f := range fs {
		out = append(out, ports.PublishFailure{Index: f.Index, ErrorCode: f.ErrorCode})
	}
	return out
}

func TestPublishDelaysStayInBounds(t *testing.T) {
	w := &funcWriter{respond: func(int, []ports.StreamRecord) ([]ports.PutResult, error) { return nil, errors.New("down") }}
	s := &noSleep{}
	rep := NewPublisher(w, Options{Sleep: s.Sleep, Rand: func() float64 { return 0.999 }}).Publish(context.Background(), recs(1, 10))
	if rep.Attempts != 6 || len(s.delays) != 5 {
		t.Fatalf("Attempts = %d, delays %v; want the default 6 attempts", rep.Attempts, s.delays)
	}
	ceilings := []time.Duration{20, 40, 80, 160, 320}
	for i, d := range s.delays {
		if c := ceilings[i] * time.Millisecond; d >= c || d < c*9/10 {
			t.Errorf("delay %d = %v, want just under %v", i+1, d, c)
		}
	}
}

func TestPublishRespectsContext(t *testing.T) {
	failing := func(int, []ports.StreamRecord) ([]ports.PutResult, error) {
		return []ports.PutResult{{ErrorCode: "ProvisionedThroughputExceededException"}}, nil
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	roomy, cancelRoomy := context.WithTimeout(context.Background(), time.Minute)
	defer cancelRoomy()

	tests := []struct {
		name         string
		ctx          context.Context
		wantCalls    int
		wantCode     string
		wantAttempts int
	}{
		{"canceled before the first call", canceled, 0, CodeCallFailed, 0},
		{"deadline inside the margin: no retry", short, 1, "ProvisionedThroughputExceededException", 1},
		{"deadline far away: all attempts", roomy, 6, "ProvisionedThroughputExceededException", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &funcWriter{respond: failing}
			rep := NewPublisher(w, Options{Sleep: (&noSleep{}).Sleep}).Publish(tt.ctx, recs(1, 10))
			if rep.Calls != tt.wantCalls || rep.Attempts != tt.wantAttempts {
				t.Errorf("Calls, Attempts = %d, %d, want %d, %d", rep.Calls, rep.Attempts, tt.wantCalls, tt.wantAttempts)
			}
			if len(rep.Failed) != 1 || rep.Failed[0].ErrorCode != tt.wantCode {
				t.Errorf("Failed = %+v, want one with code %s", rep.Failed, tt.wantCode)
			}
		})
	}
}

// A real sleep must end early when the context ends.
func TestPublishSleepHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &funcWriter{respond: func(call int, rs []ports.StreamRecord) ([]ports.PutResult, error) {
		cancel()
		return nil, errors.New("down")
	}}
	done := make(chan ports.PublishReport)
	go func() {
		done <- NewPublisher(w, Options{BaseDelay: time.Hour, MaxDelay: time.Hour, Rand: func() float64 { return 1 }}).Publish(ctx, recs(1, 10))
	}()
	select {
	case rep := <-done:
		if rep.Calls != 1 || len(rep.Failed) != 1 {
			t.Errorf("report = %+v, want one call and one failure", rep)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish still sleeping after its context was canceled")
	}
}

// Concurrent calls must still write every record once (run with -race).
func TestPublishConcurrentChunksWithMemstream(t *testing.T) {
	m := memstream.New()
	m.SetFault(func(call, index int, _ ports.StreamRecord) string {
		if call < 5 && index%10 == 0 {
			return "InternalFailure"
		}
		return ""
	})
	records := recs(2345, 10)
	rep := NewPublisher(m, Options{Sleep: (&noSleep{}).Sleep}).Publish(context.Background(), records)
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	for _, r := range m.Records() {
		seen[string(r.Data)]++
	}
	for _, r := range records {
		if seen[string(r.Data)] != 1 {
			t.Fatalf("record %s written %d times", r.Data, seen[string(r.Data)])
		}
	}
	if rep.Calls < 6 || rep.Attempts != 2 {
		t.Errorf("Calls, Attempts = %d, %d, want >= 6, 2", rep.Calls, rep.Attempts)
	}
}

func BenchmarkPublish(b *testing.B) {
	records := recs(1000, 400)
	p := NewPublisher(&funcWriter{}, Options{})
	b.ReportAllocs()
	for b.Loop() {
		if rep := p.Publish(context.Background(), records); len(rep.Failed) > 0 {
			b.Fatal(rep.Err())
		}
	}
}

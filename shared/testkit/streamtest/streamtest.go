// Package streamtest is the contract test suite for ports.StreamWriter implementations. The
// same cases run against the in-memory fake (memstream) and against kinesalite behind the
// fault proxy (kinesisstream), so the fake cannot drift from what the real adapter does, and
// the stream.Publisher is proven against both.
package streamtest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/ports"
)

// ThroughputExceeded is the error code a Harness injects into failed entries.
const ThroughputExceeded = "ProvisionedThroughputExceededException"

// Harness is one fresh, empty stream and the knobs the cases need.
type Harness struct {
	// Writer is the implementation under test.
	Writer ports.StreamWriter
	// ReadAll returns every record written to the stream so far (for one partition key in
	// write order; across keys in any order). It must not go through the fault injection.
	ReadAll func(ctx context.Context) ([]ports.StreamRecord, error)
	// FailEntries makes entries fail with ThroughputExceeded from now on when pred returns
	// true; call counts from 0 at the first call after FailEntries, index is the entry's index
	// in that call. A nil pred stops the injection.
	FailEntries func(pred func(call, index int) bool)
	// FailCalls makes the next n calls fail entirely with the AWS error code (for example
	// "InternalFailure"); the error text must contain code. n = 0 stops it.
	FailCalls func(n int, code string)
}

// Run runs every case on a fresh harness from newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c.run(ctx, t, newHarness(t))
		})
	}
}

var cases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, h Harness)
}{
	{"round trip keeps keys and bytes", roundTrip},
	{"one call keeps order per partition key", orderPerKey},
	{"publisher chunks 1234 records", chunking},
	{"publisher splits at 5 MiB", byteCap},
	{"oversized record is reported, not sent", oversized},
	{"partial failures are retried", partialFailures},
	{"persistent entry failures are reported", persistentEntryFailures},
	{"whole-call failures are retried", wholeCallFailures},
	{"persistent call failures are reported", persistentCallFailures},
	{"short deadline stops retrying", shortDeadline},
	{"expired context sends nothing", expiredContext},
}

// fast returns Publisher options whose retries do not sleep.
func fast(o stream.Options) stream.Options {
	o.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	return o
}

func roundTrip(ctx context.Context, t *testing.T, h Harness) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	records := []ports.StreamRecord{
		{PartitionKey: "user-1", Data: []byte(`{"event_id":"e1","name":"purchase"}`)},
		{PartitionKey: "user-2", Data: allBytes},
		{PartitionKey: "ключ-ü-🔑", Data: []byte("x")},
		{PartitionKey: strings.Repeat("k", 256), Data: bytes.Repeat([]byte{0xff, 0x00}, 4096)},
		{PartitionKey: "user-1", Data: []byte(`{"event_id":"e2"}`)},
	}
	results, err := h.Writer.PutRecords(ctx, records)
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	if len(results) != len(records) {
		t.Fatalf("PutRecords returned %d results for %d records", len(results), len(records))
	}
	for i, r := range results {
		if r.ErrorCode != "" {
			t.Errorf("result %d: %s: %s", i, r.ErrorCode, r.ErrorMessage)
		}
	}
	assertExactlyOnce(ctx, t, h, records)
}

func orderPerKey(ctx context.Context, t *testing.T, h Harness) {
	keys := []string{"alice", "bob", "carol"}
	var records []ports.StreamRecord
	for i := range 90 {
		records = append(records, ports.StreamRecord{PartitionKey: keys[i%len(keys)], Data: []byte(fmt.Sprintf("%03d", i))})
	}
	if _, err := h.Writer.PutRecords(ctx, records); err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	got := readAll(ctx, t, h)
	for _, k := range keys {
		var want, have []string
		for _, r := range records {
			if r.PartitionKey == k {
				want = append(want, string(r.Data))
			}
		}
		for _, r := range got {
			if r.PartitionKey == k {
				have = append(have, string(r.Data))
			}
		}
		if !slices.Equal(have, want) {
			t.Errorf("key %s: read %v, want %v", k, have, want)
		}
	}
}

func chunking(ctx context.Context, t *testing.T, h Harness) {
	records := numbered(1234, 64)
	rep := stream.NewPublisher(h.Writer, fast(stream.Options{})).Publish(ctx, records)
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Calls < 3 {
		t.Errorf("Calls = %d, want >= 3 for 1234 records", rep.Calls)
	}
	assertExactlyOnce(ctx, t, h, records)
}

func byteCap(ctx context.Context, t *testing.T, h Harness) {
	// 12 records just under 1 MiB each: at most 5 fit in 5 MiB, so >= 3 calls although the
	// count limit would allow one.
	records := numbered(12, ports.MaxRecordBytes-64)
	rep := stream.NewPublisher(h.Writer, fast(stream.Options{})).Publish(ctx, records)
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Calls < 3 {
		t.Errorf("Calls = %d, want >= 3 for 12 records of ~1 MiB", rep.Calls)
	}
	assertExactlyOnce(ctx, t, h, records)
}

func oversized(ctx context.Context, t *testing.T, h Harness) {
	records := numbered(3, 100)
	records[1].Data = make([]byte, ports.MaxRecordBytes-len(records[1].PartitionKey)+1)
	rep := stream.NewPublisher(h.Writer, fast(stream.Options{})).Publish(ctx, records)
	assertFailed(t, rep, map[int]string{1: stream.CodeRecordTooLarge})
	if rep.Calls != 1 {
		t.Errorf("Calls = %d, want 1", rep.Calls)
	}
	assertExactlyOnce(ctx, t, h, []ports.StreamRecord{records[0], records[2]})

	only := stream.NewPublisher(h.Writer, fast(stream.Options{})).Publish(ctx, records[1:2])
	if only.Calls != 0 || len(only.Failed) != 1 {
		t.Errorf("oversized alone: Calls = %d, Failed = %d, want 0 calls, 1 failure", only.Calls, len(only.Failed))
	}
}

func partialFailures(ctx context.Context, t *testing.T, h Harness) {
	h.FailEntries(func(call, index int) bool { return call == 0 && index%3 == 0 })
	records := numbered(100, 32)
	rep := stream.NewPublisher(h.Writer, fast(stream.Options{})).Publish(ctx, records)
	h.FailEntries(nil)
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if rep.Calls != 2 || rep.RetriedRecords != 34 || rep.Attempts != 2 {
		t.Errorf("Calls, RetriedRecords, Attempts = %d, %d, %d; want 2, 34, 2", rep.Calls, rep.RetriedRecords, rep.Attempts)
	}
	assertExactlyOnce(ctx, t, h, records)
}

func persistentEntryFailures(ctx context.Context, t *testing.T, h Harness) {
	// The failed entries come first in every retry call, so index < 2 keeps failing them.
	h.FailEntries(func(call, index int) bool { return index < 2 })
	records := numbered(10, 32)
	rep := stream.NewPublisher(h.Writer, fast(stream.Options{MaxAttempts: 4})).Publish(ctx, records)
	h.FailEntries(nil)
	assertFailed(t, rep, map[int]string{0: ThroughputExceeded, 1: ThroughputExceeded})
	if rep.Attempts != 4 || rep.Calls != 4 {
		t.Errorf("Attempts, Calls = %d, %d, want 4, 4", rep.Attempts, rep.Calls)
	}
	assertExactlyOnce(ctx, t, h, records[2:])
}

func wholeCallFailures(ctx context.Context, t *testing.T, h Harness) {
	for i, code := range []string{ThroughputExceeded, "InternalFailure"} {
		t.Run(code, func(t *testing.T) {
			h.FailCalls(2, code)
			defer h.FailCalls(0, "")
			records := numbered(20, 32)
			for j := range records {
				records[j].PartitionKey = fmt.Sprintf("%s-%d", code, i)
			}
			rep := stream.NewPublisher(h.Writer, fast(stream.Options{})).Publish(ctx, records)
			if err := rep.Err(); err != nil {
				t.Fatal(err)
			}
			if rep.Calls != 3 || rep.RetriedRecords != 40 {
				t.Errorf("Calls, RetriedRecords = %d, %d; want 3, 40", rep.Calls, rep.RetriedRecords)
			}
			all := readAll(ctx, t, h)
			var mine []ports.StreamRecord
			for _, r := range all {
				if r.PartitionKey == records[0].PartitionKey {
					mine = append(mine, r)
				}
			}
			assertSameRecords(t, mine, records)
		})
	}
}

func persistentCallFailures(ctx context.Context, t *testing.T, h Harness) {
	h.FailCalls(1000, "InternalFailure")
	defer h.FailCalls(0, "")
	records := numbered(3, 32)
	rep := stream.NewPublisher(h.Writer, fast(stream.Options{MaxAttempts: 3})).Publish(ctx, records)
	assertFailed(t, rep, map[int]string{0: stream.CodeCallFailed, 1: stream.CodeCallFailed, 2: stream.CodeCallFailed})
	for _, f := range rep.Failed {
		if !strings.Contains(f.ErrorMessage, "InternalFailure") {
			t.Errorf("failure %d message %q does not name the error code", f.Index, f.ErrorMessage)
		}
	}
	if rep.Calls != 3 {
		t.Errorf("Calls = %d, want 3", rep.Calls)
	}
	assertExactlyOnce(ctx, t, h, nil)
}

func shortDeadline(ctx context.Context, t *testing.T, h Harness) {
	h.FailEntries(func(int, int) bool { return true })
	defer h.FailEntries(nil)
	records := numbered(5, 32)
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	// Real sleeps and the default 300ms margin: the deadline is already inside the margin
	// after the first attempt.
	rep := publishOrHang(short, t, stream.NewPublisher(h.Writer, stream.Options{BaseDelay: time.Second, MaxDelay: time.Second}), records)
	want := map[int]string{}
	for i := range records {
		want[i] = ThroughputExceeded
	}
	assertFailed(t, rep, want)
	if rep.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", rep.Attempts)
	}
	assertExactlyOnce(ctx, t, h, nil)
}

func expiredContext(ctx context.Context, t *testing.T, h Harness) {
	done, cancel := context.WithCancel(ctx)
	cancel()
	records := numbered(5, 32)
	rep := publishOrHang(done, t, stream.NewPublisher(h.Writer, stream.Options{}), records)
	want := map[int]string{}
	for i := range records {
		want[i] = stream.CodeCallFailed
	}
	assertFailed(t, rep, want)
	if rep.Calls != 0 {
		t.Errorf("Calls = %d, want 0", rep.Calls)
	}
	assertExactlyOnce(ctx, t, h, nil)
}

// publishOrHang publishes and fails the test if Publish does not return within a minute: the
// point is that it returns at all, not how fast.
func publishOrHang(ctx context.Context, t *testing.T, p *stream.Publisher, records []ports.StreamRecord) ports.PublishReport {
	t.Helper()
	done := make(chan ports.PublishReport, 1)
	go func() { done <- p.Publish(ctx, records) }()
	select {
	case rep := <-done:
		return rep
	case <-time.After(time.Minute):
		t.Fatal("Publish did not return a minute after its context ended")
		return ports.PublishReport{}
	}
}

// numbered returns n records with distinct data of dataLen bytes over a few partition keys.
func numbered(n, dataLen int) []ports.StreamRecord {
	out := make([]ports.StreamRecord, n)
	for i := range out {
		data := make([]byte, dataLen)
		for j := range data {
			data[j] = byte('a' + j%26)
		}
		copy(data, fmt.Sprintf("%06d|", i))
		out[i] = ports.StreamRecord{PartitionKey: fmt.Sprintf("user-%02d", i%13), Data: data}
	}
	return out
}

func readAll(ctx context.Context, t *testing.T, h Harness) []ports.StreamRecord {
	t.Helper()
	got, err := h.ReadAll(ctx)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return got
}

// assertExactlyOnce checks that the stream holds exactly want (as a multiset).
func assertExactlyOnce(ctx context.Context, t *testing.T, h Harness, want []ports.StreamRecord) {
	t.Helper()
	assertSameRecords(t, readAll(ctx, t, h), want)
}

func assertSameRecords(t *testing.T, got, want []ports.StreamRecord) {
	t.Helper()
	count := make(map[string]int)
	for _, r := range want {
		count[r.PartitionKey+"\x00"+string(r.Data)]++
	}
	for _, r := range got {
		count[r.PartitionKey+"\x00"+string(r.Data)]--
	}
	bad := 0
	for k, n := range count {
		if n != 0 {
			bad++
			if bad <= 5 {
				key, data, _ := strings.Cut(k, "\x00")
				t.Errorf("record key %q data %.20q...: %d missing (negative: extra copies)", key, data, n)
			}
		}
	}
	if bad > 0 || len(got) != len(want) {
		t.Errorf("stream holds %d records, want %d; %d differ", len(got), len(want), bad)
	}
}

// assertFailed checks Report.Failed against index -> code, and that it is sorted.
func assertFailed(t *testing.T, rep ports.PublishReport, want map[int]string) {
	t.Helper()
	got := make(map[int]string)
	for i, f := range rep.Failed {
		got[f.Index] = f.ErrorCode
		if i > 0 && rep.Failed[i-1].Index >= f.Index {
			t.Errorf("Failed not sorted by index: %+v", rep.Failed)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Failed = %+v, want %v", rep.Failed, want)
		return
	}
	for i, code := range want {
		if got[i] != code {
			t.Errorf("Failed = %+v, want %v", rep.Failed, want)
			return
		}
	}
}

package kinesisstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/faultproxy"
	"github.com/retarget-dev/retarget/shared/testkit/streamtest"
)

// kinesalite starts an emulator for the test and returns a client talking to it directly.
func kinesalite(t *testing.T) (*emulators.Process, *kinesis.Client) {
	t.Helper()
	emu := emulators.StartForTest(t, emulators.Kinesis)
	return emu, newClient(t, emu.Endpoint)
}

// newClient returns a client for endpoint without SDK retries: the Publisher retries, and the
// fault proxy must see one HTTP call per Writer call.
func newClient(t *testing.T, endpoint string) *kinesis.Client {
	t.Helper()
	cfg, err := emulators.AWSConfig(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
}

func TestContract(t *testing.T) {
	emu, direct := kinesalite(t)
	var streams atomic.Int64
	streamtest.Run(t, func(t *testing.T) streamtest.Harness {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		name := fmt.Sprintf("contract-%d", streams.Add(1))
		if err := EnsureStream(ctx, direct, name, 2); err != nil {
			t.Fatal(err)
		}
		proxy, err := faultproxy.Start(emu.Endpoint, faultproxy.Rules{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { proxy.Close() })

		// The harness funcs run on the test goroutine, one at a time.
		var rules faultproxy.Rules
		return streamtest.Harness{
			Writer: NewWriter(newClient(t, proxy.URL()), name, ""),
			ReadAll: func(ctx context.Context) ([]ports.StreamRecord, error) {
				tailed, err := NewTailer(direct, name, TrimHorizon).Drain(ctx)
				out := make([]ports.StreamRecord, len(tailed))
				for i, r := range tailed {
					out[i] = ports.StreamRecord{PartitionKey: r.PartitionKey, Data: r.Data}
				}
				return out, err
			},
			FailEntries: func(pred func(call, index int) bool) {
				rules.FailEntry = nil
				if pred != nil {
					base := proxy.Calls(faultproxy.KinesisPutRecords)
					rules.FailEntry = func(c faultproxy.Call, index int) *faultproxy.Fault {
						if pred(c.Seq-base, index) {
							return faultproxy.ThroughputExceeded()
						}
						return nil
					}
				}
				proxy.SetRules(rules)
			},
			FailCalls: func(n int, code string) {
				var left atomic.Int64
				left.Store(int64(n))
				rules.FailCall = func(c faultproxy.Call) *faultproxy.Fault {
					if c.Target == faultproxy.KinesisPutRecords && left.Add(-1) >= 0 {
						return faultproxy.FaultFor(code)
					}
					return nil
				}
				proxy.SetRules(rules)
			},
		}
	})
}

func TestEnsureStreamAndTailer(t *testing.T) {
	_, client := kinesalite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 2 { // the second call finds the stream
		if err := EnsureStream(ctx, client, "tail", 3); err != nil {
			t.Fatal(err)
		}
	}
	w := NewWriter(client, "tail", "")
	put := func(keys ...string) {
		t.Helper()
		var recs []ports.StreamRecord
		for _, k := range keys {
			recs = append(recs, ports.StreamRecord{PartitionKey: k, Data: []byte("data-" + k)})
		}
		if _, err := w.PutRecords(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "b", "c", "d")
	horizon := NewTailer(client, "tail", TrimHorizon)
	latest := NewTailer(client, "tail", Latest)
	if got, err := latest.Next(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Latest first Next = %d records, %v; want none", len(got), err)
	}
	put("e", "f")

	tests := []struct {
		name   string
		tailer *Tailer
		want   []string
	}{
		{"trim horizon", horizon, []string{"a", "b", "c", "d", "e", "f"}},
		{"latest", latest, []string{"e", "f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tailer.Drain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			shards := map[string]bool{}
			for _, r := range got {
				keys = append(keys, r.PartitionKey)
				shards[r.ShardID] = true
				if string(r.Data) != "data-"+r.PartitionKey || r.SequenceNumber == "" || r.ApproximateArrival.IsZero() {
					t.Errorf("bad record %+v", r)
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tt.want) {
				t.Errorf("keys = %v, want %v", keys, tt.want)
			}
			if again, err := tt.tailer.Next(ctx); err != nil || len(again) != 0 {
				t.Errorf("Next after Drain = %d records, %v; want none", len(again), err)
			}
		})
	}
	if err := EnsureStream(ctx, client, "bad name!", 1); err == nil {
		t.Error("EnsureStream with an invalid name succeeded")
	}
}

// fakePut answers PutRecords from a func and keeps the last input.
type fakePut struct {
	in  *kinesis.PutRecordsInput
	out *kinesis.PutRecordsOutput
	err error
}

func (f *fakePut) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.in = in
	return f.out, f.err
}

func TestWriterMapping(t *testing.T) {
	two := []ports.StreamRecord{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}}
	apiErr := &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
	tests := []struct {
		name        string
		records     []ports.StreamRecord
		arn         string
		fake        fakePut
		want        []ports.PutResult
		wantErr     error
		wantErrText bool
		wantNoCall  bool
	}{
		{name: "empty batch makes no call", records: nil, wantNoCall: true},
		{
			name: "results aligned by index", records: two,
			fake: fakePut{out: &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(1), Records: []types.PutRecordsResultEntry{
				{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-0")},
				{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("oops")},
			}}},
			want: []ports.PutResult{{}, {ErrorCode: "InternalFailure", ErrorMessage: "oops"}},
		},
		{name: "call error is wrapped", records: two, fake: fakePut{err: apiErr}, wantErr: apiErr},
		{
			name: "short response is an error", records: two, wantErrText: true,
			fake: fakePut{out: &kinesis.PutRecordsOutput{Records: []types.PutRecordsResultEntry{{}}}},
		},
		{
			name: "ARN is sent when set", records: two[:1], arn: "arn:aws:kinesis:us-east-1:1:stream/s",
			fake: fakePut{out: &kinesis.PutRecordsOutput{Records: []types.PutRecordsResultEntry{{}}}},
			want: []ports.PutResult{{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake
			got, err := NewWriter(&f, "s", tt.arn).PutRecords(context.Background(), tt.records)
			switch {
			case tt.wantErr != nil:
				var pt *types.ProvisionedThroughputExceededException
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &pt) {
					t.Fatalf("error = %v, want it to wrap %v", err, tt.wantErr)
				}
				return
			case tt.wantErrText:
				if err == nil {
					t.Fatal("want an error")
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if tt.wantNoCall {
				if f.in != nil {
					t.Error("made a call for an empty batch")
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("results = %+v, want %+v", got, tt.want)
			}
			if aws.ToString(f.in.StreamName) != "s" || aws.ToString(f.in.StreamARN) != tt.arn {
				t.Errorf("stream name %q, ARN %q", aws.ToString(f.in.StreamName), aws.ToString(f.in.StreamARN))
			}
			for i, e := range f.in.Records {
				if aws.ToString(e.PartitionKey) != tt.records[i].PartitionKey || string(e.Data) != string(tt.records[i].Data) {
					t.Errorf("entry %d = %q/%q", i, aws.ToString(e.PartitionKey), e.Data)
				}
			}
		})
	}
}

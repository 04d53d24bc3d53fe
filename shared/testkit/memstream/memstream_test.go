package memstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/streamtest"
)

func TestContract(t *testing.T) {
	streamtest.Run(t, func(t *testing.T) streamtest.Harness {
		s := New()
		return streamtest.Harness{
			Writer:  s,
			ReadAll: func(context.Context) ([]ports.StreamRecord, error) { return s.Records(), nil },
			FailEntries: func(pred func(call, index int) bool) {
				if pred == nil {
					s.SetFault(nil)
					return
				}
				base := s.Calls()
				s.SetFault(func(call, index int, _ ports.StreamRecord) string {
					if pred(call-base, index) {
						return streamtest.ThroughputExceeded
					}
					return ""
				})
			},
			FailCalls: func(n int, code string) {
				var left atomic.Int64
				left.Store(int64(n))
				s.SetCallFault(func(int) error {
					if left.Add(-1) >= 0 {
						return fmt.Errorf("%s: injected call failure", code)
					}
					return nil
				})
			},
		}
	})
}

func TestLimits(t *testing.T) {
	rec := func(key string, size int) ports.StreamRecord {
		return ports.StreamRecord{PartitionKey: key, Data: make([]byte, size)}
	}
	many := func(n int, r ports.StreamRecord) []ports.StreamRecord {
		out := make([]ports.StreamRecord, n)
		for i := range out {
			out[i] = r
		}
		return out
	}
	tests := []struct {
		name    string
		records []ports.StreamRecord
		wantErr bool
	}{
		{"one record", []ports.StreamRecord{rec("k", 10)}, false},
		{"no records", nil, true},
		{"500 records", many(500, rec("k", 10)), false},
		{"501 records", many(501, rec("k", 10)), true},
		{"record of exactly 1 MiB", []ports.StreamRecord{rec("k", ports.MaxRecordBytes-1)}, false},
		{"record over 1 MiB", []ports.StreamRecord{rec("k", ports.MaxRecordBytes)}, true},
		{"exactly 5 MiB", many(5, rec("k", ports.MaxRecordBytes-1)), false},
		{"over 5 MiB", many(6, rec("k", ports.MaxRecordBytes-1)), true},
		{"empty partition key", []ports.StreamRecord{rec("", 1)}, true},
		{"257-byte partition key", []ports.StreamRecord{rec(strings.Repeat("k", 257), 1)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			res, err := s.PutRecords(context.Background(), tt.records)
			if (err != nil) != tt.wantErr {
				t.Fatalf("PutRecords error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidRequest) {
					t.Errorf("error %v does not wrap ErrInvalidRequest", err)
				}
				if len(s.Records()) != 0 {
					t.Errorf("a rejected call stored %d records", len(s.Records()))
				}
				return
			}
			if len(res) != len(tt.records) || len(s.Records()) != len(tt.records) {
				t.Errorf("results %d, stored %d, want %d", len(res), len(s.Records()), len(tt.records))
			}
		})
	}
}

func TestFaultsAndAccessors(t *testing.T) {
	s := New()
	s.SetFault(func(call, index int, r ports.StreamRecord) string {
		if call == 1 && r.PartitionKey == "b" {
			return "InternalFailure"
		}
		return ""
	})
	boom := errors.New("boom")
	s.SetCallFault(func(call int) error {
		if call == 0 {
			return boom
		}
		return nil
	})
	batch := []ports.StreamRecord{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}, {PartitionKey: "a", Data: []byte("3")}}

	if _, err := s.PutRecords(context.Background(), batch); !errors.Is(err, boom) {
		t.Fatalf("call 0: error = %v, want boom", err)
	}
	res, err := s.PutRecords(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].ErrorCode != "" || res[1].ErrorCode != "InternalFailure" || res[2].ErrorCode != "" || res[1].ErrorMessage == "" {
		t.Errorf("results = %+v, want entry 1 failed", res)
	}
	batch[0].Data[0] = 'X' // the stream keeps its own copy
	if got := s.RecordsByKey("a"); len(got) != 2 || string(got[0].Data) != "1" || string(got[1].Data) != "3" {
		t.Errorf("RecordsByKey(a) = %q", got)
	}
	if got := s.RecordsByKey("b"); len(got) != 0 {
		t.Errorf("RecordsByKey(b) = %q, want none", got)
	}
	if s.Calls() != 2 || len(s.Records()) != 2 {
		t.Errorf("Calls = %d, Records = %d, want 2, 2", s.Calls(), len(s.Records()))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.PutRecords(ctx, batch); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled ctx: error = %v", err)
	}
}

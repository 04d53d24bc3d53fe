// Package memstream is an in-memory ports.StreamWriter for tests. It keeps every accepted
// record in arrival order, rejects calls that Kinesis would reject (more than
// ports.MaxPutRecords records, more than ports.MaxPutBytes bytes, a record over
// ports.MaxRecordBytes, a partition key outside 1..256 bytes) and can inject the failures
// Kinesis produces: per-entry error codes and failed calls.
package memstream

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/retarget-dev/retarget/shared/ports"
)

// maxPartitionKeyLen is the longest partition key Kinesis accepts.
const maxPartitionKeyLen = 256

// ErrInvalidRequest is returned (wrapped) for a call Kinesis would reject as a whole.
var ErrInvalidRequest = errors.New("invalid PutRecords request")

// FaultFunc decides the fate of one entry: it returns a Kinesis error code (for example
// "ProvisionedThroughputExceededException") to fail the entry, or "" to accept it. call is the
// 0-based number of the PutRecords call on this Stream, index the entry's index in the call.
type FaultFunc func(call, index int, rec ports.StreamRecord) (code string)

// CallFaultFunc decides whether a whole call fails: a non-nil error is returned by PutRecords
// and nothing of the call is stored. call is the 0-based number of the call.
type CallFaultFunc func(call int) error

// Stream is an in-memory stream. The zero value is not usable; call New. It is safe for
// concurrent use. Hooks run while the Stream is locked: they must not call the Stream.
type Stream struct {
	mu        sync.Mutex
	calls     int
	records   []ports.StreamRecord
	byKey     map[string][]ports.StreamRecord
	fault     FaultFunc
	callFault CallFaultFunc
}

var _ ports.StreamWriter = (*Stream)(nil)

// New returns an empty Stream without faults.
func New() *Stream {
	return &Stream{byKey: make(map[string][]ports.StreamRecord)}
}

// SetFault installs (or, with nil, removes) the per-entry fault hook.
func (s *Stream) SetFault(f FaultFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetCallFault installs (or, with nil, removes) the whole-call fault hook.
func (s *Stream) SetCallFault(f CallFaultFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callFault = f
}

// PutRecords stores the records that the fault hooks let through, in order, and returns one
// result per record. Like the Kinesis adapter it fails on a done ctx and on an empty call.
func (s *Stream) PutRecords(ctx context.Context, records []ports.StreamRecord) ([]ports.PutResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	call := s.calls
	s.calls++
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("put records: %w", err)
	}
	if err := validate(records); err != nil {
		return nil, fmt.Errorf("put records: %w", err)
	}
	if s.callFault != nil {
		if err := s.callFault(call); err != nil {
			return nil, fmt.Errorf("put records: %w", err)
		}
	}
	results := make([]ports.PutResult, len(records))
	for i, r := range records {
		if s.fault != nil {
			if code := s.fault(call, i, r); code != "" {
				results[i] = ports.PutResult{ErrorCode: code, ErrorMessage: fmt.Sprintf("injected by memstream (call %d, entry %d)", call, i)}
				continue
			}
		}
		// Copy: callers may reuse their buffers.
		stored := ports.StreamRecord{PartitionKey: r.PartitionKey, Data: append([]byte(nil), r.Data...)}
		s.records = append(s.records, stored)
		s.byKey[r.PartitionKey] = append(s.byKey[r.PartitionKey], stored)
	}
	return results, nil
}

// validate applies the Kinesis request limits.
func validate(records []ports.StreamRecord) error {
	if len(records) == 0 {
		return fmt.Errorf("%w: no records", ErrInvalidRequest)
	}
	if len(records) > ports.MaxPutRecords {
		return fmt.Errorf("%w: %d records, at most %d", ErrInvalidRequest, len(records), ports.MaxPutRecords)
	}
	total := 0
	for i, r := range records {
		if n := len(r.PartitionKey); n < 1 || n > maxPartitionKeyLen {
			return fmt.Errorf("%w: record %d: partition key of %d bytes, want 1..%d", ErrInvalidRequest, i, n, maxPartitionKeyLen)
		}
		size := len(r.PartitionKey) + len(r.Data)
		if size > ports.MaxRecordBytes {
			return fmt.Errorf("%w: record %d: %d bytes, at most %d", ErrInvalidRequest, i, size, ports.MaxRecordBytes)
		}
		total += size
	}
	if total > ports.MaxPutBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidRequest, total, ports.MaxPutBytes)
	}
	return nil
}

// Records returns copies of all stored records in arrival order.
func (s *Stream) Records() []ports.StreamRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.records)
}

// RecordsByKey returns copies of the stored records of one partition key in arrival order.
func (s *Stream) RecordsByKey(partitionKey string) []ports.StreamRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.byKey[partitionKey])
}

// Calls returns how many PutRecords calls were made, rejected and failed ones included.
func (s *Stream) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func clone(records []ports.StreamRecord) []ports.StreamRecord {
	out := make([]ports.StreamRecord, len(records))
	for i, r := range records {
		out[i] = ports.StreamRecord{PartitionKey: r.PartitionKey, Data: append([]byte(nil), r.Data...)}
	}
	return out
}

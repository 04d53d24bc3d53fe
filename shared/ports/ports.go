// Package ports holds the small interfaces the domain and the handlers depend on. Adapters in
// shared/adapters implement them against AWS; fakes implement them in memory for tests.
package ports

import "context"

// Kinesis PutRecords limits (per call).
const (
	// MaxPutRecords is the most records one PutRecords call accepts.
	MaxPutRecords = 500
	// MaxPutBytes is the most bytes (data plus partition keys) one PutRecords call accepts.
	MaxPutBytes = 5 << 20
	// MaxRecordBytes is the most bytes (data plus partition key) of a single record.
	MaxRecordBytes = 1 << 20
)

// StreamRecord is one record bound for the event stream.
type StreamRecord struct {
	// PartitionKey routes the record to a shard; we use the pseudonymous user key so that one
	// user's events stay in order on one shard.
	PartitionKey string
	// Data is the encoded envelope (see package envelope).
	Data []byte
}

// PutResult is the outcome of one entry of a PutRecords call. ErrorCode is empty on success.
type PutResult struct {
	ErrorCode    string
	ErrorMessage string
}

// StreamWriter writes one batch of at most MaxPutRecords records and MaxPutBytes bytes in a
// single call. The results are aligned with records by index. A non-nil error means the whole
// call failed; the records may or may not have been written (consumers dedupe on event_id).
type StreamWriter interface {
	PutRecords(ctx context.Context, records []StreamRecord) ([]PutResult, error)
}

// SecretReader returns the current value of a secret (Secrets Manager in AWS).
type SecretReader interface {
	SecretValue(ctx context.Context, id string) (string, error)
}

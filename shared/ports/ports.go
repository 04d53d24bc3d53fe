// Package ports holds the small interfaces the domain and the handlers depend on. Adapters in
// shared/adapters implement them against AWS; fakes implement them in memory for tests.
package ports

import (
	"context"
	"errors"
	"fmt"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

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

// DeadLetter is an event that could not be delivered, with everything needed to understand and
// replay it. Record is the stream envelope as it was read: hashed identifiers, plus the four
// Meta wants unhashed (client IP address, user agent, anon id, advertising id), as on the
// stream.
type DeadLetter struct {
	App       string `json:"app"`
	EventID   string `json:"event_id"`
	EventName string `json:"event_name"`
	// Consumer names who gave up, e.g. "capi-forwarder".
	Consumer string `json:"consumer"`
	// Reason is a short stable code (e.g. "invalid_parameter", "too_old", "undecodable").
	Reason string `json:"reason"`
	// Detail is a human-readable explanation; Meta's error fields when Meta refused the event.
	Detail   string     `json:"detail,omitempty"`
	Meta     *MetaError `json:"meta_error,omitempty"`
	Attempts int        `json:"attempts"`
	// ShardID and SequenceNumber locate the record on the stream.
	ShardID        string `json:"shard_id,omitempty"`
	SequenceNumber string `json:"sequence_number,omitempty"`
	FailedAt       int64  `json:"failed_at"` // unix milliseconds
	Record         []byte `json:"record"`    // the envelope JSON (base64 in JSON form)
}

// MetaError carries the fields of a Graph API error envelope.
type MetaError struct {
	Message        string `json:"message,omitempty"`
	Type           string `json:"type,omitempty"`
	Code           int    `json:"code"`
	Subcode        int    `json:"error_subcode,omitempty"`
	IsTransient    bool   `json:"is_transient,omitempty"`
	ErrorUserTitle string `json:"error_user_title,omitempty"`
	ErrorUserMsg   string `json:"error_user_msg,omitempty"`
	FBTraceID      string `json:"fbtrace_id,omitempty"`
}

// DeadLetterQueue stores dead letters durably (SQS in AWS). Send either stores every letter or
// returns an error; the caller then keeps the records on the stream and retries.
type DeadLetterQueue interface {
	Send(ctx context.Context, letters []DeadLetter) error
}

// ErrNotWritten is wrapped by PublishReport.Err when some records were not written.
var ErrNotWritten = errors.New("records not written")

// PublishFailure is a record that was not written.
type PublishFailure struct {
	// Index is the record's index in the slice given to Publish.
	Index int
	// ErrorCode is the last error code seen for the record (the publisher's Code constants).
	ErrorCode    string
	ErrorMessage string
}

// PublishReport says what a stream publisher did with a batch of records.
type PublishReport struct {
	// Failed lists the records not written, sorted by Index.
	Failed []PublishFailure
	// Calls counts PutRecords calls.
	Calls int
	// RetriedRecords counts record sends after the first attempt.
	RetriedRecords int
	// Attempts counts rounds of calls (1 when nothing was retried, 0 when nothing was sent).
	Attempts int
}

// Err returns nil when every record was written, else an error wrapping ErrNotWritten that
// names the first failure.
func (r PublishReport) Err() error {
	if len(r.Failed) == 0 {
		return nil
	}
	f := r.Failed[0]
	return fmt.Errorf("put records: %w: %d failed, first index %d: %s: %s",
		ErrNotWritten, len(r.Failed), f.Index, f.ErrorCode, f.ErrorMessage)
}

// EndUserVerifier checks an end user's identity token (a JWT from the app's identity provider)
// and returns the app_user_id it names. Errors wrap ErrTokenInvalid (the caller answers 401) or
// ErrTokenUnverifiable (the issuer's keys could not be fetched: 503, the client retries).
type EndUserVerifier interface {
	Verify(ctx context.Context, appID string, cfg *appconfig.EndUserAuth, token string) (appUserID string, err error)
}

// Errors of EndUserVerifier.
var (
	ErrTokenInvalid      = errors.New("invalid end-user token")
	ErrTokenUnverifiable = errors.New("end-user token keys unavailable")
)

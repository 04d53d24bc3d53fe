package env

import "time"

// The Kinesis event source mappings the stream consumers are written for. The stack declares
// them with these values; make dev's local mappings use them too, with a shorter batching
// window.
const (
	// ForwarderBatchSize is Meta's maximum number of events per CAPI request: under load one
	// invocation of the forwarder makes one full request.
	ForwarderBatchSize = 1000
	// ForwarderBatchingWindow bounds how long an event waits for company at low volume.
	ForwarderBatchingWindow = 5 * time.Second
	// MappingMaxRecordAge bounds the retries of a batch that cannot be processed (a Meta
	// outage, a revoked token): held that long, then skipped to the on-failure queue with a day
	// of stream retention left to replay it.
	MappingMaxRecordAge = 6 * time.Hour
	// MappingRetryAttempts is AWS's maximum: the record age bounds retries, not a count.
	MappingRetryAttempts = 10000

	// UpdaterBatchSize gives the segment updater about 100 users per batch at 5 events each:
	// one write per user.
	UpdaterBatchSize = 500
	// UpdaterBatchingWindow bounds how long an event waits for company at low volume.
	UpdaterBatchingWindow = 5 * time.Second
)

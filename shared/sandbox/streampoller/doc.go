// Package streampoller is a local stand-in for the Lambda event source mapping (ESM) of a Kinesis
// data stream. It polls every shard of a stream (kinesalite in the dev stack and in end-to-end
// tests) and invokes a Handler with the events.KinesisEvent a Lambda function would receive,
// with the ESM's batching, ordering, retry, bisection, partial batch response and on-failure
// behaviour. A handler that is correct under this poller is meant to be correct under AWS; it
// knows nothing about the consumer it drives.
//
// # Semantics
//
//   - One goroutine per shard. A shard's batches are handed over one at a time, in sequence
//     order; different shards are invoked concurrently (as separate Lambda invocations are), so
//     the Handler, OnFailure and Crash must be safe for concurrent use.
//   - A batch is handed over when it holds BatchSize records, when its JSON payload would
//     exceed MaxBatchBytes with one more record, or when BatchingWindow has passed since its
//     first record was read (at once when BatchingWindow is 0). A batch always holds at least
//     one record.
//   - Each record becomes an events.KinesisEventRecord as AWS builds it (eventSource
//     "aws:kinesis", eventVersion "1.0", eventID "<shardId>:<sequenceNumber>", eventName
//     "aws:kinesis:record", awsRegion and eventSourceARN from Config.EventSourceARN,
//     invokeIdentityArn a fake execution role of that account, kinesis.kinesisSchemaVersion
//     "1.0", partitionKey, sequenceNumber, data, approximateArrivalTimestamp in milliseconds,
//     encryptionType "KMS" for encrypted records). The event is encoded to JSON and decoded
//     again for every invocation, so the handler sees exactly what the Lambda runtime decodes
//     and cannot alter a later redelivery by mutating its event.
//   - The invocation context has a deadline of FunctionTimeout and carries a
//     lambdacontext.LambdaContext (random AwsRequestID, a fake InvokedFunctionArn).
//   - Outcome of an invocation:
//     a normal return with no BatchItemFailures (or with ReportBatchItemFailures off, whatever
//     the response says) checkpoints the whole batch;
//     with ReportBatchItemFailures, a response that names items checkpoints just before the
//     lowest named sequence number and retries the batch from there (the records after it come
//     again); an empty or unknown itemIdentifier fails the whole batch;
//     a returned error, a panic, a return after the deadline or a Crash hook returning true
//     fails the whole batch.
//   - A failed batch (any whole failure above, an unusable response included) is split in
//     two halves when BisectOnError is set and it holds more than one record; the halves are invoked at once, first half first, recursively, and inherit
//     the retry count (splitting consumes no retry attempt). Otherwise the failure consumes one
//     retry attempt and the same records are invoked again after PollInterval. A partial
//     failure also consumes one retry attempt for the remaining records (AWS does not document
//     this case; not resetting the count bounds a handler that never makes progress).
//   - Before every invocation, records older than MaxRecordAge (by approximate arrival) are
//     taken off the front of the batch and given to OnFailure with Reason RecordAgeExceeded,
//     also when they were never invoked. When a failure finds the retry attempts used up
//     (MaxRetryAttempts), the records go to OnFailure with Reason RetryAttemptsExhausted. In
//     both cases the shard checkpoints past them and moves on. OnFailure errors are retried
//     every PollInterval, blocking the shard, so no record is lost silently.
//   - Shards are listed by stream name when Run starts and again every few seconds (and when
//     a shard closes, and on WaitIdle). Shards found at the first listing start at
//     StartingPosition; shards found later (children of a split or merge) start at
//     TRIM_HORIZON, and only after their parent shards known to the poller are fully
//     processed, which keeps per-partition-key order across resharding as AWS does.
//
// # Deviations from AWS, and choices where AWS documents nothing
//
//   - Checkpoints live in memory: a new Poller starts again at StartingPosition.
//   - ParallelizationFactor is always 1; AT_TIMESTAMP, tumbling windows, filter criteria and
//     enhanced fan-out are not supported.
//   - All shards share one process: state a handler keeps in globals is shared between
//     concurrent invocations, where Lambda would give each its own execution environment.
//   - A handler that overruns its deadline is not killed: the poller waits for it to return
//     (and logs when it still runs a second after its deadline) before going on, where Lambda
//     would stop the execution environment. The invocation has failed either way.
//   - MaxRetryAttempts must be bounded: AWS's default -1 (infinite) is refused, and the zero
//     value means no retries. MaxRecordAge may be below AWS's 60 s minimum, so tests can
//     exercise expiry.
//   - A retry holds exactly the records that failed (the whole batch, a half, or the records
//     from the lowest reported failure to the end), never newer records.
//   - Retries wait PollInterval; bisected halves are invoked at once.
//   - The on-failure condition RecordAgeExceeded is this package's name; AWS documents only
//     RetryAttemptsExhausted.
//
// FromInvoker drives a function through its raw JSON interface (lambda.NewHandler), for
// handlers of other signatures and for AWS's rules on malformed responses.
package streampoller

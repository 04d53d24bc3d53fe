// Package chaos proves the pipeline under load and faults, end to end and in process.
//
// TestPipelineUnderFaults wires the real components exactly as the Lambdas and `make dev` do
// (each built by package runtime, as the Lambdas build them), on loopback:
//
//	client (SDK-like retries) -> ingest handler -> Kinesis writer -> faultproxy -> kinesalite
//	direct producer (v1 and v2 records)     -> Kinesis writer -> faultproxy -> kinesalite
//	kinesalite <- faultproxy <- streampoller -> capi-forwarder -> metagraph -> Meta sandbox
//	kinesalite <- faultproxy <- streampoller -> segment-updater -> faultproxy -> dynalite
//	audience-sync (on a ticker) -> DynamoDB (same proxy) and the Meta sandbox
//
// The stream is mixed, as during a rollout of a new envelope version or a replay of old
// records: besides the ingest's records, a direct producer (mixed_test.go) puts some users'
// events on the stream itself, through the same Kinesis faults, as version 1 records (one event
// each) and as hand-built version 2 records (a request's events packed several to a record, one
// user's request spanning several records past envelope.MaxRecordBytes); some users' requests
// take each route in turn, so one user's records of both versions interleave, and when the
// producer "loses an answer" it sends the request again in the other version. Poison events
// are spread over every kind of user.
//
// It injects, while a few hundred users send their events:
//
//   - Meta: 5xx (HTTP 500 code 2 and bare 503), held requests the client times out on, every
//     rate-limit code the sandbox draws by default, Custom Audience rate limits, a window in
//     which Meta refuses every audience removal ("audience size too low": the sync holds them
//     with backoff while additions go on), one window in which both API versions have expired
//     (Meta answers error 2635 to every call: the forwarder holds the records on the stream, the
//     audience sync stops its run; nothing may be lost or dead-lettered for it), one
//     expired-token window, and poison events Meta refuses for good;
//   - Kinesis: whole PutRecords calls throttled or failing, single entries failing,
//     responses lost after the records were written (producer duplicates), GetRecords
//     throttling, and a short PutRecords outage (the API answers 503, clients retry);
//   - DynamoDB: throttling and 5xx on every operation, BatchWriteItem items left
//     unprocessed, writes held for a moment (latency spikes), responses lost after a write was
//     applied, and a short outage;
//   - the event source mappings: invocations killed in the middle of a batch (part of it
//     processed, then a failure) and invocations that crash after finishing.
//
// Once the faults stop and everything has drained it checks exact outcomes: Meta's accepted
// events equal the accepted events (the API's and the direct producer's) minus the poison ones, which are dead letters with
// Meta's reason; every user's state in DynamoDB equals a fold of the user's accepted events
// computed here with package segments; the sandbox's audiences hold exactly the users the
// segments map to; nothing is left pending (membership changes, stream records, upload
// sessions); and the stream held version 1 records, version 2 records of several events and
// users with records of both versions.
//
// TestAudienceSyncBetweenChangeAndState and TestAudienceSyncBetweenReadAndMark replay,
// deterministically and without emulators, the two interleavings behind the audience failures
// this test has found: an audience sync that runs after the segment updater recorded a
// membership change and before it wrote the user's state; and one that marks a change synced
// after the updater recorded the very same change again for a later state write.
//
// Scale and fault rates are constants in the test files. TestPipelineUnderFaults runs in
// `make test` (about 15 s; skipped with -short) and verbosely with `make chaos`; CHAOS_LONG=1
// runs a larger, longer variant (about 70 s) that must also hit every kind of fault. CHAOS_SABOTAGE=<mode> breaks one thing
// on purpose to show that the matching check fails (see sabotageModes). The test skips when
// the emulators are not installed, unless EMULATORS_REQUIRED=1.
package chaos

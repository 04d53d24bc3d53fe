// Package pipeline holds no code, only a test: TestPipelineEndToEnd wires the ingest handler,
// the Kinesis writer, kinesalite, the local event source mapping (package streampoller), the
// CAPI forwarder and the Meta sandbox in one process, and checks that every event the API
// accepted reaches Meta once in effect, in full batches (CAPI requests per 1,000 events), and
// that with Meta failing 30% of its requests nothing is lost and a poison event alone is
// dead-lettered.
//
//	EMULATORS_REQUIRED=1 go test -count=1 ./infra/e2e/pipeline/
//
// It needs kinesalite from `make tools` and skips without it unless EMULATORS_REQUIRED=1.
package pipeline

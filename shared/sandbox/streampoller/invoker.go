package streampoller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
)

// Invoker is a function invoked with its raw JSON payload, as the Lambda runtime invokes it.
// lambda.NewHandler(fn) satisfies it whatever fn's signature (for example
// func(context.Context, *events.KinesisEvent) error), and so can a client of a function
// running under the Runtime Interface Emulator.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// FromInvoker returns a Handler that sends the event to inv as JSON and reads the response as
// the ESM does: an empty or null response is a success; a response that is not a batch
// response object (invalid JSON, a string, ...) or an item whose identifier is missing, null
// or under another key name counts, with ReportBatchItemFailures, as a failure of the whole
// batch, and is ignored without it.
func FromInvoker(inv Invoker) Handler {
	return func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		payload, err := json.Marshal(ev)
		if err != nil {
			return events.KinesisEventResponse{}, fmt.Errorf("encode kinesis event: %w", err)
		}
		out, err := inv.Invoke(ctx, payload)
		if err != nil {
			return events.KinesisEventResponse{}, err
		}
		var resp events.KinesisEventResponse
		if out = bytes.TrimSpace(out); len(out) == 0 {
			return resp, nil
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			// An item without an identifier fails the whole batch under ReportBatchItemFailures.
			return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{{}}}, nil
		}
		return resp, nil
	}
}

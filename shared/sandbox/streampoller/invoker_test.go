package streampoller

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func TestFromInvoker(t *testing.T) {
	seqs := []string{testSeq(0), testSeq(1)}
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{
		{Kinesis: events.KinesisRecord{SequenceNumber: seqs[0], Data: []byte("a")}},
		{Kinesis: events.KinesisRecord{SequenceNumber: seqs[1], Data: []byte("b")}},
	}}
	tests := []struct {
		name     string
		fn       any // a handler as lambda.Start accepts it
		wantErr  bool
		wantKind verdictKind // with ReportBatchItemFailures
		wantFrom int
	}{
		{
			name: "pointer event, error only, success",
			fn: func(_ context.Context, ev *events.KinesisEvent) error {
				if len(ev.Records) != 2 || string(ev.Records[1].Kinesis.Data) != "b" {
					return errors.New("event not decoded")
				}
				return nil
			},
			wantKind: complete,
		},
		{
			name:    "returned error",
			fn:      func(context.Context, events.KinesisEvent) error { return errors.New("boom") },
			wantErr: true,
		},
		{
			name: "batch item failures",
			fn: func(context.Context, events.KinesisEvent) (events.KinesisEventResponse, error) {
				return failItems(seqs[1]), nil
			},
			wantKind: partial, wantFrom: 1,
		},
		{
			name:     "null response",
			fn:       func(context.Context, events.KinesisEvent) (*events.KinesisEventResponse, error) { return nil, nil },
			wantKind: complete,
		},
		{
			name: "identifier under a bad key name",
			fn: func(context.Context, events.KinesisEvent) (any, error) {
				return map[string]any{"batchItemFailures": []any{map[string]string{"itemId": seqs[1]}}}, nil
			},
			wantKind: failed,
		},
		{
			name:     "not a batch response",
			fn:       func(context.Context, json.RawMessage) (string, error) { return "ok", nil },
			wantKind: failed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := FromInvoker(lambda.NewHandler(tt.fn))(context.Background(), ev)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if v := judgeResponse(seqs, resp, true); v.kind != tt.wantKind || (v.kind == partial && v.from != tt.wantFrom) {
				t.Errorf("verdict %+v for response %+v, want kind %d from %d", v, resp, tt.wantKind, tt.wantFrom)
			}
			if v := judgeResponse(seqs, resp, false); v.kind != complete {
				t.Errorf("without ReportBatchItemFailures: verdict %+v, want complete", v)
			}
		})
	}
}

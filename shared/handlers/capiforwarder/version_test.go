package capiforwarder

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// Meta refusing the version as expired (2635) holds the batch on the stream: a paced answer
// naming the first record, one request, no dead letter, an ALERT and a metric; the batch goes
// through once the version works again.
func TestExpiredVersionIsHeld(t *testing.T) {
	hs := newHarness(t)
	if err := hs.sandbox.SetVersions(metasandbox.Versions{Expired: []string{metasandbox.DefaultVersion}}); err != nil {
		t.Fatal(err)
	}
	ev := kinesisEvent(t, validBody(t))
	start := time.Now()
	resp, _ := hs.h.Handle(context.Background(), ev)
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("answered after %v: the retries of a held batch must be paced", took)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Kinesis.SequenceNumber {
		t.Fatalf("failures %+v", resp.BatchItemFailures)
	}
	if len(hs.dlq.Letters()) != 0 || len(hs.sandbox.Requests()) != 1 {
		t.Fatalf("letters %d requests %d", len(hs.dlq.Letters()), len(hs.sandbox.Requests()))
	}
	if !strings.Contains(hs.logs.String(), "ALERT: Meta refused the Conversions API version as expired") ||
		!strings.Contains(hs.metrics.String(), `"CAPIVersionExpired":1`) {
		t.Fatalf("no alert or metric:\n%s\n%s", hs.logs, hs.metrics)
	}

	hs.sandbox.SetVersions(metasandbox.Versions{})
	resp, _ = hs.h.Handle(context.Background(), ev)
	if len(resp.BatchItemFailures) != 0 || len(hs.sandbox.Accepted()) != 3 || len(hs.dlq.Letters()) != 0 {
		t.Fatalf("after the version works again: %+v, %d accepted", resp, len(hs.sandbox.Accepted()))
	}
}

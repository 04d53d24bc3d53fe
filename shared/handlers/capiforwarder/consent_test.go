package capiforwarder

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// Explicit decisions (the consent and erasure API) override the events: a withdrawn user's
// events are not forwarded, tracking and LDU flags restrict the others.
func TestExplicitConsentDecisions(t *testing.T) {
	hs := newHarness(t)
	store := memstate.New()
	hs.h.cfg.Consents = store
	ev := kinesisEvent(t, validBody(t))
	// Events 1 and 2 are u-123's (iOS, tracking allowed, with a MADID), event 3 an anonymous
	// Android user's.
	keys := make([]string, len(ev.Records))
	for i, r := range ev.Records {
		env, err := envelope.DecodeOne(r.Kinesis.Data)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = env.UserKey
	}
	ctx := context.Background()
	no, yes := false, true
	if err := store.PutConsent(ctx, ports.UserConsent{App: "sample-shop", UserKey: keys[0], At: 1, ErasureID: "er_1"}); err != nil {
		t.Fatal(err)
	}
	if err := store.PutConsent(ctx, ports.UserConsent{App: "sample-shop", UserKey: keys[2], AdsPersonalization: true, At: 1,
		ApplicationTracking: &no, LDU: &yes}); err != nil {
		t.Fatal(err)
	}
	resp, err := hs.h.Handle(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v\n%s", resp, err, hs.logs)
	}
	acc := hs.sandbox.Accepted()
	if len(acc) != 1 || acc[0].EventID != "2b0a7c2e-7f0e-4b8e-9d51-000000000003" {
		t.Fatalf("Meta got %d events (%v), want only event 3: u-123 withdrew", len(acc), acc)
	}
	app := acc[0].Event["app_data"].(map[string]any)
	if app["application_tracking_enabled"].(interface{ String() string }).String() != "0" ||
		!strings.Contains(string(acc[0].Raw), `"data_processing_options":["LDU"]`) {
		t.Fatalf("flags not applied: %s", acc[0].Raw)
	}
	if !strings.Contains(hs.metrics.String(), `"EventsWithdrawn":2`) {
		t.Errorf("metrics: %s", hs.metrics)
	}
}

// Without the decisions the batch is not forwarded at all: it comes again.
func TestConsentStoreDownHoldsTheBatch(t *testing.T) {
	hs := newHarness(t)
	hs.h.cfg.Consents = failingConsents{}
	ev := kinesisEvent(t, validBody(t))
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Kinesis.SequenceNumber {
		t.Fatalf("resp %+v err %v, want the whole batch retried", resp, err)
	}
	if n := len(hs.sandbox.Accepted()); n != 0 {
		t.Fatalf("%d events forwarded without knowing the decisions", n)
	}
}

type failingConsents struct{ ports.ConsentStore }

func (failingConsents) Consents(context.Context, string, []string) (map[string]ports.UserConsent, error) {
	return nil, errors.New("table unavailable")
}

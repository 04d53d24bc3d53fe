package capiforwarder

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// sent returns what Meta accepted, by event id.
func sent(hs *harness) map[string]string {
	out := map[string]string{}
	for _, a := range hs.sandbox.Accepted() {
		out[a.EventID] = string(a.Raw)
	}
	return out
}

// The same events reach Meta identically whether they come as v1 records, as v2 records of
// several events, or as a batch mixing both.
func TestV1V2AndMixedBatchesForwardTheSameEvents(t *testing.T) {
	recs := benchEvents(t, 40, 8) // 5 users of 8 events, 3 in 4 with consent
	v1, v2 := benchBatch(recs, 1), benchBatch(recs, 2)
	if len(v1.Records) != 40 || len(v2.Records) != 5 {
		t.Fatalf("%d v1 and %d v2 records, want 40 and 5", len(v1.Records), len(v2.Records))
	}
	mixed := events.KinesisEvent{Records: append(slices.Clone(v2.Records[:2]), v1.Records[16:]...)}
	var want map[string]string
	for name, ev := range map[string]events.KinesisEvent{"v1": v1, "v2": v2, "mixed": mixed} {
		hs := newHarness(t)
		resp, err := hs.h.Handle(context.Background(), ev)
		if err != nil || len(resp.BatchItemFailures) != 0 || len(hs.dlq.Letters()) != 0 {
			t.Fatalf("%s: resp %+v err %v letters %+v", name, resp, err, hs.dlq.Letters())
		}
		got := sent(hs)
		if len(got) != 30 {
			t.Fatalf("%s: %d events reached Meta, want the 30 with consent", name, len(got))
		}
		if !strings.Contains(hs.metrics.String(), `"EventsSkippedNoConsent":10`) {
			t.Errorf("%s: metrics %s", name, hs.metrics)
		}
		if want == nil {
			want = got
			continue
		}
		for id, raw := range want {
			if got[id] != raw {
				t.Fatalf("%s: event %s sent as\n%s\nwant\n%s", name, id, got[id], raw)
			}
		}
	}
}

// Each event of a v2 record is checked on its own: a bad one is dead-lettered alone, as a
// one-event record replay can put back, a replayed one past Meta's window is skipped, and the
// others go to Meta; Meta refusing one event dead-letters that event alone too.
func TestEventsOfARecordAreHandledOneByOne(t *testing.T) {
	hs := newHarness(t)
	recs := benchEvents(t, 8, 8) // one user: events 3 and 7 without consent
	recs[1].Event.Time = time.Now().Add(-30 * 24 * time.Hour).Unix()
	recs[2].Event.Device.OSVersion = "" // invalid_app_data
	poison := recs[4].Event.ID
	replayed := slices.Clone(recs)
	for i := range replayed {
		replayed[i].Replay = true
		replayed[i].Event.ID += "-replayed"
	}
	hs.sandbox.SetFaults(metasandbox.Faults{PoisonEventIDs: []string{poison, replayed[4].Event.ID}})
	ev := benchBatch(recs, 2)
	ev.Records = append(ev.Records, benchBatch(replayed, 2).Records...)
	ev.Records[1].Kinesis.SequenceNumber = "2"
	if len(ev.Records) != 2 {
		t.Fatalf("%d records, want 2", len(ev.Records))
	}
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	byID := map[string]ports.DeadLetter{}
	for _, l := range hs.dlq.Letters() {
		byID[l.EventID] = l
		one, err := envelope.DecodeOne(l.Record)
		if err != nil {
			t.Fatalf("letter %s (%s): its record does not hold one event: %v", l.EventID, l.Reason, err)
		}
		if one.Event.ID != l.EventID || one.UserKey != recs[0].UserKey {
			t.Fatalf("letter %s holds event %s of user %s", l.EventID, one.Event.ID, one.UserKey)
		}
	}
	want := map[string]string{recs[1].Event.ID: "too_old", recs[2].Event.ID: "invalid_app_data",
		replayed[2].Event.ID: "invalid_app_data", poison: "invalid_parameter", replayed[4].Event.ID: "invalid_parameter"}
	if len(byID) != len(want) {
		t.Fatalf("dead letters %v, want %v", keys(byID), want)
	}
	for id, reason := range want {
		if byID[id].Reason != reason {
			t.Errorf("event %s: dead letter %q, want %q", id, byID[id].Reason, reason)
		}
	}
	// Of the 8 events of each record 3 reach Meta: 2 have no consent, 1 is dead-lettered by
	// us, 1 by Meta, 1 is a month old (dead-lettered, or skipped when replayed).
	if got := len(sent(hs)); got != 3+3 {
		t.Fatalf("%d events reached Meta, want 6", got)
	}
	if !strings.Contains(hs.logs.String(), `"skipped_replay_too_old":1`) {
		t.Errorf("log does not count the skipped replay:\n%s", hs.logs)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A record of an app not in the config: every event is a dead letter of its own.
func TestUnknownAppLettersEveryEventAlone(t *testing.T) {
	hs := newHarness(t)
	recs := benchEvents(t, 3, 3)
	for i := range recs {
		recs[i].App = "other-app"
	}
	ev := benchBatch(recs, 2)
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	letters := hs.dlq.Letters()
	if len(letters) != 3 {
		t.Fatalf("%d letters, want one per event", len(letters))
	}
	for i, l := range letters {
		one, err := envelope.DecodeOne(l.Record)
		if err != nil || l.Reason != "unknown_app" || one.Event.ID != recs[i].Event.ID || l.EventID != recs[i].Event.ID {
			t.Fatalf("letter %d: %+v (%v)", i, l, err)
		}
	}
}

// countingConsents records the user keys each Consents call asks for.
type countingConsents struct {
	ports.ConsentStore
	mu    sync.Mutex
	calls [][]string
}

func (c *countingConsents) Consents(ctx context.Context, app string, keys []string) (map[string]ports.UserConsent, error) {
	c.mu.Lock()
	c.calls = append(c.calls, slices.Clone(keys))
	c.mu.Unlock()
	return c.ConsentStore.Consents(ctx, app, keys)
}

// The explicit decisions are read once per user and batch: one key per distinct user, however
// many events and records (v1 and v2) the user has in the batch.
func TestConsentIsReadOncePerUser(t *testing.T) {
	hs := newHarness(t)
	store := &countingConsents{ConsentStore: memstate.New()}
	hs.h.cfg.Consents = store
	recs := benchEvents(t, 60, 10) // 6 users
	ev := benchBatch(recs[:30], 2)
	ev.Records = append(ev.Records, benchBatch(recs[30:], 1).Records...) // the rest as v1
	ev.Records = append(ev.Records, benchBatch(recs[:20], 2).Records...) // users 0 and 1 again
	no := false
	if err := store.PutConsent(context.Background(), ports.UserConsent{App: "sample-shop", UserKey: recs[0].UserKey,
		AdsPersonalization: true, At: 1, AdvertiserTracking: &no}); err != nil {
		t.Fatal(err)
	}
	resp, err := hs.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if len(store.calls) != 1 {
		t.Fatalf("%d reads, want 1 for the app", len(store.calls))
	}
	got := slices.Sorted(slices.Values(store.calls[0]))
	var want []string
	for i := 0; i < len(recs); i += 10 {
		want = append(want, recs[i].UserKey)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("keys read %q, want each of the 6 users once %q", got, want)
	}
	// The decision applies to every event of the user, in every record; not to the others.
	restricted, tracked := 0, 0
	for _, a := range hs.sandbox.Accepted() {
		raw := string(a.Raw)
		mine := slices.ContainsFunc(recs[:10], func(r envelope.Record) bool { return r.Event.ID == a.EventID })
		switch {
		case mine && (strings.Contains(raw, `"madid"`) || !strings.Contains(raw, `"advertiser_tracking_enabled":0`)):
			t.Fatalf("event %s of the user who refused tracking sent with tracking: %s", a.EventID, raw)
		case mine:
			restricted++
		case strings.Contains(raw, `"madid"`):
			tracked++
		}
	}
	if restricted == 0 || tracked == 0 {
		t.Fatalf("%d events of the user who refused tracking and %d others with a madid reached Meta", restricted, tracked)
	}
}

// At INFO a batch costs a few hundred bytes of log (the summary and the metrics), whatever its
// size: at most 10 bytes per event from 100 events on. Warnings and alerts stay.
func TestInfoLogsStayUnderTenBytesPerEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    int
		n    int
	}{{"v2", 2, 100}, {"v1", 1, 100}, {"v2 1000", 2, 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t)
			var out bytes.Buffer
			hs.h.cfg.Logger = observability.NewLogger(&out, "info")
			hs.h.cfg.Metrics = observability.NewEmitter(&out, "Retarget")
			recs := benchEvents(t, tc.n, 20)
			recs[5].Event.Device.OSVersion = "" // a dead letter: its reason is a metric too
			resp, err := hs.h.Handle(context.Background(), benchBatch(recs, tc.v))
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("resp %+v err %v", resp, err)
			}
			t.Logf("%d bytes of log at INFO for %d events", out.Len(), tc.n)
			if per := float64(out.Len()) / float64(tc.n); per > 10 {
				t.Fatalf("%d bytes of log for %d events (%.1f per event), want at most 10:\n%s", out.Len(), tc.n, per, out.String())
			}
			if !strings.Contains(out.String(), `"EventsForwarded":`) {
				t.Fatalf("no metrics:\n%s", out.String())
			}
		})
	}
}

func TestDebugLogsEachDeadLetter(t *testing.T) {
	hs := newHarness(t)
	recs := benchEvents(t, 4, 4)
	recs[1].Event.Device.OSVersion = ""
	if _, err := hs.h.Handle(context.Background(), benchBatch(recs, 2)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hs.logs.String(), fmt.Sprintf(`"msg":"event dead-lettered","reason":"invalid_app_data","app":"sample-shop","event_id":%q`, recs[1].Event.ID)) {
		t.Fatalf("no debug line for the dead letter:\n%s", hs.logs)
	}
}

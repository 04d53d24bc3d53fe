package forward

import (
	"context"
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
)

// An expired API version (2635) stops the call like an auth failure: one request, no retries,
// every item Failed (left on the stream), no dead letter even for a poison event, and the
// outcome says why.
func TestVersionExpired(t *testing.T) {
	items := makeItems(3000, "ds", "")
	s := &fakeSender{
		poison: map[string]*ports.CAPIError{"ev-0002": invalidParam(0)},
		script: func(int, call) (ports.CAPIAck, error) {
			return ports.CAPIAck{}, capiErr(ports.CAPIVersionExpired, 2635)
		},
	}
	q := &fakeDLQ{}
	clock := newClock()
	o := opts(clock)
	o.Concurrency = 1
	out := New(s, q, o).Forward(context.Background(), items)
	if !slices.Equal(out.Failed, indexes(items)) || len(out.DeadLettered) != 0 || len(q.sends) != 0 {
		t.Fatalf("failed %d dead %d DLQ calls %d", len(out.Failed), len(out.DeadLettered), len(q.sends))
	}
	// Nothing is sent after the first 2635. The request holding the poison event, when it
	// happens to go first, is refused with code 100 and split: one half then meets the 2635.
	expired := 0
	for _, r := range s.requests() {
		if !slices.Contains(r.ids, "ev-0002") {
			expired++
		}
	}
	if out.VersionExpired == nil || out.VersionExpired.Meta.Code != 2635 || expired != 1 || out.Retries != 0 || len(clock.slept()) != 0 {
		t.Fatalf("VersionExpired %v requests %d (%d answered 2635) retries %d slept %v", out.VersionExpired, out.Requests, expired, out.Retries, clock.slept())
	}
	if out.AuthFailure != nil {
		t.Errorf("an expired version is not an auth failure: %v", out.AuthFailure)
	}
}

package audiencesync

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// run runs one sync at h.now and returns the cart_abandoner report.
func (h *harness) run(t *testing.T, s *Syncer) AudienceReport {
	t.Helper()
	reports, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, r := range reports[0].Audiences {
		if r.Segment == "cart_abandoner" {
			return r
		}
	}
	return AudienceReport{}
}

func (h *harness) pendingUsers(t *testing.T, segment string) []string {
	t.Helper()
	pending, _, err := h.store.PendingChanges(context.Background(), h.app, segment, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range pending {
		out = append(out, c.UserKey)
	}
	return out
}

func (h *harness) state(t *testing.T, segment string) ports.AudienceSyncState {
	t.Helper()
	st, _, err := h.store.GetAudienceState(context.Background(), h.app, segment)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *harness) removalRequests(id string) int {
	n := 0
	for _, r := range h.requests(id) {
		if r.Method == http.MethodDelete {
			n++
		}
	}
	return n
}

// A cart abandoner who then purchased leaves the segment while Meta refuses removals ("audience
// size too low"): the removal is held with Meta's answer and the change stays pending, the new
// cart abandoners are added meanwhile, the retries back off, and once Meta accepts removals again
// the buyer leaves the audience and nothing stays pending. Before held removals, the refusal
// stopped the audience before its additions (and nothing said why).
func TestRefusedRemovalIsHeldAndRetried(t *testing.T) {
	h := newHarness(t)
	s := h.syncer(t, nil)
	for i := range 6 {
		h.user(t, fmt.Sprintf("u%d", i), nil, []string{"cart_abandoner"}, 0)
	}
	h.run(t, s)
	id, members := h.audience(t, "cart_abandoner")
	if len(members) != 6 {
		t.Fatalf("%d members, want 6", len(members))
	}

	h.sandbox.SetFaults(metasandbox.Faults{RefuseRemovals: true})
	h.user(t, "u0", []string{"cart_abandoner"}, nil, 50_000_000) // purchased: out of the segment
	h.user(t, "u6", nil, []string{"cart_abandoner"}, 0)
	r := h.run(t, s)
	if r.RemovalsHeld != 1 || !strings.Contains(r.RemovalError, "Audience Size Too Low") {
		t.Errorf("report holds %d removal(s), error %q; want 1 with Meta's answer", r.RemovalsHeld, r.RemovalError)
	}
	if !h.isMember(id, "u6") || !h.isMember(id, "u0") {
		t.Fatalf("after the refusal: u6 member %v (want true: adds go on), u0 member %v (want true: refused)", h.isMember(id, "u6"), h.isMember(id, "u0"))
	}
	if p := h.pendingUsers(t, "cart_abandoner"); len(p) != 1 || p[0] != "u0" {
		t.Fatalf("pending %v, want only u0's change", p)
	}
	st := h.state(t, "cart_abandoner")
	if st.RemovalsHeld != 1 || st.RemovalRefusals != 1 || st.RemovalSkipRuns != 0 || !strings.Contains(st.RemovalError, "2650") {
		t.Fatalf("state after one refusal: %+v", st)
	}

	h.user(t, "u7", nil, []string{"cart_abandoner"}, 0)
	h.run(t, s) // refused again: the next attempt waits one run
	if !h.isMember(id, "u7") || !h.isMember(id, "u0") {
		t.Fatalf("second refusal: u7 member %v, u0 member %v", h.isMember(id, "u7"), h.isMember(id, "u0"))
	}
	if st := h.state(t, "cart_abandoner"); st.RemovalRefusals != 2 || st.RemovalSkipRuns != 1 {
		t.Fatalf("state after two refusals: %+v", st)
	}

	h.sandbox.SetFaults(metasandbox.Faults{}) // Meta accepts removals again
	deletes := h.removalRequests(id)
	r = h.run(t, s) // backing off: no removal sent
	if h.removalRequests(id) != deletes || !h.isMember(id, "u0") || r.RemovalsHeld != 1 {
		t.Fatalf("backoff run sent %d removal(s); u0 member %v; held %d", h.removalRequests(id)-deletes, h.isMember(id, "u0"), r.RemovalsHeld)
	}
	r = h.run(t, s)
	if h.isMember(id, "u0") || !r.Complete {
		t.Fatalf("after Meta accepts removals: u0 member %v, report %+v", h.isMember(id, "u0"), r)
	}
	if p := h.pendingUsers(t, "cart_abandoner"); len(p) != 0 {
		t.Fatalf("pending %v, want none", p)
	}
	if st := h.state(t, "cart_abandoner"); st.RemovalsHeld != 0 || st.RemovalError != "" || st.RemovalRefusals != 0 {
		t.Fatalf("hold not cleared: %+v", st)
	}
	if n := len(h.sandbox.AudienceMembers(id)); n != 7 {
		t.Fatalf("%d members, want 7 (u1..u7)", n)
	}
}

func (h *harness) isMember(id, uk string) bool {
	_, in := h.sandbox.AudienceMembers(id)[uk]
	return in
}

// An audience Meta deleted (100/33) is marked gone with an ALERT and the AudienceGone metric,
// and nothing more is sent to it: not retried every run.
func TestDeletedAudienceIsMarkedGone(t *testing.T) {
	h := newHarness(t)
	var logs, metrics bytes.Buffer
	s, err := New(Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: h.meta, Now: func() time.Time { return h.now },
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: observability.NewEmitter(&metrics, "Test")})
	if err != nil {
		t.Fatal(err)
	}
	h.user(t, "u0", nil, []string{"cart_abandoner"}, 0)
	h.run(t, s)
	id, _ := h.audience(t, "cart_abandoner")
	h.sandbox.DeleteAudience(id)

	h.user(t, "u1", nil, []string{"cart_abandoner"}, 0)
	r := h.run(t, s)
	st := h.state(t, "cart_abandoner")
	if !st.Gone() || st.GoneAt != h.now.Unix() || !strings.Contains(r.Stopped, "deleted at Meta") {
		t.Fatalf("state %+v, report stopped %q; want gone", st, r.Stopped)
	}
	if !strings.Contains(logs.String(), "ALERT: Meta deleted the audience") || !strings.Contains(metrics.String(), `"AudienceGone":1`) {
		t.Fatalf("no alert or metric:\n%s\n%s", logs.String(), metrics.String())
	}
	sent := len(h.requests(id))
	h.user(t, "u2", nil, []string{"cart_abandoner"}, 0)
	h.run(t, s)
	h.run(t, s)
	if n := len(h.requests(id)); n != sent {
		t.Fatalf("%d more request(s) to the deleted audience, want none", n-sent)
	}
	if strings.Count(logs.String(), "ALERT: Meta deleted") != 1 {
		t.Errorf("alerted %d times, want once", strings.Count(logs.String(), "ALERT: Meta deleted"))
	}
}

package audiencesync

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// addRecorder passes uploads on to Meta and remembers every cell of every row it sent in an
// add or a replace, so a test can say a user was never uploaded, not only that they are not a
// member now.
type addRecorder struct {
	ports.AudienceAPI
	mu    sync.Mutex
	cells map[string]bool
}

func (r *addRecorder) Upload(ctx context.Context, u ports.AudienceUpload) (ports.AudienceAck, error) {
	if u.Op != ports.AudienceRemove {
		r.mu.Lock()
		for _, row := range u.Rows {
			for _, c := range row {
				r.cells[c] = true
			}
		}
		r.mu.Unlock()
	}
	return r.AudienceAPI.Upload(ctx, u)
}

func (r *addRecorder) uploaded(uk string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cells[uk]
}

// ldu turns a user's Limited Data Use on or off through the store's Update, as the segment
// updater (an event's consent.ldu) or the consent API (explicit) do: the segments stay.
func (h *harness) ldu(t *testing.T, uk string, on, explicit bool) {
	t.Helper()
	h.now = h.now.Add(time.Second)
	_, err := h.store.Update(context.Background(), h.app, uk, func(u *ports.UserState) error {
		if explicit {
			u.State.RecordLDUDecision(on, h.now.Unix())
		} else {
			flag := envelope.False
			if on {
				flag = envelope.True
			}
			u.State.Apply(&envelope.Event{Name: "fb_mobile_activate_app", Time: h.now.Unix(),
				Consent: envelope.Consent{AdsPersonalization: envelope.True, LDU: flag}}, nil)
		}
		u.ChangedAt, u.RecordedAt = h.now.UnixMilli(), h.now
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Limited Data Use keeps users out of customer-list audiences (Meta's LDU covers them; how the
// /users edge would take an LDU marker is undocumented): a cart abandoner under LDU is never
// uploaded; a member whose events start saying LDU is removed at the next sync while staying in
// the segment; when LDU ends the member is added back; an explicit LDU decision (consent API)
// does the same. Without the rejoins the sync never plans the member again (no membership
// changed); without the plan's LDU check the LDU user is uploaded.
func TestLimitedDataUseUsersStayOutOfAudiences(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		name := "events"
		if explicit {
			name = "explicit decision"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			rec := &addRecorder{AudienceAPI: h.meta, cells: map[string]bool{}}
			s := h.syncer(t, rec)
			h.user(t, "u0", nil, []string{"cart_abandoner"}, 0)
			h.user(t, "u1", nil, []string{"cart_abandoner"}, 0)
			h.user(t, "ldu", nil, []string{"cart_abandoner"}, 0)
			h.ldu(t, "ldu", true, explicit) // under LDU before the first sync
			h.run(t, s)
			id, members := h.audience(t, "cart_abandoner")
			if len(members) != 2 || rec.uploaded("ldu") {
				t.Fatalf("members %v, LDU user uploaded %v: want u0 and u1 only, the LDU user never sent", keys(members), rec.uploaded("ldu"))
			}

			h.ldu(t, "u0", true, explicit) // a member's LDU begins
			r := h.run(t, s)
			if h.isMember(id, "u0") || !h.isMember(id, "u1") || r.Removed != 1 || !r.Complete {
				t.Fatalf("after u0's LDU began: u0 member %v (want false), u1 member %v, report %+v", h.isMember(id, "u0"), h.isMember(id, "u1"), r)
			}
			if rec, _, _ := h.store.GetUser(context.Background(), h.app, "u0"); !slices.Contains(rec.Segments, "cart_abandoner") {
				t.Fatalf("u0's segments %v: LDU must not change them", rec.Segments)
			}
			if p := h.pendingUsers(t, "cart_abandoner"); len(p) != 0 {
				t.Fatalf("pending %v after the removal, want none", p)
			}

			h.ldu(t, "u0", false, explicit) // LDU ends
			h.run(t, s)
			if !h.isMember(id, "u0") || h.isMember(id, "ldu") {
				t.Fatalf("after u0's LDU ended: u0 member %v (want true), LDU user member %v", h.isMember(id, "u0"), h.isMember(id, "ldu"))
			}
		})
	}
}

// The full refresh replaces an audience with the members who belong in it: a member under
// Limited Data Use is left out, even when no change was recorded for them (state written before
// rejoins were recorded).
func TestFullRefreshLeavesOutLimitedDataUse(t *testing.T) {
	h := newHarness(t)
	h.withRefresh(t, 24)
	all := userKeys("u", 120)
	for _, uk := range all {
		h.user(t, uk, nil, []string{"cart_abandoner"}, 0)
	}
	s := h.syncer(t, nil)
	run(t, s)
	h.silently(t, all[4], []string{"cart_abandoner"}, func(st *segments.State) { st.LDU = segments.LDU{At: h.now.Unix(), On: true} })
	h.silently(t, all[8], []string{"cart_abandoner"}, func(st *segments.State) { st.LDUDecision = segments.LDU{At: h.now.Unix(), On: true} })
	h.now = h.now.Add(24 * time.Hour)
	run(t, s)
	id, members := h.audience(t, "cart_abandoner")
	if len(members) != 118 || h.isMember(id, all[4]) || h.isMember(id, all[8]) {
		t.Fatalf("after the refresh %d members, %s member %v, %s member %v: want 118, both LDU users out",
			len(members), all[4], h.isMember(id, all[4]), all[8], h.isMember(id, all[8]))
	}
}

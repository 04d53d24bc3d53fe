package segmentupdater

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/ports"
)

// A vip whose events start saying Limited Data Use stays in the segment (it also answers
// /v1/me/segments), and the state says LDU; a rejoin is recorded for the segment, so the
// audience sync plans the user again and removes them. When an event says ldu false, LDU ends
// and another rejoin lets the sync add them back. An event that omits ldu ends nothing.
func TestLDUFlipRecordsRejoins(t *testing.T) {
	hs := newHarness(t)
	hs.handle(t, hs.batch(t, event("buy-1", "fb_mobile_purchase", now.Add(-time.Hour), "u-ldu", map[string]any{"value": 300, "currency": "USD"})))
	if got := hs.pending(t, "vip"); !slices.Equal(got, []string{"joined"}) {
		t.Fatalf("vip changes %v after the purchase", got)
	}

	ldu := event("open-1", "fb_mobile_activate_app", now.Add(-50*time.Minute), "u-ldu", nil)
	ldu["consent"] = map[string]any{"ads_personalization": true, "ldu": true}
	hs.handle(t, hs.batch(t, ldu))
	rec, st := hs.user(t, "u-ldu")
	if !slices.Contains(rec.Segments, "vip") || !st.LimitedDataUse() {
		t.Fatalf("after ldu: segments %v, LDU %v; want vip kept and LDU on", rec.Segments, st.LimitedDataUse())
	}
	if got := hs.pending(t, "vip"); !slices.Equal(got, []string{"joined", "joined"}) {
		t.Fatalf("vip changes %v after LDU began: want the join and a rejoin", got)
	}
	changes, _, _ := hs.store.PendingChanges(context.Background(), hs.app.ID, "vip", "", 10)
	if last := changes[len(changes)-1]; last.StateVersion != rec.Version {
		t.Errorf("rejoin stamped with state version %d, want %d (the write that turned LDU on)", last.StateVersion, rec.Version)
	}
	if first, last := changes[0], changes[len(changes)-1]; first.Reason != ports.ReasonEvents || last.Reason != ports.ReasonConsent {
		t.Errorf("reasons: join %q, rejoin %q; want events, consent", first.Reason, last.Reason)
	}

	hs.handle(t, hs.batch(t, event("open-2", "fb_mobile_activate_app", now.Add(-40*time.Minute), "u-ldu", nil)))
	if _, st := hs.user(t, "u-ldu"); !st.LimitedDataUse() {
		t.Fatal("an event without ldu ended Limited Data Use")
	}
	if got := hs.pending(t, "vip"); len(got) != 2 {
		t.Fatalf("vip changes %v: an event that changes nothing recorded a rejoin", got)
	}

	off := event("open-3", "fb_mobile_activate_app", now.Add(-30*time.Minute), "u-ldu", nil)
	off["consent"] = map[string]any{"ads_personalization": true, "ldu": false}
	hs.handle(t, hs.batch(t, off))
	if _, st := hs.user(t, "u-ldu"); st.LimitedDataUse() {
		t.Fatal("ldu false did not end Limited Data Use")
	}
	if got := hs.pending(t, "vip"); len(got) != 3 {
		t.Fatalf("vip changes %v after LDU ended: want another rejoin", got)
	}
}

// An explicit LDU decision made through the consent API before the user's first event reaches
// the state with the events, whatever the events say.
func TestExplicitLDUDecisionIsFolded(t *testing.T) {
	hs := newHarness(t)
	hs.h.cfg.Consents = hs.store
	pseudo, _ := identity.NewPseudonymizer([]byte("updater-test-pepper-0123"))
	key := pseudo.UserKey(hs.app.ID, identity.KindAppUserID, "u-x")
	on := true
	if err := hs.store.PutConsent(context.Background(), ports.UserConsent{App: hs.app.ID, UserKey: key, AdsPersonalization: true, LDU: &on, At: now.Unix()}); err != nil {
		t.Fatal(err)
	}
	ev := event("buy-x", "fb_mobile_purchase", now.Add(-time.Minute), "u-x", map[string]any{"value": 300, "currency": "USD"})
	ev["consent"] = map[string]any{"ads_personalization": true, "ldu": false}
	hs.handle(t, hs.batch(t, ev))
	rec, st := hs.user(t, "u-x")
	if !st.LimitedDataUse() || !slices.Contains(rec.Segments, "vip") {
		t.Fatalf("segments %v, LDU %v: want vip and LDU on (the explicit decision holds)", rec.Segments, st.LimitedDataUse())
	}
}

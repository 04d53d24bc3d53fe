package segmentupdater

import (
	"context"
	"testing"
	"time"
)

// The app user id reaches the user's state and their membership changes only for an app that
// shares it; the changes of any other app never carry it.
func TestAppUserIDOnlyForAppsSharingIt(t *testing.T) {
	for _, share := range []bool{true, false} {
		hs := newHarness(t)
		hs.app.ShareAppUserID = share
		hs.handle(t, hs.batch(t, event("i-1", "fb_mobile_activate_app", now.Add(-time.Hour), "user-77", nil)))
		_, st := hs.user(t, "user-77")
		want := ""
		if share {
			want = "user-77"
		}
		if st.AppUserID != want {
			t.Errorf("share %v: state keeps app user id %q; want %q", share, st.AppUserID, want)
		}
		rec, _ := hs.user(t, "user-77")
		if len(rec.Segments) == 0 {
			t.Fatalf("share %v: the event moved the user into no segment; the test needs a change", share)
		}
		for _, seg := range rec.Segments {
			changes, _, err := hs.store.PendingChanges(context.Background(), hs.app.ID, seg, "", 10)
			if err != nil || len(changes) == 0 {
				t.Fatalf("share %v: changes of %s: %v %v", share, seg, changes, err)
			}
			for _, c := range changes {
				if c.AppUserID != want || c.Reason != "events" {
					t.Errorf("share %v: change %+v; want app user id %q, reason events", share, c, want)
				}
			}
		}
	}
}

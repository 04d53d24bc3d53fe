package usersapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// PUT .../consent with ldu folds the decision into the state at once: the segments stay (they
// answer /v1/me/segments), and a rejoin is recorded for each of them, stamped with the write's
// version, so the next audience sync removes the user from their audiences; ldu false lets the
// sync add them back, through another rejoin.
func TestConsentLDURecordsRejoins(t *testing.T) {
	u := newUsersHarness(t)
	segs := u.seed(t, "u-l")
	ctx, key := context.Background(), u.key("u-l")

	for i, on := range []bool{true, false} {
		u.now = u.now.Add(time.Minute)
		body := `{"ldu": false}`
		if on {
			body = `{"ldu": true}`
		}
		if status, doc := u.call(t, http.MethodPut, RouteConsent, "u-l", body); status != http.StatusOK {
			t.Fatalf("PUT %s = %d %v", body, status, doc)
		}
		rec, _, _ := u.store.GetUser(ctx, u.app, key)
		var st segments.State
		if err := json.Unmarshal(rec.State, &st); err != nil {
			t.Fatal(err)
		}
		if st.LimitedDataUse() != on || !slices.Equal(rec.Segments, slices.Sorted(slices.Values(segs))) {
			t.Fatalf("after %s: LDU %v, segments %v (want %v)", body, st.LimitedDataUse(), rec.Segments, segs)
		}
		for _, seg := range segs {
			p := u.pending(t, seg)
			if len(p) != i+1 || !p[i].Joined || p[i].StateVersion != rec.Version || p[i].At != u.now.UnixMilli() {
				t.Fatalf("pending of %s after %s: %+v; want a rejoin at version %d", seg, body, p, rec.Version)
			}
		}
	}
}

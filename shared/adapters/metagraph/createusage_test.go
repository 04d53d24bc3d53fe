package metagraph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// The name lookup before a create counts against Meta's budget too: when its answer reports
// 85% or more, the create is not sent and CreateAudience answers RateLimited with the lookup's
// usage and announced wait, even when the lookup found the audience, so the caller's pacing
// sees them before its next call (before, the next call followed at once and the usage was
// dropped).
func TestCreateWaitsWhenTheLookupIsNearTheLimit(t *testing.T) {
	for _, tc := range []struct {
		pct     int
		found   bool
		created bool
	}{{84, false, true}, {90, false, false}, {90, true, false}} {
		t.Run(fmt.Sprint(tc.pct, tc.found), func(t *testing.T) {
			var calls atomic.Int32
			g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.Header().Set("X-Business-Use-Case-Usage", fmt.Sprintf(
						`{"1234":[{"type":"custom_audience","call_count":%d,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":3}]}`, tc.pct))
					if tc.found {
						fmt.Fprint(w, `{"data":[{"id":"23850000000000041","name":"Top spenders"}]}`)
					} else {
						fmt.Fprint(w, `{"data":[]}`)
					}
					return
				}
				fmt.Fprint(w, `{"id":"23850000000000042"}`)
			})
			id, err := newClient(t, g, nil).CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1234", Name: "Top spenders"})
			if tc.created {
				if err != nil || id == "" || calls.Load() != 2 {
					t.Fatalf("id %q err %v after %d calls, want created", id, err, calls.Load())
				}
				return
			}
			var ce *ports.CAPIError
			if !errors.As(err, &ce) || ce.Class != ports.CAPIRateLimited || ce.RetryAfter != 3*time.Minute || ce.UsagePct != 90 {
				t.Fatalf("err %v (%+v), want RateLimited, 3 min, 90%%", err, ce)
			}
			if calls.Load() != 1 {
				t.Fatalf("%d calls, want the lookup only", calls.Load())
			}
		})
	}
}

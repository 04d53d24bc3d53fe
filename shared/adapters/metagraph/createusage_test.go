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

// A create whose own answer reports 85% or more answers RateLimited with that usage: the
// audience exists and the next attempt finds it by name, after the wait.
func TestCreateAnswerNearTheLimit(t *testing.T) {
	var calls atomic.Int32
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			fmt.Fprint(w, `{"data":[]}`)
			return
		}
		w.Header().Set("X-Ad-Account-Usage", `{"acc_id_util_pct":95,"reset_time_duration":40}`)
		fmt.Fprint(w, `{"id":"23850000000000042"}`)
	})
	_, err := newClient(t, g, nil).CreateAudience(context.Background(), ports.NewAudience{AdAccountID: "act_1234", Name: "Top spenders"})
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.Class != ports.CAPIRateLimited || ce.RetryAfter != 40*time.Second || ce.UsagePct != 95 || calls.Load() != 2 {
		t.Fatalf("err %v (%+v) after %d calls, want RateLimited, 40 s, 95%%", err, ce, calls.Load())
	}
}

// A refused upload's usage headers keep their wait too, whatever the error's class.
func TestRefusedUploadKeepsTheAnnouncedWait(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ad-Account-Usage", `{"acc_id_util_pct":90,"reset_time_duration":30}`)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"Audience Size Too Low","type":"OAuthException","code":2650,"fbtrace_id":"X"}}`)
	})
	_, err := newClient(t, g, nil).Upload(context.Background(), multiKeyUpload(ports.AudienceRemove))
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.RetryAfter != 30*time.Second || ce.UsagePct != 90 {
		t.Fatalf("err %v (%+v), want the 30 s wait and 90%%", err, ce)
	}
}

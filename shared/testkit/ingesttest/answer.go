package ingesttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appevent"
)

// Answer is any API v1 response body: the health status, an accepted batch with the
// rejected events, or an error.
type Answer struct {
	Status   string               `json:"status"`
	Accepted *int                 `json:"accepted"`
	Rejected []appevent.Rejection `json:"rejected"`
	Error    string               `json:"error"`
}

// WantAccepted returns a check of a 202 answer: n events accepted and the events at the
// indexes rejected refused, each with at least one error that names a field under
// events[index] and gives a reason.
func WantAccepted(n int, rejected ...int) func(*testing.T, Answer) {
	return func(t *testing.T, a Answer) {
		t.Helper()
		if a.Accepted == nil || *a.Accepted != n {
			t.Errorf("accepted %v, want %d", a.Accepted, n)
		}
		var idx []int
		for _, r := range a.Rejected {
			idx = append(idx, r.Index)
			if len(r.Errors) == 0 {
				t.Errorf("rejection of event %d has no errors", r.Index)
			}
			prefix := fmt.Sprintf("events[%d]", r.Index)
			for _, e := range r.Errors {
				if !strings.HasPrefix(e.Field, prefix) || e.Reason == "" {
					t.Errorf("event %d: error %+v, want a field under %s and a reason", r.Index, e, prefix)
				}
			}
		}
		if !slices.Equal(idx, rejected) {
			t.Errorf("rejected indexes %v, want %v (%+v)", idx, rejected, a.Rejected)
		}
	}
}

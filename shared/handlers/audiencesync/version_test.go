package audiencesync

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// Meta refusing the Marketing API version as expired (2635) stops the app's run at the first
// call, with an ALERT and a metric; the changes stay pending and go through once the version
// works again.
func TestExpiredVersionStopsTheRun(t *testing.T) {
	h := newHarness(t)
	h.user(t, "u-1", nil, []string{"cart_abandoner"}, 0)
	var logs, metrics bytes.Buffer
	s, err := New(Config{Audiences: h.aa, Users: h.store, State: h.store, Meta: h.meta, Now: func() time.Time { return h.now },
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: observability.NewEmitter(&metrics, "Test")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background()); err != nil { // creates the audiences
		t.Fatal(err)
	}
	h.user(t, "u-2", nil, []string{"cart_abandoner"}, 0)
	h.sandbox.SetVersions(metasandbox.Versions{Expired: []string{metasandbox.DefaultVersion}})
	before := len(h.sandbox.Requests())
	reports, err := s.Run(context.Background())
	if err != nil || !reports[0].VersionExpired || reports[0].Synced != 0 {
		t.Fatalf("report %+v, err %v", reports[0], err)
	}
	if n := len(h.sandbox.Requests()) - before; n != 1 {
		t.Errorf("%d calls after the version expired, want the run to stop at the first", n)
	}
	if !strings.Contains(logs.String(), "ALERT: Meta refused the Marketing API version as expired") ||
		!strings.Contains(metrics.String(), `"AudienceVersionExpired":1`) {
		t.Fatalf("no alert or metric:\n%s\n%s", logs.String(), metrics.String())
	}

	h.sandbox.SetVersions(metasandbox.Versions{})
	reports, _ = s.Run(context.Background())
	_, cart := h.audience(t, "cart_abandoner")
	if reports[0].VersionExpired || reports[0].Synced != 1 || len(cart) != 2 {
		t.Fatalf("after the version works again: %+v, members %v", reports[0], keys(cart))
	}
}

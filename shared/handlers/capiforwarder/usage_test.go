package capiforwarder

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/app/forward"
)

// usageForwarder delivers every item and reports a fixed rate-limit usage.
type usageForwarder struct{ pct float64 }

func (f usageForwarder) Forward(_ context.Context, items []forward.Item) forward.Outcome {
	out := forward.Outcome{UsagePct: f.pct, Requests: 1}
	for _, it := range items {
		out.Delivered = append(out.Delivered, it.Index)
	}
	return out
}

// Once Meta's usage headers pass 85%, the forwarder answers the batch only after UsagePause,
// so the event source mapping's next invocation comes later; below, it answers at once; the
// pause never eats the invocation's last second.
func TestHighUsageSlowsTheForwarderDown(t *testing.T) {
	const pause = 300 * time.Millisecond
	run := func(t *testing.T, pct float64, ctx context.Context, pause time.Duration) time.Duration {
		t.Helper()
		hs := newHarness(t)
		h, err := New(Config{Apps: hs.apps, Forwarder: usageForwarder{pct}, DLQ: hs.dlq, Logger: hs.h.cfg.Logger,
			HoldPause: 10 * time.Second, UsagePause: pause})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp, err := h.Handle(ctx, kinesisEvent(t, validBody(t)))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("resp %+v err %v", resp, err)
		}
		if pct >= PauseAtUsagePct && !strings.Contains(hs.logs.String(), "pause threshold") {
			t.Errorf("no warning logged: %s", hs.logs)
		}
		return time.Since(start)
	}
	if took := run(t, 86, context.Background(), pause); took < pause {
		t.Errorf("usage 86%%: answered after %v, want at least %v", took, pause)
	}
	if took := run(t, 60, context.Background(), pause); took >= pause {
		t.Errorf("usage 60%%: answered after %v, want at once", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
	defer cancel()
	if took := run(t, 100, ctx, time.Minute); took >= 500*time.Millisecond {
		t.Errorf("near the deadline: answered after %v, want the last second kept", took)
	}
}

// The default usage pause is bounded by the hold pause.
func TestUsagePauseDefault(t *testing.T) {
	hs := newHarness(t)
	for _, tc := range []struct{ hold, want time.Duration }{{0, DefaultUsagePause}, {time.Second, time.Second}} {
		h, err := New(Config{Apps: hs.apps, Forwarder: usageForwarder{}, DLQ: hs.dlq, HoldPause: tc.hold})
		if err != nil || h.cfg.UsagePause != tc.want {
			t.Errorf("HoldPause %v: UsagePause %v (%v), want %v", tc.hold, h.cfg.UsagePause, err, tc.want)
		}
	}
}

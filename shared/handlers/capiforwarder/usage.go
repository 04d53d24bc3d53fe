package capiforwarder

import (
	"context"
	"time"
)

// Slowing down before Meta throttles: Meta reports the rate-limit usage in the X-App-Usage and
// X-Business-Use-Case-Usage headers of every answer and throttles at 100% (Graph API rate
// limiting, https://developers.facebook.com/docs/graph-api/overview/rate-limiting; "slow down
// before 100%", the project's Meta reference notes, section 1). Once an invocation's answers
// report PauseAtUsagePct or more, the handler waits UsagePause before answering, as it does
// for a hold: the event source mapping invokes it again only after the answer, so the next
// batch comes later (and bigger, with fewer requests per event).

const (
	// PauseAtUsagePct is the usage from which the forwarder slows down.
	PauseAtUsagePct = 85
	// DefaultUsagePause is the default Config.UsagePause (never more than HoldPause).
	DefaultUsagePause = 3 * time.Second
)

// usagePause waits UsagePause when usagePct reached PauseAtUsagePct; it reports whether it did.
func (h *Handler) usagePause(ctx context.Context, usagePct float64) bool {
	if usagePct < PauseAtUsagePct {
		return false
	}
	h.cfg.Logger.Warn("Meta rate-limit usage passed the pause threshold: answering later to slow the stream down",
		"usage_pct", usagePct, "pause", h.cfg.UsagePause.String())
	h.wait(ctx, h.cfg.UsagePause)
	return true
}

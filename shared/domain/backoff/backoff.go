// Package backoff holds the two pieces every retry loop here shares: a full-jitter exponential
// delay and a sleep that gives up when its context ends.
package backoff

import (
	"context"
	"time"
)

// FullJitter returns the delay before the attempt after attempt (1-based): uniform in
// [0, min(max, base*2^(attempt-1))), drawn with rnd (a number in [0, 1)). Full jitter spreads
// retries of many clients evenly (AWS Architecture Blog, "Exponential Backoff And Jitter").
func FullJitter(attempt int, base, max time.Duration, rnd func() float64) time.Duration {
	ceiling := max
	if shift := attempt - 1; shift >= 0 && shift < 30 {
		if d := base << shift; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(rnd() * float64(ceiling))
}

// Sleep waits d, or returns ctx's error as soon as ctx ends. A non-positive d returns at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

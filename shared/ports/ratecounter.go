package ports

import (
	"context"
	"time"
)

// RateCounter is the request count per app and time window that the instances of the ingest
// function share (ratelimit.Limiter; DynamoDB in AWS): Add adds n to app's count of the window
// [start, start+window) and returns the window's total after the addition.
type RateCounter interface {
	Add(ctx context.Context, app string, start time.Time, window time.Duration, n int64) (total int64, err error)
}

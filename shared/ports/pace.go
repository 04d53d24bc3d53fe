package ports

import (
	"context"
	"time"
)

// AccountPause is an ad account's "not before": no Custom Audiences call goes to the account
// before NotBefore. Meta counts the custom_audience rate limit per ad account
// (X-Business-Use-Case-Usage, X-Ad-Account-Usage), so every app and audience of the account
// waits together.
type AccountPause struct {
	// AdAccountID is "act_<digits>".
	AdAccountID string
	// NotBefore is kept to the millisecond.
	NotBefore time.Time
	// Reason says why, for logs and `audiences status` (never a customer value).
	Reason string
}

// AccountPauseStore keeps the ad accounts' pauses (in the audience sync's state table in AWS).
type AccountPauseStore interface {
	// GetAccountPause reads an ad account's pause; ok is false when none was ever stored.
	GetAccountPause(ctx context.Context, adAccountID string) (p AccountPause, ok bool, err error)
	// ExtendAccountPause stores p unless the stored pause already ends at or after p.NotBefore:
	// a pause is never shortened, so concurrent runs (two apps on one ad account) keep the
	// longest wait Meta asked for.
	ExtendAccountPause(ctx context.Context, p AccountPause) error
}

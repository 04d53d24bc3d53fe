package ports

import "context"

// UserConsent is a user's explicit consent decision, made through the consent or erasure API
// rather than carried on events. It overrides what events say: while AdsPersonalization is
// false, the user's events are neither forwarded nor segmented, whatever consent they carry,
// until an explicit grant. Without a record, the consent on each event decides, as before.
type UserConsent struct {
	App     string
	UserKey string
	// AdsPersonalization is the decision on remarketing; false withdraws it.
	AdsPersonalization bool
	// The optional flags, nil when the request did not set them; when set they override the
	// events' values: AdvertiserTracking (iOS ATT) and ApplicationTracking false turn Meta's
	// tracking flags off (and drop the advertising id), LDU true turns Limited Data Use on.
	AdvertiserTracking  *bool
	ApplicationTracking *bool
	LDU                 *bool
	// At is when the decision was made (unix seconds).
	At int64
	// ErasureID is set when an erasure withdrew the consent.
	ErasureID string
}

// Withdrawn reports whether c stops forwarding and segmentation.
func (c UserConsent) Withdrawn() bool { return !c.AdsPersonalization }

// ErasureRecord is the audit record of one erasure: no personal data, only the pseudonymous key.
type ErasureRecord struct {
	ID      string
	App     string
	UserKey string
	// RequestedAt and CompletedAt (unix seconds): completed when the state was deleted and the
	// audience removals were queued for the next sync.
	RequestedAt, CompletedAt int64
	// Audiences are the segments whose audiences get a removal for the user.
	Audiences []string
	// ExpiresAt is when the record may be deleted (unix seconds, TTL).
	ExpiresAt int64
	// FirstDay is the UTC day (YYYY-MM-DD) from which the event archive can hold the user's
	// rows; empty when unknown. The archive purge reads the app's partitions from it to the
	// erasure day only, else from its lookback (package app/purge). Nothing fills it yet: the
	// user's state knows the first event with consent only, not a safe bound.
	FirstDay string
}

// ConsentStore keeps explicit consent decisions and erasure audit records (DynamoDB in AWS).
type ConsentStore interface {
	// PutConsent stores c, replacing the user's earlier decision.
	PutConsent(ctx context.Context, c UserConsent) error
	// Consents reads the decisions of the users of one app with strongly consistent reads; users
	// without one are absent from the map.
	Consents(ctx context.Context, app string, userKeys []string) (map[string]UserConsent, error)
	// PutErasure stores an erasure's audit record.
	PutErasure(ctx context.Context, r ErasureRecord) error
	// Erasure reads an audit record; ok is false when there is none (or it expired).
	Erasure(ctx context.Context, app, id string) (r ErasureRecord, ok bool, err error)
}

package ports

import (
	"context"
	"time"
)

// AudienceSyncState is what audience sync keeps about one audience of one app: Meta's id, the
// size as acknowledged, and the upload in progress, checkpointed per acknowledged batch so that
// a run that stops (timeout, crash, rate limit) resumes where it stopped.
type AudienceSyncState struct {
	App     string
	Segment string
	// AudienceID is Meta's id, configured or created by the sync.
	AudienceID string
	// Size is the membership as acknowledged by Meta: rows added minus rows removed.
	Size int64
	// LastSyncAt is when the last run that had nothing left to upload ended (unix seconds).
	LastSyncAt int64

	// The upload in progress; SessionID 0 means none.
	SessionID int64
	// Op is "add" or "remove".
	Op string
	// BatchesDone counts the batches of the session Meta acknowledged.
	BatchesDone int
	// Plan identifies the rows of the session (a hash of the planned changes): a resumed run
	// continues the session only if it plans exactly the same rows.
	Plan string
	// SessionStartedAt is when the session's first batch was sent (unix seconds): Meta closes
	// sessions 90 minutes after it.
	SessionStartedAt int64

	// Version is the optimistic lock, as for UserRecord.
	Version int64
}

// AudienceSyncStore keeps audience sync's lease and per-audience state (DynamoDB in AWS).
type AudienceSyncStore interface {
	// AcquireLease takes app's sync lease for holder until `until`, if it is free, expired at
	// `now`, or already held by holder; ok is false when another holder has it.
	AcquireLease(ctx context.Context, app, holder string, now, until time.Time) (ok bool, err error)
	// ReleaseLease gives the lease up if holder has it.
	ReleaseLease(ctx context.Context, app, holder string) error
	// GetAudienceState reads one audience's state; ok is false if none was stored yet.
	GetAudienceState(ctx context.Context, app, segment string) (AudienceSyncState, bool, error)
	// PutAudienceState writes s if the stored version is s.Version-1 (absent for 1), else
	// returns ErrVersionConflict.
	PutAudienceState(ctx context.Context, s AudienceSyncState) error
}

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
	// Op is "add", "remove" or "replace" (a full refresh).
	Op string
	// BatchesDone counts the batches of the session Meta acknowledged.
	BatchesDone int
	// Plan identifies the rows of the session (a hash of the planned changes): a resumed run
	// continues the session only if it plans exactly the same rows.
	Plan string
	// SessionStartedAt is when the session's first batch was sent (unix seconds): Meta closes
	// sessions 90 minutes after it.
	SessionStartedAt int64

	// The full refresh (a usersreplace session over the member index). LastRefreshAt is when
	// the last refresh completed (unix seconds). While Op is "replace" and SessionID is not 0,
	// RefreshCursor is the last member key covered by the acknowledged batches (members are
	// replaced in key order), RefreshRows the rows those batches carried, and RefreshExcluded
	// the members they left out (no longer in the audience, or no longer matchable).
	LastRefreshAt   int64
	RefreshCursor   string
	RefreshRows     int64
	RefreshExcluded int64

	// Removals Meta refused (e.g. "audience size too low": Meta refuses removals that would
	// leave too few matched people, reference meta-api.md section 2) are held, not dropped:
	// their changes stay pending and the sync retries them with backoff while additions go on.
	// RemovalsHeld is how many rows the last refusal held (0: none held), RemovalError Meta's
	// answer (code, subcode, message), RemovalRefusals the consecutive refusals and
	// RemovalSkipRuns the sync runs still to skip before the next attempt.
	RemovalsHeld    int64
	RemovalError    string
	RemovalRefusals int64
	RemovalSkipRuns int64

	// GoneID is the audience id Meta answered 100/33 for (it deleted the audience: Meta deletes
	// audiences unused for two years), GoneAt when (unix seconds). While GoneID equals
	// AudienceID nothing is sent to the audience; a new id (configured, or re-created by
	// `retarget audiences create --recreate-gone`) ends it.
	GoneID string
	GoneAt int64

	// Version is the optimistic lock, as for UserRecord.
	Version int64
}

// Gone reports whether Meta deleted the audience the state points at.
func (s AudienceSyncState) Gone() bool { return s.GoneID != "" && s.GoneID == s.AudienceID }

// AudienceSyncStore keeps audience sync's lease, per-audience state and member index (DynamoDB
// in AWS). The member index holds, per audience, the user keys the sync added and has not
// removed, as Meta acknowledged them: what a full refresh re-uploads.
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

	// SetMembers records, in the member index of one audience (by segment), that Meta
	// acknowledged adding the users `added` and removing the users `removed`. Idempotent; a
	// key in both lists is an error.
	SetMembers(ctx context.Context, app, segment string, added, removed []string) error
	// Members lists the member index of one audience in user key order, after the cursor
	// ("" from the start), at most limit keys; next is "" exactly when no key follows.
	Members(ctx context.Context, app, segment, after string, limit int) (userKeys []string, next string, err error)

	// AccountPauseStore keeps each ad account's "not before" (rate limits, pace.go).
	AccountPauseStore
}

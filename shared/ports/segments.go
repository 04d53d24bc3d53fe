package ports

import (
	"context"
	"errors"
	"time"
)

// ErrVersionConflict is returned by SegmentStore.PutUser when the stored item changed since it
// was read (or, for a new user, already exists): re-read, re-fold, try again.
var ErrVersionConflict = errors.New("segment store: version conflict")

// UserRecord is one user's stored segment state (one item per user).
type UserRecord struct {
	App     string
	UserKey string
	// State is the user's state as package segments encodes it; opaque to the store.
	State []byte
	// Segments the user is in as of this write (for the read API and for diffs).
	Segments []string
	// LastSeq is the highest stream sequence number applied (a decimal string).
	LastSeq string
	// RecentIDs are short hashes of the event ids applied recently: they catch producer
	// retries, which carry a new sequence number.
	RecentIDs []string
	// Version is the optimistic lock: 1 for the first write, +1 each write.
	Version int64
	// DueAt is the next moment a time-based rule could flip (unix seconds); 0 for none. Users
	// with a DueAt are in the due index that the sweeper reads.
	DueAt int64
	// ExpiresAt is when an inactive user's state may be deleted (unix seconds, TTL).
	ExpiresAt int64
}

// MembershipChange is a user joining or leaving a segment: what audience sync consumes.
type MembershipChange struct {
	App     string
	Segment string
	UserKey string
	Joined  bool
	// At is when the change happened (unix milliseconds): the event time that caused it, or
	// the sweep time for time-based transitions. With App, Segment, UserKey and Joined it makes
	// the change's identity, so recording the same change twice stores it once.
	At int64

	// Not part of the identity: StateVersion is the version of the user record whose write the
	// change belongs to (changes are recorded before the state is written), RecordedAt when it
	// was recorded (unix ms, wall clock). Audience sync waits until the state it reads has
	// reached StateVersion before it treats the change as done, so a sync running between the
	// two writes cannot plan from the old state; a change whose state never lands is taken as
	// done a grace period after RecordedAt. 0 for both means unknown (no waiting).
	StateVersion int64
	RecordedAt   int64
}

// PendingChange is a recorded change not yet synced; Cursor orders changes by time within a
// segment and is what PendingChanges pages with.
type PendingChange struct {
	MembershipChange
	Cursor string
}

// SegmentStore keeps user state and membership changes (DynamoDB in AWS).
type SegmentStore interface {
	// GetUser reads a user's record with strong consistency; ok is false for an unknown user.
	GetUser(ctx context.Context, app, userKey string) (rec UserRecord, ok bool, err error)
	// PutUser writes rec if the stored version is rec.Version-1 (absent when rec.Version is 1),
	// else returns ErrVersionConflict.
	PutUser(ctx context.Context, rec UserRecord) error
	// RecordChanges stores changes as pending; it is idempotent.
	RecordChanges(ctx context.Context, changes []MembershipChange) error
	// PendingChanges lists the pending changes of one segment in time order, after the cursor
	// ("" from the start), at most limit; next is "" when there are no more.
	PendingChanges(ctx context.Context, app, segment, after string, limit int) (changes []PendingChange, next string, err error)
	// MarkSynced takes changes out of the pending index (they stay as history until their TTL),
	// each only if it is still the recording that was read (same StateVersion and RecordedAt):
	// a change recorded again since belongs to a later state write and stays pending.
	MarkSynced(ctx context.Context, changes []PendingChange) error
	// DueUsers lists the users of app whose DueAt is at most until, looking back at most
	// lookback, at most limit per call; next is "" when there are no more.
	DueUsers(ctx context.Context, app string, until time.Time, lookback time.Duration, limit int, cursor string) (userKeys []string, next string, err error)
}

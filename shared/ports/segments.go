package ports

import (
	"context"
	"errors"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// ErrVersionConflict is returned by SegmentStore.PutUser when the stored item changed since it
// was read (or, for a new user, already exists): re-read, re-fold, try again. Update returns
// it, wrapped, when every attempt it may make met a concurrent write.
var ErrVersionConflict = errors.New("segment store: version conflict")

// ErrNothingToWrite is what the function given to SegmentStore.Update returns to say that the
// user needs no write (a redelivered batch, a sweep that moves nothing): Update then writes
// nothing and returns no error.
var ErrNothingToWrite = errors.New("segment store: nothing to write")

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
	// Reason is why the change happened, one of the Reason constants (not part of the
	// identity: the same change recorded again keeps its first reason or takes the new one
	// alike). AppUserID is the app's own user id, kept only for apps that share it
	// (share_app_user_id); "" otherwise.
	Reason    string
	AppUserID string
}

// Reasons of membership changes.
const (
	ReasonEvents  = "events"  // the user's events (the segment updater)
	ReasonTime    = "time"    // time passing (the sweeper, rules apply)
	ReasonConsent = "consent" // an explicit consent or Limited Data Use decision
	ReasonErasure = "erasure" // an erasure
)

// PendingChange is a recorded change not yet synced; Cursor orders changes by time within a
// segment and is what PendingChanges pages with.
type PendingChange struct {
	MembershipChange
	Cursor string
}

// UserState is one user's record as SegmentStore.Update hands it to the function that changes
// it: the stored fields, with the segment state decoded. The function changes them in place.
// It carries the domain's segments.State, so ports imports the domain; the helpers that turn
// it into membership changes live above ports, in shared/adapters/userstate.
type UserState struct {
	// Found is false for a user without a stored record: everything else starts zero, and the
	// write creates the record. Update ignores changes to it.
	Found bool
	// State is the user's segment state (zero for a new user).
	State segments.State
	// Segments the user is in. Update diffs them before and after the function into the
	// membership changes it records with the write.
	Segments []string
	// LastSeq, RecentIDs, DueAt and ExpiresAt are the UserRecord fields of the same names.
	LastSeq   string
	RecentIDs []string
	DueAt     int64
	ExpiresAt int64
	// ChangedAt is when the membership changes of this write happened (unix milliseconds,
	// MembershipChange.At): the latest event time of a stream batch, or the time of a sweep or
	// an API call. The function sets it whenever it changes Segments.
	ChangedAt int64
	// RecordedAt is the clock reading the changes are stamped with (MembershipChange.RecordedAt);
	// zero means the wall clock at the write. The function sets it from its own clock, so a
	// fake clock in tests and the audience sync's grace period agree.
	RecordedAt time.Time
	// Reason is why this write changes Segments (MembershipChange.Reason, a Reason constant):
	// the function sets it with ChangedAt. The rejoins of a Limited Data Use change always
	// carry ReasonConsent.
	Reason string
}

// UserUpdate is what SegmentStore.Update did.
type UserUpdate struct {
	// Written is true when a new version of the record was written.
	Written bool
	// Version is the version written; when nothing was written, the version read (0 for an
	// unknown user).
	Version int64
	// Changes are the membership changes recorded with the write, stamped with Version. When
	// the function returned ErrNothingToWrite they are the changes its edits would have made,
	// neither recorded nor stamped (what a dry run reports).
	Changes []MembershipChange
	// Conflicts counts the concurrent writes that made Update read the user again and call the
	// function again; it is set even when Update gives up.
	Conflicts int
}

// UserRead is one user as a single read of their partition finds them: the state record and
// the explicit consent decision, read together with strong consistency.
type UserRead struct {
	// Record is the stored state (zero but for App and UserKey when Found is false).
	Record UserRecord
	Found  bool
	// Consent is the user's explicit consent decision (ConsentStore.PutConsent); nil for none.
	Consent *UserConsent
}

// UserReader is a segment store that reads a user's state and consent decision with one
// request (one strongly consistent Query of the user's partition in DynamoDB) and updates from
// what it read: a writer that needs both reads once per user, not twice.
type UserReader interface {
	// ReadUser reads the user's state record and consent decision, strongly consistent; an
	// unknown user is a UserRead with Found false and no error.
	ReadUser(ctx context.Context, app, userKey string) (UserRead, error)
	// UpdateRead is SegmentStore.Update whose first attempt starts from read (ReadUser's for
	// the same user, not changed since) instead of reading: after a concurrent write it reads
	// again and calls fn again, as Update does. A write costs what Update's costs less the read.
	UpdateRead(ctx context.Context, read UserRead, fn func(*UserState) error) (UserUpdate, error)
}

// SegmentStore keeps user state and membership changes (DynamoDB in AWS).
type SegmentStore interface {
	// Update is the read-modify-write of one user that every writer of user state goes
	// through. It reads the user (strongly consistent), calls fn to change the state, records
	// the membership changes between the segments before and after (stamped with the version
	// about to be written) and writes the record if its version is still the one read. On
	// ErrVersionConflict it reads again and calls fn again on the fresh state, a bounded number
	// of times; then it gives up with an error wrapping ErrVersionConflict. fn may therefore
	// run more than once and must start from the state it is given. When fn returns
	// ErrNothingToWrite nothing is written and the error is nil; any other error from fn is
	// returned, wrapped, and nothing is written. A write costs what GetUser, RecordChanges (only
	// when there are changes) and PutUser cost together.
	Update(ctx context.Context, app, userKey string, fn func(*UserState) error) (UserUpdate, error)
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

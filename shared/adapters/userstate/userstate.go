// Package userstate is the read-modify-write of one user's segment state that every writer
// goes through (the segment updater, the sweeper, the consent and erasure routes): read the
// user, let the caller change the state, turn the segments before and after into membership
// changes stamped with the version about to be written, record them, write the record on the
// condition that its version is still the one read, and on a concurrent write start again from
// the fresh state, at most MaxConflictRetries times.
//
// ports.SegmentStore.Update is the operation; Update here is its one implementation, written
// over the store's own GetUser, RecordChanges and PutUser (the conditional write), which is
// all a store has to differ in. UpdateRead (ports.UserReader.UpdateRead) is the same, starting
// from a read the caller made (state and consent decision in one request). Each adapter's Update calls it with itself, and so does a
// test double that wraps a store to intercept one of those three calls.
//
// Why here. It is the stores' side of the port: the writers call ports.SegmentStore.Update
// and never this package. Changes and Stamp build ports.MembershipChange values, and
// ports.UserState carries the domain's segments.State, so ports imports the domain: the
// helpers cannot live in the domain without a cycle. Among the adapters, every store (and the
// test kit's fake) can import it. DueAt, which needs no port type, lives in the domain
// (segments.DueAt).
package userstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// MaxConflictRetries bounds how many times Update reads a user again after a concurrent write
// (the updater and the sweeper, or an API call, writing the same user): six attempts in a row
// that each meet another writer mean contention no quick retry resolves, and the caller's own
// retry (the stream's redelivery, the next sweep, the client) is the better place to go on.
const MaxConflictRetries = 5

// Store is what Update needs of a segment store: the strongly consistent read, the
// idempotent change record and the conditional write (ports.SegmentStore has all three).
type Store interface {
	GetUser(ctx context.Context, app, userKey string) (ports.UserRecord, bool, error)
	RecordChanges(ctx context.Context, changes []ports.MembershipChange) error
	PutUser(ctx context.Context, rec ports.UserRecord) error
}

// Update implements ports.SegmentStore.Update over store: see there for the contract.
//
// Changes are recorded before the state is written: if the write fails or the caller dies in
// between, its retry computes the same changes (same identity, so the store keeps one, with
// the new stamp) and writes the state then; audience sync waits for the stamped version.
func Update(ctx context.Context, store Store, app, userKey string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return update(ctx, store, app, userKey, nil, fn)
}

// UpdateRead implements ports.UserReader.UpdateRead over store: Update, whose first attempt
// starts from read instead of calling store.GetUser.
func UpdateRead(ctx context.Context, store Store, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return update(ctx, store, read.Record.App, read.Record.UserKey, &read, fn)
}

func update(ctx context.Context, store Store, app, userKey string, first *ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	var res ports.UserUpdate
	for attempt := 0; ; attempt++ {
		var (
			rec   ports.UserRecord
			found bool
			err   error
		)
		if attempt == 0 && first != nil {
			rec, found = first.Record, first.Found
		} else if rec, found, err = store.GetUser(ctx, app, userKey); err != nil {
			return res, err
		}
		res.Version = rec.Version
		// Segments is cloned: fn may change it in place, and rec.Segments is the "before".
		u := ports.UserState{Found: found, Segments: slices.Clone(rec.Segments), LastSeq: rec.LastSeq,
			RecentIDs: rec.RecentIDs, DueAt: rec.DueAt, ExpiresAt: rec.ExpiresAt}
		if len(rec.State) > 0 {
			if err := json.Unmarshal(rec.State, &u.State); err != nil {
				return res, fmt.Errorf("update user %s/%s: stored state does not decode: %w", app, userKey, err)
			}
		}
		lduBefore := u.State.LimitedDataUse()
		err = fn(&u)
		if errors.Is(err, ports.ErrNothingToWrite) {
			res.Changes = Changes(app, userKey, rec.Segments, u.Segments, u.ChangedAt)
			Tag(res.Changes, u.Reason, u.State.AppUserID)
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("update user %s/%s: %w", app, userKey, err)
		}
		encoded, err := json.Marshal(&u.State)
		if err != nil {
			return res, fmt.Errorf("update user %s/%s: encode state: %w", app, userKey, err)
		}
		next := ports.UserRecord{App: app, UserKey: userKey, State: encoded, Segments: u.Segments, LastSeq: u.LastSeq,
			RecentIDs: u.RecentIDs, Version: rec.Version + 1, DueAt: u.DueAt, ExpiresAt: u.ExpiresAt}
		changes := Changes(app, userKey, rec.Segments, u.Segments, u.ChangedAt)
		Tag(changes, u.Reason, u.State.AppUserID)
		if u.State.LimitedDataUse() != lduBefore {
			rejoins := Rejoins(app, userKey, rec.Segments, u.Segments, u.ChangedAt)
			Tag(rejoins, ports.ReasonConsent, u.State.AppUserID)
			changes = append(changes, rejoins...)
		}
		recordedAt := u.RecordedAt
		if recordedAt.IsZero() {
			recordedAt = time.Now()
		}
		Stamp(changes, next.Version, recordedAt)
		if len(changes) > 0 {
			if err := store.RecordChanges(ctx, changes); err != nil {
				return res, fmt.Errorf("update user %s/%s: record membership changes: %w", app, userKey, err)
			}
		}
		err = store.PutUser(ctx, next)
		if errors.Is(err, ports.ErrVersionConflict) {
			if attempt < MaxConflictRetries {
				res.Conflicts++
				continue // another writer came first: fold into what it wrote
			}
			return res, fmt.Errorf("update user %s/%s: gave up after %d attempts: %w", app, userKey, attempt+1, err)
		}
		if err != nil {
			return res, err
		}
		res.Written, res.Version, res.Changes = true, next.Version, changes
		return res, nil
	}
}

// Changes lists the membership changes from before to after, at unix milliseconds at: joins
// first, then leaves, each in the order of its list.
func Changes(app, userKey string, before, after []string, at int64) []ports.MembershipChange {
	joined, left := segments.Diff(before, after)
	var out []ports.MembershipChange
	for _, s := range joined {
		out = append(out, ports.MembershipChange{App: app, Segment: s, UserKey: userKey, Joined: true, At: at})
	}
	for _, s := range left {
		out = append(out, ports.MembershipChange{App: app, Segment: s, UserKey: userKey, Joined: false, At: at})
	}
	return out
}

// Rejoins re-asserts, as join changes at unix milliseconds at, the membership of every segment
// the user is in both before and after: what Update records when the user's Limited Data Use
// began or ended. Their segments stay (they also answer /v1/me/segments), but the audience sync
// only plans users with pending changes, and it is the plan that leaves LDU users out of
// audiences (segments.State.LimitedDataUse): a rejoin makes the next sync plan the user again
// from the state of this write, which removes them (LDU began) or adds them back (LDU ended).
func Rejoins(app, userKey string, before, after []string, at int64) []ports.MembershipChange {
	var out []ports.MembershipChange
	for _, s := range after {
		if slices.Contains(before, s) {
			out = append(out, ports.MembershipChange{App: app, Segment: s, UserKey: userKey, Joined: true, At: at})
		}
	}
	return out
}

// Tag sets why the changes happened and the app's user id they carry (stored only for apps
// that share it: see segments.State.AppUserID).
func Tag(changes []ports.MembershipChange, reason, appUserID string) {
	for i := range changes {
		changes[i].Reason, changes[i].AppUserID = reason, appUserID
	}
}

// Stamp marks changes as belonging to the state write of version (the write that follows
// recording them) at now: see ports.MembershipChange.
func Stamp(changes []ports.MembershipChange, version int64, now time.Time) {
	for i := range changes {
		changes[i].StateVersion, changes[i].RecordedAt = version, now.UnixMilli()
	}
}

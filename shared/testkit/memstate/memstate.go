// Package memstate is an in-memory ports.SegmentStore for tests. It keeps the semantics of the
// DynamoDB adapter (dynamostate), which the statetest contract suite checks for both:
// optimistic versions, sets returned sorted and deduplicated, idempotent change records keyed
// by their identity, pending changes in sort key order (time, then user key) with the same
// cursors, due users by hour window with lookback, and limit+1 paging (next is "" exactly when
// nothing follows). Unlike DynamoDB it has no TTL, no eventual consistency and no item size
// limit.
package memstate

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Store is an in-memory segment store. The zero value is not usable; call New. It is safe for
// concurrent use.
type Store struct {
	mu         sync.Mutex
	users      map[userID]ports.UserRecord
	changes    map[segmentID]map[string]*change // by change sort key
	sorted     map[segmentID][]string           // each segment's sort keys in order; nil = stale
	audSync    syncState                        // audience sync (sync.go)
	spend      spendState                       // insights spend rows (spend.go)
	automation automationState                  // automation actions and KPI days (automation.go)
	// consent.go
	consents map[userID]ports.UserConsent
	erasures map[erasureID]ports.ErasureRecord
	purges   map[erasureID]ports.ErasureRecord        // purge.go: pending archive purges
	outcomes map[ports.OutcomeKey]ports.OutcomeCounts // outcomes.go
	cooldown map[userID]int64                         // publish.go
}

type userID struct{ app, userKey string }

type segmentID struct{ app, segment string }

type change struct {
	c           ports.MembershipChange
	pending     bool
	unpublished bool // publish.go
}

var (
	_ ports.SegmentStore = (*Store)(nil)
	_ ports.UserReader   = (*Store)(nil)
)

// New returns an empty Store.
func New() *Store {
	return &Store{users: make(map[userID]ports.UserRecord), changes: make(map[segmentID]map[string]*change)}
}

// GetUser returns a copy of the stored record.
func (s *Store) GetUser(ctx context.Context, app, userKey string) (ports.UserRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return ports.UserRecord{}, false, fmt.Errorf("get user: %w", err)
	}
	if err := storecheck.User(app, userKey); err != nil {
		return ports.UserRecord{}, false, fmt.Errorf("get user: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.users[userID{app, userKey}]
	if !ok {
		return ports.UserRecord{}, false, nil
	}
	return clone(rec), true, nil
}

// PutUser stores a copy of rec if the stored version is rec.Version-1 (absent for 1).
func (s *Store) PutUser(ctx context.Context, rec ports.UserRecord) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	if err := storecheck.Record(rec); err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := userID{rec.App, rec.UserKey}
	old, exists := s.users[id]
	if (rec.Version == 1 && exists) || (rec.Version > 1 && (!exists || old.Version != rec.Version-1)) {
		return fmt.Errorf("put user %s/%s version %d: %w", rec.App, rec.UserKey, rec.Version, ports.ErrVersionConflict)
	}
	s.users[id] = clone(rec)
	return nil
}

// Update reads, changes and conditionally writes one user (ports.SegmentStore.Update) through
// userstate.Update, over this Store's GetUser, RecordChanges and PutUser. A test double that
// embeds a *Store and overrides one of those three must define Update the same way over
// itself, or Update goes around its override.
func (s *Store) Update(ctx context.Context, app, userKey string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, s, app, userKey, fn)
}

// ReadUser returns copies of the user's stored record and consent decision, read together
// (ports.UserReader).
func (s *Store) ReadUser(ctx context.Context, app, userKey string) (ports.UserRead, error) {
	if err := ctx.Err(); err != nil {
		return ports.UserRead{}, fmt.Errorf("read user: %w", err)
	}
	if err := storecheck.User(app, userKey); err != nil {
		return ports.UserRead{}, fmt.Errorf("read user: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	read := ports.UserRead{Record: ports.UserRecord{App: app, UserKey: userKey}}
	if rec, ok := s.users[userID{app, userKey}]; ok {
		read.Record, read.Found = clone(rec), true
	}
	if c, ok := s.consents[userID{app, userKey}]; ok {
		c = cloneConsent(c)
		read.Consent = &c
	}
	return read, nil
}

// UpdateRead is Update from a record ReadUser read (ports.UserReader), through
// userstate.UpdateRead. A test double that embeds a *Store and overrides GetUser,
// RecordChanges or PutUser must define UpdateRead the same way over itself, as Update.
func (s *Store) UpdateRead(ctx context.Context, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.UpdateRead(ctx, s, read, fn)
}

// clone copies rec the way a round trip through DynamoDB changes it: sets sorted and
// deduplicated, empty values absent.
func clone(rec ports.UserRecord) ports.UserRecord {
	if len(rec.State) == 0 {
		rec.State = nil
	} else {
		rec.State = slices.Clone(rec.State)
	}
	rec.Segments = setOf(rec.Segments)
	rec.RecentIDs = setOf(rec.RecentIDs)
	return rec
}

func setOf(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// RecordChanges stores each change as pending; a change already stored is overwritten, so it
// is pending again even if it was synced (as with DynamoDB's unconditional BatchWriteItem).
func (s *Store) RecordChanges(ctx context.Context, changes []ports.MembershipChange) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record changes: %w", err)
	}
	for _, c := range changes {
		if err := storecheck.Change(c); err != nil {
			return fmt.Errorf("record changes: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		seg := segmentID{c.App, c.Segment}
		if s.changes[seg] == nil {
			s.changes[seg] = make(map[string]*change)
		}
		s.changes[seg][storecheck.ChangeSK(c)] = &change{c: c, pending: true, unpublished: true}
		delete(s.sorted, seg)
	}
	return nil
}

// PendingChanges lists pending changes after the cursor in sort key order.
func (s *Store) PendingChanges(ctx context.Context, app, segment, after string, limit int) ([]ports.PendingChange, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("pending changes: %w", err)
	}
	if err := storecheck.Name("app", app); err != nil {
		return nil, "", fmt.Errorf("pending changes: %w", err)
	}
	if err := storecheck.Name("segment", segment); err != nil {
		return nil, "", fmt.Errorf("pending changes: %w", err)
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("pending changes: %w: limit %d", storecheck.ErrInvalid, limit)
	}
	if after != "" && !storecheck.ValidChangeSK(after) {
		return nil, "", fmt.Errorf("pending changes: %w: cursor %q", storecheck.ErrInvalid, after)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := segmentID{app, segment}
	keys, ok := s.sorted[seg]
	if !ok { // sorted once per batch of writes, so paging a large backlog stays linear
		keys = make([]string, 0, len(s.changes[seg]))
		for sk := range s.changes[seg] {
			keys = append(keys, sk)
		}
		slices.Sort(keys)
		if s.sorted == nil {
			s.sorted = map[segmentID][]string{}
		}
		s.sorted[seg] = keys
	}
	start, _ := slices.BinarySearch(keys, after)
	var out []ports.PendingChange
	for _, sk := range keys[start:] {
		if ch := s.changes[seg][sk]; ch.pending && sk > after {
			if len(out) == limit {
				return out, out[limit-1].Cursor, nil
			}
			out = append(out, ports.PendingChange{MembershipChange: ch.c, Cursor: sk})
		}
	}
	return out, "", nil
}

// MarkSynced takes the changes, identified by their fields, out of the pending list. Unknown
// or already synced changes are ignored.
func (s *Store) MarkSynced(ctx context.Context, changes []ports.PendingChange) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mark synced: %w", err)
	}
	for _, c := range changes {
		if err := storecheck.Change(c.MembershipChange); err != nil {
			return fmt.Errorf("mark synced: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		ch := s.changes[segmentID{c.App, c.Segment}][storecheck.ChangeSK(c.MembershipChange)]
		// Only the recording the sync read, as in dynamostate: one recorded again since stays.
		if ch != nil && ch.c.StateVersion == c.StateVersion && ch.c.RecordedAt == c.RecordedAt {
			ch.pending = false
		}
	}
	return nil
}

// DueUsers lists users of app with until-lookback <= DueAt <= until (whole seconds) in DueAt
// order, then user key, after the cursor (<dueAt>#<userKey>, the last user returned).
func (s *Store) DueUsers(ctx context.Context, app string, until time.Time, lookback time.Duration, limit int, cursor string) ([]string, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("due users: %w", err)
	}
	if err := storecheck.Name("app", app); err != nil {
		return nil, "", fmt.Errorf("due users: %w", err)
	}
	if limit <= 0 || lookback < 0 {
		return nil, "", fmt.Errorf("due users: %w: limit %d, lookback %s", storecheck.ErrInvalid, limit, lookback)
	}
	from, to := storecheck.DueWindow(until, lookback)
	var after storecheck.DueCursor
	if cursor != "" {
		c, err := storecheck.ParseDueCursor(cursor)
		if err != nil {
			return nil, "", fmt.Errorf("due users: %w: %w", storecheck.ErrInvalid, err)
		}
		if c.DueAt >= from { // a cursor before the window restarts it
			after = c
		}
	}
	s.mu.Lock()
	var found []storecheck.DueCursor
	for id, rec := range s.users {
		pos := storecheck.DueCursor{DueAt: rec.DueAt, UserKey: id.userKey}
		if id.app == app && rec.DueAt >= from && rec.DueAt <= to && pos.Compare(after) > 0 {
			found = append(found, pos)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(found, storecheck.DueCursor.Compare)
	if len(found) > limit {
		return storecheck.UserKeys(found[:limit]), found[limit-1].String(), nil
	}
	return storecheck.UserKeys(found), "", nil
}

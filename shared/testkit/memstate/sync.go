package memstate

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// syncState is the audience sync part of a Store, kept apart so that the segment store code
// does not change. Leases are kept in unix milliseconds, as dynamostate stores them.
type syncState struct {
	mu        sync.Mutex
	leases    map[string]lease // by app
	audiences map[segmentID]ports.AudienceSyncState
	members   map[segmentID]map[string]bool
	// memberOrder is each member index in key order; nil = stale.
	memberOrder map[segmentID][]string
	// pauses are the ad accounts' "not before" (pace.go).
	pauses map[string]ports.AccountPause
}

type lease struct {
	holder string
	until  int64 // unix ms
}

var _ ports.AudienceSyncStore = (*Store)(nil)

// AcquireLease takes app's lease for holder if it is free, expired at now (until < now, in
// milliseconds) or already holder's.
func (s *Store) AcquireLease(ctx context.Context, app, holder string, now, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("acquire lease: %w", err)
	}
	if err := storecheck.Holder(app, holder); err != nil {
		return false, fmt.Errorf("acquire lease: %w", err)
	}
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	if l, ok := s.audSync.leases[app]; ok && l.until >= now.UnixMilli() && l.holder != holder {
		return false, nil
	}
	if s.audSync.leases == nil {
		s.audSync.leases = make(map[string]lease)
	}
	s.audSync.leases[app] = lease{holder: holder, until: until.UnixMilli()}
	return true, nil
}

// ReleaseLease frees app's lease if holder has it.
func (s *Store) ReleaseLease(ctx context.Context, app, holder string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	if err := storecheck.Holder(app, holder); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	if l, ok := s.audSync.leases[app]; ok && l.holder == holder {
		delete(s.audSync.leases, app)
	}
	return nil
}

// GetAudienceState returns the stored state.
func (s *Store) GetAudienceState(ctx context.Context, app, segment string) (ports.AudienceSyncState, bool, error) {
	if err := ctx.Err(); err != nil {
		return ports.AudienceSyncState{}, false, fmt.Errorf("get audience state: %w", err)
	}
	if err := storecheck.Name("app", app); err != nil {
		return ports.AudienceSyncState{}, false, fmt.Errorf("get audience state: %w", err)
	}
	if err := storecheck.Name("segment", segment); err != nil {
		return ports.AudienceSyncState{}, false, fmt.Errorf("get audience state: %w", err)
	}
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	st, ok := s.audSync.audiences[segmentID{app, segment}]
	return st, ok, nil
}

// PutAudienceState stores st if the stored version is st.Version-1 (absent for 1).
func (s *Store) PutAudienceState(ctx context.Context, st ports.AudienceSyncState) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put audience state: %w", err)
	}
	if err := storecheck.AudienceState(st); err != nil {
		return fmt.Errorf("put audience state: %w", err)
	}
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	id := segmentID{st.App, st.Segment}
	old, exists := s.audSync.audiences[id]
	if (st.Version == 1 && exists) || (st.Version > 1 && (!exists || old.Version != st.Version-1)) {
		return fmt.Errorf("put audience state %s/%s version %d: %w", st.App, st.Segment, st.Version, ports.ErrVersionConflict)
	}
	if s.audSync.audiences == nil {
		s.audSync.audiences = make(map[segmentID]ports.AudienceSyncState)
	}
	s.audSync.audiences[id] = st
	return nil
}

// SetMembers adds and removes keys of one audience's member index.
func (s *Store) SetMembers(ctx context.Context, app, segment string, added, removed []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set members: %w", err)
	}
	if err := storecheck.Members(app, segment, added, removed); err != nil {
		return fmt.Errorf("set members: %w", err)
	}
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	id := segmentID{app, segment}
	if s.audSync.members == nil {
		s.audSync.members = make(map[segmentID]map[string]bool)
		s.audSync.memberOrder = make(map[segmentID][]string)
	}
	m := s.audSync.members[id]
	if m == nil {
		m = make(map[string]bool)
		s.audSync.members[id] = m
	}
	for _, k := range added {
		m[k] = true
	}
	for _, k := range removed {
		delete(m, k)
	}
	if len(added)+len(removed) > 0 {
		s.audSync.memberOrder[id] = nil
	}
	return nil
}

// Members pages through one audience's member index in key order.
func (s *Store) Members(ctx context.Context, app, segment, after string, limit int) ([]string, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("members: %w", err)
	}
	if err := storecheck.MemberPage(app, segment, limit); err != nil {
		return nil, "", fmt.Errorf("members: %w", err)
	}
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	id := segmentID{app, segment}
	order := s.audSync.memberOrder[id]
	if order == nil && len(s.audSync.members[id]) > 0 {
		for k := range s.audSync.members[id] {
			order = append(order, k)
		}
		slices.Sort(order)
		s.audSync.memberOrder[id] = order
	}
	i := sort.SearchStrings(order, after)
	if i < len(order) && order[i] == after {
		i++
	}
	end := min(i+limit, len(order))
	page := slices.Clone(order[i:end])
	if end == len(order) {
		return page, "", nil
	}
	return page, page[len(page)-1], nil
}

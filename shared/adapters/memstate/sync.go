package memstate

import (
	"context"
	"fmt"
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

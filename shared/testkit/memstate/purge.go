package memstate

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.ArchivePurges = (*Store)(nil)

// putPendingPurge records r's pending archive purge, as dynamostate's PutErasure does. Called
// with s.mu held.
func (s *Store) putPendingPurge(r ports.ErasureRecord) {
	if s.purges == nil {
		s.purges = make(map[erasureID]ports.ErasureRecord)
	}
	s.purges[erasureID{r.App, r.ID}] = ports.ErasureRecord{ID: r.ID, App: r.App, UserKey: r.UserKey,
		RequestedAt: r.RequestedAt, ExpiresAt: r.ExpiresAt, FirstDay: r.FirstDay}
}

// PendingPurges returns the app's pending purges in id order.
func (s *Store) PendingPurges(ctx context.Context, app string) ([]ports.ErasureRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pending purges: %w", err)
	}
	if err := storecheck.Name("app", app); err != nil {
		return nil, fmt.Errorf("pending purges: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ports.ErasureRecord
	for id, r := range s.purges {
		if id.app == app {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b ports.ErasureRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// PurgeDone removes the pending purge; a missing one is not an error.
func (s *Store) PurgeDone(ctx context.Context, app, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("purge done: %w", err)
	}
	if err := storecheck.Name("app", app); err != nil {
		return fmt.Errorf("purge done: %w", err)
	}
	if err := storecheck.Name("erasure id", id); err != nil {
		return fmt.Errorf("purge done: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.purges, erasureID{app, id})
	return nil
}

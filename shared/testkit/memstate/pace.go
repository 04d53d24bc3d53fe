package memstate

import (
	"context"
	"fmt"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// GetAccountPause returns the stored pause of an ad account.
func (s *Store) GetAccountPause(ctx context.Context, account string) (ports.AccountPause, bool, error) {
	if err := ctx.Err(); err != nil {
		return ports.AccountPause{}, false, fmt.Errorf("get account pause: %w", err)
	}
	if err := storecheck.AdAccount(account); err != nil {
		return ports.AccountPause{}, false, fmt.Errorf("get account pause: %w", err)
	}
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	p, ok := s.audSync.pauses[account]
	return p, ok, nil
}

// ExtendAccountPause stores p unless the stored pause ends at or after it. Times are kept to
// the millisecond, as dynamostate keeps them.
func (s *Store) ExtendAccountPause(ctx context.Context, p ports.AccountPause) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("extend account pause: %w", err)
	}
	if err := storecheck.AdAccount(p.AdAccountID); err != nil {
		return fmt.Errorf("extend account pause: %w", err)
	}
	p.NotBefore = time.UnixMilli(p.NotBefore.UnixMilli()).UTC()
	s.audSync.mu.Lock()
	defer s.audSync.mu.Unlock()
	if old, ok := s.audSync.pauses[p.AdAccountID]; ok && !old.NotBefore.Before(p.NotBefore) {
		return nil
	}
	if s.audSync.pauses == nil {
		s.audSync.pauses = make(map[string]ports.AccountPause)
	}
	s.audSync.pauses[p.AdAccountID] = p
	return nil
}

package memstate

import (
	"context"
	"fmt"
	"slices"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.ConsentStore = (*Store)(nil)

type erasureID struct{ app, id string }

// PutConsent stores the decision.
func (s *Store) PutConsent(ctx context.Context, c ports.UserConsent) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	if err := storecheck.Consent(c); err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.consents == nil {
		s.consents = make(map[userID]ports.UserConsent)
	}
	s.consents[userID{c.App, c.UserKey}] = cloneConsent(c)
	return nil
}

// Consents returns the stored decisions of the given users.
func (s *Store) Consents(ctx context.Context, app string, userKeys []string) (map[string]ports.UserConsent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("consents: %w", err)
	}
	for _, k := range userKeys {
		if err := storecheck.User(app, k); err != nil {
			return nil, fmt.Errorf("consents: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ports.UserConsent)
	for _, k := range userKeys {
		if c, ok := s.consents[userID{app, k}]; ok {
			out[k] = cloneConsent(c)
		}
	}
	return out, nil
}

// PutErasure stores the audit record.
func (s *Store) PutErasure(ctx context.Context, r ports.ErasureRecord) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put erasure: %w", err)
	}
	if err := storecheck.Erasure(r); err != nil {
		return fmt.Errorf("put erasure: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.erasures == nil {
		s.erasures = make(map[erasureID]ports.ErasureRecord)
	}
	r.Audiences = slices.Clone(r.Audiences)
	s.erasures[erasureID{r.App, r.ID}] = r
	s.putPendingPurge(r)
	return nil
}

// Erasure reads an audit record (memstate has no TTL: expired records stay).
func (s *Store) Erasure(ctx context.Context, app, id string) (ports.ErasureRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return ports.ErasureRecord{}, false, fmt.Errorf("erasure: %w", err)
	}
	if err := storecheck.Name("app", app); err != nil {
		return ports.ErasureRecord{}, false, fmt.Errorf("erasure: %w", err)
	}
	if err := storecheck.Name("erasure id", id); err != nil {
		return ports.ErasureRecord{}, false, fmt.Errorf("erasure: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.erasures[erasureID{app, id}]
	r.Audiences = slices.Clone(r.Audiences)
	return r, ok, nil
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

// cloneConsent copies c with its own flags, so callers never share them with the store.
func cloneConsent(c ports.UserConsent) ports.UserConsent {
	c.AdvertiserTracking, c.ApplicationTracking, c.LDU = cloneBool(c.AdvertiserTracking), cloneBool(c.ApplicationTracking), cloneBool(c.LDU)
	return c
}

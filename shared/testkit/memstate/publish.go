package memstate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var (
	_ ports.ChangeFeed    = (*Store)(nil)
	_ ports.CooldownStore = (*Store)(nil)
)

// UnpublishedChanges lists app's unpublished changes of every segment in sort key order (time,
// then user key; then segment), after the cursor, with dynamostate's cursors.
func (s *Store) UnpublishedChanges(ctx context.Context, app, after string, limit int) ([]ports.PendingChange, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("unpublished changes: %w", err)
	}
	if err := storecheck.Name("app", app); err != nil {
		return nil, "", fmt.Errorf("unpublished changes: %w", err)
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("unpublished changes: %w: limit %d", storecheck.ErrInvalid, limit)
	}
	var afterSeg, afterSK string
	if after != "" {
		var err error
		if afterSeg, afterSK, err = dynamostate.ParseFeedCursor(after); err != nil {
			return nil, "", fmt.Errorf("unpublished changes: %w", err)
		}
	}
	type pos struct{ sk, segment string }
	cmp := func(a, b pos) int {
		if c := strings.Compare(a.sk, b.sk); c != 0 {
			return c
		}
		return strings.Compare(a.segment, b.segment)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []pos
	for seg, byKey := range s.changes {
		if seg.app != app {
			continue
		}
		for sk, ch := range byKey {
			if p := (pos{sk, seg.segment}); ch.unpublished && (after == "" || cmp(p, pos{afterSK, afterSeg}) > 0) {
				all = append(all, p)
			}
		}
	}
	slices.SortFunc(all, cmp)
	var out []ports.PendingChange
	for _, p := range all {
		if len(out) == limit {
			return out, out[limit-1].Cursor, nil
		}
		ch := s.changes[segmentID{app, p.segment}][p.sk]
		out = append(out, ports.PendingChange{MembershipChange: ch.c, Cursor: dynamostate.FeedCursor(p.segment, p.sk)})
	}
	return out, "", nil
}

// MarkPublished takes the changes, identified by their fields, out of the unpublished list if
// each is still the recording that was read, and forgets their app user id, as dynamostate.
func (s *Store) MarkPublished(ctx context.Context, changes []ports.PendingChange) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mark published: %w", err)
	}
	for _, c := range changes {
		if err := storecheck.Change(c.MembershipChange); err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		ch := s.changes[segmentID{c.App, c.Segment}][storecheck.ChangeSK(c.MembershipChange)]
		if ch != nil && ch.c.StateVersion == c.StateVersion && ch.c.RecordedAt == c.RecordedAt {
			ch.unpublished = false
			ch.c.AppUserID = ""
		}
	}
	return nil
}

// LastDeliveries returns the users' last delivery times; users without one are absent.
func (s *Store) LastDeliveries(ctx context.Context, app string, userKeys []string) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("last deliveries: %w", err)
	}
	for _, k := range userKeys {
		if err := storecheck.User(app, k); err != nil {
			return nil, fmt.Errorf("last deliveries: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64)
	for _, k := range userKeys {
		if at, ok := s.cooldown[userID{app, k}]; ok {
			out[k] = at
		}
	}
	return out, nil
}

// SetLastDeliveries replaces the users' last delivery times.
func (s *Store) SetLastDeliveries(ctx context.Context, app string, at map[string]int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set last deliveries: %w", err)
	}
	for k := range at {
		if err := storecheck.User(app, k); err != nil {
			return fmt.Errorf("set last deliveries: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cooldown == nil {
		s.cooldown = make(map[userID]int64)
	}
	for k, ms := range at {
		s.cooldown[userID{app, k}] = ms
	}
	return nil
}

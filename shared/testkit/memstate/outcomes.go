package memstate

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.OutcomeStore = (*Store)(nil)

// AddOutcomes adds each delta to its cohort's counters, as dynamostate's ADD does; invalid
// input changes nothing.
func (s *Store) AddOutcomes(ctx context.Context, deltas []ports.Outcome) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("add outcomes: %w", err)
	}
	merged, err := storecheck.MergeOutcomes(deltas)
	if err != nil {
		return fmt.Errorf("add outcomes: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outcomes == nil {
		s.outcomes = make(map[ports.OutcomeKey]ports.OutcomeCounts)
	}
	for _, d := range merged {
		c := s.outcomes[d.OutcomeKey]
		c.Add(d.OutcomeCounts)
		s.outcomes[d.OutcomeKey] = c
	}
	return nil
}

// Outcomes returns the counters of the cohorts of app's segment that joined from fromDay to
// toDay, in (day, arm) order.
func (s *Store) Outcomes(ctx context.Context, app, segment string, fromDay, toDay int64) ([]ports.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	if err := storecheck.OutcomeRange(app, segment, fromDay, toDay); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ports.Outcome
	for k, c := range s.outcomes {
		if k.App == app && k.Segment == segment && k.JoinDay >= fromDay && k.JoinDay <= toDay {
			out = append(out, ports.Outcome{OutcomeKey: k, OutcomeCounts: c})
		}
	}
	slices.SortFunc(out, func(a, b ports.Outcome) int {
		return cmp.Or(cmp.Compare(a.JoinDay, b.JoinDay), cmp.Compare(a.Arm, b.Arm))
	})
	return out, nil
}

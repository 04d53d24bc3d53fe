package storecheck

import (
	"fmt"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/ports"
)

// MaxJoinDay is the largest cohort join day (days since 1970-01-01) the stores key: six
// zero-padded digits, so that string order is day order, reach the year 4707.
const MaxJoinDay = 999_999

// OutcomeKey rejects a cohort key that cannot be stored: an invalid app or segment name, a
// join day outside 0..MaxJoinDay or an unknown arm.
func OutcomeKey(k ports.OutcomeKey) error {
	if err := Name("app", k.App); err != nil {
		return err
	}
	if err := Name("segment", k.Segment); err != nil {
		return err
	}
	if k.JoinDay < 0 || k.JoinDay > MaxJoinDay {
		return fmt.Errorf("%w: join day %d outside 0..%d", ErrInvalid, k.JoinDay, MaxJoinDay)
	}
	if k.Arm != holdout.Treated && k.Arm != holdout.Holdout {
		return fmt.Errorf("%w: arm %d", ErrInvalid, k.Arm)
	}
	return nil
}

// OutcomeRange rejects an invalid Outcomes query: bad names, or days outside 0..MaxJoinDay or
// out of order.
func OutcomeRange(app, segment string, fromDay, toDay int64) error {
	if err := OutcomeKey(ports.OutcomeKey{App: app, Segment: segment, JoinDay: fromDay}); err != nil {
		return err
	}
	if toDay < fromDay || toDay > MaxJoinDay {
		return fmt.Errorf("%w: days %d..%d", ErrInvalid, fromDay, toDay)
	}
	return nil
}

// MergeOutcomes validates deltas and adds up those of the same cohort, dropping zeros: each
// store then writes every cohort once. The order is that of each key's first delta.
func MergeOutcomes(deltas []ports.Outcome) ([]ports.Outcome, error) {
	index := make(map[ports.OutcomeKey]int, len(deltas))
	var out []ports.Outcome
	for _, d := range deltas {
		if err := OutcomeKey(d.OutcomeKey); err != nil {
			return nil, err
		}
		i, ok := index[d.OutcomeKey]
		if !ok {
			i = len(out)
			index[d.OutcomeKey] = i
			out = append(out, ports.Outcome{OutcomeKey: d.OutcomeKey})
		}
		out[i].Add(d.OutcomeCounts)
	}
	kept := out[:0]
	for _, o := range out {
		if !o.IsZero() {
			kept = append(kept, o)
		}
	}
	return kept, nil
}

package segments

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
)

// Cohort is the user's enrolment in the measurement of one audience: the segment they joined,
// when, the holdout arm they were assigned to, and which outcomes were already counted for
// them, so that each user counts once per window however often events (or whole stream
// batches) come again. Package outcomes decides when a cohort starts and what it counts; the
// state only keeps it. It encodes as [segment, join time, flags] with the arm appended for the
// holdout ([..., 1]): a user item is billed per KB on every write, and most are close to one.
type Cohort struct {
	Segment string
	// JoinedAt is the join time (unix seconds): the membership change's time.
	JoinedAt int64
	Arm      holdout.Arm
	Flags    CohortFlags
}

// MarshalJSON writes [segment, joined at, flags] or [segment, joined at, flags, arm].
func (c Cohort) MarshalJSON() ([]byte, error) {
	seg, err := json.Marshal(c.Segment)
	if err != nil {
		return nil, err
	}
	out := fmt.Appendf(nil, "[%s,%d,%d", seg, c.JoinedAt, c.Flags)
	if c.Arm != holdout.Treated {
		out = fmt.Appendf(out, ",%d", c.Arm)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Cohort) UnmarshalJSON(data []byte) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil || len(parts) < 3 || len(parts) > 4 {
		return fmt.Errorf("segments: cohort must be [segment, joined at, flags(, arm)], got %s", data)
	}
	*c = Cohort{}
	if err := json.Unmarshal(parts[0], &c.Segment); err != nil {
		return fmt.Errorf("segments: cohort segment: %w", err)
	}
	if err := json.Unmarshal(parts[1], &c.JoinedAt); err != nil {
		return fmt.Errorf("segments: cohort join time: %w", err)
	}
	if err := json.Unmarshal(parts[2], &c.Flags); err != nil {
		return fmt.Errorf("segments: cohort flags: %w", err)
	}
	if len(parts) == 4 {
		if err := json.Unmarshal(parts[3], &c.Arm); err != nil {
			return fmt.Errorf("segments: cohort arm: %w", err)
		}
	}
	return nil
}

// CohortFlags record the outcomes already counted for a cohort.
type CohortFlags uint8

// The outcomes counted once per user and window.
const (
	Reengaged1d CohortFlags = 1 << iota
	Reengaged7d
	Reengaged28d
	Purchased28d
)

// mergeCohorts folds the cohorts of d into cs: the same cohort (segment and join time) keeps
// the union of its flags (what was counted in either stays counted), others are added. The
// result is sorted by join time, then segment, so merging in any order gives the same state.
func mergeCohorts(cs, d []Cohort) []Cohort {
	for _, o := range d {
		i := slices.IndexFunc(cs, func(c Cohort) bool { return c.Segment == o.Segment && c.JoinedAt == o.JoinedAt })
		if i >= 0 {
			cs[i].Flags |= o.Flags
			continue
		}
		cs = append(cs, o)
	}
	slices.SortFunc(cs, func(a, b Cohort) int {
		return cmp.Or(cmp.Compare(a.JoinedAt, b.JoinedAt), cmp.Compare(a.Segment, b.Segment))
	})
	return cs
}

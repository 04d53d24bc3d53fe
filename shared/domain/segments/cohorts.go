package segments

import (
	"cmp"
	"slices"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
)

// Cohort is the user's enrolment in the measurement of one audience: the segment they joined,
// when, the holdout arm they were assigned to, and which outcomes were already counted for
// them, so that each user counts once per window however often events (or whole stream
// batches) come again. Package outcomes decides when a cohort starts and what it counts; the
// state only keeps it. It encodes as {"s": segment, "at": join time, "arm": 1 for holdout,
// "f": flags}.
type Cohort struct {
	Segment string `json:"s"`
	// JoinedAt is the join time (unix seconds): the membership change's time.
	JoinedAt int64       `json:"at"`
	Arm      holdout.Arm `json:"arm,omitempty"`
	Flags    CohortFlags `json:"f,omitempty"`
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

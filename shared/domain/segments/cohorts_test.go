package segments

import (
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
)

// TestCohortsCloneAndMerge: a clone does not share the cohorts; a merge keeps one cohort per
// segment and join time with the union of the flags, in the same order whatever the order of
// the merge.
func TestCohortsCloneAndMerge(t *testing.T) {
	a := &State{Cohorts: []Cohort{{Segment: "vip", JoinedAt: 100, Flags: Reengaged1d}}}
	c := a.Clone()
	c.Cohorts[0].Flags = 0
	if a.Cohorts[0].Flags != Reengaged1d {
		t.Fatal("the clone shares its cohorts")
	}
	d := &State{Cohorts: []Cohort{{Segment: "vip", JoinedAt: 100, Flags: Purchased28d}, {Segment: "engaged", JoinedAt: 50, Arm: holdout.Holdout}}}
	ab, ba := a.Clone(), d.Clone()
	ab.Merge(d, nil)
	ba.Merge(a, nil)
	want := []Cohort{{Segment: "engaged", JoinedAt: 50, Arm: holdout.Holdout}, {Segment: "vip", JoinedAt: 100, Flags: Reengaged1d | Purchased28d}}
	if !slices.Equal(ab.Cohorts, want) || !slices.Equal(ba.Cohorts, want) {
		t.Fatalf("merged %+v and %+v, want %+v", ab.Cohorts, ba.Cohorts, want)
	}
}

package segments

import (
	"encoding/json"
	"slices"
	"strings"
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

// TestCohortEncoding: the compact array form round-trips, the treated arm is implicit.
func TestCohortEncoding(t *testing.T) {
	s := State{Cohorts: []Cohort{{Segment: "vip", JoinedAt: 1772445600, Flags: Reengaged1d | Purchased28d},
		{Segment: "engaged", JoinedAt: 1772445601, Arm: holdout.Holdout}}}
	data, err := json.Marshal(&s)
	if err != nil || !strings.Contains(string(data), `"co":[["vip",1772445600,9],["engaged",1772445601,0,1]]`) {
		t.Fatalf("encoded %s, %v", data, err)
	}
	var back State
	if err := json.Unmarshal(data, &back); err != nil || !slices.Equal(back.Cohorts, s.Cohorts) {
		t.Fatalf("decoded %+v, %v", back.Cohorts, err)
	}
	for _, bad := range []string{`{"co":[["vip",1]]}`, `{"co":[[1,2,3]]}`, `{"co":[{"s":"vip"}]}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

package dynamostate

import (
	"context"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/ports"
)

// TestOutcomeWritesPerDay: both arms of one audience and day are one UpdateItem, and
// OutcomeItemWrites (what the updater's benchmark bills) counts exactly the calls made.
func TestOutcomeWritesPerDay(t *testing.T) {
	client := dynalite(t)
	api := &countingAPI{DynamoAPI: client, calls: map[string]int{}}
	s := New(api, freshTable(t, client), Options{})
	ctx := context.Background()
	cohort := func(seg string, day int64, arm holdout.Arm, users int64) ports.Outcome {
		return ports.Outcome{OutcomeKey: ports.OutcomeKey{App: "shop", Segment: seg, JoinDay: day, Arm: arm},
			OutcomeCounts: ports.OutcomeCounts{Users: users, Reengaged1d: 1}}
	}
	deltas := []ports.Outcome{
		cohort("cart", 20000, holdout.Treated, 5), cohort("cart", 20000, holdout.Holdout, 1),
		cohort("cart", 20000, holdout.Treated, 2), // the same cohort again: merged
		cohort("cart", 20001, holdout.Treated, 1),
		cohort("lapsed", 20000, holdout.Holdout, 3),
		{OutcomeKey: ports.OutcomeKey{App: "shop", Segment: "vip", JoinDay: 20000}}, // nothing to add: no call
	}
	if err := s.AddOutcomes(ctx, deltas); err != nil {
		t.Fatal(err)
	}
	if got, want := api.take(), "map[UpdateItem:3]"; got != want {
		t.Errorf("requests %s, want %s (one per audience and day)", got, want)
	}
	if n := OutcomeItemWrites(deltas); n != 3 {
		t.Errorf("OutcomeItemWrites = %d, want the 3 calls made", n)
	}
	got, err := s.Outcomes(ctx, "shop", "cart", 20000, 20000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Arm != holdout.Treated || got[0].Users != 7 || got[0].Reengaged1d != 2 ||
		got[1].Arm != holdout.Holdout || got[1].Users != 1 {
		t.Errorf("cart on day 20000: %+v, want treated 7 users (2 re-engaged) then holdout 1", got)
	}
}

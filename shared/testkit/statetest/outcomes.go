package statetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/ports"
)

// RunOutcomes runs the outcome counter cases, each on a fresh, empty store from newStore.
func RunOutcomes(t *testing.T, newStore func(t *testing.T) ports.OutcomeStore) {
	for _, c := range outcomeCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var outcomeCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s ports.OutcomeStore)
}{
	{"outcome deltas add up per cohort", outcomesAddUp},
	{"outcomes read one audience's days in day and arm order", outcomesRange},
	{"invalid outcome input is rejected and changes nothing", invalidOutcomes},
}

func cohort(segment string, day int64, arm holdout.Arm) ports.OutcomeKey {
	return ports.OutcomeKey{App: app, Segment: segment, JoinDay: day, Arm: arm}
}

func outcomesAddUp(ctx context.Context, t *testing.T, s ports.OutcomeStore) {
	k := cohort("vip", 20_500, holdout.Holdout)
	first := []ports.Outcome{
		{OutcomeKey: k, OutcomeCounts: ports.OutcomeCounts{Users: 2, Reengaged1d: 1}},
		{OutcomeKey: k, OutcomeCounts: ports.OutcomeCounts{Users: 1, RevenueMicros: 9_990_000, Purchasers28d: 1}},
		{OutcomeKey: cohort("vip", 20_500, holdout.Treated), OutcomeCounts: ports.OutcomeCounts{}},
	}
	if err := s.AddOutcomes(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOutcomes(ctx, nil); err != nil {
		t.Fatalf("no deltas: %v", err)
	}
	second := []ports.Outcome{{OutcomeKey: k, OutcomeCounts: ports.OutcomeCounts{Reengaged1d: 1, Reengaged7d: 3,
		Reengaged28d: 4, RevenueMicros: 1 << 40}}}
	if err := s.AddOutcomes(ctx, second); err != nil {
		t.Fatal(err)
	}
	got, err := s.Outcomes(ctx, app, "vip", 20_500, 20_500)
	want := []ports.Outcome{{OutcomeKey: k, OutcomeCounts: ports.OutcomeCounts{Users: 3, Reengaged1d: 2, Reengaged7d: 3,
		Reengaged28d: 4, Purchasers28d: 1, RevenueMicros: 9_990_000 + 1<<40}}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Outcomes = %+v, %v; want %+v (a zero delta writes no cohort)", got, err, want)
	}
}

func outcomesRange(ctx context.Context, t *testing.T, s ports.OutcomeStore) {
	one := ports.OutcomeCounts{Users: 1}
	var deltas []ports.Outcome
	for _, k := range []ports.OutcomeKey{
		cohort("vip", 12, holdout.Holdout), cohort("vip", 10, holdout.Treated), cohort("vip", 11, holdout.Holdout),
		cohort("vip", 9, holdout.Treated), cohort("vip", 12, holdout.Treated), cohort("vip", 13, holdout.Holdout),
		cohort("vip", 100, holdout.Treated), cohort("engaged", 11, holdout.Treated),
		{App: "other", Segment: "vip", JoinDay: 11, Arm: holdout.Treated},
	} {
		deltas = append(deltas, ports.Outcome{OutcomeKey: k, OutcomeCounts: one})
	}
	if err := s.AddOutcomes(ctx, deltas); err != nil {
		t.Fatal(err)
	}
	got, err := s.Outcomes(ctx, app, "vip", 10, 12)
	want := []ports.Outcome{
		{OutcomeKey: cohort("vip", 10, holdout.Treated), OutcomeCounts: one},
		{OutcomeKey: cohort("vip", 11, holdout.Holdout), OutcomeCounts: one},
		{OutcomeKey: cohort("vip", 12, holdout.Treated), OutcomeCounts: one},
		{OutcomeKey: cohort("vip", 12, holdout.Holdout), OutcomeCounts: one},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Outcomes(vip, 10..12) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.Outcomes(ctx, app, "lapsed_7d", 0, storecheck.MaxJoinDay); err != nil || len(got) != 0 {
		t.Fatalf("an audience without counters: %+v, %v", got, err)
	}
}

func invalidOutcomes(ctx context.Context, t *testing.T, s ports.OutcomeStore) {
	good := ports.Outcome{OutcomeKey: cohort("vip", 1, holdout.Treated), OutcomeCounts: ports.OutcomeCounts{Users: 1}}
	with := func(f func(*ports.OutcomeKey)) []ports.Outcome {
		bad := good
		f(&bad.OutcomeKey)
		return []ports.Outcome{good, bad}
	}
	calls := map[string]func() error{
		"app with #":          func() error { return s.AddOutcomes(ctx, with(func(k *ports.OutcomeKey) { k.App = "a#b" })) },
		"empty segment":       func() error { return s.AddOutcomes(ctx, with(func(k *ports.OutcomeKey) { k.Segment = "" })) },
		"negative day":        func() error { return s.AddOutcomes(ctx, with(func(k *ports.OutcomeKey) { k.JoinDay = -1 })) },
		"day past six digits": func() error { return s.AddOutcomes(ctx, with(func(k *ports.OutcomeKey) { k.JoinDay = 1_000_000 })) },
		"unknown arm":         func() error { return s.AddOutcomes(ctx, with(func(k *ports.OutcomeKey) { k.Arm = 2 })) },
		"days out of order":   func() error { _, err := s.Outcomes(ctx, app, "vip", 5, 4); return err },
		"read without app":    func() error { _, err := s.Outcomes(ctx, "", "vip", 0, 1); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, storecheck.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	if got, err := s.Outcomes(ctx, app, "vip", 0, storecheck.MaxJoinDay); err != nil || len(got) != 0 {
		t.Fatalf("rejected calls wrote %+v (%v)", got, err)
	}
}

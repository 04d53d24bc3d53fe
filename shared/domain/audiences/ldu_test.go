package audiences

import (
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// A user under Limited Data Use (events or explicit decision) gets no row and no desired
// audience, whatever their segments; their removal row is still built, so the sync can take
// them out of an audience they are in. Holds in both arms: a holdout user under LDU is not
// uploaded to the holdout audience either.
func TestLimitedDataUseLeavesUsersOut(t *testing.T) {
	a := sample(t)
	for _, arm := range holdout.Arms {
		t.Run(arm.String(), func(t *testing.T) { testLimitedDataUseLeavesUsersOut(t, a, keyInArm(t, a, "cart_abandoner", arm)) })
	}
}

func testLimitedDataUseLeavesUsersOut(t *testing.T, a *AppAudiences, userKey string) {
	cart, _ := a.Audience("cart_abandoner")
	want := []string{"cart_abandoner"}
	if a.Assigner("cart_abandoner").Arm(userKey) == holdout.Holdout {
		cart, want = cart.Holdout(), []string{"cart_abandoner:holdout"}
	}
	st := consented()
	st.Phone = segments.HashedID{Hash: hashAtIngest(t, identity.Phone, "15559876543", ""), At: 1}
	if _, ok := cart.Row(userKey, &st); !ok || !slices.Equal(a.DesiredFor(userKey, []string{"cart_abandoner"}, &st), want) {
		t.Fatalf("without LDU the user belongs in %v", want)
	}
	events, decided := st, st
	events.LDU = segments.LDU{At: 2, On: true}
	decided.LDUDecision = segments.LDU{At: 2, On: true}
	for name, s := range map[string]*segments.State{"events": &events, "explicit decision": &decided} {
		if row, ok := cart.Row(userKey, s); ok || row != nil {
			t.Errorf("%s: Row = %q, %v; want no row", name, row, ok)
		}
		if got := a.DesiredFor(userKey, []string{"cart_abandoner"}, s); got != nil {
			t.Errorf("%s: DesiredFor = %v, want none", name, got)
		}
		if _, ok := cart.RemovalRow(userKey, s); !ok {
			t.Errorf("%s: no removal row", name)
		}
	}
	if got := a.DesiredFor(userKey, []string{"cart_abandoner"}, nil); !slices.Equal(got, want) {
		t.Errorf("DesiredFor without a state = %v, want the segments' audiences", got)
	}
}

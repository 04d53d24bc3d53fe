package audiences

import (
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// A user under Limited Data Use (events or explicit decision) gets no row and no desired
// audience, whatever their segments; their removal row is still built, so the sync can take
// them out of an audience they are in.
func TestLimitedDataUseLeavesUsersOut(t *testing.T) {
	a := sample(t)
	cart, _ := a.Audience("cart_abandoner")
	st := consented()
	st.Phone = segments.HashedID{Hash: hashAtIngest(t, identity.Phone, "15559876543", ""), At: 1}
	if _, ok := cart.Row(userKey, &st); !ok || !slices.Equal(a.DesiredFor([]string{"cart_abandoner"}, &st), []string{"cart_abandoner"}) {
		t.Fatal("without LDU the user belongs in the audience")
	}
	events, decided := st, st
	events.LDU = segments.LDU{At: 2, On: true}
	decided.LDUDecision = segments.LDU{At: 2, On: true}
	for name, s := range map[string]*segments.State{"events": &events, "explicit decision": &decided} {
		if row, ok := cart.Row(userKey, s); ok || row != nil {
			t.Errorf("%s: Row = %q, %v; want no row", name, row, ok)
		}
		if got := a.DesiredFor([]string{"cart_abandoner"}, s); got != nil {
			t.Errorf("%s: DesiredFor = %v, want none", name, got)
		}
		if _, ok := cart.RemovalRow(userKey, s); !ok {
			t.Errorf("%s: no removal row", name)
		}
	}
	if got := a.DesiredFor([]string{"cart_abandoner"}, nil); !slices.Equal(got, []string{"cart_abandoner"}) {
		t.Errorf("DesiredFor without a state = %v, want the segments' audiences", got)
	}
}

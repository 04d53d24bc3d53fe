package statetest

import (
	"context"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// accountPauses: an ad account's pause reads back to the millisecond with its reason; a
// shorter pause never replaces a longer one, a longer one does; accounts are independent; an
// invalid account id is rejected.
func accountPauses(ctx context.Context, t *testing.T, s ports.AudienceSyncStore) {
	const acct, other = "act_1001", "act_2002"
	if _, ok, err := s.GetAccountPause(ctx, acct); err != nil || ok {
		t.Fatalf("fresh store: GetAccountPause = ok %v, err %v; want none", ok, err)
	}
	get := func(account string) ports.AccountPause {
		t.Helper()
		p, ok, err := s.GetAccountPause(ctx, account)
		if err != nil || !ok {
			t.Fatalf("GetAccountPause(%s) = ok %v, err %v", account, ok, err)
		}
		return p
	}
	extend := func(p ports.AccountPause) {
		t.Helper()
		if err := s.ExtendAccountPause(ctx, p); err != nil {
			t.Fatalf("ExtendAccountPause(%+v): %v", p, err)
		}
	}
	long := at(30*time.Minute + 250*time.Millisecond)
	extend(ports.AccountPause{AdAccountID: acct, NotBefore: long, Reason: "usage 91%"})
	if p := get(acct); !p.NotBefore.Equal(long) || p.Reason != "usage 91%" || p.AdAccountID != acct {
		t.Fatalf("after extend: %+v, want not before %v, reason usage 91%%", p, long)
	}
	extend(ports.AccountPause{AdAccountID: acct, NotBefore: at(5 * time.Minute), Reason: "shorter"})
	if p := get(acct); !p.NotBefore.Equal(long) || p.Reason != "usage 91%" {
		t.Fatalf("a shorter pause replaced a longer one: %+v", p)
	}
	longer := at(time.Hour)
	extend(ports.AccountPause{AdAccountID: acct, NotBefore: longer, Reason: "throttled"})
	if p := get(acct); !p.NotBefore.Equal(longer) || p.Reason != "throttled" {
		t.Fatalf("a longer pause did not replace the stored one: %+v", p)
	}
	if _, ok, err := s.GetAccountPause(ctx, other); err != nil || ok {
		t.Fatalf("another account: ok %v, err %v; want none", ok, err)
	}
	for _, bad := range []string{"", "1001", "act_", "act_12#3"} {
		if err := s.ExtendAccountPause(ctx, ports.AccountPause{AdAccountID: bad, NotBefore: longer}); err == nil {
			t.Errorf("ExtendAccountPause(%q) accepted", bad)
		}
		if _, _, err := s.GetAccountPause(ctx, bad); err == nil {
			t.Errorf("GetAccountPause(%q) accepted", bad)
		}
	}
}

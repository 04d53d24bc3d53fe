package main

import (
	"context"
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
)

// status shows held removals and audiences Meta deleted; create re-creates a deleted audience
// only on --recreate-gone, with a new id and a full refresh due at once.
func TestAudiencesHeldAndGone(t *testing.T) {
	h, store, sb := audiencesEnv(t)
	ctx := context.Background()
	h.mustRun(exitOK, "audiences", "create")
	put := func(segment string, edit func(*ports.AudienceSyncState)) ports.AudienceSyncState {
		t.Helper()
		st, _, err := store.GetAudienceState(ctx, "sample-shop", segment)
		if err != nil {
			t.Fatal(err)
		}
		edit(&st)
		st.Version++
		if err := store.PutAudienceState(ctx, st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// What the sync leaves: cart_abandoner's audience deleted at Meta, vip's removals refused.
	cart := put("cart_abandoner", func(st *ports.AudienceSyncState) {
		st.GoneID, st.GoneAt, st.Size = st.AudienceID, testNow.Unix(), 40
	})
	sb.DeleteAudience(cart.AudienceID)
	put("vip", func(st *ports.AudienceSyncState) {
		st.RemovalsHeld, st.RemovalError, st.RemovalRefusals, st.RemovalSkipRuns = 2, "meta error 2650: Audience Size Too Low", 3, 3
	})

	out := h.mustRun(exitOK, "audiences", "status")
	wantContains(t, out, "sample-shop/cart_abandoner: audience "+cart.AudienceID+" was deleted at Meta (2026-03-09T10:00:00Z); nothing is sent to it: re-create it with retarget audiences create --recreate-gone")
	wantContains(t, out, "sample-shop/vip: 2 removal(s) held, next attempt in 4 sync run(s); Meta: meta error 2650: Audience Size Too Low")

	out = h.mustRun(exitOK, "audiences", "create")
	tableRow(t, out, "sample-shop", "cart_abandoner", "Cart", "abandoners", "act_1234567890", "no", cart.AudienceID, "deleted", "at", "Meta")
	if len(sb.Audiences()) != 11 { // 6 audiences and their holdouts, less the deleted one
		t.Fatalf("%d audiences at Meta, want 11 (nothing re-created without --recreate-gone)", len(sb.Audiences()))
	}

	out = h.mustRun(exitOK, "audiences", "create", "--recreate-gone")
	st, _, _ := store.GetAudienceState(ctx, "sample-shop", "cart_abandoner")
	if st.AudienceID == "" || st.AudienceID == cart.AudienceID || st.Gone() || st.Size != 0 || st.LastRefreshAt != 1 || st.Version != cart.Version+1 {
		t.Fatalf("state after re-create %+v (old id %s)", st, cart.AudienceID)
	}
	tableRow(t, out, "sample-shop", "cart_abandoner", "Cart", "abandoners", "act_1234567890", "no", st.AudienceID, "re-created")
	if len(sb.Audiences()) != 12 {
		t.Fatalf("%d audiences at Meta, want 12", len(sb.Audiences()))
	}
	wantNotContains(t, h.mustRun(exitOK, "audiences", "status"), "deleted at Meta")
}

package metagraph

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

const foreignAccount = "act_999"

func newAuditWorld(t *testing.T) *adsWorld {
	t.Helper()
	return newAdsWorld(t, metasandbox.AdsConfig{}, func(c *metasandbox.Config) {
		c.AdAccounts = append(c.AdAccounts, foreignAccount)
	})
}

func TestAudienceHolders(t *testing.T) {
	w := newAuditWorld(t)
	ctx := context.Background()
	aud := w.audience(t, "cart", 0)

	got, err := w.client.AudienceAdAccounts(ctx, aud)
	if err != nil || !slices.Equal(got, []string{testAccount}) {
		t.Fatalf("owner only: %v %v", got, err)
	}
	shared, err := w.client.AudienceSharedAccounts(ctx, aud)
	if err != nil || len(shared) != 0 {
		t.Fatalf("no shares: %v %v", shared, err)
	}

	// 450 accounts of the same business and one of another: 3 pages of /adaccounts.
	want := []string{testAccount}
	for i := range 450 {
		acc := fmt.Sprintf("act_%d", 5000+i)
		if err := w.sb.ShareAudience(aud, acc, ""); err != nil {
			t.Fatal(err)
		}
		want = append(want, acc)
	}
	if err := w.sb.ShareAudience(aud, "777", "biz-other"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "act_777")
	got, err = w.client.AudienceAdAccounts(ctx, aud)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("holders: %d %v", len(got), err)
	}
	if n := len(w.requests(t, "/"+aud+"/adaccounts")); n != 1+3 {
		t.Fatalf("%d requests to /adaccounts", n)
	}
	shared, err = w.client.AudienceSharedAccounts(ctx, aud)
	if err != nil || !slices.Equal(shared, []string{"act_777"}) {
		t.Fatalf("other business: %v %v", shared, err)
	}

	// A deleted audience is Meta's 100/33.
	w.sb.DeleteAudience(aud)
	if _, err := w.client.AudienceAdAccounts(ctx, aud); classOf(err) != ports.CAPIInvalidParameter {
		t.Fatalf("deleted: %v", err)
	}
	if _, err := w.client.AudienceAds(ctx, "12/3"); classOf(err) != ports.CAPIInvalidParameter {
		t.Fatalf("bad id: %v", err)
	}
}

func TestAudienceAds(t *testing.T) {
	w := newAuditWorld(t)
	ctx := context.Background()
	aud := w.audience(t, "cart", 0)
	other := w.audience(t, "other", 0)

	ours := w.addAdSet(t, metasandbox.AdSet{Name: "ours", Included: []string{aud}})
	paused := w.addAdSet(t, metasandbox.AdSet{Name: "paused", Included: []string{aud}, Status: metasandbox.StatusPaused})
	w.addAdSet(t, metasandbox.AdSet{Name: "excludes only", Excluded: []string{aud}, Included: []string{other}})
	w.addAdSet(t, metasandbox.AdSet{Name: "deleted", Included: []string{aud}, Status: metasandbox.StatusDeleted})
	foreign, err := w.sb.AddAdSet(metasandbox.AdSet{AdAccount: foreignAccount, Name: "theirs", CampaignID: "23849999999999999", Included: []string{aud}})
	if err != nil {
		t.Fatal(err)
	}
	// 250 more ads on our ad set: the edge takes two pages.
	extra := map[string]bool{}
	for range 250 {
		id, err := w.sb.AddAd(ours.ID)
		if err != nil {
			t.Fatal(err)
		}
		extra[id] = true
	}

	uses, err := w.client.AudienceAds(ctx, aud)
	if err != nil {
		t.Fatal(err)
	}
	if len(uses) != 1+250+1+1 {
		t.Fatalf("%d ads", len(uses))
	}
	if n := len(w.requests(t, "/"+aud+"/ads")); n != 2 {
		t.Fatalf("%d requests to /ads", n)
	}
	bySet := map[string]int{}
	for _, u := range uses {
		bySet[u.AdSetID]++
		switch u.AdSetID {
		case ours.ID, paused.ID:
			if u.AdAccountID != testAccount || u.CampaignID != metasandbox.DefaultAutoCampaignID {
				t.Fatalf("%+v", u)
			}
		case foreign.ID:
			if u.AdAccountID != foreignAccount || u.CampaignID != "23849999999999999" || u.AdID == "" {
				t.Fatalf("%+v", u)
			}
		default:
			t.Fatalf("an ad of an ad set that does not include the audience, or is deleted: %+v", u)
		}
	}
	if bySet[ours.ID] != 251 || bySet[paused.ID] != 1 || bySet[foreign.ID] != 1 {
		t.Fatalf("%v", bySet)
	}
	// The other audience is used by the ad set that excludes ours.
	uses, err = w.client.AudienceAds(ctx, other)
	if err != nil || len(uses) != 1 {
		t.Fatalf("other: %v %v", uses, err)
	}
}

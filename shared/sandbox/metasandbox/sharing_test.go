package metasandbox

import (
	"strings"
	"testing"
)

func TestAudienceHoldersEdges(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{})
	aud := members(t, sb, "cart", 0)
	if err := sb.ShareAudience(aud, "act_"+otherAdAccount, ""); err != nil {
		t.Fatal(err)
	}
	if err := sb.ShareAudience(aud, "777", "b-9"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]string{{aud, testAdAccount}, {aud, "act_x"}, {"404", "777"}} {
		if sb.ShareAudience(bad[0], bad[1], "") == nil {
			t.Errorf("share %v taken", bad)
		}
	}
	r := mustOKAds(t, get(t, sb, "/v26.0/"+aud+"/adaccounts", nil))
	var ids []string
	for _, d := range r.data() {
		ids = append(ids, d["id"].(string))
	}
	if strings.Join(ids, ",") != "act_"+testAdAccount+",act_"+otherAdAccount+",act_777" {
		t.Fatalf("%s", r.raw)
	}
	r = mustOKAds(t, get(t, sb, "/v26.0/"+aud+"/shared_account_info", nil))
	if d := r.data(); len(d) != 1 || d[0]["account_id"] != "777" || d[0]["business_id"] != "b-9" {
		t.Fatalf("%s", r.raw)
	}
	if r := get(t, sb, "/v26.0/"+aud+"/adaccounts", map[string]string{"fields": "nope"}); r.errCode() != 100 {
		t.Fatalf("unknown field: %s", r.raw)
	}
	sb.DeleteAudience(aud)
	if r := get(t, sb, "/v26.0/"+aud+"/shared_account_info", nil); r.errCode() != 100 || r.errSubcode() != 33 {
		t.Fatalf("deleted: %s", r.raw)
	}
	sb.Reset()
	if len(sb.AudienceShares(aud)) != 0 {
		t.Fatal("Reset kept the shares")
	}
}

func TestAudienceAdsEdge(t *testing.T) {
	sb, _ := newAdsSandbox(t, AdsConfig{AutoAdSets: true})
	aud := members(t, sb, "cart", 0)
	auto := sb.AdSets(testAdAccount)[0]
	other, err := sb.AddAdSet(AdSet{AdAccount: otherAdAccount, Name: "theirs", CampaignID: "23849999999999999", Included: []string{aud}})
	if err != nil {
		t.Fatal(err)
	}
	sb.UpdateAdSet(other.ID, func(a *AdSet) { a.Status = StatusPaused })
	extra, err := sb.AddAd(other.ID)
	if err != nil {
		t.Fatal(err)
	}
	// An ad set that only excludes the audience does not use it.
	if _, err := sb.AddAdSet(AdSet{AdAccount: testAdAccount, Name: "excludes", Excluded: []string{aud}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.AddAd("404"); err == nil {
		t.Fatal("an ad on no ad set")
	}

	r := mustOKAds(t, get(t, sb, "/v26.0/"+aud+"/ads", map[string]string{"fields": "id,adset_id,campaign_id,account_id,effective_status"}))
	d := r.data()
	if len(d) != 3 {
		t.Fatalf("%s", r.raw)
	}
	if d[0]["adset_id"] != auto.ID || d[0]["account_id"] != testAdAccount || d[0]["effective_status"] != "ACTIVE" {
		t.Fatalf("the auto ad set's ad: %v", d[0])
	}
	if d[1]["adset_id"] != other.ID || d[1]["account_id"] != otherAdAccount || d[1]["effective_status"] != "ADSET_PAUSED" ||
		d[2]["id"] != extra || d[1]["id"] == d[2]["id"] {
		t.Fatalf("the other account's ads: %v", d[1:])
	}
	r = mustOKAds(t, get(t, sb, "/v26.0/"+aud+"/ads", map[string]string{"effective_status": `["ACTIVE"]`}))
	if len(r.data()) != 1 {
		t.Fatalf("filter: %s", r.raw)
	}
	if r := get(t, sb, "/v26.0/"+aud+"/ads", map[string]string{"effective_status": `["NOPE"]`}); r.errCode() != 100 {
		t.Fatalf("bad filter: %s", r.raw)
	}
	r = mustOKAds(t, get(t, sb, "/v26.0/"+aud+"/ads", map[string]string{"limit": "2"}))
	if len(r.data()) != 2 || r.next() == "" {
		t.Fatalf("paging: %s", r.raw)
	}
}

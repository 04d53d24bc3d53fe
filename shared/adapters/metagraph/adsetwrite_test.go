package metagraph

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

func capiErr(t *testing.T, err error) *ports.CAPIError {
	t.Helper()
	var e *ports.CAPIError
	if !errors.As(err, &e) {
		t.Fatalf("not a *ports.CAPIError: %v", err)
	}
	return e
}

func TestAdSetReadAndUpdate(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{})
	ctx := context.Background()
	aud := w.audience(t, "cart", 0)
	hold := w.audience(t, "cart (holdout)", 0)
	a := w.addAdSet(t, metasandbox.AdSet{Name: "retarget", DailyBudget: 1500, Included: []string{aud}, Excluded: []string{hold}})

	got, err := w.client.AdSet(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := ports.AdSet{ID: a.ID, Name: "retarget", CampaignID: metasandbox.DefaultAutoCampaignID, Status: "ACTIVE",
		EffectiveStatus: "ACTIVE", DailyBudget: 1500, Included: []string{aud}, Excluded: []string{hold}}
	if got.ID != want.ID || got.Name != want.Name || got.CampaignID != want.CampaignID || got.Status != want.Status ||
		got.EffectiveStatus != want.EffectiveStatus || got.DailyBudget != want.DailyBudget ||
		!slices.Equal(got.Included, want.Included) || !slices.Equal(got.Excluded, want.Excluded) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	if err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, Status: ports.AdSetPaused, DailyBudget: 3000}); err != nil {
		t.Fatal(err)
	}
	if s := w.sb.AdSets(testAccount)[0]; s.Status != metasandbox.StatusPaused || s.DailyBudget != 3000 {
		t.Fatalf("sandbox: %+v", s)
	}
	if err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, Status: ports.AdSetActive}); err != nil {
		t.Fatal(err)
	}
	got, err = w.client.AdSet(ctx, a.ID)
	if err != nil || got.Status != "ACTIVE" || got.DailyBudget != 3000 {
		t.Fatalf("after the writes: %+v, %v", got, err)
	}
	// Credentials only in bodies; the write's body carries the proof and the fields.
	if n := len(w.requests(t, "/"+a.ID)); n != 4 {
		t.Fatalf("%d requests", n)
	}
	w.mu.Lock()
	body := w.bodies["/"+DefaultVersion+"/"+a.ID]
	w.mu.Unlock()
	if !strings.Contains(body, "appsecret_proof") || !strings.Contains(body, `"method":"GET"`) {
		t.Fatalf("first body: %s", body)
	}
}

func TestUpdateAdSetRefusedLocally(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{})
	ctx := context.Background()
	for _, ch := range []ports.AdSetChange{
		{AdSetID: "123"},
		{AdSetID: "123", Status: "DELETED"},
		{AdSetID: "123", DailyBudget: -5},
		{AdSetID: "12/3", Status: ports.AdSetPaused},
	} {
		if err := w.client.UpdateAdSet(ctx, ch); classOf(err) != ports.CAPIInvalidParameter {
			t.Errorf("%+v: %v", ch, err)
		}
	}
	if _, err := w.client.AdSet(ctx, "act_1"); classOf(err) != ports.CAPIInvalidParameter {
		t.Errorf("ad set id: %v", err)
	}
	if n := len(w.requests(t, "")); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestUpdateAdSetBudgetChangeLimit(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{})
	ctx := context.Background()
	a := w.addAdSet(t, metasandbox.AdSet{Name: "s", DailyBudget: 1000})
	for i := range metasandbox.BudgetChangesPerHour {
		if err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, DailyBudget: int64(2000 + i*100)}); err != nil {
			t.Fatal(err)
		}
		w.now = w.now.Add(5 * time.Minute)
	}
	err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, DailyBudget: 9000})
	e := capiErr(t, err)
	if !errors.Is(err, ErrBudgetChangeLimit) || e.Class != ports.CAPIRateLimited || e.Meta.Code != 17 ||
		!strings.Contains(e.Meta.Message, "User request limit reached") || e.RetryAfter < time.Hour {
		t.Fatalf("%v (class %s, retry after %s)", err, e.Class, e.RetryAfter)
	}
	// The error text keeps Meta's code and message for the audit record.
	if !strings.Contains(err.Error(), "meta error 17") || !strings.Contains(err.Error(), "4 changes per hour") {
		t.Fatalf("text: %v", err)
	}
	// A status write still goes through.
	if err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, Status: ports.AdSetPaused}); err != nil {
		t.Fatal(err)
	}
	// The user-level throttle (17/2446079) on a budget write is a plain rate limit.
	w.sb.FailNextAdSetWrite(17, 2446079, "(#17) User request limit reached")
	w.now = w.now.Add(2 * time.Hour)
	err = w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, DailyBudget: 9000})
	if errors.Is(err, ErrBudgetChangeLimit) || classOf(err) != ports.CAPIRateLimited {
		t.Fatalf("user throttle: %v", err)
	}
	// And so is a 17 answering a status write.
	w.sb.FailNextAdSetWrite(17, 0, "")
	err = w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, Status: ports.AdSetActive})
	if errors.Is(err, ErrBudgetChangeLimit) || classOf(err) != ports.CAPIRateLimited {
		t.Fatalf("status write throttled: %v", err)
	}
}

func TestUpdateAdSetCampaignOwnsBudget(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{})
	ctx := context.Background()
	a := w.addAdSet(t, metasandbox.AdSet{Name: "cbo", CampaignBudget: true})
	err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, DailyBudget: 5000})
	e := capiErr(t, err)
	if !errors.Is(err, ErrCampaignOwnsBudget) || e.Class != ports.CAPIInvalidParameter || e.Meta.Code != 100 ||
		e.Meta.Subcode != 1885621 || !strings.Contains(e.Meta.ErrorUserTitle, "Campaign Already Has a Budget") {
		t.Fatalf("%v (%+v)", err, e.Meta)
	}
	got, err := w.client.AdSet(ctx, a.ID)
	if err != nil || got.DailyBudget != 0 {
		t.Fatalf("%+v %v", got, err)
	}
	if err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, Status: ports.AdSetPaused}); err != nil {
		t.Fatalf("pause: %v", err)
	}
}

func TestUpdateAdSetMetaErrors(t *testing.T) {
	w := newAdsWorld(t, metasandbox.AdsConfig{})
	ctx := context.Background()
	a := w.addAdSet(t, metasandbox.AdSet{Name: "s", DailyBudget: 1000})
	cases := []struct {
		code, subcode int
		msg           string
		class         ports.CAPIErrorClass
	}{
		{200, 0, "(#200) Requires ads_management permission to manage the object", ports.CAPIAuth},
		{10, 0, "(#10) Application does not have permission for this action", ports.CAPIAuth},
		{190, 463, "Error validating access token: Session has expired", ports.CAPIAuth},
		{80004, 0, "(#80004) There have been too many calls to this ad-account.", ports.CAPIRateLimited},
		{613, 1487742, "(#613) Calls to this api have exceeded the rate limit.", ports.CAPIRateLimited},
		{2, 0, "", ports.CAPITransient},
	}
	for _, c := range cases {
		w.sb.FailNextAdSetWrite(c.code, c.subcode, c.msg)
		err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, Status: ports.AdSetPaused})
		e := capiErr(t, err)
		if e.Class != c.class || e.Meta.Code != c.code || e.Meta.Subcode != c.subcode || (c.msg != "" && e.Meta.Message != c.msg) ||
			errors.Is(err, ErrBudgetChangeLimit) || errors.Is(err, ErrCampaignOwnsBudget) {
			t.Errorf("%d/%d: %v (class %s)", c.code, c.subcode, err, e.Class)
		}
	}
	// Sandbox validation: below the minimum is InvalidParameter with Meta's title kept.
	err := w.client.UpdateAdSet(ctx, ports.AdSetChange{AdSetID: a.ID, DailyBudget: 50})
	if e := capiErr(t, err); e.Class != ports.CAPIInvalidParameter || e.Meta.ErrorUserTitle != "Budget Is Too Low" {
		t.Fatalf("minimum: %v", err)
	}
	if s := w.sb.AdSets(testAccount)[0]; s.Status != metasandbox.StatusActive || s.DailyBudget != 1000 {
		t.Fatalf("a refused write changed the ad set: %+v", s)
	}
	// An unknown ad set.
	if _, err := w.client.AdSet(ctx, "23879999999999999"); err == nil {
		t.Fatal("an unknown ad set was read")
	}
}

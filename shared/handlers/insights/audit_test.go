package insights

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/app/audit"
	"github.com/retarget-dev/retarget/shared/ports"
)

// fakeAudit answers who holds and uses an audience; errs fails the ads read of an audience.
type fakeAudit struct {
	holders map[string][]string
	ads     map[string][]ports.AudienceUse
	errs    map[string]error
}

func (f *fakeAudit) AudienceAdAccounts(_ context.Context, id string) ([]string, error) {
	return f.holders[id], nil
}

func (f *fakeAudit) AudienceSharedAccounts(context.Context, string) ([]string, error) {
	return nil, nil
}

func (f *fakeAudit) AudienceAds(_ context.Context, id string) ([]ports.AudienceUse, error) {
	return f.ads[id], f.errs[id]
}

// alertLines returns the ALERT log records of the misuse audit.
func alertLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, "ALERT: ") && rec["kind"] != nil {
			out = append(out, rec)
		}
	}
	return out
}

// TestMisuseAudit: after the pull, one ALERT per finding and AudienceMisuseFindings per
// audience (0 when clean; none when its audit is incomplete and found nothing).
func TestMisuseAudit(t *testing.T) {
	tests := []struct {
		name   string
		meta   func(a *fakeAudit)
		alerts []string // "kind segment audience_id ad_account"
		counts map[string]float64
	}{
		{"clean", func(*fakeAudit) {}, nil,
			map[string]float64{"cart_abandoner": 0, "vip": 0, "lapsed": 0}},
		{"a foreign holder of the cart holdout audience and a foreign ad on vip's", func(a *fakeAudit) {
			a.holders[cartHoldoutID] = []string{"act_1", "act_9"}
			a.ads[vipID] = []ports.AudienceUse{{AdID: "7", AdSetID: "70", CampaignID: "700", AdAccountID: "act_9"},
				{AdID: "8", AdSetID: "70", CampaignID: "700", AdAccountID: "act_9"}}
		}, []string{"held_by_foreign_account cart_abandoner 101 act_9", "used_by_foreign_account vip 200 act_9", "used_by_foreign_account vip 200 act_9"},
			map[string]float64{"cart_abandoner": 1, "vip": 2, "lapsed": 0}},
		{"a failed read: an ALERT, and no metric for that audience rather than a false 0", func(a *fakeAudit) {
			a.errs[vipHoldoutID] = errors.New("(#200) permission denied")
		}, []string{"audit_error vip 201 "},
			map[string]float64{"cart_abandoner": 0, "lapsed": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, shopConfig())
			f.ads.adSets["act_1"] = []ports.AdSet{
				adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID}),
				adSet("2", "ACTIVE", []string{vipID}, []string{vipHoldoutID}),
			}
			fa := &fakeAudit{holders: map[string][]string{}, ads: map[string][]ports.AudienceUse{}, errs: map[string]error{}}
			tt.meta(fa)
			f.runner.cfg.Audit = fa
			reps := f.run(t, Request{})

			var alerts []string
			for _, rec := range alertLines(t, f.logs.String()) {
				alerts = append(alerts, strings.Join([]string{rec["kind"].(string), rec["segment"].(string), rec["audience_id"].(string), rec["ad_account"].(string)}, " "))
				if rec["level"] != "ERROR" || rec["app"] != "shop" {
					t.Errorf("alert %v: want level ERROR, app shop", rec)
				}
			}
			if !slices.Equal(alerts, tt.alerts) {
				t.Errorf("alerts\n got %q\nwant %q", alerts, tt.alerts)
			}
			if len(reps[0].Misuse) != len(tt.alerts) {
				t.Errorf("report's misuse %+v, want %d findings", reps[0].Misuse, len(tt.alerts))
			}
			for _, seg := range []string{"cart_abandoner", "vip", "lapsed"} {
				v, ok := emf(t, f.metrics.String(), seg)[MetricAudienceMisuseFindings]
				want, wantOK := tt.counts[seg]
				if ok != wantOK || v != want {
					t.Errorf("%s: %s = %v (emitted %v), want %v (emitted %v)", seg, MetricAudienceMisuseFindings, v, ok, want, wantOK)
				}
			}
		})
	}
}

// TestMisuseAuditFindsWhatThePullSees: the audit reads the same ad sets as the pull (a
// missing holdout exclusion is a finding too).
func TestMisuseAuditFindsWhatThePullSees(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, nil)}
	f.runner.cfg.Audit = &fakeAudit{}
	reps := f.run(t, Request{})
	var kinds []string
	for _, m := range reps[0].Misuse {
		kinds = append(kinds, m.Kind+" "+m.Segment+" "+m.AdSetID)
	}
	if want := []string{audit.KindHoldoutNotExcluded + " cart_abandoner 1"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("misuse %v, want %v", kinds, want)
	}
	if got := emf(t, f.metrics.String(), "cart_abandoner")[MetricAudienceMisuseFindings]; got != 1 {
		t.Errorf("cart_abandoner misuse findings %v, want 1", got)
	}
}

// TestNoAuditWithoutReader: an AdsAPI that cannot read audiences' holders (and no
// Config.Audit) runs no audit and emits no misuse metric.
func TestNoAuditWithoutReader(t *testing.T) {
	f := newFixture(t, shopConfig())
	f.run(t, Request{})
	if strings.Contains(f.metrics.String(), MetricAudienceMisuseFindings) {
		t.Errorf("misuse metric without an audit reader: %s", f.metrics.String())
	}
}

// auditingAds is an AdsAPI that also reads audiences' holders, as the Graph API client does.
type auditingAds struct {
	*fakeAds
	fakeAudit
}

func TestAuditReaderFromMeta(t *testing.T) {
	ads := &auditingAds{fakeAds: &fakeAds{}}
	f := newFixture(t, shopConfig())
	r, err := New(Config{Apps: shopConfig(), Sync: f.state, Spend: f.state, Meta: ads})
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.Audit != ads {
		t.Errorf("Config.Audit = %v, want the Meta client", r.cfg.Audit)
	}
}

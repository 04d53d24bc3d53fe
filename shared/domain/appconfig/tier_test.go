package appconfig

import "testing"

func TestAccessTierBudget(t *testing.T) {
	for _, tt := range []struct {
		doc       string
		audiences int
		tier      string
		want      int
	}{
		{`"meta": {"dataset_id": "1", "ad_account_id": "act_1"}`, 3, TierStandard, 190_000},
		{`"meta": {"dataset_id": "1", "ad_account_id": "act_1", "access_tier": "standard"}`, 3, TierStandard, 190_000},
		{`"meta": {"dataset_id": "1", "ad_account_id": "act_1", "access_tier": "development"}`, 3, TierDevelopment, 5_120},
		{`"meta": {"dataset_id": "1", "ad_account_id": "act_1", "access_tier": "development"}`, 0, TierDevelopment, 5_000},
	} {
		c, err := Parse([]byte(`{"version": 1, "apps": [{"id": "a", "platforms": ["ios"], "api_key": {"name": "k"}, ` + tt.doc + `}]}`))
		if err != nil {
			t.Fatalf("%s: %v", tt.doc, err)
		}
		m := c.Apps[0].Meta
		if m.Tier() != tt.tier {
			t.Errorf("%s: Tier() = %q, want %q", tt.doc, m.Tier(), tt.tier)
		}
		if got := AudienceCallsPerHour(m.Tier(), tt.audiences); got != tt.want {
			t.Errorf("%s, %d audiences: budget %d, want %d", tt.doc, tt.audiences, got, tt.want)
		}
	}
}

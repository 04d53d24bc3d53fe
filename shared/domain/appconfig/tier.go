package appconfig

// Meta access tiers (meta.access_tier): how many Custom Audiences calls Meta allows an ad
// account per hour.
const (
	// TierStandard is Standard access, the default.
	TierStandard = "standard"
	// TierDevelopment is Development access, whose budget grows with the active audiences.
	TierDevelopment = "development"
)

// Hourly Custom Audiences call budgets per ad account: 190,000 calls on Standard access;
// 5,000 + 40 x active audiences on Development access. Source: Marketing API rate limiting,
// https://developers.facebook.com/docs/marketing-api/overview/rate-limiting (custom_audience
// business use case), as summarised in the project's Meta reference notes ("Corrections and
// additions (December 2026)"). Only Meta's answers can confirm an account's actual budget;
// the sync also honours the usage headers.
const (
	StandardAudienceCallsPerHour        = 190_000
	DevelopmentAudienceCallsPerHour     = 5_000
	DevelopmentAudienceCallsPerAudience = 40
)

// Tier returns the app's access tier, TierStandard when unset.
func (m Meta) Tier() string {
	if m.AccessTier == "" {
		return TierStandard
	}
	return m.AccessTier
}

// AudienceCallsPerHour is the hourly Custom Audiences call budget of one ad account on the
// given tier ("" is Standard) with activeAudiences audiences in use.
func AudienceCallsPerHour(tier string, activeAudiences int) int {
	if tier == TierDevelopment {
		return DevelopmentAudienceCallsPerHour + DevelopmentAudienceCallsPerAudience*max(0, activeAudiences)
	}
	return StandardAudienceCallsPerHour
}

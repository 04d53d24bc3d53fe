package appevent

// appEventNames pairs the Meta app SDK's predefined event names with their Conversions API
// names (the Meta Android SDK's own mapping).
var appEventNames = [...][2]string{
	{"fb_mobile_activate_app", "ActivateApp"},
	{"fb_mobile_complete_registration", "CompleteRegistration"},
	{"fb_mobile_content_view", "ViewContent"},
	{"fb_mobile_search", "Search"},
	{"fb_mobile_rate", "Rate"},
	{"fb_mobile_tutorial_completion", "TutorialCompletion"},
	{"fb_mobile_add_to_cart", "AddToCart"},
	{"fb_mobile_add_to_wishlist", "AddToWishlist"},
	{"fb_mobile_initiated_checkout", "InitiateCheckout"},
	{"fb_mobile_add_payment_info", "AddPaymentInfo"},
	{"fb_mobile_purchase", "Purchase"},
	{"fb_mobile_level_achieved", "LevelAchieved"},
	{"fb_mobile_achievement_unlocked", "AchievementUnlocked"},
	{"fb_mobile_spent_credits", "SpentCredits"},
}

// eventNameSet finds a predefined name's position in appEventNames.
var eventNameSet = func() *keySet {
	names := make([]string, len(appEventNames))
	for i, n := range appEventNames {
		names[i] = n[0]
	}
	return newKeySet(names...)
}()

// CAPIName returns the Conversions API name of an app event name: the standard name for the
// SDK's fb_mobile_* names, the name itself for standard and custom names.
func CAPIName(name string) string {
	if i := eventNameSet.index(name); i >= 0 {
		return appEventNames[i][1]
	}
	return name
}

// maxEventNameLen is Meta's limit for custom event names.
const maxEventNameLen = 40

// checkEventName validates an event name: a known fb_mobile_* name, or a standard or custom name
// matching ^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$. Names starting with "fb_" are reserved by Meta for
// its predefined events, so an unknown one is almost certainly a typo and is refused.
func checkEventName(name string) (code, reason string) {
	if eventNameSet.index(name) >= 0 {
		return "", ""
	}
	if len(name) > maxEventNameLen {
		return "too_long", "at most 40 characters (Meta's limit for event names)"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' ||
			(i > 0 && (c == ' ' || c == '-'))
		if !ok {
			return "invalid", "must match ^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$ (letters, digits, '_', and ' ' or '-' after the first character)"
		}
	}
	if len(name) >= 3 && name[:3] == "fb_" {
		return "unknown", "unknown fb_ event name: fb_ is reserved for Meta's predefined events (e.g. fb_mobile_purchase)"
	}
	return "", ""
}

package ports

import "errors"

// Graph's answer for an object that does not exist (or cannot be seen): code 100, subcode 33,
// "Unsupported post request. Object with ID ... does not exist". Meta deletes Custom Audiences
// no active ad set used for two years and answers it for them (reference meta-api.md,
// "Corrections and additions": audiences disappear; https://developers.facebook.com/docs/marketing-api/reference/custom-audience).
const (
	metaCodeInvalidParameter = 100
	metaSubcodeObjectMissing = 33
)

// IsAudienceGone reports whether err is Meta's answer for an audience that no longer exists
// (100/33) to a call on that audience (/users, /usersreplace). On the ad account's
// customaudiences edge the same answer means an unknown ad account: do not use it there.
func IsAudienceGone(err error) bool {
	var e *CAPIError
	return errors.As(err, &e) && e.Meta.Code == metaCodeInvalidParameter && e.Meta.Subcode == metaSubcodeObjectMissing
}

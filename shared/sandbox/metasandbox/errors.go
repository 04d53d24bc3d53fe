package metasandbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Graph error codes the sandbox answers with (the "code" field of the error envelope).
const (
	// CodeServiceUnavailable is Meta's "An unexpected error has occurred" (transient).
	CodeServiceUnavailable = 2
	// CodeInvalidParameter covers every request and event validation failure, and an unknown
	// dataset (with SubcodeObjectNotFound).
	CodeInvalidParameter = 100
	// CodeAccessToken means the access token is missing, invalid or expired.
	CodeAccessToken = 190
	// CodeUnknownPath answers a path that is not /{version}/{dataset}/events.
	CodeUnknownPath = 2500
	// CodeDeprecatedVersion answers a Graph version other than Config.Version.
	CodeDeprecatedVersion = 2635
)

// Error subcodes (the "error_subcode" field). Only SubcodeObjectNotFound, SubcodeSessionExpired,
// SubcodeEventTooOld, SubcodeNotHashed and SubcodeInsufficientCustomerInfo are values Meta is
// known to send for these cases; the others are the sandbox's best guess (see the package doc).
const (
	// SubcodeObjectNotFound: the dataset id is unknown or not reachable with this token.
	SubcodeObjectNotFound = 33
	// SubcodeSessionExpired: the access token has expired (with CodeAccessToken).
	SubcodeSessionExpired = 463
	// SubcodeEventTooOld: event_time is more than 7 days in the past.
	SubcodeEventTooOld = 2804003
	// SubcodeEventInFuture: event_time is more than a minute in the future (guessed value).
	SubcodeEventInFuture = 2804004
	// SubcodeNotHashed: a user_data key that must be a SHA-256 hash is not one.
	SubcodeNotHashed = 2804016
	// SubcodeInvalidValue: a field is missing, of the wrong type or out of range (guessed
	// value; Meta's catch-all for invalid event fields).
	SubcodeInvalidValue = 2804019
	// SubcodeInsufficientCustomerInfo: user_data carries no customer information at all.
	SubcodeInsufficientCustomerInfo = 2804050
)

// graphError is one error as Meta sends it inside {"error": ...}. Meta leaves error_subcode,
// error_user_title and error_user_msg out when they do not apply; so does the sandbox.
type graphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode,omitempty"`
	IsTransient bool   `json:"is_transient"`
	UserTitle   string `json:"error_user_title,omitempty"`
	UserMsg     string `json:"error_user_msg,omitempty"`
	FBTraceID   string `json:"fbtrace_id"`

	// status is the HTTP status; 0 means 400, which Graph uses for every error it describes.
	status int
	// header holds extra response headers (usage headers, WWW-Authenticate).
	header http.Header
}

func (e *graphError) httpStatus() int {
	if e.status == 0 {
		return http.StatusBadRequest
	}
	return e.status
}

func (e *graphError) withHeader(key, value string) *graphError {
	if e.header == nil {
		e.header = http.Header{}
	}
	e.header.Set(key, value)
	return e
}

// --- constructors, one per answer; messages follow Meta's wording where it is known ---

func errDeprecatedVersion(got, want string) *graphError {
	return &graphError{Type: "OAuthException", Code: CodeDeprecatedVersion,
		Message: fmt.Sprintf("(#%d) You are calling a deprecated version of the Ads API (%s). Please update to the latest version: %s.",
			CodeDeprecatedVersion, got, want)}
}

func errUnknownPath(path string) *graphError {
	return &graphError{Type: "OAuthException", Code: CodeUnknownPath,
		Message: "Unknown path components: " + path}
}

func errUnsupportedMethod(method, objectID string) *graphError {
	return &graphError{Type: "GraphMethodException", Code: CodeInvalidParameter, Subcode: SubcodeObjectNotFound,
		Message: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
			strings.ToLower(method), objectID)}
}

func errUnknownDataset(id string) *graphError {
	return errUnsupportedMethod(http.MethodPost, id)
}

// tokenError is a 190. Graph adds a WWW-Authenticate header to those.
func tokenError(subcode int, msg string) *graphError {
	e := &graphError{Type: "OAuthException", Code: CodeAccessToken, Subcode: subcode, Message: msg}
	return e.withHeader("WWW-Authenticate", fmt.Sprintf(`OAuth "Facebook Platform" "invalid_token" %q`, msg))
}

func errMissingToken() *graphError {
	// Meta answers this one with code 104; the sandbox uses 190 so that every token problem
	// has the one code the forwarder alerts on (see the package doc).
	return tokenError(0, "An access token is required to request this resource.")
}

func errInvalidToken() *graphError {
	return tokenError(0, "Invalid OAuth access token - Cannot parse access token")
}

func errTokenExpired(now time.Time) *graphError {
	const layout = "Monday, 02-Jan-06 15:04:05 MST"
	return tokenError(SubcodeSessionExpired, fmt.Sprintf(
		"Error validating access token: Session has expired on %s. The current time is %s.",
		now.Add(-time.Hour).UTC().Format(layout), now.UTC().Format(layout)))
}

func errMissingProof() *graphError {
	return &graphError{Type: "OAuthException", Code: CodeInvalidParameter,
		Message: "API calls from the server require an appsecret_proof argument"}
}

func errInvalidProof() *graphError {
	return &graphError{Type: "OAuthException", Code: CodeInvalidParameter,
		Message: "Invalid appsecret_proof provided in the API argument"}
}

// errParam is a Graph parameter error without a subcode ("(#100) param data must be an array.").
func errParam(msg string) *graphError {
	return &graphError{Type: "OAuthException", Code: CodeInvalidParameter, Message: fmt.Sprintf("(#%d) %s", CodeInvalidParameter, msg)}
}

// errInvalid is the "Invalid parameter" error CAPI answers for bad events.
func errInvalid(subcode int, title, msg string) *graphError {
	return &graphError{Type: "OAuthException", Code: CodeInvalidParameter, Subcode: subcode,
		Message: "Invalid parameter", UserTitle: title, UserMsg: msg}
}

func errServer() *graphError {
	return &graphError{Type: "OAuthException", Code: CodeServiceUnavailable, IsTransient: true,
		Message: "An unexpected error has occurred. Please retry your request later.", status: http.StatusInternalServerError}
}

// errRateLimit is a throttling error with Meta's usage headers, every counter at 100%.
func errRateLimit(code int, dataset string, regainMinutes int) *graphError {
	msg := fmt.Sprintf("(#%d) Request limit reached", code)
	switch {
	case code == 4:
		msg = "(#4) Application request limit reached"
	case code == 17:
		msg = "(#17) User request limit reached"
	case code == 32:
		msg = "(#32) Page request limit reached"
	case code == 613:
		msg = "(#613) Calls to this api have exceeded the rate limit."
	case code >= 80000 && code <= 80014:
		msg = fmt.Sprintf("(#%d) There have been too many calls for this business use case. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.", code)
	}
	e := &graphError{Type: "OAuthException", Code: code, IsTransient: true, Message: msg}
	if dataset == "" {
		dataset = "0"
	}
	buc, _ := json.Marshal(map[string][]bucUsage{dataset: {{
		Type: "ads_management", CallCount: 100, TotalCPUTime: 100, TotalTime: 100,
		EstimatedTimeToRegainAccess: regainMinutes,
	}}})
	e.withHeader("X-Business-Use-Case-Usage", string(buc))
	e.withHeader("X-App-Usage", `{"call_count":100,"total_cputime":100,"total_time":100}`)
	return e
}

// bucUsage is one entry of the X-Business-Use-Case-Usage header.
type bucUsage struct {
	Type                        string `json:"type"`
	CallCount                   int    `json:"call_count"`
	TotalCPUTime                int    `json:"total_cputime"`
	TotalTime                   int    `json:"total_time"`
	EstimatedTimeToRegainAccess int    `json:"estimated_time_to_regain_access"`
}

// newTraceID returns an id shaped like Meta's fbtrace_id (23 URL-safe base64 characters).
func newTraceID() string {
	var b [17]byte
	rand.Read(b[:])
	return "A" + base64.RawURLEncoding.EncodeToString(b[:])[:22]
}

package ports

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MaxCAPIEvents is the most events one Conversions API request accepts.
const MaxCAPIEvents = 1000

// CAPIRequest is one call to a dataset's /events edge.
type CAPIRequest struct {
	// DatasetID is the dataset (pixel) the events belong to.
	DatasetID string
	// Events are CAPI server events, already mapped and valid JSON; at most MaxCAPIEvents.
	// Senders pass them through byte for byte: Meta dedups resends on event_id + event_name.
	Events []json.RawMessage
	// TestEventCode routes the events to Events Manager > Test Events; empty in production.
	TestEventCode string
}

// CAPIAck is Meta's answer to an accepted request.
type CAPIAck struct {
	// EventsReceived is Meta's count; a value other than len(Events) is an anomaly to measure.
	EventsReceived int
	// FBTraceID identifies the request in Meta's logs; worth logging.
	FBTraceID string
	// Messages are Meta's informational messages (usually none).
	Messages []string
	// UsagePct is the highest rate-limit usage percentage Meta reported in the usage headers
	// (app, ad account or business use case), 0 when none were sent. At 100 Meta throttles.
	UsagePct float64
}

// CAPIErrorClass says what a caller should do about a failed request. The zero value is
// CAPIUnknown.
type CAPIErrorClass int

const (
	// CAPIUnknown is an error Meta's documentation does not classify. It may be transient or
	// permanent: retry it, but sparingly.
	CAPIUnknown CAPIErrorClass = iota
	// CAPITransient is a server error (HTTP 5xx, codes 1 and 2, is_transient), a timeout or a
	// connection failure: retry with backoff.
	CAPITransient
	// CAPIRateLimited is a throttling error (codes 4, 17, 32, 341, 613, 80000-80014): back off,
	// at least CAPIError.RetryAfter when known, then retry.
	CAPIRateLimited
	// CAPIInvalidParameter (code 100) is Meta refusing the request because of its content.
	// One invalid event rejects the whole request: isolate and dead-letter the offender.
	CAPIInvalidParameter
	// CAPIAuth is a token (190, 102) or permission (10, 200-299) error: permanent until someone
	// fixes the credentials; alert, do not retry.
	CAPIAuth
	// CAPIBlocked (code 368) is a temporary block: hold the events, back off for long, alert.
	// For Custom Audiences it also covers 100/1713230, an audience whose uploads Meta blocked
	// (see AudienceAPI): no wait helps until the restriction is resolved.
	CAPIBlocked
	// CAPISessionEnded is returned by AudienceAPI uploads only: the upload session can take no
	// more batches (2650 with subcode 1870147, 1870158 or 1870159). Start a new session from
	// batch 1; see IsSessionEnded.
	CAPISessionEnded
	// CAPIVersionExpired (code 2635) is Meta refusing the API version we call: it is deprecated
	// or expired. Every call on that version fails the same way until someone configures a
	// newer one: hold the work, alert, do not retry into dead letters.
	CAPIVersionExpired
)

// String returns a short stable name, suitable for logs and metric dimensions.
func (c CAPIErrorClass) String() string {
	switch c {
	case CAPITransient:
		return "transient"
	case CAPIRateLimited:
		return "rate_limited"
	case CAPIInvalidParameter:
		return "invalid_parameter"
	case CAPIAuth:
		return "auth"
	case CAPIBlocked:
		return "blocked"
	case CAPISessionEnded:
		return "session_ended"
	case CAPIVersionExpired:
		return "version_expired"
	default:
		return "unknown"
	}
}

// CAPIError is the error a CAPISender or an AudienceAPI returns. It never contains the access
// token.
type CAPIError struct {
	Class CAPIErrorClass
	// HTTPStatus is the response status, 0 when no response arrived.
	HTTPStatus int
	// Meta holds the fields of Meta's error envelope; zero when the body had none.
	Meta MetaError
	// RetryAfter is how long Meta asked us to wait (usage headers, Retry-After), 0 when unknown.
	RetryAfter time.Duration
	// UsagePct is the highest usage percentage of the usage headers, as in CAPIAck.
	UsagePct float64
	// Err is the underlying cause when no usable answer arrived (network, timeout, bad body).
	Err error
}

// Error describes the failure with Meta's code, subcode, message and trace id.
func (e *CAPIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "capi %s", e.Class)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (http %d)", e.HTTPStatus)
	}
	if e.Meta.Code != 0 || e.Meta.Message != "" {
		fmt.Fprintf(&b, ": meta error %d", e.Meta.Code)
		if e.Meta.Subcode != 0 {
			fmt.Fprintf(&b, "/%d", e.Meta.Subcode)
		}
		if e.Meta.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Meta.Message)
		}
		if e.Meta.FBTraceID != "" {
			fmt.Fprintf(&b, " (fbtrace_id %s)", e.Meta.FBTraceID)
		}
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *CAPIError) Unwrap() error { return e.Err }

// CAPISender sends one batch of server events to Meta's Conversions API. Errors are
// *CAPIError. Implementations are safe for concurrent use.
type CAPISender interface {
	SendEvents(ctx context.Context, req CAPIRequest) (CAPIAck, error)
}

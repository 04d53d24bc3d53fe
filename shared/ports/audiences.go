package ports

import (
	"context"
	"errors"
	"time"
)

// MaxAudienceRows is the most rows one Custom Audiences upload accepts. Meta support has also
// seen a ~60 KB body ceiling in practice: batchers should cap by bytes too.
const MaxAudienceRows = 10000

// Customer file sources of a Custom Audience: how the customer information was collected.
const (
	AudienceSourceUser        = "USER_PROVIDED_ONLY"
	AudienceSourcePartner     = "PARTNER_PROVIDED_ONLY"
	AudienceSourceUserPartner = "BOTH_USER_AND_PARTNER_PROVIDED"
)

// AudienceOp is what an upload does to the audience's members.
type AudienceOp int

const (
	// AudienceAdd adds the rows' users (POST /{audience}/users).
	AudienceAdd AudienceOp = iota
	// AudienceRemove removes the rows' users (DELETE /{audience}/users, same body as an add).
	AudienceRemove
	// AudienceReplace replaces every member with the rows of one session
	// (POST /{audience}/usersreplace). It does not reset ad-set learning. A replace needs a
	// session; no add or remove may run on the audience while it lasts.
	AudienceReplace
)

// String returns a short stable name, suitable for logs and metric dimensions.
func (o AudienceOp) String() string {
	switch o {
	case AudienceAdd:
		return "add"
	case AudienceRemove:
		return "remove"
	case AudienceReplace:
		return "replace"
	default:
		return "invalid"
	}
}

// AudienceSession ties the batches of one large upload together. The zero value means "no
// session", allowed for adds and removes only.
type AudienceSession struct {
	// ID is a positive number, unique per ad account, the same for every batch of the session.
	ID int64
	// BatchSeq numbers the batches from 1, without gaps.
	BatchSeq int
	// Last marks the last batch. Without it Meta closes the session 90 minutes after its
	// first batch and discards later batches.
	Last bool
	// EstimatedTotal is the expected number of rows over the whole session; 0 when unknown.
	EstimatedTotal int
}

// AudienceUpload is one batch of rows for a customer-list Custom Audience.
type AudienceUpload struct {
	// AudienceID is the Custom Audience (digits).
	AudienceID string
	Op         AudienceOp
	// Schema names the columns of Rows: one single-key name (EMAIL_SHA256, PHONE_SHA256,
	// MOBILE_ADVERTISER_ID, EXTERN_ID) or multi-key names (EXTERN_ID, EMAIL, PHONE, GEN, DOBY,
	// DOBM, DOBD, LN, FN, FI, CT, ST, ZIP, MADID, COUNTRY, LOOKALIKE_VALUE).
	Schema []string
	// Rows hold one user each, one cell per Schema column, "" for an unknown cell; at most
	// MaxAudienceRows. Cells are already normalised and hashed (except EXTERN_ID, MADID and
	// LOOKALIKE_VALUE, a decimal number).
	Rows [][]string
	// Session is required for AudienceReplace and optional otherwise.
	Session AudienceSession
}

// AudienceAck is Meta's answer to an accepted upload.
type AudienceAck struct {
	AudienceID string
	SessionID  int64
	// NumReceived is cumulative over the session: Meta's count of rows received so far.
	NumReceived int
	// NumInvalid is the number of rows of this request Meta found invalid.
	NumInvalid int
	// InvalidSamples are the keys (or indexes) of Meta's invalid_entry_samples, never its
	// values; a few at most. Log the count rather than the samples.
	InvalidSamples []string
	// UsagePct is the highest rate-limit usage percentage of the usage headers that apply to
	// audience calls (see CAPIAck.UsagePct), 0 when none were sent.
	UsagePct float64
	// RegainAfter is the longest wait the usage headers announced (reset_time_duration,
	// estimated_time_to_regain_access), 0 when none: the audience sync waits that long before
	// its next call to the ad account.
	RegainAfter time.Duration
}

// NewAudience describes a customer-list Custom Audience to create.
type NewAudience struct {
	// AdAccountID is the ad account that will hold the audience, as "act_<digits>".
	AdAccountID string
	// Name is shown in Ads Manager. Name segments by behaviour ("top spenders"), never by a
	// health or financial status ("high income"): Meta flags such audiences and blocks their
	// uploads (error 100/1713230).
	Name        string
	Description string
	// ValueBased creates a value-based audience, whose uploads carry a LOOKALIKE_VALUE column.
	ValueBased bool
	// Source is the customer_file_source, one of the AudienceSource constants; "" means
	// AudienceSourceUser.
	Source string
}

// AudienceAPI manages customer-list Custom Audiences at Meta. Errors are *CAPIError, classified
// as for CAPISender with these additions for audiences:
//
//   - CAPIBlocked also covers 100/1713230 "upload blocked, audience flagged" (operation_status
//     471): no retry helps until someone resolves the restriction in Audience Manager or
//     replaces the audience; stop uploading to it and alert;
//   - CAPISessionEnded: the upload session can take no more batches; start a new session (new
//     ID, BatchSeq 1) and upload everything again (see IsSessionEnded).
//
// Implementations are safe for concurrent use.
type AudienceAPI interface {
	// CreateAudience creates the audience and returns its id. It is not idempotent: after a
	// Transient or Unknown error the audience may exist, so look it up by name before
	// creating it again (an ad account holds at most 500 customer-file audiences).
	CreateAudience(ctx context.Context, a NewAudience) (id string, err error)
	// Upload adds, removes or replaces one batch of rows.
	Upload(ctx context.Context, u AudienceUpload) (AudienceAck, error)
}

// IsSessionEnded reports whether err says the upload session cannot continue (replace session
// timed out, already finished, or not started with batch 1): resending to the same session
// never succeeds, a new session must start over from batch 1.
func IsSessionEnded(err error) bool {
	var e *CAPIError
	return errors.As(err, &e) && e.Class == CAPISessionEnded
}

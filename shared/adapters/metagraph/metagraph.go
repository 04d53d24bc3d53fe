// Package metagraph sends server events to Meta's Conversions API over the Graph API
// (POST {BaseURL}/{Version}/{dataset}/events) and implements ports.CAPISender; it also manages
// customer-list Custom Audiences and implements ports.AudienceAPI (see audiences.go), and reads ad
// accounts, ad sets and Ads Insights for ports.AdsAPI (see ads.go, insights.go).
//
// The access token and its appsecret_proof travel in the request body, never in the URL, so
// that no URL logged by a proxy, a tracer or an error message carries the token. Errors are
// *ports.CAPIError, classified after Meta's error table (see Classify) and carrying the wait
// Meta asked for in its usage headers (see ParseUsage).
package metagraph

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/jsonenc"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Defaults for Config's zero fields.
const (
	DefaultBaseURL = "https://graph.facebook.com"
	DefaultVersion = "v26.0"
	// DefaultTimeout is Meta's advice for CAPI calls (most answers come within 600 ms).
	DefaultTimeout = 1500 * time.Millisecond
)

// maxResponseBytes bounds how much of an answer is read; Meta's answers are a few hundred bytes.
const maxResponseBytes = 1 << 20

// Configuration errors, wrapped by the *ports.CAPIError of every call (SendEvents,
// CreateAudience, Upload) of a Client built from such a Config.
var (
	// ErrNoToken: Config.AccessToken is empty (class Auth: alert, do not retry).
	ErrNoToken = errors.New("metagraph: no access token")
	// ErrBadBaseURL: Config.BaseURL is not an absolute URL (class Unknown).
	ErrBadBaseURL = errors.New("metagraph: base URL is not an absolute URL")
)

// Config configures a Client. Zero fields take the defaults.
type Config struct {
	// BaseURL is the Graph API root (default DefaultBaseURL); tests point it at httptest.
	BaseURL string
	// Version is the Graph API version (default DefaultVersion).
	Version string
	// AccessToken is the system-user token. Required.
	AccessToken string
	// AppSecret, when set, adds appsecret_proof to every call.
	AppSecret string
	// Timeout bounds one call, from sending to reading the answer (default DefaultTimeout).
	// A Conversions API call gets TimeoutPerMiB more for each MiB of its body.
	Timeout time.Duration
	// TimeoutPerMiB is the time a Conversions API call gets beyond Timeout per MiB of body
	// (default DefaultTimeoutPerMiB), so a large batch is not cut off while it uploads.
	TimeoutPerMiB time.Duration
	// UploadTimeout bounds one Custom Audiences call instead of Timeout (default
	// DefaultUploadTimeout): an upload of 10,000 rows is a large request.
	UploadTimeout time.Duration
	// AdsTimeout bounds one Marketing API reading call (ad account, ad sets, insights; default
	// DefaultAdsTimeout), InsightsPollInterval is the first wait between polls of an
	// asynchronous insights report (default DefaultInsightsPollInterval, doubling up to
	// MaxInsightsPollInterval), and InsightsMaxWait bounds the whole wait for one report
	// (default DefaultInsightsMaxWait). See ads.go and insights.go.
	AdsTimeout, InsightsPollInterval, InsightsMaxWait time.Duration
	// HTTPClient makes the calls (default: a new http.Client). Its own Timeout, if any, also
	// applies.
	HTTPClient *http.Client
	// PartnerAgent, when set, is sent as partner_agent to identify the integration.
	PartnerAgent string
	// FormEncoded sends application/x-www-form-urlencoded fields (data=<json array>, ...)
	// instead of a JSON body. Meta accepts both; the form is the variant its curl examples use.
	FormEncoded bool
	// OnVersionWarning, when set, is called with the X-Ad-Api-Version-Warning header of every
	// answer that carries one (see versions.go): Meta's notice that Version nears its end.
	OnVersionWarning func(warning string)
}

// Client talks to the Conversions API. It is safe for concurrent use.
type Client struct {
	endpoint string // {BaseURL}/{Version}/
	token    string
	proof    string
	partner  string
	timeout  time.Duration
	perMiB   time.Duration // extra timeout of a CAPI call per MiB of body
	upload   time.Duration // timeout of Custom Audiences calls
	ads      adsConfig     // Marketing API reading (ads.go)
	http     *http.Client
	form     bool
	cfgErr   *ports.CAPIError // configuration error, returned by every call
	warned   func(string)     // Config.OnVersionWarning
}

var _ ports.CAPISender = (*Client)(nil)

// New returns a Client for cfg. It does not fail: a Client built from an unusable Config
// answers every call with a *ports.CAPIError wrapping ErrNoToken (class Auth) or ErrBadBaseURL.
func New(cfg Config) *Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = DefaultUploadTimeout
	}
	if cfg.TimeoutPerMiB <= 0 {
		cfg.TimeoutPerMiB = DefaultTimeoutPerMiB
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	c := &Client{
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/" + strings.Trim(cfg.Version, "/") + "/",
		token:    cfg.AccessToken,
		partner:  cfg.PartnerAgent,
		timeout:  cfg.Timeout,
		perMiB:   cfg.TimeoutPerMiB,
		upload:   cfg.UploadTimeout,
		http:     cfg.HTTPClient,
		form:     cfg.FormEncoded,
		warned:   cfg.OnVersionWarning,
		ads:      newAdsConfig(cfg),
	}
	if cfg.AppSecret != "" {
		c.proof = AppSecretProof(cfg.AppSecret, cfg.AccessToken)
	}
	if base, err := url.Parse(cfg.BaseURL); err != nil || base.Scheme == "" || base.Host == "" {
		c.cfgErr = &ports.CAPIError{Class: ports.CAPIUnknown, Err: fmt.Errorf("%w: %q", ErrBadBaseURL, cfg.BaseURL)}
	}
	if cfg.AccessToken == "" {
		c.cfgErr = &ports.CAPIError{Class: ports.CAPIAuth, Err: ErrNoToken}
	}
	return c
}

// AppSecretProof returns lowercase hex HMAC-SHA256(key = app secret, message = access token).
func AppSecretProof(appSecret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(accessToken))
	return hex.EncodeToString(m.Sum(nil))
}

// SendEvents posts req.Events to the dataset's /events edge. Errors are *ports.CAPIError.
func (c *Client) SendEvents(ctx context.Context, req ports.CAPIRequest) (ports.CAPIAck, error) {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return ports.CAPIAck{}, &e
	}
	if req.DatasetID == "" || strings.ContainsAny(req.DatasetID, "/?#") {
		return ports.CAPIAck{}, &ports.CAPIError{Class: ports.CAPIInvalidParameter,
			Err: fmt.Errorf("metagraph: invalid dataset id %q", req.DatasetID)}
	}
	body, contentType := c.body(req)

	ctx, cancel := context.WithTimeout(ctx, requestTimeout(c.timeout, c.perMiB, len(body)))
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.endpoint+url.PathEscape(req.DatasetID)+"/events", bytes.NewReader(body))
	if err != nil {
		return ports.CAPIAck{}, &ports.CAPIError{Class: ports.CAPIUnknown, Err: fmt.Errorf("metagraph: build request: %w", err)}
	}
	hreq.Header.Set("Content-Type", contentType)
	hreq.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(hreq)
	if err != nil {
		// Network errors, timeouts and cancellations: the request may or may not have
		// reached Meta; resending is safe because Meta dedups on event_id + event_name.
		return ports.CAPIAck{}, &ports.CAPIError{Class: ports.CAPITransient, Err: fmt.Errorf("metagraph: post events: %w", err)}
	}
	defer resp.Body.Close()
	c.versionWarning(resp.Header)
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	usage := ParseUsage(resp.Header)
	return parseResponse(resp.StatusCode, raw, readErr, usage, resp.Header)
}

// body encodes the request as JSON (or form fields). Events are written byte for byte.
func (c *Client) body(req ports.CAPIRequest) ([]byte, string) {
	size := 64 + len(c.token) + len(c.proof) + len(req.TestEventCode) + len(c.partner)
	for _, e := range req.Events {
		size += len(e) + 1
	}
	data := make([]byte, 0, size)
	data = append(data, '[')
	for i, e := range req.Events {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, e...)
	}
	data = append(data, ']')

	fields := []struct{ k, v string }{
		{"access_token", c.token},
		{"appsecret_proof", c.proof},
		{"test_event_code", req.TestEventCode},
		{"partner_agent", c.partner},
	}
	if c.form {
		v := url.Values{}
		v.Set("data", string(data))
		for _, f := range fields {
			if f.v != "" {
				v.Set(f.k, f.v)
			}
		}
		return []byte(v.Encode()), "application/x-www-form-urlencoded"
	}
	b := make([]byte, 0, size+len(`{"data":}`))
	b = append(b, `{"data":`...)
	b = append(b, data...)
	for _, f := range fields {
		if f.v != "" {
			b = append(b, ',')
			b = strconv.AppendQuote(b, f.k)
			b = append(b, ':')
			b = jsonenc.AppendString(b, f.v)
		}
	}
	b = append(b, '}')
	return b, "application/json"
}

// successBody is Meta's answer to an accepted request; Error is set when Meta refused it,
// which it may do with HTTP 200 too.
type successBody struct {
	EventsReceived *int              `json:"events_received"`
	Messages       []json.RawMessage `json:"messages"`
	FBTraceID      string            `json:"fbtrace_id"`
	Error          *ports.MetaError  `json:"error"`
}

func parseResponse(status int, raw []byte, readErr error, usage Usage, h http.Header) (ports.CAPIAck, error) {
	var body successBody
	var parseErr error
	if readErr != nil {
		parseErr = fmt.Errorf("metagraph: read answer: %w", readErr)
	} else if err := json.Unmarshal(raw, &body); err != nil {
		parseErr = fmt.Errorf("metagraph: decode answer (http %d, %d bytes): %w", status, len(raw), err)
	}

	if status == http.StatusOK && parseErr == nil && body.Error == nil {
		ack := ports.CAPIAck{FBTraceID: body.FBTraceID, UsagePct: usage.MaxPct()}
		if body.EventsReceived != nil {
			ack.EventsReceived = *body.EventsReceived
		}
		for _, m := range body.Messages {
			var s string
			if json.Unmarshal(m, &s) != nil {
				s = string(m)
			}
			ack.Messages = append(ack.Messages, s)
		}
		return ack, nil
	}

	e := &ports.CAPIError{HTTPStatus: status, UsagePct: usage.MaxPct(), Err: parseErr}
	if body.Error != nil {
		e.Meta = *body.Error
		if e.Meta.FBTraceID == "" {
			e.Meta.FBTraceID = body.FBTraceID
		}
	}
	if e.Meta.FBTraceID == "" {
		e.Meta.FBTraceID = h.Get("X-Fb-Trace-Id")
	}
	if status == http.StatusOK && body.Error == nil {
		// 200 with an unreadable body: Meta may have taken the events; a resend is safe.
		e.Class = ports.CAPIUnknown
	} else {
		e.Class = Classify(status, body.Error)
	}
	if e.Class == ports.CAPIRateLimited || e.Class == ports.CAPIBlocked {
		e.RetryAfter = max(usage.RegainAfter, retryAfterHeader(h))
	}
	return ports.CAPIAck{}, e
}

// Classify maps an answer to an error class after Meta's error table, first match wins:
//
//   - code 2635 (deprecated or expired API version): VersionExpired;
//   - codes 4, 17, 32, 341, 613, 80000-80014, or HTTP 429: RateLimited;
//   - code 368: Blocked;
//   - is_transient, codes 1 and 2: Transient (Meta says a retry may succeed, even for a code
//     that is otherwise permanent, so we never dead-letter or give up on such an answer);
//   - code 100, any subcode: InvalidParameter;
//   - codes 190, 102, 10, 200-299: Auth;
//   - HTTP 5xx without a classified code: Transient;
//   - anything else (unlisted codes, 4xx without an envelope): Unknown. Callers retry Unknown
//     sparingly: it may be a new transient code, or a permanent one we cannot act on.
//
// me may be nil when the body held no error envelope.
func Classify(status int, me *ports.MetaError) ports.CAPIErrorClass {
	if me != nil && me.Code != 0 {
		switch c := me.Code; {
		case c == codeVersionExpired:
			return ports.CAPIVersionExpired
		case c == 4 || c == 17 || c == 32 || c == 341 || c == 613 || (c >= 80000 && c <= 80014):
			return ports.CAPIRateLimited
		case c == 368:
			return ports.CAPIBlocked
		case me.IsTransient || c == 1 || c == 2:
			return ports.CAPITransient
		case c == 100 && me.Subcode == 0 && strings.Contains(me.Message, "appsecret_proof"):
			// A wrong app secret is a credentials problem, not a bad event: splitting the
			// request would dead-letter every event.
			return ports.CAPIAuth
		case c == 100:
			return ports.CAPIInvalidParameter
		case c == 190 || c == 102 || c == 10 || (c >= 200 && c <= 299):
			return ports.CAPIAuth
		}
	} else if me != nil && me.IsTransient {
		return ports.CAPITransient
	}
	switch {
	case status == http.StatusTooManyRequests:
		return ports.CAPIRateLimited
	case status >= 500:
		return ports.CAPITransient
	}
	return ports.CAPIUnknown
}

// retryAfterHeader reads a standard Retry-After header given in seconds.
func retryAfterHeader(h http.Header) time.Duration {
	s := h.Get("Retry-After")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

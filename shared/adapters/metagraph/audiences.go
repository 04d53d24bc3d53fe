package metagraph

// Custom Audiences (customer lists): create an audience, then add, remove or replace its users
// in batches of at most ports.MaxAudienceRows rows.
//
//	POST   {BaseURL}/{Version}/act_{ad account}/customaudiences   name, subtype=CUSTOM, ...
//	POST   {BaseURL}/{Version}/{audience}/users                   payload, session
//	DELETE {BaseURL}/{Version}/{audience}/users                   same body
//	POST   {BaseURL}/{Version}/{audience}/usersreplace            same body, session required
//
// As for CAPI, access_token and appsecret_proof travel in the body, never in the URL, and the
// body is JSON unless Config.FormEncoded (then payload and session are JSON text in form
// fields).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/jsonenc"
	"github.com/retarget-dev/retarget/shared/ports"
)

// DefaultUploadTimeout is the default Config.UploadTimeout.
const DefaultUploadTimeout = 30 * time.Second

// Custom Audiences error codes and subcodes.
const (
	// codeAudienceUpdateFailed (2650) comes with a subcode saying what went wrong with a
	// session.
	codeAudienceUpdateFailed = 2650
	subcodeReplaceInProgress = 1870145 // another replace runs: retry later
	subcodeReplaceRetry      = 1870148 // retry
	subcodeFirstBatchNotOne  = 1870147 // the session's first batch_seq was not 1
	subcodeSessionTimedOut   = 1870158
	subcodeSessionFinished   = 1870159
	// subcodeUploadBlocked comes with code 100: the audience is flagged (operation_status 471).
	subcodeUploadBlocked = 1713230
)

// Bounds on what an ack keeps of invalid_entry_samples.
const (
	maxInvalidSamples  = 20
	maxInvalidKeyBytes = 128
)

var _ ports.AudienceAPI = (*Client)(nil)

// CreateAudience creates a customer-list Custom Audience in a.AdAccountID and returns its id,
// or returns the id of the audience of that name the account already holds (so a create whose
// answer was lost does not make a duplicate at the next attempt). Errors are
// *ports.CAPIError (see ClassifyAudience).
func (c *Client) CreateAudience(ctx context.Context, a ports.NewAudience) (string, error) {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return "", &e
	}
	if !validAdAccount(a.AdAccountID) {
		return "", invalid("invalid ad account id %q (want act_<digits>)", a.AdAccountID)
	}
	if strings.TrimSpace(a.Name) == "" {
		return "", invalid("audience name is empty")
	}
	source := a.Source
	if source == "" {
		source = ports.AudienceSourceUser
	}
	switch source {
	case ports.AudienceSourceUser, ports.AudienceSourcePartner, ports.AudienceSourceUserPartner:
	default:
		return "", invalid("invalid customer file source %q", a.Source)
	}

	fields := []field{
		stringField("name", a.Name),
		stringField("subtype", "CUSTOM"),
		stringField("customer_file_source", source),
	}
	if a.Description != "" {
		fields = append(fields, stringField("description", a.Description))
	}
	if a.ValueBased {
		fields = append(fields, rawField("is_value_based", []byte("true")))
	}
	// Look the name up first (audiencelookup.go): an earlier create may have succeeded with its
	// answer lost.
	if id, err := c.findAudience(ctx, a.AdAccountID, a.Name); err != nil || id != "" {
		return id, err
	}
	var answer struct {
		ID flexString `json:"id"`
	}
	usage, err := c.audienceCall(ctx, http.MethodPost, a.AdAccountID+"/customaudiences", "create audience", fields, &answer)
	if err != nil {
		return "", err
	}
	if pct := usage.MaxPct(); pct >= CreateMaxUsagePct && answer.ID != "" {
		// Created, but the caller must learn the usage before its next call: it finds the
		// audience by name after the wait (see CreateMaxUsagePct).
		return "", &ports.CAPIError{Class: ports.CAPIRateLimited, UsagePct: pct, RetryAfter: usage.RegainAfter,
			Err: fmt.Errorf("metagraph: create audience: created, but the answer reported %.0f%% rate-limit usage: the next attempt finds it by name", pct)}
	}
	if answer.ID == "" {
		// Meta answered 200 without an id: the audience may exist.
		return "", &ports.CAPIError{Class: ports.CAPIUnknown, HTTPStatus: http.StatusOK,
			Err: fmt.Errorf("metagraph: create audience: no id in the answer")}
	}
	return string(answer.ID), nil
}

// Upload adds, removes or replaces one batch of an audience's users. Rows are checked before
// anything is sent (a refusal is a *ports.CAPIError of class InvalidParameter naming the row,
// never a cell's value). Errors are *ports.CAPIError (see ClassifyAudience).
func (c *Client) Upload(ctx context.Context, u ports.AudienceUpload) (ports.AudienceAck, error) {
	if c.cfgErr != nil {
		e := *c.cfgErr
		return ports.AudienceAck{}, &e
	}
	if err := checkUpload(u); err != nil {
		return ports.AudienceAck{}, err
	}
	payload, err := encodePayload(u.Schema, u.Rows)
	if err != nil {
		return ports.AudienceAck{}, err
	}
	fields := []field{rawField("payload", payload)}
	if u.Session.ID > 0 {
		fields = append(fields, rawField("session", encodeSession(u.Session)))
	}

	method, edge := http.MethodPost, "/users"
	switch u.Op {
	case ports.AudienceRemove:
		method = http.MethodDelete
	case ports.AudienceReplace:
		edge = "/usersreplace"
	}
	var answer struct {
		AudienceID     flexString      `json:"audience_id"`
		SessionID      flexString      `json:"session_id"`
		NumReceived    flexInt         `json:"num_received"`
		NumInvalid     flexInt         `json:"num_invalid_entries"`
		InvalidSamples json.RawMessage `json:"invalid_entry_samples"`
	}
	usage, err := c.audienceCall(ctx, method, u.AudienceID+edge, u.Op.String()+" audience users", fields, &answer)
	if err != nil {
		return ports.AudienceAck{}, err
	}
	ack := ports.AudienceAck{
		AudienceID:     string(answer.AudienceID),
		NumReceived:    int(answer.NumReceived),
		NumInvalid:     int(answer.NumInvalid),
		InvalidSamples: sampleKeys(answer.InvalidSamples),
		UsagePct:       usage.MaxPct(),
		RegainAfter:    usage.RegainAfter,
	}
	ack.SessionID, _ = strconv.ParseInt(string(answer.SessionID), 10, 64)
	return ack, nil
}

// ClassifyAudience maps an answer to a Custom Audiences call to an error class. These codes
// come first; anything else is classified by Classify, as for CAPI:
//
//   - 2650 with subcode 1870145 (replace in progress) or 1870148 (retry): Transient;
//   - 2650 with subcode 1870147 (first batch_seq not 1), 1870158 (session timed out) or
//     1870159 (session already finished): SessionEnded, even when is_transient;
//   - 100 with subcode 1713230 (upload blocked, audience flagged): Blocked;
//   - 105 (too many parameters) and 194 (missing parameter): InvalidParameter;
//   - then, through Classify: 2635 (expired version): VersionExpired; 80003 and the other rate limits (4, 17, 32, 341, 613,
//     80000-80014, HTTP 429): RateLimited; 368: Blocked; is_transient, 1, 2, HTTP 5xx:
//     Transient; 100: InvalidParameter; 190, 102, 10, 200-299 (incl. 200/1870090 terms not
//     accepted, 294 no ads_management): Auth; anything else, e.g. 2650 with another subcode:
//     Unknown.
//
// me may be nil when the body held no error envelope.
func ClassifyAudience(status int, me *ports.MetaError) ports.CAPIErrorClass {
	if me != nil {
		switch {
		case me.Code == codeAudienceUpdateFailed && (me.Subcode == subcodeReplaceInProgress || me.Subcode == subcodeReplaceRetry):
			return ports.CAPITransient
		case me.Code == codeAudienceUpdateFailed && (me.Subcode == subcodeFirstBatchNotOne ||
			me.Subcode == subcodeSessionTimedOut || me.Subcode == subcodeSessionFinished):
			return ports.CAPISessionEnded
		case me.Code == 100 && me.Subcode == subcodeUploadBlocked:
			return ports.CAPIBlocked
		case me.Code == 105 || me.Code == 194:
			return ports.CAPIInvalidParameter
		}
	}
	return Classify(status, me)
}

// audienceCall sends one Custom Audiences call to {endpoint}{path} and decodes a successful
// answer into out. Errors are *ports.CAPIError; what names the call in them.
func (c *Client) audienceCall(ctx context.Context, method, path, what string, fields []field, out any) (Usage, error) {
	body, contentType := c.encodeFields(fields)
	ctx, cancel := context.WithTimeout(ctx, c.upload)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, method, c.endpoint+path, bytes.NewReader(body))
	if err != nil {
		return Usage{}, &ports.CAPIError{Class: ports.CAPIUnknown, Err: fmt.Errorf("metagraph: %s: build request: %w", what, err)}
	}
	hreq.Header.Set("Content-Type", contentType)
	hreq.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(hreq)
	if err != nil {
		// The URL in err carries no token. The call may or may not have reached Meta.
		return Usage{}, &ports.CAPIError{Class: ports.CAPITransient, Err: fmt.Errorf("metagraph: %s: %w", what, err)}
	}
	defer resp.Body.Close()
	c.versionWarning(resp.Header)
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	usage := audienceUsage(resp.Header)

	var envelope struct {
		Error     *ports.MetaError `json:"error"`
		FBTraceID string           `json:"fbtrace_id"`
	}
	var parseErr error
	if readErr != nil {
		parseErr = fmt.Errorf("metagraph: %s: read answer: %w", what, readErr)
	} else if err := json.Unmarshal(raw, &envelope); err != nil {
		parseErr = fmt.Errorf("metagraph: %s: decode answer (http %d, %d bytes): %w", what, resp.StatusCode, len(raw), err)
	} else if resp.StatusCode == http.StatusOK && envelope.Error == nil {
		if err := json.Unmarshal(raw, out); err != nil {
			parseErr = fmt.Errorf("metagraph: %s: decode answer (%d bytes): %w", what, len(raw), err)
		} else {
			return usage, nil
		}
	}

	e := &ports.CAPIError{HTTPStatus: resp.StatusCode, UsagePct: usage.MaxPct(), Err: parseErr}
	if envelope.Error != nil {
		e.Meta = *envelope.Error
	}
	if e.Meta.FBTraceID == "" {
		e.Meta.FBTraceID = envelope.FBTraceID
	}
	if e.Meta.FBTraceID == "" {
		e.Meta.FBTraceID = resp.Header.Get("X-Fb-Trace-Id")
	}
	if resp.StatusCode == http.StatusOK && envelope.Error == nil {
		// 200 with an unreadable answer: Meta may have applied the call.
		e.Class = ports.CAPIUnknown
	} else {
		e.Class = ClassifyAudience(resp.StatusCode, envelope.Error)
	}
	if e.Class == ports.CAPIRateLimited || e.Class == ports.CAPIBlocked {
		e.RetryAfter = max(usage.RegainAfter, retryAfterHeader(resp.Header))
	} else {
		// Any answer's usage headers may ask for a wait: the caller's pacing needs it.
		e.RetryAfter = usage.RegainAfter
	}
	return usage, e
}

// audienceUsage reads the usage headers as ParseUsage does, except that when
// X-Business-Use-Case-Usage has entries of type custom_audience only those count: the other
// use cases (ads_management, ads_insights, ...) throttle other calls, and waiting on them
// would stall audience sync for nothing.
func audienceUsage(h http.Header) Usage {
	const header = "X-Business-Use-Case-Usage"
	var buc map[string][]struct {
		Type         string  `json:"type"`
		CallCount    float64 `json:"call_count"`
		TotalTime    float64 `json:"total_time"`
		TotalCPUTime float64 `json:"total_cputime"`
		RegainMin    float64 `json:"estimated_time_to_regain_access"`
	}
	s := h.Get(header)
	if s == "" || json.Unmarshal([]byte(s), &buc) != nil {
		return ParseUsage(h)
	}
	rest := h.Clone()
	rest.Del(header)
	u := ParseUsage(rest)
	found := false
	for _, entries := range buc {
		for _, e := range entries {
			if e.Type == "custom_audience" {
				found = true
				u.BusinessPct = max(u.BusinessPct, e.CallCount, e.TotalTime, e.TotalCPUTime)
				u.RegainAfter = max(u.RegainAfter, seconds(e.RegainMin*60))
			}
		}
	}
	if !found {
		return ParseUsage(h)
	}
	return u
}

// checkUpload validates u before anything is sent. Messages name rows and columns by index,
// never by value: cells are customer identifiers.
func checkUpload(u ports.AudienceUpload) error {
	if !isDigits(u.AudienceID) {
		return invalid("invalid audience id %q", u.AudienceID)
	}
	if u.Op < ports.AudienceAdd || u.Op > ports.AudienceReplace {
		return invalid("invalid audience operation %d", int(u.Op))
	}
	if len(u.Schema) == 0 {
		return invalid("empty schema")
	}
	for i, k := range u.Schema {
		if k == "" {
			return invalid("schema column %d has no name", i)
		}
	}
	if len(u.Rows) == 0 || len(u.Rows) > ports.MaxAudienceRows {
		return invalid("%d rows, want 1 to %d", len(u.Rows), ports.MaxAudienceRows)
	}
	for i, r := range u.Rows {
		if len(r) != len(u.Schema) {
			return invalid("row %d has %d cells for %d schema columns", i, len(r), len(u.Schema))
		}
	}
	s := u.Session
	switch {
	case s.ID < 0:
		return invalid("negative session id")
	case s.ID == 0 && u.Op == ports.AudienceReplace:
		return invalid("a replace needs a session")
	case s.ID == 0 && (s.BatchSeq != 0 || s.Last || s.EstimatedTotal != 0):
		return invalid("session fields without a session id")
	case s.ID > 0 && s.BatchSeq < 1:
		return invalid("session batch_seq %d, want 1 or more", s.BatchSeq)
	case s.EstimatedTotal < 0:
		return invalid("negative session estimated total")
	}
	return nil
}

// encodePayload writes the payload parameter of an upload as the domain defines it
// (audiences.AppendPayload: the same bytes the sync's request planning measured), a cell that
// cannot be sent being a local InvalidParameter error.
func encodePayload(schema []string, rows [][]string) ([]byte, error) {
	size := 64
	for _, k := range schema {
		size += len(k) + 3
	}
	for _, r := range rows {
		size += 3
		for _, cell := range r {
			size += len(cell) + 3
		}
	}
	b, err := audiences.AppendPayload(make([]byte, 0, size), schema, rows)
	if err != nil {
		return nil, &ports.CAPIError{Class: ports.CAPIInvalidParameter, Err: fmt.Errorf("metagraph: %w", err)}
	}
	return b, nil
}

func encodeSession(s ports.AudienceSession) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"session_id":`...)
	b = strconv.AppendInt(b, s.ID, 10)
	b = append(b, `,"batch_seq":`...)
	b = strconv.AppendInt(b, int64(s.BatchSeq), 10)
	b = append(b, `,"last_batch_flag":`...)
	b = strconv.AppendBool(b, s.Last)
	if s.EstimatedTotal > 0 {
		b = append(b, `,"estimated_num_total":`...)
		b = strconv.AppendInt(b, int64(s.EstimatedTotal), 10)
	}
	return append(b, '}')
}

// field is one top-level parameter of a call: JSON is its value as JSON, form its value as a
// form field (the string itself for a string, the JSON text otherwise).
type field struct {
	key  string
	json []byte
	form string
}

func stringField(k, v string) field     { return field{k, jsonenc.AppendString(nil, v), v} }
func rawField(k string, v []byte) field { return field{k, v, string(v)} }

// encodeFields writes fields and the credentials as a JSON object, or as form fields when the
// Config asks for them.
func (c *Client) encodeFields(fields []field) ([]byte, string) {
	if c.token != "" {
		fields = append(fields, stringField("access_token", c.token))
	}
	if c.proof != "" {
		fields = append(fields, stringField("appsecret_proof", c.proof))
	}
	if c.form {
		v := url.Values{}
		for _, f := range fields {
			v.Set(f.key, f.form)
		}
		return []byte(v.Encode()), "application/x-www-form-urlencoded"
	}
	size := 2
	for _, f := range fields {
		size += len(f.key) + len(f.json) + 4
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.key)
		b = append(b, ':')
		b = append(b, f.json...)
	}
	return append(b, '}'), "application/json"
}

// sampleKeys returns the keys of an invalid_entry_samples object (or the indexes of a list),
// sorted and bounded, and drops the values.
func sampleKeys(raw json.RawMessage) []string {
	var keys []string
	var asMap map[string]json.RawMessage
	var asList []json.RawMessage
	switch {
	case json.Unmarshal(raw, &asMap) == nil:
		for k := range asMap {
			keys = append(keys, truncate(k, maxInvalidKeyBytes))
		}
		slices.Sort(keys)
	case json.Unmarshal(raw, &asList) == nil:
		for i := range asList {
			keys = append(keys, strconv.Itoa(i))
		}
	}
	if len(keys) > maxInvalidSamples {
		keys = keys[:maxInvalidSamples]
	}
	return keys
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func validAdAccount(id string) bool {
	digits, ok := strings.CutPrefix(id, "act_")
	return ok && isDigits(digits)
}

// isDigits reports whether s is 1 to 20 ASCII digits: a Graph object id, safe in a path.
func isDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) *ports.CAPIError {
	return &ports.CAPIError{Class: ports.CAPIInvalidParameter, Err: fmt.Errorf("metagraph: "+format, args...)}
}

// flexString decodes a JSON string or number (Meta sends ids as numeric strings, sometimes as
// numbers).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

// flexInt decodes a JSON number or a numeric string.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	n, err := strconv.Atoi(string(s))
	if err != nil {
		return err
	}
	*f = flexInt(n)
	return nil
}

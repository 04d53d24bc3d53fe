package metasandbox

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Custom Audience limits (reference section 2).
const (
	// MaxAudienceRowsPerRequest is the most rows one /users or /usersreplace call may carry.
	MaxAudienceRowsPerRequest = 10000
	// MaxCustomAudiencesPerAccount is the most customer-file audiences an ad account holds.
	MaxCustomAudiencesPerAccount = 500
	// AudienceSessionWindow is how long an upload session stays open after its first batch when
	// no batch carries last_batch_flag.
	AudienceSessionWindow = 90 * time.Minute
	// MaxInvalidEntrySamples bounds invalid_entry_samples in one answer.
	MaxInvalidEntrySamples = 10
)

// Error codes and subcodes of the Custom Audience endpoints. CodePermission,
// CodeAudienceUpdateFailed, CodeAudienceRateLimit and the subcodes are Meta's; what triggers
// SubcodeBatchSeqInvalid for a gap (not only for a first batch other than 1), and
// CodeAudienceCreateFailed for the 500-audience limit, are the sandbox's guesses.
const (
	// CodePermission is Meta's "(#200) Permissions error".
	CodePermission = 200
	// CodeAudienceUpdateFailed is "(#2650) Failed to update the custom audience".
	CodeAudienceUpdateFailed = 2650
	// CodeAudienceCreateFailed is "(#2654) Failed to create custom audience".
	CodeAudienceCreateFailed = 2654
	// CodeAudienceRateLimit is the Custom Audience business-use-case throttle.
	CodeAudienceRateLimit = 80003

	// SubcodeTermsNotAccepted: the ad account never accepted the Custom Audience terms.
	SubcodeTermsNotAccepted = 1870090
	// SubcodeReplaceInProgress: a replace session is open on the audience; retry later.
	SubcodeReplaceInProgress = 1870145
	// SubcodeBatchSeqInvalid: the first batch_seq of a session is not 1 (the sandbox also
	// answers it for a gap in the sequence).
	SubcodeBatchSeqInvalid = 1870147
	// SubcodeSessionTimedOut: the session closed itself AudienceSessionWindow after its first
	// batch.
	SubcodeSessionTimedOut = 1870158
	// SubcodeSessionFinished: the session already received its last_batch_flag.
	SubcodeSessionFinished = 1870159
)

// Fault names of the Custom Audience endpoints, as they appear in RequestLog.Fault.
const (
	FaultAudienceRateLimit = "audience_rate_limit" // HTTP 400, code 80003
	FaultTermsNotAccepted  = "terms_not_accepted"  // HTTP 400, code 200/1870090
	FaultBodyTooLarge      = "body_too_large"      // bare HTTP 413 (Faults.AudienceMaxBodyBytes)
	FaultRemovalRefused    = "removal_refused"     // HTTP 400, 2650 "Audience Size Too Low" (Faults.RefuseRemovals)
)

// customerFileSources are the values customer_file_source takes.
var customerFileSources = []string{"USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"}

// AudienceInfo describes one Custom Audience of the sandbox.
type AudienceInfo struct {
	ID string `json:"id"`
	// AdAccount is the ad account id without "act_".
	AdAccount          string    `json:"ad_account"`
	Name               string    `json:"name"`
	Description        string    `json:"description,omitempty"`
	CustomerFileSource string    `json:"customer_file_source"`
	ValueBased         bool      `json:"is_value_based"`
	CreatedAt          time.Time `json:"created_at"`
	// Size is the number of members now (the sandbox matches every valid row).
	Size int `json:"size"`
	// ReplaceInProgress is true while a /usersreplace session is open on the audience.
	ReplaceInProgress bool `json:"replace_in_progress,omitempty"`
}

// AudienceMember is one person in an audience: the last valid row that added it.
type AudienceMember struct {
	// Key identifies the member: the row's EXTERN_ID when it has one, else its first non-empty
	// identifier cell in schema order. A remove or a replace matches members by this key only.
	Key string `json:"key"`
	// Row holds the row's non-empty cells by schema column (EMAIL, EMAIL_SHA256, MADID,
	// LOOKALIKE_VALUE, ...), as sent; a number is kept as its JSON text.
	Row       map[string]string `json:"row"`
	SessionID int64             `json:"session_id"`
	AddedAt   time.Time         `json:"added_at"`
}

// AudienceSession describes one upload session of an audience.
type AudienceSession struct {
	SessionID int64 `json:"session_id"`
	// Operation is "add", "remove" or "replace".
	Operation    string    `json:"operation"`
	StartedAt    time.Time `json:"started_at"`
	LastBatchSeq int       `json:"last_batch_seq"`
	Finished     bool      `json:"finished"`
	TimedOut     bool      `json:"timed_out"`
	// NumReceived counts every row of every acknowledged batch, valid or not.
	NumReceived       int   `json:"num_received"`
	EstimatedNumTotal int64 `json:"estimated_num_total,omitempty"`
}

// Audiences returns every audience, in creation order.
func (s *Sandbox) Audiences() []AudienceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	out := make([]AudienceInfo, 0, len(s.aud.order))
	for _, id := range s.aud.order {
		out = append(out, s.aud.byID[id].snapshot(now))
	}
	return out
}

// AudienceMembers returns the members of an audience by key; nil for an unknown audience.
func (s *Sandbox) AudienceMembers(id string) map[string]AudienceMember {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.aud.byID[id]
	if a == nil {
		return nil
	}
	out := make(map[string]AudienceMember, len(a.members))
	for k, m := range a.members {
		m.Row = maps.Clone(m.Row)
		out[k] = m
	}
	return out
}

// AudienceSessions returns the upload sessions of an audience in the order they started; nil
// for an unknown audience.
func (s *Sandbox) AudienceSessions(id string) []AudienceSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aud.byID[id] == nil {
		return nil
	}
	now := s.cfg.Now()
	out := []AudienceSession{}
	for _, u := range s.aud.sessions {
		if u.audienceID == id {
			out = append(out, AudienceSession{
				SessionID: u.id, Operation: string(u.op), StartedAt: u.started, LastBatchSeq: u.lastSeq,
				Finished: u.finished, TimedOut: u.timedOut(now), NumReceived: u.received, EstimatedNumTotal: u.estimated,
			})
		}
	}
	slices.SortFunc(out, func(a, b AudienceSession) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.SessionID, b.SessionID))
	})
	return out
}

// --- state, guarded by Sandbox.mu ---

// audienceStore holds the audiences and their upload sessions.
type audienceStore struct {
	// lastID survives Reset, so an audience id is never handed out twice.
	lastID   uint64
	byID     map[string]*audience
	order    []string
	sessions map[sessionKey]*uploadSession
	// lastImplicit numbers the session ids of /users calls sent without a session.
	lastImplicit int64
}

func (st *audienceStore) reset() {
	st.byID, st.order, st.sessions = nil, nil, nil
}

// firstAudienceID looks like Meta's audience ids (17 digits starting 238...).
const firstAudienceID = 23850000000000000

// firstImplicitSessionID starts the ids answered for /users calls without a session.
const firstImplicitSessionID = 7000000000000000000

type audience struct {
	info    AudienceInfo // Size and ReplaceInProgress are filled in by snapshot
	members map[string]AudienceMember
	// replace is the replace session staging rows, nil when none is open.
	replace *uploadSession
}

// openReplace returns the audience's open replace session, forgetting one that timed out.
func (a *audience) openReplace(now time.Time) *uploadSession {
	if a.replace != nil && (a.replace.finished || a.replace.timedOut(now)) {
		a.replace.staged = nil
		a.replace = nil
	}
	return a.replace
}

func (a *audience) snapshot(now time.Time) AudienceInfo {
	info := a.info
	info.Size = len(a.members)
	info.ReplaceInProgress = a.openReplace(now) != nil
	return info
}

type uploadOp string

const (
	opAdd     uploadOp = "add"
	opRemove  uploadOp = "remove"
	opReplace uploadOp = "replace"
)

// sessionKey: session ids are unique per ad account.
type sessionKey struct {
	account string
	id      int64
}

type uploadSession struct {
	id         int64
	audienceID string
	op         uploadOp
	started    time.Time
	lastSeq    int
	finished   bool
	received   int
	estimated  int64
	// answers are the answers of the acknowledged batches by batch_seq, for replays.
	answers map[int]usersAnswer
	// staged are the members a replace session has received so far.
	staged map[string]AudienceMember
}

// timedOut: a session without its last batch closes itself AudienceSessionWindow after its
// first batch.
func (u *uploadSession) timedOut(now time.Time) bool {
	return !u.finished && !now.Before(u.started.Add(AudienceSessionWindow))
}

// usersAnswer is the success body of /users and /usersreplace.
type usersAnswer struct {
	AudienceID          string            `json:"audience_id"`
	SessionID           string            `json:"session_id"`
	NumReceived         int               `json:"num_received"`
	NumInvalidEntries   int               `json:"num_invalid_entries"`
	InvalidEntrySamples map[string]string `json:"invalid_entry_samples"`
}

// --- HTTP ---

const (
	edgeCustomAudiences = "customaudiences"
	edgeUsers           = "users"
	edgeUsersReplace    = "usersreplace"
)

// isAudiencePath matches /{version}/{object}/customaudiences|users|usersreplace.
func isAudiencePath(path string) bool {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	if len(segments) != 3 || segments[0] == "" || segments[1] == "" {
		return false
	}
	switch segments[2] {
	case edgeCustomAudiences, edgeUsers, edgeUsersReplace:
		return true
	}
	return false
}

// audienceAnswer is the outcome of one Custom Audience request.
type audienceAnswer struct {
	// header is sent with the answer, whatever it is (the usage headers).
	header  http.Header
	err     *graphError
	bare503 bool
	bare413 bool
	fault   string
	body    any
}

func (s *Sandbox) serveAudiences(w http.ResponseWriter, r *http.Request) {
	entry := RequestLog{At: s.cfg.Now(), Method: r.Method, Path: r.URL.Path}
	faults, d := s.drawFaults()
	trace := newTraceID()
	entry.FBTraceID = trace
	a := s.evaluateAudience(r, &entry, faults, d)
	entry.Fault = a.fault
	for k, vs := range a.header {
		w.Header()[k] = vs
	}

	switch {
	case a.bare503 || a.bare413:
		entry.Status, entry.FBTraceID = http.StatusServiceUnavailable, ""
		page := "<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>\n"
		if a.bare413 {
			entry.Status = http.StatusRequestEntityTooLarge
			page = "<html><body><h1>413 Request Entity Too Large</h1></body></html>\n"
		}
		s.record(entry, nil)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(entry.Status)
		fmt.Fprint(w, page)
	case a.err != nil:
		s.writeGraphError(w, entry, trace, a.err)
	default:
		entry.Status = http.StatusOK
		s.record(entry, nil)
		s.graphHeaders(w, trace)
		writeJSON(w, http.StatusOK, a.body)
	}
}

// evaluateAudience applies the faults and checks in the order of the package doc.
func (s *Sandbox) evaluateAudience(r *http.Request, entry *RequestLog, faults Faults, d draw) audienceAnswer {
	body, readErr := readBody(r)
	if d.serverError {
		if d.unavailable {
			return audienceAnswer{bare503: true, fault: FaultUnavailable}
		}
		return audienceAnswer{err: errServer(), fault: FaultServerError}
	}
	segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	entry.Version = segments[0]
	object, edge := segments[1], segments[2]
	if edge == edgeCustomAudiences {
		entry.AdAccount = strings.TrimPrefix(object, "act_")
	} else {
		entry.AudienceID = object
	}
	if err := s.checkVersion(entry.Version); err != nil {
		return audienceAnswer{err: err}
	}
	methodOK := r.Method == http.MethodPost || (edge == edgeUsers && r.Method == http.MethodDelete) ||
		(edge == edgeCustomAudiences && r.Method == http.MethodGet)
	if !methodOK {
		return audienceAnswer{err: errUnsupportedMethod(r.Method, object)}
	}
	if edge != edgeCustomAudiences && faults.AudienceMaxBodyBytes > 0 && len(body) > faults.AudienceMaxBodyBytes {
		return audienceAnswer{bare413: true, fault: FaultBodyTooLarge}
	}
	if readErr != nil {
		return audienceAnswer{err: readErr}
	}
	p, gerr := readAudienceParams(r, body)
	if gerr != nil {
		return audienceAnswer{err: gerr}
	}
	if gerr, fault := s.checkAuth(p, faults, entry.At); gerr != nil {
		return audienceAnswer{err: gerr, fault: fault}
	}
	if d.audienceRateLimit {
		account := entry.AdAccount
		if edge != edgeCustomAudiences {
			account = s.audienceAccount(object)
		}
		return audienceAnswer{err: errAudienceRateLimit(account, faults.RegainAccessMinutes), fault: FaultAudienceRateLimit}
	}
	account := entry.AdAccount
	if edge != edgeCustomAudiences {
		account = s.audienceAccount(object)
	}
	if entry.AdAccount == "" && account != object {
		entry.AdAccount = account // the audience's: the usage is counted per ad account
	}
	usage := s.countAudienceUsage(account, faults, entry.At)
	entry.UsagePct, entry.UsageReset = usage.pct, usage.reset
	if usage.throttled {
		return audienceAnswer{err: errAudienceUsageThrottle(usage), fault: FaultAudienceUsageThrottle}
	}
	a := s.answerAudience(r, entry, object, edge, p, faults)
	a.header = usage.header
	return a
}

// answerAudience runs the call evaluateAudience let through.
func (s *Sandbox) answerAudience(r *http.Request, entry *RequestLog, object, edge string, p audienceParams, faults Faults) audienceAnswer {
	switch {
	case edge == edgeCustomAudiences && (r.Method == http.MethodGet || strings.EqualFold(p.get("method"), http.MethodGet)):
		return s.listAudiences(object, p)
	case edge == edgeCustomAudiences:
		return s.createAudience(entry, object, p, faults)
	case edge == edgeUsersReplace:
		return s.uploadUsers(entry, r.Method, p, faults, opReplace)
	case r.Method == http.MethodDelete:
		return s.uploadUsers(entry, r.Method, p, faults, opRemove)
	default:
		return s.uploadUsers(entry, r.Method, p, faults, opAdd)
	}
}

// checkAuth checks the token and proof exactly as the events endpoint does.
func (s *Sandbox) checkAuth(p audienceParams, faults Faults, now time.Time) (*graphError, string) {
	if faults.TokenExpired {
		return errTokenExpired(now), FaultTokenExpired
	}
	switch {
	case p.accessToken == "":
		return errMissingToken(), ""
	case p.accessToken != s.cfg.AccessToken:
		return errInvalidToken(), ""
	}
	if s.cfg.AppSecret != "" {
		switch {
		case p.proof == "":
			return errMissingProof(), ""
		case !proofMatches(s.cfg.AppSecret, p.accessToken, p.proof):
			return errInvalidProof(), ""
		}
	}
	return nil, ""
}

// audienceAccount is the ad account of an audience, or the audience id when it is unknown
// (the key of the usage header).
func (s *Sandbox) audienceAccount(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.aud.byID[id]; a != nil {
		return a.info.AdAccount
	}
	return id
}

func (s *Sandbox) createAudience(entry *RequestLog, object string, p audienceParams, faults Faults) audienceAnswer {
	account := entry.AdAccount
	if !strings.HasPrefix(object, "act_") || !s.adAccounts[account] {
		return audienceAnswer{err: errUnsupportedMethod(http.MethodPost, object)}
	}
	if faults.TermsNotAccepted {
		return audienceAnswer{err: errTermsNotAccepted(account), fault: FaultTermsNotAccepted}
	}
	name := strings.TrimSpace(p.get("name"))
	subtype := p.get("subtype")
	source := p.get("customer_file_source")
	switch {
	case name == "":
		return audienceAnswer{err: errParam("The parameter name is required")}
	case subtype == "":
		return audienceAnswer{err: errParam("The parameter subtype is required")}
	case subtype != "CUSTOM":
		return audienceAnswer{err: errParam("param subtype must be CUSTOM (the sandbox only emulates customer-list audiences)")}
	case source == "":
		return audienceAnswer{err: errParam("The parameter customer_file_source is required")}
	case !slices.Contains(customerFileSources, source):
		return audienceAnswer{err: errParam("param customer_file_source must be one of {" + strings.Join(customerFileSources, ", ") + "}")}
	}
	valueBased, ok := parseGraphBool(p.get("is_value_based"))
	if !ok {
		return audienceAnswer{err: errParam("param is_value_based must be a boolean")}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	held := 0
	for _, a := range s.aud.byID {
		if a.info.AdAccount == account {
			held++
		}
	}
	if held >= MaxCustomAudiencesPerAccount {
		return audienceAnswer{err: errAudienceLimit(account)}
	}
	if s.aud.byID == nil {
		s.aud.byID = map[string]*audience{}
	}
	s.aud.lastID++
	id := strconv.FormatUint(firstAudienceID+s.aud.lastID, 10)
	s.aud.byID[id] = &audience{
		info: AudienceInfo{ID: id, AdAccount: account, Name: name, Description: p.get("description"),
			CustomerFileSource: source, ValueBased: valueBased, CreatedAt: entry.At},
		members: map[string]AudienceMember{},
	}
	s.aud.order = append(s.aud.order, id)
	entry.AudienceID = id
	return audienceAnswer{body: map[string]string{"id": id}}
}

func (s *Sandbox) uploadUsers(entry *RequestLog, method string, p audienceParams, faults Faults, op uploadOp) audienceAnswer {
	s.mu.Lock()
	a := s.aud.byID[entry.AudienceID]
	var valueBased bool
	if a != nil {
		entry.AdAccount, valueBased = a.info.AdAccount, a.info.ValueBased
	}
	s.mu.Unlock()
	if a == nil {
		return audienceAnswer{err: errUnsupportedMethod(method, entry.AudienceID)}
	}
	if faults.TermsNotAccepted {
		return audienceAnswer{err: errTermsNotAccepted(entry.AdAccount), fault: FaultTermsNotAccepted}
	}

	payload, ok := p.lookup("payload")
	if !ok {
		return audienceAnswer{err: errParam("The parameter payload is required")}
	}
	batch, rows, gerr := checkPayload(payload, valueBased)
	entry.Rows = rows
	if gerr == nil && op == opReplace {
		gerr = checkReplaceSchema(payload)
	}
	if gerr != nil {
		return audienceAnswer{err: gerr}
	}
	entry.InvalidEntries = batch.invalid

	var sess sessionParams
	if text, ok := p.lookup("session"); ok {
		if sess, gerr = parseSession(text); gerr != nil {
			return audienceAnswer{err: gerr}
		}
		entry.SessionID, entry.BatchSeq = sess.id, sess.batchSeq
	} else if op == opReplace {
		return audienceAnswer{err: errParam("The parameter session is required")}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Reset may have run since the lookup.
	if a = s.aud.byID[entry.AudienceID]; a == nil {
		return audienceAnswer{err: errUnsupportedMethod(method, entry.AudienceID)}
	}
	minSize := s.cfg.RemovalMinSize
	if op == opRemove && faults.RefuseRemovals {
		minSize = math.MaxInt // every removal leaves too few
	}
	answer, replayed, gerr := s.aud.apply(a, op, sess, batch, entry.At, minSize)
	if gerr != nil && op == opRemove && faults.RefuseRemovals && gerr.UserTitle == titleSizeTooLow {
		return audienceAnswer{err: gerr, fault: FaultRemovalRefused}
	}
	entry.Replayed = replayed
	if replayed {
		entry.InvalidEntries = answer.NumInvalidEntries
	}
	if sess.id == 0 {
		entry.SessionID, _ = strconv.ParseInt(answer.SessionID, 10, 64)
	}
	if gerr != nil {
		return audienceAnswer{err: gerr}
	}
	return audienceAnswer{body: answer}
}

// apply runs the session rules for one batch and, when they pass, applies it. A zero sess.id
// means the call came without a session (/users only): one batch on its own.
func (st *audienceStore) apply(a *audience, op uploadOp, sess sessionParams, batch checkedBatch, now time.Time, minSize int) (usersAnswer, bool, *graphError) {
	answer := usersAnswer{AudienceID: a.info.ID, NumInvalidEntries: batch.invalid, InvalidEntrySamples: batch.samples}
	key := sessionKey{a.info.AdAccount, sess.id}
	var u *uploadSession
	if sess.id != 0 {
		u = st.sessions[key]
	}
	if u != nil {
		if u.audienceID != a.info.ID || u.op != op {
			return answer, false, errInvalid(0, "Session ID Already Used", fmt.Sprintf(
				"session_id %d already belongs to another upload in this ad account (%s on audience %s); session ids are unique per ad account.",
				sess.id, u.op, u.audienceID))
		}
		if sess.batchSeq <= u.lastSeq {
			if u.timedOut(now) {
				return answer, false, errSessionTimedOut(u)
			}
			// An acknowledged batch sent again (its answer was lost): answer it again, apply nothing.
			return u.answers[sess.batchSeq], true, nil
		}
		if u.finished {
			return answer, false, errAudienceUpdate(SubcodeSessionFinished, false, "Session Already Finished", fmt.Sprintf(
				"Session %d already received its last batch (batch_seq %d); start a new session with a new session_id.", u.id, u.lastSeq))
		}
		if u.timedOut(now) {
			return answer, false, errSessionTimedOut(u)
		}
	}
	if r := a.openReplace(now); r != nil && r != u {
		return answer, false, errAudienceUpdate(SubcodeReplaceInProgress, true, "Replace In Progress", fmt.Sprintf(
			"A replace session (%d) is in progress on this audience; no other upload is taken until it finishes. Retry later.", r.id))
	}
	expected := 1
	if u != nil {
		expected = u.lastSeq + 1
	}
	if sess.id != 0 && sess.batchSeq != expected {
		msg := fmt.Sprintf("The first batch of a session must have batch_seq 1, not %d.", sess.batchSeq)
		if u != nil {
			msg = fmt.Sprintf("Session %d expects batch_seq %d next, not %d: batches are numbered 1, 2, 3, ... without gaps.",
				u.id, expected, sess.batchSeq)
		}
		return answer, false, errAudienceUpdate(SubcodeBatchSeqInvalid, false, "Invalid Batch Sequence", msg)
	}
	if gerr := sizeTooLow(a, op, u, sess, batch, minSize); gerr != nil {
		return answer, false, gerr
	}

	if sess.id == 0 {
		st.lastImplicit++
		answer.SessionID = strconv.FormatInt(firstImplicitSessionID+st.lastImplicit, 10)
		answer.NumReceived = len(batch.rows)
		applyRows(a.members, op, batch, 0, now)
		return answer, false, nil
	}
	if u == nil {
		u = &uploadSession{id: sess.id, audienceID: a.info.ID, op: op, started: now, answers: map[int]usersAnswer{}}
		if st.sessions == nil {
			st.sessions = map[sessionKey]*uploadSession{}
		}
		st.sessions[key] = u
		if op == opReplace {
			u.staged = map[string]AudienceMember{}
			a.replace = u
		}
	}
	if sess.estimated > 0 {
		u.estimated = sess.estimated
	}
	u.lastSeq = sess.batchSeq
	u.received += len(batch.rows)
	u.finished = sess.lastBatch
	if op == opReplace {
		applyRows(u.staged, opAdd, batch, u.id, now)
		if u.finished {
			a.members, u.staged, a.replace = u.staged, nil, nil
		}
	} else {
		applyRows(a.members, op, batch, u.id, now)
	}
	answer.SessionID = strconv.FormatInt(u.id, 10)
	answer.NumReceived = u.received
	u.answers[sess.batchSeq] = answer
	return answer, false, nil
}

// titleSizeTooLow is the error_user_title of a refused removal.
const titleSizeTooLow = "Audience Size Too Low"

// sizeTooLow refuses a batch that would leave the audience empty or, for a remove, with fewer
// than minSize members (a negative minSize: no threshold): a remove taking its last members,
// or a replace finishing without a single valid row (reference: never empty an audience).
// Meta's own threshold is about matched people and applied later; the sandbox matches every
// valid row and checks at once.
func sizeTooLow(a *audience, op uploadOp, u *uploadSession, sess sessionParams, batch checkedBatch, minSize int) *graphError {
	refuse := func(msg string) *graphError {
		return errAudienceUpdate(0, false, titleSizeTooLow, msg)
	}
	switch op {
	case opRemove:
		gone := map[string]bool{}
		for _, row := range batch.rows {
			if _, member := a.members[row.key]; member && row.reason == "" {
				gone[row.key] = true
			}
		}
		if len(gone) > 0 && len(gone) == len(a.members) {
			return refuse("Removing these users would leave the audience empty; keep at least one member (or delete the audience).")
		}
		if left := len(a.members) - len(gone); minSize > 0 && len(batch.rows) > 0 && left < minSize {
			return refuse(fmt.Sprintf("Audience Size too low: You cannot remove users from this audience because it will result in a low audience size (%d members left, fewer than %d).",
				left, minSize))
		}
	case opReplace:
		if !sess.lastBatch || batch.valid > 0 || (u != nil && len(u.staged) > 0) {
			return nil
		}
		return refuse("This replace session has no valid users; replacing would leave the audience empty.")
	}
	return nil
}

// applyRows adds (opAdd) or removes (opRemove) the batch's valid rows in members.
func applyRows(members map[string]AudienceMember, op uploadOp, batch checkedBatch, sessionID int64, now time.Time) {
	for _, row := range batch.rows {
		if row.reason != "" {
			continue
		}
		if op == opRemove {
			delete(members, row.key)
			continue
		}
		members[row.key] = AudienceMember{Key: row.key, Row: row.cells, SessionID: sessionID, AddedAt: now}
	}
}

// --- parameters ---

// audienceParams are the Graph parameters of one Custom Audience call.
type audienceParams struct {
	fields      map[string]string
	query       map[string][]string
	accessToken string
	proof       string
}

// lookup finds a parameter in the body, then in the query string. A form value written as a
// JSON string ('name="Top spenders"', as Meta's curl examples do) is unquoted.
func (p audienceParams) lookup(name string) (string, bool) {
	v, ok := p.fields[name]
	if !ok {
		vs, inQuery := p.query[name]
		if !inQuery || len(vs) == 0 {
			return "", false
		}
		v, ok = vs[0], true
	}
	if len(v) >= 2 && v[0] == '"' {
		var unquoted string
		if json.Unmarshal([]byte(v), &unquoted) == nil {
			v = unquoted
		}
	}
	return v, ok
}

func (p audienceParams) get(name string) string {
	v, _ := p.lookup(name)
	return v
}

func readBody(r *http.Request) ([]byte, *graphError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, errParam("could not read the request body")
	}
	if len(body) > maxBody {
		return nil, errParam(fmt.Sprintf("request body larger than %d bytes", maxBody))
	}
	return body, nil
}

// readAudienceParams reads parameters like readParams does: body (JSON, form or multipart),
// then query string, and the token also from an Authorization header.
func readAudienceParams(r *http.Request, body []byte) (audienceParams, *graphError) {
	fields, gerr := bodyFields(r.Header.Get("Content-Type"), body)
	if gerr != nil {
		return audienceParams{}, gerr
	}
	p := audienceParams{fields: fields, query: r.URL.Query()}
	p.accessToken, p.proof = p.get("access_token"), p.get("appsecret_proof")
	if p.accessToken == "" {
		p.accessToken = headerToken(r.Header.Get("Authorization"))
	}
	return p, nil
}

// parseGraphBool reads a boolean parameter: JSON true/false, or 1/0 as forms send them.
func parseGraphBool(v string) (value, ok bool) {
	switch strings.TrimSpace(v) {
	case "", "false", "0":
		return false, true
	case "true", "1":
		return true, true
	}
	return false, false
}

// --- errors ---

func errTermsNotAccepted(account string) *graphError {
	return &graphError{Type: "OAuthException", Code: CodePermission, Subcode: SubcodeTermsNotAccepted,
		Message:   "(#200) Permissions error",
		UserTitle: "Custom Audience Terms Not Accepted",
		UserMsg: "You need to accept the Custom Audience Terms before you can create or edit an audience: " +
			"https://business.facebook.com/ads/manage/customaudiences/tos/?act=" + account}
}

func errAudienceLimit(account string) *graphError {
	return &graphError{Type: "OAuthException", Code: CodeAudienceCreateFailed,
		Message:   "(#2654) Failed to create custom audience",
		UserTitle: "Audience Limit Reached",
		UserMsg: fmt.Sprintf("Ad account act_%s already holds %d customer list audiences; delete unused ones before creating another.",
			account, MaxCustomAudiencesPerAccount)}
}

func errAudienceUpdate(subcode int, transient bool, title, msg string) *graphError {
	return &graphError{Type: "OAuthException", Code: CodeAudienceUpdateFailed, Subcode: subcode, IsTransient: transient,
		Message: "(#2650) Failed to update the custom audience: " + title, UserTitle: title, UserMsg: msg}
}

func errSessionTimedOut(u *uploadSession) *graphError {
	return errAudienceUpdate(SubcodeSessionTimedOut, false, "Session Timed Out", fmt.Sprintf(
		"Session %d closed itself %v after its first batch without a last_batch_flag; later batches are discarded. Start a new session.",
		u.id, AudienceSessionWindow))
}

// errAudienceRateLimit is the Custom Audience throttle, its usage header at 100%.
func errAudienceRateLimit(account string, regainMinutes int) *graphError {
	e := &graphError{Type: "OAuthException", Code: CodeAudienceRateLimit, IsTransient: true,
		Message: "(#80003) There have been too many calls to this ad-account. Wait a bit and try again. " +
			"For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting#custom-audience."}
	if account == "" {
		account = "0"
	}
	buc, _ := json.Marshal(map[string][]bucUsage{account: {{
		Type: "custom_audience", CallCount: 100, TotalCPUTime: 100, TotalTime: 100,
		EstimatedTimeToRegainAccess: regainMinutes,
	}}})
	return e.withHeader("X-Business-Use-Case-Usage", string(buc))
}

// --- developer endpoints ---

// DeleteAudience deletes an audience as Meta deletes those no ad set used for two years: calls
// on it answer 100/33 afterwards and the name lookup no longer finds it. It reports whether the
// audience existed. Its id is never handed out again.
func (s *Sandbox) DeleteAudience(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aud.byID[id] == nil {
		return false
	}
	delete(s.aud.byID, id)
	s.aud.order = slices.DeleteFunc(s.aud.order, func(x string) bool { return x == id })
	return true
}

// listAudiences answers GET /act_{account}/customaudiences (or a POST with method=GET, the
// Graph API's method override): the account's audiences as
// {"data": [{"id", "name"}]}, optionally filtered by name. The edge and its filtering
// parameter are in Meta's API spec (facebook/facebook-business-sdk-codegen
// api_specs/specs/AdAccount.json: GET customaudiences, params fields, filtering); the filter
// objects are {field, operator, value} as for Insights (reference meta-measurement.md section
// 1 [BP]). The sandbox takes the field name with the operator EQUAL only.
func (s *Sandbox) listAudiences(object string, p audienceParams) audienceAnswer {
	account := strings.TrimPrefix(object, "act_")
	if !strings.HasPrefix(object, "act_") || !s.adAccounts[account] {
		return audienceAnswer{err: errUnsupportedMethod(http.MethodGet, object)}
	}
	var filters []struct {
		Field    string `json:"field"`
		Operator string `json:"operator"`
		Value    any    `json:"value"`
	}
	if text, ok := p.lookup("filtering"); ok && text != "" {
		if err := json.Unmarshal([]byte(text), &filters); err != nil {
			return audienceAnswer{err: errParam("param filtering must be a JSON array of {field, operator, value}")}
		}
	}
	name, byName := "", false
	for _, f := range filters {
		v, isString := f.Value.(string)
		if f.Field != "name" || f.Operator != "EQUAL" || !isString {
			return audienceAnswer{err: errParam("the sandbox filters customaudiences by name with operator EQUAL only")}
		}
		name, byName = v, true
	}
	type entry struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	out := []entry{}
	s.mu.Lock()
	for _, id := range s.aud.order {
		a := s.aud.byID[id]
		if a.info.AdAccount == account && (!byName || a.info.Name == name) {
			out = append(out, entry{ID: id, Name: a.info.Name})
		}
	}
	s.mu.Unlock()
	return audienceAnswer{body: map[string]any{"data": out}}
}

// serveAudienceAdmin answers GET /_sandbox/audiences, GET /_sandbox/audiences/{id} and POST
// /_sandbox/audiences/{id}/delete; it reports whether the path was one of those.
func (s *Sandbox) serveAudienceAdmin(w http.ResponseWriter, r *http.Request, allow func(string) bool) bool {
	const prefix = "/_sandbox/audiences"
	switch {
	case r.URL.Path == prefix:
		if allow(http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Audiences())
		}
		return true
	case strings.HasPrefix(r.URL.Path, prefix+"/") && strings.HasSuffix(r.URL.Path, "/delete"):
		if !allow(http.MethodPost) {
			return true
		}
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, prefix+"/"), "/delete")
		if !s.DeleteAudience(id) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no audience " + strconv.Quote(id)})
			return true
		}
		writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
		return true
	case strings.HasPrefix(r.URL.Path, prefix+"/"):
		if !allow(http.MethodGet) {
			return true
		}
		id := strings.TrimPrefix(r.URL.Path, prefix+"/")
		info, ok := s.audienceInfo(id)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no audience " + strconv.Quote(id)})
			return true
		}
		writeJSON(w, http.StatusOK, struct {
			Audience AudienceInfo              `json:"audience"`
			Members  map[string]AudienceMember `json:"members"`
			Sessions []AudienceSession         `json:"sessions"`
		}{info, s.AudienceMembers(id), s.AudienceSessions(id)})
		return true
	}
	return false
}

func (s *Sandbox) audienceInfo(id string) (AudienceInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.aud.byID[id]
	if a == nil {
		return AudienceInfo{}, false
	}
	return a.snapshot(s.cfg.Now()), true
}

// parseAdAccounts validates Config.AdAccounts: digits, with or without "act_".
func parseAdAccounts(ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		digits := strings.TrimPrefix(id, "act_")
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return nil, fmt.Errorf("bad ad account id %q (want digits, optionally after act_)", id)
		}
		out[digits] = true
	}
	return out, nil
}

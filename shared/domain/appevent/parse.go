// Package appevent reads the ingest API v1 request body: it parses and validates each event,
// normalises and hashes its personal data, derives the pseudonymous user key and encodes the
// stream record (package envelope). One bad event never rejects its neighbours: every problem is
// reported by index and field, and the good events are accepted.
package appevent

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// Request limits of API v1.
const (
	MaxBodyBytes = 1 << 20
	MaxEvents    = 500
	// MaxEventAge is how old an event may be: Meta refuses events older than 7 days.
	MaxEventAge = 7 * 24 * time.Hour
	// MaxClockSkew is how far in the future an event time may be (device clocks drift).
	MaxClockSkew = 5 * time.Minute
)

// Request-level errors: the handler answers 413 for these.
var (
	ErrBodyTooLarge  = errors.New("request body exceeds 1 MiB")
	ErrTooManyEvents = errors.New("more than 500 events in one request")
)

// RequestError is a body that cannot be read as an events batch at all (answered with 400).
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// FieldError is one problem with one field of one event.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	// Code is a short, stable identifier of the rule, fit for metric dimensions.
	Code string `json:"-"`
}

// Rejection lists why one event was refused. It is also the entry of the ingest API's
// "rejected" list (202, 400 and 503 answers), and what clients decode that list into.
type Rejection struct {
	Index   int          `json:"index"`
	EventID string       `json:"event_id,omitempty"`
	Errors  []FieldError `json:"errors"`
	// Retryable marks an event that was valid but could not be stored: the client sends it
	// again with the same event_id. Parse never sets it; the ingest handler does when the
	// stream refuses a record.
	Retryable bool `json:"retryable,omitempty"`
}

// Record is one accepted event, encoded for the stream.
type Record struct {
	Index   int    // position in the request
	EventID string // as sent by the client
	UserKey string // pseudonymous user key: the stream partition key
	Data    []byte // envelope.Record as JSON
}

// Batch is the outcome of parsing one request.
type Batch struct {
	Total    int
	Accepted []Record
	Rejected []Rejection

	buf *[]byte // pooled; backs every Accepted[i].Data
	out []byte  // the encoded records (may have outgrown *buf)
}

// Release returns the batch's encoding buffer for reuse by later requests. Call it once the
// records have been published; Accepted[i].Data must not be used afterwards.
func (b *Batch) Release() {
	if b.buf != nil {
		*b.buf = b.out[:0]
		bufPool.Put(b.buf)
		b.buf, b.out = nil, nil
	}
}

// bufPool recycles encoding buffers across requests: a warm Lambda then encodes without
// allocating its output.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}

// Parser turns request bodies into stream records. It is safe for concurrent use.
type Parser struct {
	pseudo *identity.Pseudonymizer
	states sync.Pool // of *state: a warm function parses without allocating its working set
}

// NewParser returns a Parser that keys users with pseudo.
func NewParser(pseudo *identity.Pseudonymizer) *Parser {
	p := &Parser{pseudo: pseudo}
	p.states.New = func() any { return &state{p: p, norm: identity.NewNormalizer()} }
	return p
}

// release returns st to the pool, dropping every reference into the request (the body's
// substrings, the output buffer) so that a pooled state keeps no request alive.
func (p *Parser) release(st *state) {
	clear(st.ids)
	clear(st.idArena)
	clear(st.contentArena)
	clear(st.errs)
	st.enc.Reset()
	*st = state{p: p, norm: st.norm, ids: st.ids, errs: st.errs[:0],
		idArena: st.idArena[:0], contentArena: st.contentArena[:0], enc: st.enc}
	p.states.Put(st)
}

// Parse reads a request body for app, received at now. It returns ErrBodyTooLarge,
// ErrTooManyEvents, *RequestError or *SyntaxError when the request as a whole is unusable;
// otherwise a Batch whose Accepted and Rejected together cover every event.
func (p *Parser) Parse(app *appconfig.App, body string, now time.Time) (*Batch, error) {
	return p.parse(app, body, now, false)
}

// ParseServer is Parse for a request of the app's backend (POST /v1/server/events, signed with
// AWS IAM): the same rules and answers, and every accepted record is marked server-sent
// (envelope.Event.Server), which is what lets its values count when the app trusts values
// from its server only.
func (p *Parser) ParseServer(app *appconfig.App, body string, now time.Time) (*Batch, error) {
	return p.parse(app, body, now, true)
}

func (p *Parser) parse(app *appconfig.App, body string, now time.Time, server bool) (*Batch, error) {
	if len(body) > MaxBodyBytes {
		return nil, ErrBodyTooLarge
	}
	buf := bufPool.Get().(*[]byte)
	// Records are about twice the size of the events they encode (hex digests are longer than
	// most raw values): reserve that up front so that the buffer never moves while encoding.
	if need := 2*len(body) + 4096; cap(*buf) < need {
		*buf = make([]byte, 0, need)
	}
	st := p.states.Get().(*state)
	defer p.release(st)
	st.app, st.now, st.nowMs, st.server = app, now, now.UnixMilli(), server
	st.sc = scanner{s: body}
	st.out = (*buf)[:0]
	if st.sc.peek() != '{' {
		bufPool.Put(buf)
		return nil, &RequestError{Msg: `body must be a JSON object {"events": [...]}`}
	}
	// Events take a few hundred bytes each: size the result once instead of growing it.
	batch := &Batch{buf: buf, Accepted: make([]Record, 0, min(MaxEvents, len(body)/512+1))}
	found := false
	for first := true; st.sc.member(&first); {
		if st.sc.lastKey != "events" {
			st.sc.skip(1)
			continue
		}
		found = true
		if st.sc.peek() != '[' {
			if st.sc.err == nil {
				batch.out = st.out
				batch.Release()
				return nil, &RequestError{Msg: `"events" must be an array of event objects`}
			}
			break
		}
		for el := true; st.sc.element(&el); {
			if batch.Total == MaxEvents {
				batch.out = st.out
				batch.Release()
				return nil, ErrTooManyEvents
			}
			st.event(batch)
			batch.Total++
		}
	}
	if st.sc.err == nil {
		if st.sc.ws(); st.sc.i < len(st.sc.s) { // not peek(): a NUL byte is content too
			st.sc.fail("unexpected content after the JSON document")
		}
	}
	batch.out = st.out
	var err error
	switch {
	case st.sc.err != nil:
		err = st.sc.err
	case !found:
		err = &RequestError{Msg: `body must be a JSON object with an "events" array`}
	case batch.Total == 0:
		err = &RequestError{Msg: `"events" is empty: send 1 to 500 events`}
	}
	if err != nil {
		batch.Release()
		return nil, err
	}
	return batch, nil
}

// state is the per-request working set.
type state struct {
	p     *Parser
	app   *appconfig.App
	now   time.Time
	nowMs int64
	sc    scanner
	// server marks the request's records server-sent (ParseServer).
	server bool
	norm   *identity.Normalizer
	enc    envelope.Encoder
	out    []byte
	ids    map[string]int
	// arenas: the slices of all events of a request share these backing arrays
	idArena      []string
	contentArena []envelope.Content

	// per event
	idx  int
	item int // index of the array item being read, for field paths written "name[]"
	errs []FieldError
	ev   rawEvent
	rec  envelope.Record
	prev identityMemo // see identify

	// The user and device objects of the previous event, when they parsed without errors:
	// events from one device repeat them verbatim, and a verbatim repeat parses the same.
	userMemo   userMemo
	deviceMemo deviceMemo
}

type userMemo struct {
	raw    string // the object's JSON text; "" when there is nothing to reuse
	fields [numUserKeys]string
}

type deviceMemo struct {
	raw    string
	device envelope.Device
}

// rawEvent holds what the client sent, as substrings of the body, before validation.
type rawEvent struct {
	id, name       string
	hasID, hasName bool
	timeSet        bool
	time           int64
	hasUser        bool
	userRaw        string // the user object's JSON text
	user           [numUserKeys]string
	hasDevice      bool
}

// User keys of API v1, in the order they are read.
const (
	uAppUserID = iota
	uAnonID
	uMADID
	uEmail
	uPhone
	uFirstName
	uLastName
	uGender
	uDateOfBirth
	uCity
	uState
	uZip
	uCountry
	uClientIP
	uClientUA
	numUserKeys
)

var userKeys = [numUserKeys]string{
	"app_user_id", "anon_id", "madid", "email", "phone", "first_name", "last_name", "gender",
	"date_of_birth", "city", "state", "zip", "country", "client_ip_address", "client_user_agent",
}

func userKeyIndex(k string) int {
	switch k {
	case "app_user_id":
		return uAppUserID
	case "anon_id":
		return uAnonID
	case "madid":
		return uMADID
	case "email":
		return uEmail
	case "phone":
		return uPhone
	case "first_name":
		return uFirstName
	case "last_name":
		return uLastName
	case "gender":
		return uGender
	case "date_of_birth":
		return uDateOfBirth
	case "city":
		return uCity
	case "state":
		return uState
	case "zip":
		return uZip
	case "country":
		return uCountry
	case "client_ip_address":
		return uClientIP
	case "client_user_agent":
		return uClientUA
	}
	return -1
}

// hashedUserFields pairs request keys with the identity field they normalise to.
var hashedUserFields = [...]struct {
	key   int
	field identity.Field
}{
	{uEmail, identity.Email}, {uPhone, identity.Phone}, {uFirstName, identity.FirstName},
	{uLastName, identity.LastName}, {uGender, identity.Gender}, {uDateOfBirth, identity.DateOfBirth},
	{uCity, identity.City}, {uState, identity.State}, {uZip, identity.Zip},
}

func (st *state) fieldPath(field string) string {
	if field == "" {
		return "events[" + strconv.Itoa(st.idx) + "]"
	}
	return "events[" + strconv.Itoa(st.idx) + "]." + field
}

func (st *state) reject(field, code, reason string) {
	if i := strings.Index(field, "[]"); i >= 0 {
		field = field[:i+1] + strconv.Itoa(st.item) + field[i+1:]
	}
	st.errs = append(st.errs, FieldError{Field: st.fieldPath(field), Code: code, Reason: reason})
}

// typeError reports a value of the wrong JSON type and skips it.
func (st *state) typeError(field, want string) {
	st.reject(field, "type", "must be "+want+", not "+st.sc.kind())
	st.sc.skip(1)
}

// event reads one element of "events".
func (st *state) event(batch *Batch) {
	st.idx = batch.Total
	st.errs = st.errs[:0]
	st.ev = rawEvent{}
	st.rec = envelope.Record{}
	ev := &st.ev
	e := &st.rec.Event

	if st.sc.peek() != '{' {
		st.reject("", "type", "must be an event object, not "+st.sc.kind())
		st.sc.skip(1)
		st.finish(batch)
		return
	}
	for first := true; st.sc.member(&first); {
		switch st.sc.lastKey {
		case "event_id":
			ev.id, ev.hasID = st.string("event_id")
		case "event_name":
			ev.name, ev.hasName = st.string("event_name")
		case "event_time":
			ev.time, ev.timeSet = st.timestamp("event_time")
		case "user":
			if m := &st.userMemo; st.sc.repeats(m.raw) {
				ev.hasUser, ev.userRaw, ev.user = true, m.raw, m.fields
				break
			}
			start, errs := st.sc.i, len(st.errs)
			ev.hasUser = st.user()
			ev.userRaw = st.sc.s[start:st.sc.i]
			st.userMemo = userMemo{fields: ev.user}
			if ev.hasUser && len(st.errs) == errs {
				st.userMemo.raw = ev.userRaw
			}
		case "device":
			if m := &st.deviceMemo; st.sc.repeats(m.raw) {
				ev.hasDevice, e.Device = true, m.device
				break
			}
			start, errs := st.sc.i, len(st.errs)
			ev.hasDevice = st.device(&e.Device)
			st.deviceMemo = deviceMemo{device: e.Device}
			if ev.hasDevice && len(st.errs) == errs {
				st.deviceMemo.raw = st.sc.s[start:st.sc.i]
			}
		case "consent":
			st.consent(&e.Consent)
		case "custom_data":
			st.custom(&e.Custom)
		default:
			st.sc.skip(1) // unknown fields are ignored and never copied
		}
	}
	if st.sc.err != nil {
		return
	}
	st.validate()
	st.finish(batch)
}

// finish records the event as accepted (encoding it) or rejected.
func (st *state) finish(batch *Batch) {
	if len(st.errs) > 0 {
		batch.Rejected = append(batch.Rejected, Rejection{
			Index: st.idx, EventID: safeEventID(st.ev.id), Errors: append([]FieldError(nil), st.errs...),
		})
		return
	}
	st.rec.V = envelope.Version
	st.rec.App = st.app.ID
	st.rec.ReceivedAt = st.nowMs
	st.rec.Event.Server = st.server
	start := len(st.out)
	st.out = envelope.Append(st.out, &st.rec)
	batch.Accepted = append(batch.Accepted, Record{
		Index: st.idx, EventID: st.rec.Event.ID, UserKey: st.rec.UserKey,
		Data: st.out[start:len(st.out):len(st.out)],
	})
}

// safeEventID echoes an event id back only when it is a valid one (never arbitrary input).
func safeEventID(id string) string {
	if id != "" && len(id) <= 128 && validEventID(id) {
		return id
	}
	return ""
}

func validEventID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

const zeroMADID = "00000000-0000-0000-0000-000000000000"

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func trim(s string) string { return strings.TrimSpace(s) }

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

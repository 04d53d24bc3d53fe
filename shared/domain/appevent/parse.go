// Package appevent reads the ingest API v1 request body: it parses and validates each event,
// normalises and hashes its personal data, derives the pseudonymous user key and encodes the
// stream records (package envelope): by default version 2, a record per user of the request
// with the user and device written once. One bad event never rejects its neighbours: every
// problem is reported by index and field, and the good events are accepted.
//
// The hot path reads the body once, without reflection or intermediate copies: member names
// are dispatched by perfect hashes, a user object repeated within a request (byte for byte,
// same consent) is normalised, hashed and keyed once, and country and state digests come from
// tables.
package appevent

import (
	"errors"
	"fmt"
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

// Event is one accepted event of a request.
type Event struct {
	Index   int    // position in the request
	EventID string // as sent by the client
	UserKey string // pseudonymous user key: the partition key of its record
	Record  int    // the record that carries it: an index of Batch.Records
}

// Record is one stream record of a request: in version 2 (the default) the events of one user,
// in version 1 (Options.Format V1) one event.
type Record struct {
	PartitionKey string // the user key of its events
	Data         []byte // the envelope record (package envelope)
	Events       int    // how many events it carries
}

// Batch is the outcome of parsing one request. Accepted lists the accepted events in request
// order; Records the stream records that carry them: a record per user in the order users first
// appear, each user's events in request order, a user's events split over several records when
// one would pass envelope.MaxRecordBytes (an event too large for any record alone gets one of its
// own). Accepted and Rejected together cover every event once.
type Batch struct {
	Total    int
	Accepted []Event
	Records  []Record
	Rejected []Rejection

	buf  *[]byte   // pooled; backs every Records[i].Data
	out  []byte    // the encoded records (may have outgrown *buf)
	recs *[]Record // pooled; backs Records
}

// Events decodes the batch's records and returns each accepted event as its record carries it
// (header included), in the order of Accepted: for tools and tests that look at events one by
// one. The ingest function publishes Records as they are.
func (b *Batch) Events() ([]envelope.Record, error) {
	decoded := make([][]envelope.Record, len(b.Records))
	for i, r := range b.Records {
		evs, err := envelope.Decode(r.Data)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		decoded[i] = evs
	}
	out := make([]envelope.Record, len(b.Accepted))
	for i, a := range b.Accepted {
		evs := decoded[a.Record]
		if len(evs) == 0 || evs[0].Event.ID != a.EventID {
			return nil, fmt.Errorf("record %d does not carry event %d (%s) where the batch says", a.Record, a.Index, a.EventID)
		}
		out[i], decoded[a.Record] = evs[0], evs[1:]
	}
	return out, nil
}

// Release returns the batch's encoding buffer and Records for reuse by later requests. Call it
// once the records have been published; Records must not be used afterwards.
func (b *Batch) Release() {
	if b.buf != nil {
		*b.buf = b.out[:0]
		bufPool.Put(b.buf)
		b.buf, b.out = nil, nil
	}
	if b.recs != nil {
		clear(b.Records)
		*b.recs = b.Records[:0]
		recordPool.Put(b.recs)
		b.recs, b.Records = nil, nil
	}
}

// recordPool recycles the Records slices of released batches.
var recordPool = sync.Pool{New: func() any { r := make([]Record, 0, 64); return &r }}

// records returns an empty Records slice of capacity n from the pool.
func (b *Batch) records(n int) []Record {
	b.recs = recordPool.Get().(*[]Record)
	if cap(*b.recs) < n {
		*b.recs = make([]Record, 0, n)
	}
	return (*b.recs)[:0]
}

// bufPool recycles encoding buffers across requests: a warm Lambda then encodes without
// allocating its output.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}

// Format is the stream format a Parser writes.
type Format uint8

// Stream formats.
const (
	// V2 writes envelope version 2: the events of one user from one request in one record.
	V2 Format = iota
	// V1 writes envelope version 1, one event per record: for a rollout whose consumers do not
	// all read version 2 yet (the ingest setting STREAM_FORMAT=v1).
	V1
)

// ParseFormat reads "v1" or "v2"; "" is V2.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "v2":
		return V2, nil
	case "v1":
		return V1, nil
	}
	return V2, errors.New("stream format " + strconv.Quote(s) + ": want v1 or v2")
}

func (f Format) String() string {
	if f == V1 {
		return "v1"
	}
	return "v2"
}

// Options configure a Parser.
type Options struct {
	Format Format // the stream format written (default V2)
}

// Parser turns request bodies into stream records. It is safe for concurrent use.
type Parser struct {
	pseudo *identity.Pseudonymizer
	format Format
	states sync.Pool // of *state: a warm function parses without allocating its working set
}

// NewParser returns a Parser that keys users with pseudo and writes version 2 records.
func NewParser(pseudo *identity.Pseudonymizer) *Parser {
	return NewParserWith(pseudo, Options{})
}

// NewParserWith returns a Parser that keys users with pseudo, configured by opts.
func NewParserWith(pseudo *identity.Pseudonymizer, opts Options) *Parser {
	p := &Parser{pseudo: pseudo, format: opts.Format}
	p.states.New = func() any { return &state{p: p, norm: identity.NewNormalizer(), keyer: pseudo.Keyer()} }
	return p
}

// Format returns the stream format p writes.
func (p *Parser) Format() Format { return p.format }

// release returns st to the pool, dropping every reference into the request (the body's
// substrings, the output buffer) so that a pooled state keeps no request alive.
func (p *Parser) release(st *state) {
	clear(st.acc)
	clear(st.users)
	clear(st.objs)
	clear(st.devices)
	clear(st.groups)
	clear(st.seen)
	clear(st.idArena)
	clear(st.contentArena)
	clear(st.errs)
	st.enc.Reset()
	st.head = envelope.Head{}
	*st = state{p: p, norm: st.norm, keyer: st.keyer, errs: st.errs[:0], acc: st.acc[:0], users: st.users[:0],
		devices: st.devices[:0], groups: st.groups[:0], objs: st.objs[:0], seen: st.seen[:0], tabs: st.tabs,
		idArena: st.idArena[:0], devJSON: st.devJSON[:0], devSpans: st.devSpans[:0], contentArena: st.contentArena[:0], enc: st.enc,
		guess: st.guess}
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
	// Records take at most about twice the bytes of the events they encode (version 1: hex
	// digests are longer than most raw values): reserve that up front so that the buffer never
	// moves while encoding.
	if need := 2*len(body) + 4096; cap(*buf) < need {
		*buf = make([]byte, 0, need)
	}
	st := p.states.Get().(*state)
	defer p.release(st)
	if st.tabs == nil {
		st.tabs = new(tables)
	}
	st.tabs.ids.reset()
	st.tabs.objs.reset()
	st.tabs.keys.reset()
	st.app, st.now, st.nowMs, st.server = app, now, now.UnixMilli(), server
	st.sc = scanner{s: body}
	st.out = (*buf)[:0]
	if st.sc.peek() != '{' {
		bufPool.Put(buf)
		return nil, &RequestError{Msg: `body must be a JSON object {"events": [...]}`}
	}
	batch := &Batch{buf: buf}
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
		batch.out = st.out
		batch.Release()
		return nil, err
	}
	// The accepted events, collected in the state, fill a result of their exact size.
	if len(st.acc) > 0 {
		batch.Accepted = make([]Event, len(st.acc))
		for i := range st.acc {
			a := &st.acc[i]
			batch.Accepted[i] = Event{Index: int(a.index), EventID: a.ev.ID, UserKey: st.users[a.user].key}
		}
	}
	if p.format == V1 {
		st.encodeV1(batch)
	} else {
		st.encodeV2(batch)
	}
	batch.out = st.out
	return batch, nil
}

// encodeV2 writes the accepted events as version 2 records: per user (in the order users first
// appear), the user's events in request order, a new record for the same user where the next
// event would take the record past envelope.MaxRecordBytes.
func (st *state) encodeV2(batch *Batch) {
	batch.Records = batch.records(len(st.groups))
	head := &st.head // not a local: a pointer to it would move it to the heap
	for gi := range st.groups {
		g := &st.groups[gi]
		for e := g.first; e >= 0; {
			a := &st.acc[e]
			*head = envelope.Head{App: st.app.ID, UserKey: g.key, ReceivedAt: st.nowMs, Server: st.server,
				User: &st.users[a.user].user, Device: st.deviceAt(a.device), DeviceJSON: st.deviceJSON(a.device)}
			start := len(st.out)
			st.out = envelope.AppendHeadOf(st.out, head)
			st.out = envelope.AppendEventOf(st.out, head, st.envelopeEvent(&a.ev), head.User, head.Device, true)
			rec := len(batch.Records)
			batch.Accepted[e].Record = rec
			n := 1
			for e = a.next; e >= 0; e = st.acc[e].next {
				b := &st.acc[e]
				mark := len(st.out)
				st.out = envelope.AppendEventOf(st.out, head, st.envelopeEvent(&b.ev), &st.users[b.user].user, st.deviceAt(b.device), false)
				if len(st.out)+len("]}")-start > envelope.MaxRecordBytes {
					st.out = st.out[:mark] // e starts the next record
					break
				}
				batch.Accepted[e].Record = rec
				n++
			}
			st.out = envelope.CloseGroup(st.out)
			batch.Records = append(batch.Records, Record{PartitionKey: g.key, Data: st.out[start:len(st.out):len(st.out)], Events: n})
		}
	}
}

// encodeV1 writes each accepted event as a version 1 record, in request order.
func (st *state) encodeV1(batch *Batch) {
	batch.Records = batch.records(len(st.acc))
	var rec envelope.Record
	for e := range st.acc {
		a := &st.acc[e]
		u := &st.users[a.user]
		rec = envelope.Record{V: 1, App: st.app.ID, UserKey: u.key, ReceivedAt: st.nowMs, Event: *st.envelopeEvent(&a.ev)}
		rec.Event.Server, rec.Event.User = st.server, u.user
		if d := st.deviceAt(a.device); d != nil {
			rec.Event.Device = *d
		}
		start := len(st.out)
		st.out = st.enc.AppendV1(st.out, &rec)
		batch.Accepted[e].Record = len(batch.Records)
		batch.Records = append(batch.Records, Record{PartitionKey: u.key, Data: st.out[start:len(st.out):len(st.out)], Events: 1})
	}
}

// deviceJSON returns the request's device i encoded for envelope.Head.DeviceJSON, encoding it
// at its first use (a device is typically in every record of the request); nil for none (-1).
func (st *state) deviceJSON(i int32) []byte {
	if i < 0 {
		return nil
	}
	for len(st.devSpans) < len(st.devices) {
		st.devSpans = append(st.devSpans, [2]int32{-1, -1})
	}
	sp := &st.devSpans[i]
	if sp[0] < 0 {
		if st.devJSON == nil {
			st.devJSON = make([]byte, 0, 4096)
		}
		sp[0] = int32(len(st.devJSON))
		st.devJSON = envelope.AppendDeviceJSON(st.devJSON, &st.devices[i])
		sp[1] = int32(len(st.devJSON))
	}
	return st.devJSON[sp[0]:sp[1]:sp[1]]
}

// deviceAt returns the request's device i, or nil for none (-1).
func (st *state) deviceAt(i int32) *envelope.Device {
	if i < 0 {
		return nil
	}
	return &st.devices[i]
}

// state is the per-request working set.
type state struct {
	p *Parser
	// guess holds the member order of the last object of each kind (see scanner.memberOf).
	guess struct{ event, user, device, consent, custom, content keyGuess }
	app   *appconfig.App
	now   time.Time
	nowMs int64
	sc    scanner
	// server marks the request's records server-sent (ParseServer).
	server bool
	norm   *identity.Normalizer
	keyer  *identity.Keyer
	enc    envelope.Encoder // version 1 only
	head   envelope.Head    // of the record being written (version 2)
	evBuf  envelope.Event   // see envelopeEvent
	// the request's devices encoded (version 2): devices[i] is devJSON[devSpans[i][0]:devSpans[i][1]]
	devJSON  []byte
	devSpans [][2]int32
	out      []byte

	// The request's accepted events, distinct user objects (with their identity), devices, and
	// users (by key) in order of first appearance; acc[i] is batch.Accepted[i].
	acc     []accepted
	objs    []userObj
	users   []userEntry
	devices []envelope.Device
	groups  []group
	seen    []string // the event ids read, for duplicates (tabs.ids)
	tabs    *tables
	// arenas: the slices of all events of a request share these backing arrays
	idArena      []string
	contentArena []envelope.Content

	// per event
	idx  int
	item int // index of the array item being read, for field paths written "name[]"
	errs []FieldError
	ev   rawEvent
	cur  *accepted // the event being read: the next slot of acc, kept if it is accepted

	// The user object of the previous event (st.objs index + 1; 0 for none) and its device,
	// when they parsed without errors: events from one device repeat them verbatim, and a
	// verbatim repeat parses the same. Checking them first costs one byte comparison.
	lastObj     int32
	deviceMemo  deviceMemo
	consentMemo consentMemo
	// The last currency code, advertising id and country read, with what they normalise to: a
	// request's events mostly repeat them.
	currencyMemo struct{ in, out string }
	madidMemo    struct{ in, out string }
	countryMemo  struct {
		in, code string
		hash     identity.Hash
	}
}

// tables are the request's indexes: event ids (to seen), user objects (their text up to its
// first '}', to objs), user keys (to groups).
type tables struct {
	ids, objs, keys table
}

// accepted is an event being read, and once accepted, waiting to be encoded.
type accepted struct {
	ev     eventFields
	user   int32 // st.users
	device int32 // st.devices; -1 for none
	next   int32 // the next accepted event of the same user (st.acc); -1 for none
	index  int32 // its position in the request
}

// eventFields are the fields of an envelope.Event that are the event's own; its user and device
// are held once per distinct object of the request (accepted.user, accepted.device). An
// envelope.Event is three times larger: 100 of them per request would be zeroed, filled and
// cleared for nothing.
type eventFields struct {
	ID, Name string
	Time     int64
	Consent  envelope.Consent
	Custom   envelope.CustomData
}

// envelopeEvent returns e as an envelope.Event without user and device, in st.evBuf (reused
// from event to event).
func (st *state) envelopeEvent(e *eventFields) *envelope.Event {
	ev := &st.evBuf
	ev.ID, ev.Name, ev.Time, ev.Consent, ev.Custom = e.ID, e.Name, e.Time, e.Consent, e.Custom
	return ev
}

// userObj is a distinct user object of the request, read once: an event that repeats it byte
// for byte (anywhere in the request) takes its fields without reading it again.
type userObj struct {
	raw    string // the object's JSON text; "" when it had errors (then it is never reused)
	fields [numUserKeys]string
	user   int32 // its first identity (st.users), -1 for none yet; see userEntry.nextOfObj
	// indexed: the slot has its entry in tables.objs (made once per slot)
	indexed bool
}

// userEntry is the identity of a user object under one consent: events that repeat the object
// (byte for byte, with the same consent) share it instead of hashing again.
type userEntry struct {
	ads, att  envelope.Flag
	nextOfObj int32         // the object's next identity (other consent), -1 for none
	key       string        // the user key
	user      envelope.User // what the records carry
	group     int32         // st.groups, once an event of the object is accepted; -1 before
}

// group is one user (key) of the request: its accepted events, linked in request order.
type group struct {
	key         string
	first, last int32
}

// consentMemo is the previous event's consent object (its text, "" for none) as read.
type consentMemo struct {
	raw string
	c   envelope.Consent
}

type deviceMemo struct {
	raw string
	i   int32 // st.devices
}

// rawEvent holds what the client sent, as substrings of the body, before validation.
type rawEvent struct {
	id, name       string
	hasID, hasName bool
	timeSet        bool
	time           int64
	hasUser        bool
	obj            int32 // the user object (st.objs) when hasUser
	ownObj         int32 // the slot this event read a user object into, +1 (0: none yet); a repeated member reuses it
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

var userKeySet = newKeySet(userKeys[:]...)

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

// Members of an event object.
const (
	kEventID = iota
	kEventName
	kEventTime
	kUser
	kDevice
	kConsent
	kCustomData
)

var eventKeys = newKeySet("event_id", "event_name", "event_time", "user", "device", "consent", "custom_data")

// event reads one element of "events".
func (st *state) event(batch *Batch) {
	st.idx = batch.Total
	st.errs = st.errs[:0]
	st.ev = rawEvent{}
	n := len(st.acc)
	if n == cap(st.acc) {
		st.acc = append(st.acc, accepted{})[:n]
	}
	st.acc = st.acc[:n+1]
	a := &st.acc[n]
	*a = accepted{device: -1, next: -1}
	st.cur = a
	ev := &st.ev
	e := &a.ev

	if st.sc.peek() != '{' {
		st.reject("", "type", "must be an event object, not "+st.sc.kind())
		st.sc.skip(1)
		st.finish(batch)
		return
	}
	for first := true; ; {
		k, ok := st.sc.memberOf(&first, eventKeys, &st.guess.event)
		if !ok {
			break
		}
		switch k {
		case kEventID:
			ev.id, ev.hasID = st.string("event_id")
		case kEventName:
			ev.name, ev.hasName = st.string("event_name")
		case kEventTime:
			ev.time, ev.timeSet = st.timestamp("event_time")
		case kUser:
			st.readUser()
		case kDevice:
			if m := &st.deviceMemo; st.sc.repeats(m.raw) {
				ev.hasDevice, a.device = true, m.i
				break
			}
			start, errs := st.sc.i, len(st.errs)
			i := int32(len(st.devices))
			st.devices = append(st.devices, envelope.Device{})
			ev.hasDevice = st.device(&st.devices[i])
			st.deviceMemo = deviceMemo{}
			if ev.hasDevice {
				a.device = i
				if len(st.errs) == errs {
					st.deviceMemo = deviceMemo{raw: st.sc.s[start:st.sc.i], i: i}
				}
			} else {
				st.devices = st.devices[:i]
			}
		case kConsent:
			if m := &st.consentMemo; st.sc.repeats(m.raw) {
				e.Consent = m.c
				break
			}
			// Read afresh (a repeated member replaces, as a repeat of the memo does).
			start, errs := st.sc.i, len(st.errs)
			e.Consent = envelope.Consent{}
			st.consent(&e.Consent)
			st.consentMemo = consentMemo{}
			if st.sc.err == nil && len(st.errs) == errs && start < len(st.sc.s) && st.sc.s[start] == '{' {
				st.consentMemo = consentMemo{raw: st.sc.s[start:st.sc.i], c: e.Consent}
			}
		case kCustomData:
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

// finish keeps the event as accepted (in its user's group) or reports it rejected.
func (st *state) finish(batch *Batch) {
	n := int32(len(st.acc) - 1)
	a := &st.acc[n]
	if len(st.errs) > 0 {
		st.acc = st.acc[:n]
		batch.Rejected = append(batch.Rejected, Rejection{
			Index: st.idx, EventID: safeEventID(st.ev.id), Errors: append([]FieldError(nil), st.errs...),
		})
		return
	}
	u := &st.users[a.user]
	if u.group < 0 {
		u.group = st.groupOf(u.key)
	}
	g := &st.groups[u.group]
	if g.last >= 0 {
		st.acc[g.last].next = n
	} else {
		g.first = n
	}
	g.last = n
	a.index = int32(st.idx)
}

// groupOf returns the group of the user key, adding it when it is new.
func (st *state) groupOf(key string) int32 {
	t := &st.tabs.keys
	h := hashString(key)
	s, i := t.probe(h)
	for !t.free(s) {
		if s.hi == uint32(h>>32) && st.groups[s.v].key == key {
			return s.v
		}
		s, i = t.next(i)
	}
	t.put(s, h, len(st.groups))
	st.groups = append(st.groups, group{key: key, first: -1, last: -1})
	return int32(len(st.groups) - 1)
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
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	dashes := 0
	for i := range 36 {
		switch uuidChars[s[i]] {
		case 0:
			return false
		case '-':
			dashes++
		}
	}
	return dashes == 4 // the four above, none elsewhere
}

// uuidChars maps the characters of a UUID's text to themselves (hex digits, either case, and
// '-'); every other byte to 0.
var uuidChars = func() (t [256]byte) {
	for _, c := range []byte("0123456789abcdefABCDEF-") {
		t[c] = c
	}
	return t
}()

func trim(s string) string { return strings.TrimSpace(s) }

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// Package appevent reads the ingest API v1 request body: it parses and validates each event,
// normalises and hashes its personal data, derives the pseudonymous user key and encodes the
// stream record (package envelope). One bad event never rejects its neighbours: every problem is
// reported by index and field, and the good events are accepted.
package appevent

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/appconfig"
	"github.com/retarget-dev/retarget/shared/envelope"
	"github.com/retarget-dev/retarget/shared/identity"
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

// Rejection lists why one event was refused.
type Rejection struct {
	Index   int          `json:"index"`
	EventID string       `json:"event_id,omitempty"`
	Errors  []FieldError `json:"errors"`
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
}

// NewParser returns a Parser that keys users with pseudo.
func NewParser(pseudo *identity.Pseudonymizer) *Parser {
	return &Parser{pseudo: pseudo}
}

// Parse reads a request body for app, received at now. It returns ErrBodyTooLarge,
// ErrTooManyEvents, *RequestError or *SyntaxError when the request as a whole is unusable;
// otherwise a Batch whose Accepted and Rejected together cover every event.
func (p *Parser) Parse(app *appconfig.App, body string, now time.Time) (*Batch, error) {
	if len(body) > MaxBodyBytes {
		return nil, ErrBodyTooLarge
	}
	buf := bufPool.Get().(*[]byte)
	// Records are about twice the size of the events they encode (hex digests are longer than
	// most raw values): reserve that up front so that the buffer never moves while encoding.
	if need := 2*len(body) + 4096; cap(*buf) < need {
		*buf = make([]byte, 0, need)
	}
	st := state{
		p: p, app: app, now: now, nowMs: now.UnixMilli(),
		sc:   scanner{s: body},
		norm: identity.NewNormalizer(),
		out:  (*buf)[:0],
	}
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
	norm  *identity.Normalizer
	out   []byte
	ids   map[string]int
	// arenas: the slices of all events of a request share these backing arrays
	idArena      []string
	contentArena []envelope.Content

	// per event
	idx  int
	item int // index of the array item being read, for field paths written "name[]"
	errs []FieldError
	ev   rawEvent
	rec  envelope.Record
}

// rawEvent holds what the client sent, as substrings of the body, before validation.
type rawEvent struct {
	id, name       string
	hasID, hasName bool
	timeSet        bool
	time           int64
	hasUser        bool
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
			ev.hasUser = st.user()
		case "device":
			ev.hasDevice = st.device(&e.Device)
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

// string reads an optional string member; null counts as absent.
func (st *state) string(field string) (string, bool) {
	switch st.sc.peek() {
	case '"':
		return st.sc.str(), true
	case 'n':
		st.sc.literal("null")
		return "", false
	}
	st.typeError(field, "a string")
	return "", false
}

// boundedString reads a string of at most max bytes without control characters.
func (st *state) boundedString(field string, max int) string {
	s, ok := st.string(field)
	if !ok {
		return ""
	}
	if len(s) > max {
		st.reject(field, "too_long", "at most "+strconv.Itoa(max)+" bytes")
		return ""
	}
	if st.sc.slowStr && hasControl(s) {
		st.reject(field, "invalid_characters", "contains control characters")
		return ""
	}
	return s
}

func (st *state) float(field string) (float64, bool) {
	switch c := st.sc.peek(); {
	case c == 'n':
		st.sc.literal("null")
		return 0, false
	case c == '-' || c >= '0' && c <= '9':
		v, err := parseNumber(st.sc.number())
		if err != nil || math.IsInf(v, 0) {
			st.reject(field, "out_of_range", "number out of range")
			return 0, false
		}
		return v, true
	}
	st.typeError(field, "a number")
	return 0, false
}

// parseNumber converts a JSON number; plain integers of up to 15 digits (exact in a float64)
// skip strconv, since they are most of the numbers an event carries.
func parseNumber(s string) (float64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	if len(s) <= 15 {
		var n int64
		i := 0
		if s[0] == '-' {
			i = 1
		}
		j := i
		for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
			n = n*10 + int64(s[j]-'0')
		}
		if j == len(s) && j > i {
			if i == 1 {
				if n == 0 {
					return math.Copysign(0, -1), nil
				}
				return float64(-n), nil
			}
			return float64(n), nil
		}
	}
	return strconv.ParseFloat(s, 64)
}

func (st *state) nonNegativeFloat(field string) float64 {
	v, ok := st.float(field)
	if ok && v < 0 {
		st.reject(field, "out_of_range", "must not be negative")
		return 0
	}
	return v
}

// count reads a non-negative integer.
func (st *state) count(field string, max int64) int64 {
	v, ok := st.float(field)
	if !ok {
		return 0
	}
	if v != math.Trunc(v) || v < 0 || v > float64(max) {
		st.reject(field, "out_of_range", "must be a whole number from 0 to "+strconv.FormatInt(max, 10))
		return 0
	}
	return int64(v)
}

func (st *state) flag(field string) envelope.Flag {
	switch st.sc.peek() {
	case 't', 'f':
		return envelope.FlagOf(st.sc.boolean())
	case 'n':
		st.sc.literal("null")
		return envelope.Unset
	}
	st.typeError(field, "true or false")
	return envelope.Unset
}

// timestamp reads unix seconds (a number) or an RFC 3339 string.
func (st *state) timestamp(field string) (int64, bool) {
	switch c := st.sc.peek(); {
	case c == '"':
		s := st.sc.str()
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			st.reject(field, "invalid", "not a time: use unix seconds or RFC 3339 (2026-11-28T10:00:00Z)")
			return 0, false
		}
		return t.Unix(), true
	case c == 'n':
		st.sc.literal("null")
		return 0, false
	case c == '-' || c >= '0' && c <= '9':
		v, err := parseNumber(st.sc.number())
		switch {
		case err != nil || v < 0:
			st.reject(field, "invalid", "not a unix time in seconds")
			return 0, false
		case v >= 1e11:
			st.reject(field, "invalid", "looks like milliseconds: send unix seconds")
			return 0, false
		}
		return int64(v), true
	}
	st.typeError(field, "unix seconds or an RFC 3339 string")
	return 0, false
}

func (st *state) user() bool {
	if st.sc.isNull() {
		return false
	}
	if st.sc.peek() != '{' {
		st.typeError("user", "an object")
		return false
	}
	for first := true; st.sc.member(&first); {
		k := st.sc.lastKey
		i := userKeyIndex(k)
		if i < 0 {
			st.sc.skip(1)
			continue
		}
		if st.sc.peek() == '"' {
			st.ev.user[i] = st.sc.str()
		} else if !st.sc.isNull() {
			st.typeError("user."+k, "a string")
		}
	}
	return true
}

func (st *state) device(d *envelope.Device) bool {
	if st.sc.isNull() {
		return false
	}
	if st.sc.peek() != '{' {
		st.typeError("device", "an object")
		return false
	}
	for first := true; st.sc.member(&first); {
		switch k := st.sc.lastKey; k {
		case "platform":
			d.Platform = st.boundedString("device.platform", 16)
		case "app_package":
			d.AppPackage = st.boundedString("device.app_package", 256)
		case "app_version":
			d.AppVersion = st.boundedString("device.app_version", 64)
		case "app_build":
			d.AppBuild = st.boundedString("device.app_build", 64)
		case "os_version":
			d.OSVersion = st.boundedString("device.os_version", 64)
		case "device_model":
			d.DeviceModel = st.boundedString("device.device_model", 128)
		case "locale":
			d.Locale = st.boundedString("device.locale", 32)
		case "timezone_abbr":
			d.TimezoneAbbr = st.boundedString("device.timezone_abbr", 16)
		case "carrier":
			d.Carrier = st.boundedString("device.carrier", 128)
		case "timezone":
			d.Timezone = st.boundedString("device.timezone", 64)
		case "screen_width":
			d.ScreenWidth = st.count("device.screen_width", 100000)
		case "screen_height":
			d.ScreenHeight = st.count("device.screen_height", 100000)
		case "cpu_cores":
			d.CPUCores = st.count("device.cpu_cores", 1024)
		case "screen_density":
			d.ScreenDensity = st.nonNegativeFloat("device.screen_density")
		case "storage_total_gb":
			d.StorageTotalGB = st.nonNegativeFloat("device.storage_total_gb")
		case "storage_free_gb":
			d.StorageFreeGB = st.nonNegativeFloat("device.storage_free_gb")
		default:
			st.sc.skip(1)
		}
	}
	return true
}

func (st *state) consent(c *envelope.Consent) {
	if st.sc.isNull() {
		return
	}
	if st.sc.peek() != '{' {
		st.typeError("consent", "an object")
		return
	}
	for first := true; st.sc.member(&first); {
		switch st.sc.lastKey {
		case "ads_personalization":
			c.AdsPersonalization = st.flag("consent.ads_personalization")
		case "advertiser_tracking_enabled":
			c.AdvertiserTracking = st.flag("consent.advertiser_tracking_enabled")
		case "application_tracking_enabled":
			c.ApplicationTracking = st.flag("consent.application_tracking_enabled")
		case "ldu":
			c.LDU = st.flag("consent.ldu")
		case "ldu_country":
			c.LDUCountry = st.count("consent.ldu_country", 1000)
		case "ldu_state":
			c.LDUState = st.count("consent.ldu_state", 100000)
		default:
			st.sc.skip(1)
		}
	}
}

// Limits of custom_data.
const (
	maxContentItems = 1000
	maxShortString  = 256
	maxLongString   = 1024
)

func (st *state) custom(c *envelope.CustomData) {
	if st.sc.isNull() {
		return
	}
	if st.sc.peek() != '{' {
		st.typeError("custom_data", "an object")
		return
	}
	for first := true; st.sc.member(&first); {
		switch k := st.sc.lastKey; k {
		case "value":
			if v, ok := st.float("custom_data.value"); ok {
				c.Value = envelope.Float(v)
			}
		case "predicted_ltv":
			if v, ok := st.float("custom_data.predicted_ltv"); ok {
				c.PredictedLTV = envelope.Float(v)
			}
		case "max_rating_value":
			if v, ok := st.float("custom_data.max_rating_value"); ok {
				c.MaxRatingValue = envelope.Float(v)
			}
		case "currency":
			c.Currency = st.boundedString("custom_data.currency", 8)
		case "content_ids":
			c.ContentIDs = st.contentIDs()
		case "contents":
			c.Contents = st.contents()
		case "content_type":
			c.ContentType = st.boundedString("custom_data.content_type", 64)
		case "order_id":
			c.OrderID = st.boundedString("custom_data.order_id", maxShortString)
		case "num_items":
			c.NumItems = st.count("custom_data.num_items", 1_000_000)
		case "search_string":
			c.SearchString = st.boundedString("custom_data.search_string", maxLongString)
		case "status":
			c.Status = st.boundedString("custom_data.status", maxShortString)
		case "description":
			c.Description = st.boundedString("custom_data.description", maxLongString)
		case "level":
			c.Level = st.boundedString("custom_data.level", maxShortString)
		case "success":
			c.Success = st.flag("custom_data.success")
		case "subscription_expires_at":
			if t, ok := st.timestamp("custom_data.subscription_expires_at"); ok {
				c.SubscriptionExpiresAt = t
			}
		default:
			st.sc.skip(1)
		}
	}
}

func (st *state) contentIDs() []string {
	if st.sc.isNull() {
		return nil
	}
	if st.sc.peek() != '[' {
		st.typeError("custom_data.content_ids", "an array of strings")
		return nil
	}
	start := len(st.idArena)
	n := 0
	for first := true; st.sc.element(&first); n++ {
		field := "custom_data.content_ids"
		if st.sc.peek() != '"' {
			st.typeError(field+"["+strconv.Itoa(n)+"]", "a string")
			continue
		}
		s := st.sc.str()
		switch {
		case n >= maxContentItems:
			if n == maxContentItems {
				st.reject(field, "too_long", "at most 1000 content ids")
			}
		case s == "" || len(s) > maxShortString:
			st.reject(field+"["+strconv.Itoa(n)+"]", "invalid", "must be 1 to 256 bytes")
		default:
			st.idArena = append(st.idArena, s)
		}
	}
	if len(st.idArena) == start {
		return nil
	}
	return st.idArena[start:len(st.idArena):len(st.idArena)]
}

func (st *state) contents() []envelope.Content {
	if st.sc.isNull() {
		return nil
	}
	if st.sc.peek() != '[' {
		st.typeError("custom_data.contents", "an array of objects")
		return nil
	}
	start := len(st.contentArena)
	n := 0
	for first := true; st.sc.element(&first); n++ {
		st.item = n // fills in "[]" of the field paths below, on error only
		if st.sc.peek() != '{' {
			st.typeError("custom_data.contents[]", "an object")
			continue
		}
		var item envelope.Content
		for f := true; st.sc.member(&f); {
			switch st.sc.lastKey {
			case "id":
				switch st.sc.peek() {
				case '"':
					item.ID = st.sc.str()
					if len(item.ID) > maxShortString || hasControl(item.ID) {
						st.reject("custom_data.contents[].id", "invalid", "must be at most 256 bytes without control characters")
					}
				case 'n':
					st.sc.literal("null")
				default:
					st.typeError("custom_data.contents[].id", "a string")
				}
			case "quantity":
				item.Quantity = st.count("custom_data.contents[].quantity", 1_000_000)
			case "item_price":
				if v, ok := st.float("custom_data.contents[].item_price"); ok {
					item.ItemPrice = envelope.Float(v)
				}
			default:
				st.sc.skip(1)
			}
		}
		switch {
		case n >= maxContentItems:
			if n == maxContentItems {
				st.reject("custom_data.contents", "too_long", "at most 1000 items")
			}
		case item.ID == "":
			st.reject("custom_data.contents[].id", "required", "is required")
		default:
			st.contentArena = append(st.contentArena, item)
		}
	}
	if len(st.contentArena) == start {
		return nil
	}
	return st.contentArena[start:len(st.contentArena):len(st.contentArena)]
}

// validate applies the cross-field rules and fills the record's identity fields.
func (st *state) validate() {
	ev := &st.ev
	e := &st.rec.Event

	// event_id: 1-128 characters of [A-Za-z0-9._:-], stable across client retries.
	switch {
	case !ev.hasID || ev.id == "":
		st.reject("event_id", "required", "is required")
	case len(ev.id) > 128:
		st.reject("event_id", "too_long", "at most 128 characters")
	case !validEventID(ev.id):
		st.reject("event_id", "invalid", "only letters, digits, '-', '_', '.' and ':' are allowed")
	default:
		if j, dup := st.seenID(ev.id); dup {
			st.reject("event_id", "duplicate", "repeats the event_id of events["+strconv.Itoa(j)+"]")
		}
		e.ID = ev.id
	}

	if !ev.hasName || ev.name == "" {
		st.reject("event_name", "required", "is required")
	} else if code, reason := checkEventName(ev.name); code != "" {
		st.reject("event_name", code, reason)
	} else {
		e.Name = ev.name
	}

	if !ev.timeSet {
		if !st.hasError("event_time") {
			st.reject("event_time", "required", "is required (unix seconds or RFC 3339)")
		}
	} else {
		t := time.Unix(ev.time, 0)
		switch {
		case st.now.Sub(t) > MaxEventAge:
			st.reject("event_time", "too_old", "older than 7 days: Meta refuses such events")
		case t.Sub(st.now) > MaxClockSkew:
			st.reject("event_time", "in_future", "more than 5 minutes in the future: check the device clock")
		}
		e.Time = ev.time
	}

	// device: platform and os_version feed Meta's extinfo and are required.
	d := &e.Device
	if !ev.hasDevice {
		if !st.hasError("device") {
			st.reject("device", "required", "is required (platform and os_version)")
		}
	} else {
		switch p := appconfig.Platform(d.Platform); {
		case d.Platform == "":
			if !st.hasError("device.platform") {
				st.reject("device.platform", "required", "is required (ios or android)")
			}
		case p != appconfig.PlatformIOS && p != appconfig.PlatformAndroid:
			st.reject("device.platform", "invalid", "must be ios or android")
		case !st.app.Supports(p):
			st.reject("device.platform", "unsupported", "platform "+d.Platform+" is not configured for app "+st.app.ID)
		}
		if d.OSVersion == "" && !st.hasError("device.os_version") {
			st.reject("device.os_version", "required", "is required")
		}
		if d.StorageFreeGB > d.StorageTotalGB && d.StorageTotalGB > 0 {
			st.reject("device.storage_free_gb", "out_of_range", "exceeds storage_total_gb")
		}
	}

	c := &e.Consent
	if d.Platform == string(appconfig.PlatformIOS) && c.AdvertiserTracking == envelope.Unset && !st.hasError("consent.advertiser_tracking_enabled") {
		st.reject("consent.advertiser_tracking_enabled", "required", "is required for ios events (the App Tracking Transparency status)")
	}
	if c.LDUCountry != 0 && c.LDUState == 0 {
		st.reject("consent.ldu_state", "required", "is required when ldu_country is set (Meta: a country needs a state; 0,0 lets Meta geolocate)")
	}

	cd := &e.Custom
	if cd.Currency != "" {
		cur := strings.ToUpper(cd.Currency)
		if !identity.IsCurrency(cur) {
			st.reject("custom_data.currency", "invalid", "not an ISO 4217 currency code (e.g. USD)")
		}
		cd.Currency = cur
	}
	if cd.Value.Set && cd.Currency == "" && !st.hasError("custom_data.currency") {
		st.reject("custom_data.currency", "required", "is required when value is set (ISO 4217, e.g. USD)")
	}

	st.identify()
}

// identify derives the user key and the stream's user fields. Without consent to ads
// personalisation every identifier is dropped here, at the edge, after the key is derived.
func (st *state) identify() {
	ev := &st.ev
	u := &st.rec.Event.User
	raw := &ev.user
	if !ev.hasUser {
		if !st.hasError("user") {
			st.reject("user", "required", "is required (with at least one of app_user_id, anon_id, madid)")
		}
		return
	}

	appUserID := st.identifier(uAppUserID, 256)
	anonID := st.identifier(uAnonID, 128)
	madid := ""
	if m := trim(raw[uMADID]); m != "" {
		if !isUUID(m) {
			st.reject("user.madid", "invalid", "not an advertising id (IDFA/GAID UUID, 8-4-4-4-12 hex)")
		} else if m != zeroMADID {
			madid = strings.ToLower(m)
		}
	}
	var kind identity.IDKind
	var id string
	switch {
	case appUserID != "":
		kind, id = identity.KindAppUserID, appUserID
	case anonID != "":
		kind, id = identity.KindAnonID, anonID
	case madid != "":
		kind, id = identity.KindMADID, madid
	default:
		if !st.hasError("user.") {
			reason := "at least one of app_user_id, anon_id, madid is required"
			if trim(raw[uMADID]) == zeroMADID {
				reason += " (madid is all zeros: tracking is not authorised on this device; send anon_id)"
			}
			st.reject("user", "required", reason)
		}
		return
	}
	st.rec.UserKey = st.p.pseudo.UserKey(st.app.ID, kind, id)

	consent := st.rec.Event.Consent
	if !consent.AdsPersonalization.IsTrue() {
		// Privacy by construction: no consent to remarketing, no identifiers past this point.
		st.rec.Event.Device = envelope.Device{}
		st.rec.Event.Custom = envelope.CustomData{}
		return
	}
	u.KeySource = kind
	u.AnonID = anonID
	if consent.AdvertiserTracking != envelope.False {
		u.MADID = madid
	}
	if ip := trim(raw[uClientIP]); ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			st.reject("user.client_ip_address", "invalid", "not an IPv4 or IPv6 address")
		} else {
			u.ClientIP = ip
		}
	}
	if ua := raw[uClientUA]; ua != "" {
		if len(ua) > 1024 || hasControl(ua) {
			st.reject("user.client_user_agent", "invalid", "must be at most 1024 bytes without control characters")
		} else {
			u.ClientUserAgent = ua
		}
	}

	country := ""
	if s := raw[uCountry]; s != "" {
		c, err := identity.NormalizeCountry(trim(s))
		if err != nil {
			st.identityError(uCountry, err)
		} else {
			country = c
			u.Country, _ = st.norm.HashField(identity.Country, c, "")
		}
	}
	if appUserID != "" {
		u.ExternalID, _ = st.norm.HashField(identity.ExternalID, appUserID, "")
	}
	for _, f := range hashedUserFields {
		if raw[f.key] == "" {
			continue
		}
		h, err := st.norm.HashField(f.field, raw[f.key], country)
		switch {
		case err == nil:
			*u.Hashed(f.field) = h
		case errors.Is(err, identity.ErrEmpty):
			// empty after normalisation: omitted, as Meta asks
		default:
			st.identityError(f.key, err)
		}
	}
}

func (st *state) identityError(key int, err error) {
	var ie *identity.Error
	if errors.As(err, &ie) {
		st.reject("user."+userKeys[key], ie.Code, ie.Reason)
		return
	}
	st.reject("user."+userKeys[key], "invalid", err.Error())
}

// identifier validates app_user_id or anon_id.
func (st *state) identifier(key, max int) string {
	s := trim(st.ev.user[key])
	switch {
	case s == "":
		return ""
	case len(s) > max:
		st.reject("user."+userKeys[key], "too_long", "at most "+strconv.Itoa(max)+" bytes")
		return ""
	case hasControl(s):
		st.reject("user."+userKeys[key], "invalid_characters", "contains control characters")
		return ""
	}
	return s
}

func (st *state) hasError(prefix string) bool {
	want := st.fieldPath(prefix)
	for _, e := range st.errs {
		if strings.HasPrefix(e.Field, want) {
			return true
		}
	}
	return false
}

func (st *state) seenID(id string) (int, bool) {
	if st.ids == nil {
		st.ids = make(map[string]int, 64)
	}
	if j, ok := st.ids[id]; ok {
		return j, true
	}
	st.ids[id] = st.idx
	return 0, false
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

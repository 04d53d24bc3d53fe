package envelope

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// Decoder decodes stream records like Decode, by hand (no reflection), reusing its memory from
// one record to the next: the hot path of a consumer. It returns exactly what Decode returns
// for every input: the same Records when Decode accepts the record, an error when it refuses
// it (wrapping ErrUnsupportedVersion exactly when Decode's does).
//
// The fast path reads the records the writers of this package produce, and any JSON of the
// same shape: members in any order, unknown members, whitespace, escapes, invalid UTF-8 (each
// bad byte becomes U+FFFD, as encoding/json does), null where encoding/json takes it. What it
// does not take on, it hands to the reference decoder (Decode) for that record: a record whose
// first member is not "v":1 or "v":2, a member name with an escape or a non-ASCII character or
// one that matches a known name only when case is ignored, a known member given twice (the
// last one wins in encoding/json, merging objects), a digest written with an escape, nesting
// deeper than 64 levels, and every record it finds invalid (so the error is Decode's).
//
// The zero value is ready to use. A Decoder is not safe for concurrent use.
type Decoder struct {
	recs     []Record
	ids      []string  // arena of custom_data.content_ids
	contents []Content // arena of custom_data.contents
	own      []uint8   // per event of the current v2 record: ownUser, ownDevice
	// digests holds the last digest read for each user field, with its text: the version 1
	// records of one request repeat the user's 11 digests, each 64 hex digits to decode.
	digests [12]struct {
		text string
		h    identity.Hash
	}
	// slow counts the records handed to the reference decoder (tests).
	slow int
}

const (
	ownUser uint8 = 1 << iota
	ownDevice
)

// Reset forgets every record decoded so far; their memory is reused by the next Decode.
func (d *Decoder) Reset() {
	d.recs, d.ids, d.contents = d.recs[:0], d.ids[:0], d.contents[:0]
}

// Decode returns the events of the stream record data, as Decode does. The Records, and the
// ContentIDs and Contents slices they hold, are the Decoder's memory: they are valid until the
// next call of Decode or Reset, and must not be appended to. Their strings are immutable
// copies and stay valid.
func (d *Decoder) Decode(data []byte) ([]Record, error) {
	d.Reset()
	return d.DecodeMore(data)
}

// DecodeMore is Decode without the Reset: the Records of earlier DecodeMore calls stay valid
// until the next Decode or Reset. A consumer decodes a batch with DecodeMore after one Reset
// and keeps every record's events until it has handled the batch.
func (d *Decoder) DecodeMore(data []byte) ([]Record, error) {
	// One string per record: every unescaped string is a substring of it.
	return d.decode(string(data), data)
}

// DecodeMoreString is DecodeMore for a record held in a string: the strings of its events are
// substrings of s. A consumer that copies the records of a batch into one string decodes them
// with one allocation for the batch.
func (d *Decoder) DecodeMoreString(s string) ([]Record, error) { return d.decode(s, nil) }

// decode decodes s; data, when not nil, holds the same bytes.
func (d *Decoder) decode(s string, data []byte) ([]Record, error) {
	start, ids, contents := len(d.recs), len(d.ids), len(d.contents)
	if len(s) > 0 {
		p := parser{s: s, d: d}
		if p.record() {
			return d.recs[start:len(d.recs):len(d.recs)], nil
		}
	}
	d.recs, d.ids, d.contents = d.recs[:start], d.ids[:ids], d.contents[:contents]
	d.slow++
	if data == nil {
		data = []byte(s)
	}
	return Decode(data)
}

// The names of each object's members, for the case-insensitive matches encoding/json makes.
var (
	namesV1    = []string{"v", "app", "uk", "received_at", "replay", "event"}
	namesV2    = []string{"v", "app", "uk", "received_at", "replay", "server", "user", "device", "events"}
	namesEvV1  = []string{"id", "name", "time", "server", "user", "device", "consent", "custom_data"}
	namesEvV2  = []string{"id", "name", "time", "user", "device", "consent", "custom_data"}
	namesUser  = []string{"key_source", "external_id", "em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "anon_id", "madid", "client_ip_address", "client_user_agent", "app_user_id"}
	namesDev   = []string{"platform", "app_package", "app_version", "app_build", "os_version", "device_model", "locale", "timezone_abbr", "carrier", "screen_width", "screen_height", "screen_density", "cpu_cores", "storage_total_gb", "storage_free_gb", "timezone"}
	namesCons  = []string{"ads_personalization", "advertiser_tracking_enabled", "application_tracking_enabled", "ldu", "ldu_country", "ldu_state"}
	namesCust  = []string{"value", "currency", "content_ids", "contents", "content_type", "order_id", "num_items", "search_string", "subscription_expires_at", "predicted_ltv", "status", "description", "level", "max_rating_value", "success"}
	namesItem  = []string{"id", "quantity", "item_price"}
	emptyIDs   = []string{}
	emptyItems = []Content{}
)

// maxDepth bounds the nesting the fast path follows (encoding/json allows 10,000).
const maxDepth = 64

// parser is one record's fast decode. Every method returns false for what the fast path does
// not take on, valid or not; the record then goes to the reference decoder.
type parser struct {
	s string
	i int
	d *Decoder
}

// plain marks the bytes a string may hold as they are on the fast path: printable ASCII but
// the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// lit consumes the literal w (true, false, null).
func (p *parser) lit(w string) bool {
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

// record parses a whole record: version first, then the version's members.
func (p *parser) record() bool {
	p.ws()
	if !p.lit("{") {
		return false
	}
	p.ws()
	if !p.lit(`"v"`) {
		return false
	}
	p.ws()
	if !p.lit(":") {
		return false
	}
	p.ws()
	v, ok := p.int()
	if !ok {
		return false
	}
	switch v {
	case 1:
		ok = p.v1()
	case 2:
		ok = p.v2()
	default:
		return false
	}
	if !ok {
		return false
	}
	p.ws()
	return p.i == len(p.s)
}

// member reads up to the value of an object's next member and returns its name, or more=false
// once past the closing brace. first is true before the first member; member clears it.
func (p *parser) member(first *bool) (name string, more, ok bool) {
	p.ws()
	c := p.peek()
	if c == '}' {
		p.i++
		return "", false, true
	}
	if *first {
		*first = false
	} else {
		if c != ',' {
			return "", false, false
		}
		p.i++
		p.ws()
	}
	if p.peek() != '"' {
		return "", false, false
	}
	start := p.i + 1
	i := start
	for i < len(p.s) && plain[p.s[i]] {
		i++
	}
	if i >= len(p.s) || p.s[i] != '"' {
		return "", false, false // an escape, a non-ASCII byte or the end: not on the fast path
	}
	name = p.s[start:i]
	p.i = i + 1
	p.ws()
	if !p.lit(":") {
		return "", false, false
	}
	p.ws()
	return name, true, true
}

// element reads up to an array's next element, or returns more=false once past the bracket.
func (p *parser) element(first *bool) (more, ok bool) {
	p.ws()
	c := p.peek()
	if c == ']' {
		p.i++
		return false, true
	}
	if *first {
		*first = false
		return true, true
	}
	if c != ',' {
		return false, false
	}
	p.i++
	p.ws()
	return true, true
}

// once sets bit in seen, failing when it was set: a known member given twice.
func once(seen *uint32, bit uint) bool {
	if *seen&(1<<bit) != 0 {
		return false
	}
	*seen |= 1 << bit
	return true
}

// unknown skips the value of a member no field takes, unless encoding/json would match the
// name to one of known ignoring case.
func (p *parser) unknown(name string, known []string) bool {
	for _, k := range known {
		if strings.EqualFold(name, k) {
			return false
		}
	}
	return p.skip(0)
}

// open reads the start of an object value: obj is false for null.
func (p *parser) open() (obj, ok bool) {
	switch p.peek() {
	case '{':
		p.i++
		return true, true
	case 'n':
		return false, p.lit("null")
	}
	return false, false
}

func (p *parser) v1() bool {
	d := p.d
	d.recs = append(d.recs, Record{V: 1})
	r := &d.recs[len(d.recs)-1]
	var seen uint32
	first := false
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return false
		}
		if !more {
			break
		}
		switch name {
		case "app":
			if ok = once(&seen, 0); ok {
				r.App, ok = p.str()
			}
		case "uk":
			if ok = once(&seen, 1); ok {
				r.UserKey, ok = p.str()
			}
		case "received_at":
			if ok = once(&seen, 2); ok {
				r.ReceivedAt, ok = p.int()
			}
		case "replay":
			if ok = once(&seen, 3); ok {
				r.Replay, ok = p.bool()
			}
		case "event":
			if ok = once(&seen, 4); ok {
				ok = p.eventV1(&r.Event)
			}
		default: // "v" again included
			ok = p.unknown(name, namesV1)
		}
		if !ok {
			return false
		}
	}
	return r.App != "" && r.UserKey != "" && r.Event.ID != "" && r.Event.Name != ""
}

func (p *parser) eventV1(e *Event) bool {
	obj, ok := p.open()
	if !obj {
		return ok
	}
	var seen uint32
	first := true
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		switch name {
		case "id":
			if ok = once(&seen, 0); ok {
				e.ID, ok = p.str()
			}
		case "name":
			if ok = once(&seen, 1); ok {
				e.Name, ok = p.str()
			}
		case "time":
			if ok = once(&seen, 2); ok {
				e.Time, ok = p.int()
			}
		case "server":
			if ok = once(&seen, 3); ok {
				e.Server, ok = p.bool()
			}
		case "user":
			if ok = once(&seen, 4); ok {
				_, ok = p.user(&e.User, false)
			}
		case "device":
			if ok = once(&seen, 5); ok {
				_, ok = p.device(&e.Device)
			}
		case "consent":
			if ok = once(&seen, 6); ok {
				ok = p.consent(&e.Consent)
			}
		case "custom_data":
			if ok = once(&seen, 7); ok {
				ok = p.custom(&e.Custom)
			}
		default:
			ok = p.unknown(name, namesEvV1)
		}
		if !ok {
			return false
		}
	}
}

func (p *parser) v2() bool {
	d := p.d
	start := len(d.recs)
	d.own = d.own[:0]
	var (
		app, uk        string
		receivedAt     int64
		replay, server bool
		user           User
		device         Device
		seen           uint32
	)
	first := false
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return false
		}
		if !more {
			break
		}
		switch name {
		case "app":
			if ok = once(&seen, 0); ok {
				app, ok = p.str()
			}
		case "uk":
			if ok = once(&seen, 1); ok {
				uk, ok = p.str()
			}
		case "received_at":
			if ok = once(&seen, 2); ok {
				receivedAt, ok = p.int()
			}
		case "replay":
			if ok = once(&seen, 3); ok {
				replay, ok = p.bool()
			}
		case "server":
			if ok = once(&seen, 4); ok {
				server, ok = p.bool()
			}
		case "user":
			if ok = once(&seen, 5); ok {
				_, ok = p.user(&user, true)
			}
		case "device":
			if ok = once(&seen, 6); ok {
				_, ok = p.device(&device)
			}
		case "events":
			if ok = once(&seen, 7); ok {
				ok = p.events()
			}
		default:
			ok = p.unknown(name, namesV2)
		}
		if !ok {
			return false
		}
	}
	if app == "" || uk == "" || len(d.recs) == start {
		return false
	}
	for k := start; k < len(d.recs); k++ {
		r := &d.recs[k]
		if r.Event.ID == "" || r.Event.Name == "" {
			return false
		}
		r.V, r.App, r.UserKey, r.ReceivedAt, r.Replay, r.Event.Server = 2, app, uk, receivedAt, replay, server
		own := d.own[k-start]
		if own&ownUser == 0 {
			r.Event.User = user
		}
		if own&ownDevice == 0 {
			r.Event.Device = device
		}
	}
	return true
}

func (p *parser) events() bool {
	if !p.lit("[") {
		return false // null: no events, an error
	}
	d := p.d
	first := true
	for {
		more, ok := p.element(&first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		if !p.lit("{") {
			return false
		}
		d.recs = append(d.recs, Record{})
		own, ok := p.eventV2(&d.recs[len(d.recs)-1].Event)
		if !ok {
			return false
		}
		d.own = append(d.own, own)
	}
}

// eventV2 parses the members of an element of "events" (after its brace).
func (p *parser) eventV2(e *Event) (own uint8, ok bool) {
	var seen uint32
	first := true
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return 0, false
		}
		if !more {
			return own, true
		}
		var obj bool
		switch name {
		case "id":
			if ok = once(&seen, 0); ok {
				e.ID, ok = p.str()
			}
		case "name":
			if ok = once(&seen, 1); ok {
				e.Name, ok = p.str()
			}
		case "time":
			if ok = once(&seen, 2); ok {
				e.Time, ok = p.int()
			}
		case "user": // null is absent: the record's user
			if ok = once(&seen, 3); ok {
				if obj, ok = p.user(&e.User, true); obj {
					own |= ownUser
				}
			}
		case "device":
			if ok = once(&seen, 4); ok {
				if obj, ok = p.device(&e.Device); obj {
					own |= ownDevice
				}
			}
		case "consent":
			if ok = once(&seen, 5); ok {
				ok = p.consent(&e.Consent)
			}
		case "custom_data":
			if ok = once(&seen, 6); ok {
				ok = p.custom(&e.Custom)
			}
		default:
			ok = p.unknown(name, namesEvV2)
		}
		if !ok {
			return 0, false
		}
	}
}

// user parses a user object, digests in base64url (v2) or hex (v1); obj is false for null.
func (p *parser) user(u *User, b64 bool) (obj, ok bool) {
	if obj, ok = p.open(); !obj {
		return obj, ok
	}
	var seen uint32
	first := true
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return true, false
		}
		if !more {
			return true, true
		}
		var h *identity.Hash
		var bit uint
		switch name {
		case "key_source":
			if ok = once(&seen, 0); ok {
				var s string
				s, ok = p.str()
				u.KeySource = identity.IDKind(s)
			}
		case "external_id":
			h, bit = &u.ExternalID, 1
		case "em":
			h, bit = &u.Email, 2
		case "ph":
			h, bit = &u.Phone, 3
		case "fn":
			h, bit = &u.FirstName, 4
		case "ln":
			h, bit = &u.LastName, 5
		case "ge":
			h, bit = &u.Gender, 6
		case "db":
			h, bit = &u.DateOfBirth, 7
		case "ct":
			h, bit = &u.City, 8
		case "st":
			h, bit = &u.State, 9
		case "zp":
			h, bit = &u.Zip, 10
		case "country":
			h, bit = &u.Country, 11
		case "anon_id":
			if ok = once(&seen, 12); ok {
				u.AnonID, ok = p.str()
			}
		case "madid":
			if ok = once(&seen, 13); ok {
				u.MADID, ok = p.str()
			}
		case "client_ip_address":
			if ok = once(&seen, 14); ok {
				u.ClientIP, ok = p.str()
			}
		case "client_user_agent":
			if ok = once(&seen, 15); ok {
				u.ClientUserAgent, ok = p.str()
			}
		case "app_user_id":
			if ok = once(&seen, 16); ok {
				u.AppUserID, ok = p.str()
			}
		default:
			ok = p.unknown(name, namesUser)
		}
		if h != nil {
			if ok = once(&seen, bit); ok {
				ok = p.hash(h, b64, bit)
			}
		}
		if !ok {
			return true, false
		}
	}
}

func (p *parser) device(dv *Device) (obj, ok bool) {
	if obj, ok = p.open(); !obj {
		return obj, ok
	}
	var seen uint32
	first := true
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return true, false
		}
		if !more {
			return true, true
		}
		var s *string
		var n *int64
		var f *float64
		var bit uint
		switch name {
		case "platform":
			s, bit = &dv.Platform, 0
		case "app_package":
			s, bit = &dv.AppPackage, 1
		case "app_version":
			s, bit = &dv.AppVersion, 2
		case "app_build":
			s, bit = &dv.AppBuild, 3
		case "os_version":
			s, bit = &dv.OSVersion, 4
		case "device_model":
			s, bit = &dv.DeviceModel, 5
		case "locale":
			s, bit = &dv.Locale, 6
		case "timezone_abbr":
			s, bit = &dv.TimezoneAbbr, 7
		case "carrier":
			s, bit = &dv.Carrier, 8
		case "screen_width":
			n, bit = &dv.ScreenWidth, 9
		case "screen_height":
			n, bit = &dv.ScreenHeight, 10
		case "screen_density":
			f, bit = &dv.ScreenDensity, 11
		case "cpu_cores":
			n, bit = &dv.CPUCores, 12
		case "storage_total_gb":
			f, bit = &dv.StorageTotalGB, 13
		case "storage_free_gb":
			f, bit = &dv.StorageFreeGB, 14
		case "timezone":
			s, bit = &dv.Timezone, 15
		default:
			if !p.unknown(name, namesDev) {
				return true, false
			}
			continue
		}
		if !once(&seen, bit) {
			return true, false
		}
		switch {
		case s != nil:
			*s, ok = p.str()
		case n != nil:
			*n, ok = p.int()
		default:
			*f, ok = p.float()
		}
		if !ok {
			return true, false
		}
	}
}

func (p *parser) consent(c *Consent) bool {
	obj, ok := p.open()
	if !obj {
		return ok
	}
	var seen uint32
	first := true
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		var f *Flag
		var n *int64
		var bit uint
		switch name {
		case "ads_personalization":
			f, bit = &c.AdsPersonalization, 0
		case "advertiser_tracking_enabled":
			f, bit = &c.AdvertiserTracking, 1
		case "application_tracking_enabled":
			f, bit = &c.ApplicationTracking, 2
		case "ldu":
			f, bit = &c.LDU, 3
		case "ldu_country":
			n, bit = &c.LDUCountry, 4
		case "ldu_state":
			n, bit = &c.LDUState, 5
		default:
			if !p.unknown(name, namesCons) {
				return false
			}
			continue
		}
		if !once(&seen, bit) {
			return false
		}
		if f != nil {
			*f, ok = p.flag()
		} else {
			*n, ok = p.int()
		}
		if !ok {
			return false
		}
	}
}

func (p *parser) custom(c *CustomData) bool {
	obj, ok := p.open()
	if !obj {
		return ok
	}
	var seen uint32
	first := true
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		var s *string
		var n *int64
		var o *OptFloat
		var bit uint
		switch name {
		case "value":
			o, bit = &c.Value, 0
		case "currency":
			s, bit = &c.Currency, 1
		case "content_ids":
			if ok = once(&seen, 2); ok {
				c.ContentIDs, ok = p.contentIDs()
			}
		case "contents":
			if ok = once(&seen, 3); ok {
				c.Contents, ok = p.contents()
			}
		case "content_type":
			s, bit = &c.ContentType, 4
		case "order_id":
			s, bit = &c.OrderID, 5
		case "num_items":
			n, bit = &c.NumItems, 6
		case "search_string":
			s, bit = &c.SearchString, 7
		case "subscription_expires_at":
			n, bit = &c.SubscriptionExpiresAt, 8
		case "predicted_ltv":
			o, bit = &c.PredictedLTV, 9
		case "status":
			s, bit = &c.Status, 10
		case "description":
			s, bit = &c.Description, 11
		case "level":
			s, bit = &c.Level, 12
		case "max_rating_value":
			o, bit = &c.MaxRatingValue, 13
		case "success":
			if ok = once(&seen, 14); ok {
				c.Success, ok = p.flag()
			}
		default:
			ok = p.unknown(name, namesCust)
		}
		if s != nil || n != nil || o != nil {
			if ok = once(&seen, bit); ok {
				switch {
				case s != nil:
					*s, ok = p.str()
				case n != nil:
					*n, ok = p.int()
				default:
					*o, ok = p.opt()
				}
			}
		}
		if !ok {
			return false
		}
	}
}

// contentIDs parses an array of strings into the arena; null is a nil slice.
func (p *parser) contentIDs() ([]string, bool) {
	if p.peek() == 'n' {
		return nil, p.lit("null")
	}
	if !p.lit("[") {
		return nil, false
	}
	d := p.d
	start := len(d.ids)
	first := true
	for {
		more, ok := p.element(&first)
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
		s, ok := p.str()
		if !ok {
			return nil, false
		}
		d.ids = append(d.ids, s)
	}
	if len(d.ids) == start {
		return emptyIDs, true
	}
	return d.ids[start:len(d.ids):len(d.ids)], true
}

// contents parses an array of items into the arena; null is a nil slice.
func (p *parser) contents() ([]Content, bool) {
	if p.peek() == 'n' {
		return nil, p.lit("null")
	}
	if !p.lit("[") {
		return nil, false
	}
	d := p.d
	start := len(d.contents)
	first := true
	for {
		more, ok := p.element(&first)
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
		d.contents = append(d.contents, Content{})
		if !p.item(&d.contents[len(d.contents)-1]) {
			return nil, false
		}
	}
	if len(d.contents) == start {
		return emptyItems, true
	}
	return d.contents[start:len(d.contents):len(d.contents)], true
}

func (p *parser) item(it *Content) bool {
	obj, ok := p.open()
	if !obj {
		return ok // null: a zero item
	}
	var seen uint32
	first := true
	for {
		name, more, ok := p.member(&first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		switch name {
		case "id":
			if ok = once(&seen, 0); ok {
				it.ID, ok = p.str()
			}
		case "quantity":
			if ok = once(&seen, 1); ok {
				it.Quantity, ok = p.int()
			}
		case "item_price":
			if ok = once(&seen, 2); ok {
				it.ItemPrice, ok = p.opt()
			}
		default:
			ok = p.unknown(name, namesItem)
		}
		if !ok {
			return false
		}
	}
}

// str parses a string; null is "" (encoding/json leaves the field as it is: zero).
func (p *parser) str() (string, bool) {
	s, i := p.s, p.i
	if i >= len(s) || s[i] != '"' {
		if p.peek() == 'n' {
			return "", p.lit("null")
		}
		return "", false
	}
	i++
	start := i
	for i < len(s) && plain[s[i]] {
		i++
	}
	if i < len(s) && s[i] == '"' {
		p.i = i + 1
		return s[start:i], true
	}
	end, clean, ok := scanString(s, start)
	if !ok {
		return "", false
	}
	p.i = end + 1
	if clean {
		return s[start:end], true
	}
	return unquote(s[start:end]), true
}

// scanString finds the closing quote of the string whose content starts at start. clean
// reports that the content needs no rewriting: no escape and valid UTF-8.
func scanString(s string, start int) (end int, clean, ok bool) {
	clean = true
	for i := start; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return i, clean, true
		case c == '\\':
			clean = false
			if i+1 >= len(s) {
				return 0, false, false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || getu4(s[i:]) < 0 {
					return 0, false, false
				}
				i += 6
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				clean = false
			}
			i += size
		}
	}
	return 0, false, false
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range []byte(s[2:6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// unquote rewrites the content of a valid JSON string (scanString) as encoding/json does:
// escapes decoded, a surrogate that is not half of a pair and each byte of invalid UTF-8
// replaced by U+FFFD.
func unquote(s string) string {
	var b strings.Builder // one allocation: String does not copy
	b.Grow(len(s) + 2*utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch s[r+1] {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						b.WriteRune(dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b.WriteRune(rr)
				continue
			default: // " \ /
				b.WriteByte(s[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			r++
		default:
			rr, size := utf8.DecodeRuneInString(s[r:])
			r += size
			b.WriteRune(rr)
		}
	}
	return b.String()
}

// number scans a JSON number; integer reports that it has neither fraction nor exponent.
func (p *parser) number() (start int, integer, ok bool) {
	s, i := p.s, p.i
	start = i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return 0, false, false
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return 0, false, false
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		integer = false
		i++
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false, false
		}
	}
	p.i = i
	return start, integer, true
}

// int parses an integer that fits int64, as strconv.ParseInt; null is 0. A fraction or an
// exponent (1e3, 1.0) is refused, as encoding/json refuses it for an integer field.
func (p *parser) int() (int64, bool) {
	if p.peek() == 'n' {
		return 0, p.lit("null")
	}
	start, integer, ok := p.number()
	if !ok || !integer {
		return 0, false
	}
	digits := p.s[start:p.i]
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	if len(digits) > 19 {
		return 0, false
	}
	var u uint64
	for i := 0; i < len(digits); i++ {
		u = u*10 + uint64(digits[i]-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

// float parses a number as strconv.ParseFloat (out of range is refused); null is 0.
func (p *parser) float() (float64, bool) {
	if p.peek() == 'n' {
		return 0, p.lit("null")
	}
	start, _, ok := p.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(p.s[start:p.i], 64)
	return f, err == nil
}

// opt parses an OptFloat: null is absent (OptFloat.UnmarshalJSON).
func (p *parser) opt() (OptFloat, bool) {
	if p.peek() == 'n' {
		return OptFloat{}, p.lit("null")
	}
	f, ok := p.float()
	return OptFloat{V: f, Set: ok}, ok
}

// flag parses a Flag: true, false or null (Unset, Flag.UnmarshalJSON).
func (p *parser) flag() (Flag, bool) {
	switch p.peek() {
	case 't':
		return True, p.lit("true")
	case 'f':
		return False, p.lit("false")
	case 'n':
		return Unset, p.lit("null")
	}
	return Unset, false
}

// bool parses true or false; null is false (left as it is).
func (p *parser) bool() (bool, bool) {
	switch p.peek() {
	case 't':
		return true, p.lit("true")
	case 'f':
		return false, p.lit("false")
	case 'n':
		return false, p.lit("null")
	}
	return false, false
}

// hexVal and b64Val map a digit to its value, 0xff for other bytes.
var hexVal, b64Val = func() (h, b [256]byte) {
	for i := range h {
		h[i], b[i] = 0xff, 0xff
	}
	for i, c := range "0123456789abcdef" {
		h[c] = byte(i)
	}
	for i, c := range "ABCDEF" {
		h[c] = byte(10 + i)
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		b[c] = byte(i)
	}
	return h, b
}()

// hash parses a digest: 43 characters of unpadded base64url with zero trailing bits (v2) or 64
// hex digits of either case (v1), with no escape; null leaves it zero.
func (p *parser) hash(h *identity.Hash, b64 bool, field uint) bool {
	if p.peek() == 'n' {
		return p.lit("null")
	}
	s, i := p.s, p.i
	n := 2 * len(h)
	if b64 {
		n = HashB64Len
	}
	if i+n+2 > len(s) || s[i] != '"' || s[i+n+1] != '"' {
		return false
	}
	d := s[i+1 : i+n+1]
	last := &p.d.digests[field]
	if d == last.text {
		*h = last.h
		p.i = i + n + 2
		return true
	}
	if b64 {
		// 10 groups of 4 characters make 30 bytes; the last 3 make 2, with 2 bits to spare.
		for g := 0; g < 10; g++ {
			a, b, c, e := b64Val[d[4*g]], b64Val[d[4*g+1]], b64Val[d[4*g+2]], b64Val[d[4*g+3]]
			if a|b|c|e == 0xff {
				return false
			}
			v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(e)
			h[3*g], h[3*g+1], h[3*g+2] = byte(v>>16), byte(v>>8), byte(v)
		}
		a, b, c := b64Val[d[40]], b64Val[d[41]], b64Val[d[42]]
		if a|b|c == 0xff || c&3 != 0 {
			return false
		}
		v := uint32(a)<<10 | uint32(b)<<4 | uint32(c)>>2
		h[30], h[31] = byte(v>>8), byte(v)
	} else {
		for k := range h {
			a, b := hexVal[d[2*k]], hexVal[d[2*k+1]]
			if a|b == 0xff {
				return false
			}
			h[k] = a<<4 | b
		}
	}
	last.text, last.h = d, *h
	p.i = i + n + 2
	return true
}

// skip validates and skips any JSON value.
func (p *parser) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch p.peek() {
	case '{':
		p.i++
		first := true
		for {
			p.ws()
			c := p.peek()
			if c == '}' {
				p.i++
				return true
			}
			if first {
				first = false
			} else {
				if c != ',' {
					return false
				}
				p.i++
				p.ws()
			}
			if p.peek() != '"' {
				return false
			}
			end, _, ok := scanString(p.s, p.i+1)
			if !ok {
				return false
			}
			p.i = end + 1
			p.ws()
			if !p.lit(":") {
				return false
			}
			p.ws()
			if !p.skip(depth + 1) {
				return false
			}
		}
	case '[':
		p.i++
		first := true
		for {
			more, ok := p.element(&first)
			if !ok {
				return false
			}
			if !more {
				return true
			}
			if !p.skip(depth + 1) {
				return false
			}
		}
	case '"':
		end, _, ok := scanString(p.s, p.i+1)
		p.i = end + 1
		return ok
	case 't':
		return p.lit("true")
	case 'f':
		return p.lit("false")
	case 'n':
		return p.lit("null")
	}
	_, _, ok := p.number()
	return ok
}

package envelope

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/jsonenc"
)

// AppendV1 appends r encoded as a version 1 record to dst: exactly what encoding/json would
// decode back into r (see the round-trip tests), with no reflection and no allocation beyond
// growing dst. r.V is always written as 1. The ingest function writes version 2 (Append,
// AppendGroup); version 1 remains for streams written before it and for their tests.
func AppendV1(dst []byte, r *Record) []byte { return appendRecord(dst, r, nil) }

// Encoder appends version 1 records like AppendV1 and remembers the user object it encoded last: the events
// of one request usually come from one device and share it, so its JSON is copied instead of
// written again. The zero value is ready to use; it is not safe for concurrent use.
type Encoder struct {
	user    User
	userEnc []byte
	cached  bool
}

// Reset forgets the remembered user object (and the strings it refers to) but keeps the
// encoder's buffer.
func (e *Encoder) Reset() {
	*e = Encoder{userEnc: e.userEnc[:0]}
}

// AppendV1 appends r encoded as a version 1 record to dst (see the package-level AppendV1).
func (e *Encoder) AppendV1(dst []byte, r *Record) []byte { return appendRecord(dst, r, e) }

func appendRecord(dst []byte, r *Record, e *Encoder) []byte {
	b := append(dst, `{"v":1`...)
	b = appendKeyString(b, `,"app":`, r.App)
	b = appendKeyString(b, `,"uk":`, r.UserKey)
	b = append(b, `,"received_at":`...)
	b = strconv.AppendInt(b, r.ReceivedAt, 10)
	if r.Replay {
		b = append(b, `,"replay":true`...)
	}
	ev := &r.Event
	b = appendKeyString(b, `,"event":{"id":`, ev.ID)
	b = appendKeyString(b, `,"name":`, ev.Name)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, ev.Time, 10)
	if ev.Server {
		b = append(b, `,"server":true`...)
	}
	switch {
	case e == nil:
		b = appendUser(b, &ev.User)
	case e.cached && ev.User == e.user:
		b = append(b, e.userEnc...)
	default:
		start := len(b)
		b = appendUser(b, &ev.User)
		e.user, e.userEnc, e.cached = ev.User, append(e.userEnc[:0], b[start:]...), true
	}
	b = appendDevice(b, &ev.Device)
	b = appendConsent(b, &ev.Consent)
	b = appendCustom(b, &ev.Custom)
	return append(b, "}}"...)
}

// object writes the members of one JSON object, opening it lazily so empty objects vanish.
type object struct {
	b    []byte
	key  string // `,"user":{` style opener
	open bool
	b64  bool // digests as unpadded base64url (version 2), not hex
}

// sep opens the object or writes a comma, then the member name; key is `"name":`.
func (o *object) sep(key string) {
	if !o.open {
		o.b = append(o.b, o.key...)
		o.open = true
	} else {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, key...)
}

func (o *object) str(key, v string) {
	if v != "" {
		o.sep(key)
		o.b = appendString(o.b, v)
	}
}

func (o *object) hash(key string, h *identity.Hash) {
	if !h.IsZero() {
		o.sep(key)
		o.b = append(o.b, '"')
		if o.b64 {
			o.b = appendDigestB64(o.b, h)
		} else {
			o.b = h.AppendHex(o.b)
		}
		o.b = append(o.b, '"')
	}
}

func (o *object) int(key string, v int64) {
	if v != 0 {
		o.sep(key)
		o.b = strconv.AppendInt(o.b, v, 10)
	}
}

func (o *object) float(key string, v float64) {
	if v != 0 {
		o.sep(key)
		o.b = appendFloat(o.b, v)
	}
}

func (o *object) opt(key string, v OptFloat) {
	if v.Set {
		o.sep(key)
		o.b = appendFloat(o.b, v.V)
	}
}

func (o *object) flag(key string, f Flag) {
	switch f {
	case True:
		o.sep(key)
		o.b = append(o.b, "true"...)
	case False:
		o.sep(key)
		o.b = append(o.b, "false"...)
	}
}

func (o *object) close() []byte {
	if o.open {
		o.b = append(o.b, '}')
	}
	return o.b
}

func appendUser(b []byte, u *User) []byte { return appendUserObject(b, u, false) }

// appendUserObject writes the "user" member; b64 writes digests as version 2 does (unpadded
// base64url) instead of version 1's hex.
func appendUserObject(b []byte, u *User, b64 bool) []byte {
	o := object{b: b, key: `,"user":{`, b64: b64}
	o.str(`"key_source":`, string(u.KeySource))
	o.hash(`"external_id":`, &u.ExternalID)
	o.hash(`"em":`, &u.Email)
	o.hash(`"ph":`, &u.Phone)
	o.hash(`"fn":`, &u.FirstName)
	o.hash(`"ln":`, &u.LastName)
	o.hash(`"ge":`, &u.Gender)
	o.hash(`"db":`, &u.DateOfBirth)
	o.hash(`"ct":`, &u.City)
	o.hash(`"st":`, &u.State)
	o.hash(`"zp":`, &u.Zip)
	o.hash(`"country":`, &u.Country)
	o.str(`"anon_id":`, u.AnonID)
	o.str(`"madid":`, u.MADID)
	o.str(`"client_ip_address":`, u.ClientIP)
	o.str(`"client_user_agent":`, u.ClientUserAgent)
	o.str(`"app_user_id":`, u.AppUserID)
	return o.close()
}

func appendDevice(b []byte, d *Device) []byte {
	o := object{b: b, key: `,"device":{`}
	o.str(`"platform":`, d.Platform)
	o.str(`"app_package":`, d.AppPackage)
	o.str(`"app_version":`, d.AppVersion)
	o.str(`"app_build":`, d.AppBuild)
	o.str(`"os_version":`, d.OSVersion)
	o.str(`"device_model":`, d.DeviceModel)
	o.str(`"locale":`, d.Locale)
	o.str(`"timezone_abbr":`, d.TimezoneAbbr)
	o.str(`"carrier":`, d.Carrier)
	o.int(`"screen_width":`, d.ScreenWidth)
	o.int(`"screen_height":`, d.ScreenHeight)
	o.float(`"screen_density":`, d.ScreenDensity)
	o.int(`"cpu_cores":`, d.CPUCores)
	o.float(`"storage_total_gb":`, d.StorageTotalGB)
	o.float(`"storage_free_gb":`, d.StorageFreeGB)
	o.str(`"timezone":`, d.Timezone)
	return o.close()
}

func appendConsent(b []byte, c *Consent) []byte {
	o := object{b: b, key: `,"consent":{`}
	o.flag(`"ads_personalization":`, c.AdsPersonalization)
	o.flag(`"advertiser_tracking_enabled":`, c.AdvertiserTracking)
	o.flag(`"application_tracking_enabled":`, c.ApplicationTracking)
	o.flag(`"ldu":`, c.LDU)
	o.int(`"ldu_country":`, c.LDUCountry)
	o.int(`"ldu_state":`, c.LDUState)
	return o.close()
}

func appendCustom(b []byte, c *CustomData) []byte {
	o := object{b: b, key: `,"custom_data":{`}
	o.opt(`"value":`, c.Value)
	o.str(`"currency":`, c.Currency)
	if len(c.ContentIDs) > 0 {
		o.sep(`"content_ids":`)
		for i, id := range c.ContentIDs {
			if i == 0 {
				o.b = append(o.b, '[')
			} else {
				o.b = append(o.b, ',')
			}
			o.b = appendString(o.b, id)
		}
		o.b = append(o.b, ']')
	}
	if len(c.Contents) > 0 {
		o.sep(`"contents":`)
		o.b = append(o.b, '[')
		for i := range c.Contents {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			item := &c.Contents[i]
			o.b = appendKeyString(o.b, `{"id":`, item.ID)
			if item.Quantity != 0 {
				o.b = append(o.b, `,"quantity":`...)
				o.b = strconv.AppendInt(o.b, item.Quantity, 10)
			}
			if item.ItemPrice.Set {
				o.b = append(o.b, `,"item_price":`...)
				o.b = appendFloat(o.b, item.ItemPrice.V)
			}
			o.b = append(o.b, '}')
		}
		o.b = append(o.b, ']')
	}
	o.str(`"content_type":`, c.ContentType)
	o.str(`"order_id":`, c.OrderID)
	o.int(`"num_items":`, c.NumItems)
	o.str(`"search_string":`, c.SearchString)
	o.int(`"subscription_expires_at":`, c.SubscriptionExpiresAt)
	o.opt(`"predicted_ltv":`, c.PredictedLTV)
	o.str(`"status":`, c.Status)
	o.str(`"description":`, c.Description)
	o.str(`"level":`, c.Level)
	o.opt(`"max_rating_value":`, c.MaxRatingValue)
	o.flag(`"success":`, c.Success)
	return o.close()
}

// b64URL is the unpadded base64url alphabet (RFC 4648 §5); b64Pairs maps 12 bits to the two
// characters that encode them, first character in the low byte.
const b64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

var b64Pairs = func() (t [4096]uint16) {
	for i := range t {
		t[i] = uint16(b64URL[i>>6]) | uint16(b64URL[i&63])<<8
	}
	return t
}()

// appendDigestB64 appends h as 43 characters of unpadded base64url, byte for byte what
// base64.RawURLEncoding writes: 6 bytes at a time become 8 characters written in one store.
func appendDigestB64(b []byte, h *identity.Hash) []byte {
	n := len(b)
	if cap(b)-n < HashB64Len {
		b = append(b, make([]byte, HashB64Len)...)[:n]
	}
	b = b[:n+HashB64Len]
	out := (*[HashB64Len]byte)(b[n:])
	for i := range 5 { // 30 bytes, 40 characters: constant offsets once unrolled by the compiler
		v := binary.BigEndian.Uint64(h[6*i:]) >> 16 // 48 bits
		binary.LittleEndian.PutUint64(out[8*i:], uint64(b64Pairs[v>>36])|uint64(b64Pairs[v>>24&0xfff])<<16|
			uint64(b64Pairs[v>>12&0xfff])<<32|uint64(b64Pairs[v&0xfff])<<48)
	}
	v := uint(h[30])<<8 | uint(h[31]) // 16 bits: three characters, the last of 4 bits
	out[40], out[41], out[42] = b64URL[v>>10], b64URL[v>>4&63], b64URL[v<<2&63]
	return b
}

func appendKeyString(b []byte, key, v string) []byte {
	return appendString(append(b, key...), v)
}

// appendString writes s as a JSON string, < > & as they are: records are read by the consumers'
// JSON decoders, never rendered, and an escape would grow a record (and its size against the
// stream's limit) six bytes for one.
func appendString(b []byte, s string) []byte { return jsonenc.AppendStringKeepHTML(b, s) }

// appendFloat writes a finite float the way encoding/json does; NaN and infinities (which JSON
// cannot carry and the parser rejects) become 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	// Whole numbers (counts, sizes, most prices in minor markets) take the integer fast path.
	if f == math.Trunc(f) && math.Abs(f) < 1e15 && !(f == 0 && math.Signbit(f)) {
		return strconv.AppendInt(b, int64(f), 10)
	}
	if out, ok := appendShortDecimal(b, f); ok {
		return out
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	return strconv.AppendFloat(b, f, fmt, -1, 64)
}

// pow10 holds the exact powers of ten appendShortDecimal scales by.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6}

// appendShortDecimal writes f, not a whole number, when it is m/10^k for an integer m below
// 10^15 and k <= 6 (prices, ratings, densities), as strconv's shortest formatting would: no
// other decimal of at most 15 significant digits reads back as f (doubles hold 15 of them), so
// the smallest such k gives the shortest digits. float64(m)/10^k is one correctly rounded
// division, which is what reading the decimal back gives; ok is false for any other f.
func appendShortDecimal(b []byte, f float64) ([]byte, bool) {
	abs := math.Abs(f)
	if !(abs >= 1e-6 && abs < 1e9) {
		return b, false
	}
	for k := 1; k < len(pow10); k++ {
		m := math.Round(abs * pow10[k])
		if m >= 1e15 {
			return b, false
		}
		if m/pow10[k] != abs {
			continue
		}
		if f < 0 {
			b = append(b, '-')
		}
		var digits [24]byte
		d := strconv.AppendUint(digits[:0], uint64(m), 10)
		if len(d) <= k { // 0.000x: leading zeros
			b = append(b, '0', '.')
			for range k - len(d) {
				b = append(b, '0')
			}
			return append(b, d...), true
		}
		b = append(b, d[:len(d)-k]...)
		b = append(b, '.')
		return append(b, d[len(d)-k:]...), true
	}
	return b, false
}

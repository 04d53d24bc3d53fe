package capi

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/jsonenc"
)

// Restriction holds the explicit consent flags Restrict applies; nil leaves the event's value.
type Restriction struct {
	AdvertiserTracking, ApplicationTracking, LDU *bool
}

// ErrUnencodable is returned for an event with a number JSON cannot carry (NaN, infinity),
// which json.Marshal refuses.
var ErrUnencodable = errors.New("a number of the event is not finite: JSON cannot carry it")

// AppendPayload is the forwarder's hot path: Map, Restrict (with x, unless nil), Check at now
// and json.Marshal in one pass, with no reflection and no allocation beyond growing dst. It
// appends the CAPI server event of r to dst, byte for byte what json.Marshal writes for the
// ServerEvent that Map, Restrict and Check make (the tests compare both), and returns its
// event_name. It returns dst unchanged with ErrNoConsent, a *Problem (as Check), or
// ErrUnencodable.
func AppendPayload(dst []byte, r *envelope.Record, x *Restriction, now time.Time) ([]byte, string, error) {
	return (*Encoder)(nil).AppendPayload(dst, r, x, now)
}

// Encoder is AppendPayload with a memory: the events of one stream record share their user and
// device, and it copies the JSON of the digests and of extinfo it wrote for the last event
// instead of writing it again. The zero value is ready to use; an Encoder is not safe for
// concurrent use.
type Encoder struct {
	hashes    userHashes
	hashesEnc []byte
	device    envelope.Device
	extEnc    []byte
	cached    uint8 // cachedHashes, cachedDevice
}

const (
	cachedHashes uint8 = 1 << iota
	cachedDevice
)

// userHashes are a user's digests in the order user_data lists them.
type userHashes [11]identity.Hash

func hashesOf(u *envelope.User) userHashes {
	return userHashes{u.Email, u.Phone, u.FirstName, u.LastName, u.Gender, u.DateOfBirth, u.City, u.State, u.Zip, u.Country, u.ExternalID}
}

// userDataHashKeys are the user_data members of userHashes, each opening its one-digest list.
var userDataHashKeys = [11]string{`"em":["`, `"ph":["`, `"fn":["`, `"ln":["`, `"ge":["`, `"db":["`, `"ct":["`, `"st":["`, `"zp":["`, `"country":["`, `"external_id":["`}

// AppendPayload is the package-level AppendPayload; a nil Encoder remembers nothing.
func (enc *Encoder) AppendPayload(dst []byte, r *envelope.Record, x *Restriction, now time.Time) ([]byte, string, error) {
	e := &r.Event
	c := &e.Consent
	if !c.AdsPersonalization.IsTrue() {
		return dst, "", ErrNoConsent
	}
	name := appevent.CAPIName(e.Name)
	d := &e.Device
	u := &e.User
	ate := trackingFlag(c.AdvertiserTracking, d.Platform != "ios")
	ale := trackingFlag(c.ApplicationTracking, true)
	madid := ""
	if ate == 1 {
		madid = u.MADID
	}
	ldu, lduCountry, lduState := c.LDU.IsTrue(), c.LDUCountry, c.LDUState
	if x != nil { // Restrict
		if x.AdvertiserTracking != nil && !*x.AdvertiserTracking {
			ate, madid = 0, ""
		}
		if x.ApplicationTracking != nil && !*x.ApplicationTracking {
			ale = 0
		}
		if x.LDU != nil && *x.LDU && !ldu {
			ldu, lduCountry, lduState = true, 0, 0
		}
	}
	cd := &e.Custom
	f := facts{
		eventTime: e.Time, eventID: e.ID, eventName: name, platform: platformSlot(d.Platform),
		osVersion: d.OSVersion != "", ate: ate, ale: ale, hashed: true,
		identified: !u.ExternalID.IsZero() || u.AnonID != "" || madid != "" || !u.Email.IsZero() || !u.Phone.IsZero(),
		value:      cd.Value.Set, currency: cd.Currency != "",
	}
	eventTime, err := f.check(now)
	if err != nil {
		return dst, name, err
	}

	b := append(dst, `{"event_name":`...)
	b = jsonenc.AppendString(b, name)
	b = append(b, `,"event_time":`...)
	b = strconv.AppendInt(b, eventTime, 10)
	b = append(b, `,"event_id":`...)
	b = jsonenc.AppendString(b, e.ID)
	b = append(b, `,"action_source":"app","user_data":{`...)
	var o members
	if enc == nil {
		o = appendHashes(members{b: b, first: true}, u)
	} else {
		if h := hashesOf(u); enc.cached&cachedHashes == 0 || h != enc.hashes {
			enc.hashes, enc.hashesEnc, enc.cached = h, appendHashes(members{b: enc.hashesEnc[:0], first: true}, u).b, enc.cached|cachedHashes
		}
		o = members{b: append(b, enc.hashesEnc...), first: len(enc.hashesEnc) == 0}
	}
	o.str(`"madid":`, madid)
	o.str(`"anon_id":`, u.AnonID)
	o.str(`"client_ip_address":`, u.ClientIP)
	o.str(`"client_user_agent":`, u.ClientUserAgent)
	b = append(o.b, `},"app_data":{"advertiser_tracking_enabled":`...)
	b = strconv.AppendInt(b, int64(ate), 10)
	b = append(b, `,"application_tracking_enabled":`...)
	b = strconv.AppendInt(b, int64(ale), 10)
	b = append(b, `,"extinfo":`...)
	switch {
	case enc == nil:
		b = appendExtInfo(b, d)
	default:
		if enc.cached&cachedDevice == 0 || *d != enc.device {
			enc.device, enc.extEnc, enc.cached = *d, appendExtInfo(enc.extEnc[:0], d), enc.cached|cachedDevice
		}
		b = append(b, enc.extEnc...)
	}
	b = append(b, '}')
	if hasCustom(cd) {
		b = append(b, `,"custom_data":{`...)
		if b, err = appendCustom(b, cd); err != nil {
			return dst, name, err
		}
		b = append(b, '}')
	}
	if ldu {
		b = append(b, `,"data_processing_options":["LDU"],"data_processing_options_country":`...)
		b = strconv.AppendInt(b, lduCountry, 10)
		b = append(b, `,"data_processing_options_state":`...)
		b = strconv.AppendInt(b, lduState, 10)
	}
	return append(b, '}'), name, nil
}

// appendHashes writes the user_data members of u's digests.
func appendHashes(o members, u *envelope.User) members {
	h := hashesOf(u)
	for k := range h {
		o.hash(userDataHashKeys[k], &h[k])
	}
	return o
}

func platformSlot(platform string) string {
	switch platform {
	case "ios":
		return "i2"
	case "android":
		return "a2"
	}
	return ""
}

// members writes the members of an object whose brace is written, commas between them.
type members struct {
	b     []byte
	first bool
}

func (o *members) sep(key string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, key...)
}

func (o *members) str(key, v string) {
	if v != "" {
		o.sep(key)
		o.b = jsonenc.AppendString(o.b, v)
	}
}

// hash writes a one-digest list; key ends with `["`.
func (o *members) hash(key string, h *identity.Hash) {
	if !h.IsZero() {
		o.sep(key)
		o.b = append(h.AppendHex(o.b), `"]`...)
	}
}

func (o *members) int(key string, v int64) {
	if v != 0 {
		o.sep(key)
		o.b = strconv.AppendInt(o.b, v, 10)
	}
}

func (o *members) opt(key string, v envelope.OptFloat) bool {
	if !v.Set {
		return true
	}
	o.sep(key)
	var ok bool
	o.b, ok = appendFloat(o.b, v.V)
	return ok
}

// appendExtInfo writes ExtInfo(d) as a JSON array.
func appendExtInfo(b []byte, d *envelope.Device) []byte {
	b = append(b, '[', '"')
	b = append(b, platformSlot(d.Platform)...)
	b = append(b, '"', ',')
	for _, s := range [...]string{d.AppPackage, d.AppBuild, d.AppVersion, d.OSVersion, d.DeviceModel, d.Locale, d.TimezoneAbbr, d.Carrier} {
		b = append(jsonenc.AppendString(b, s), ',')
	}
	b = appendIntSlot(b, d.ScreenWidth)
	b = appendIntSlot(b, d.ScreenHeight)
	b = append(b, '"')
	if d.ScreenDensity > 0 {
		b = strconv.AppendFloat(b, d.ScreenDensity, 'f', 2, 64)
	}
	b = append(b, '"', ',')
	b = appendIntSlot(b, d.CPUCores)
	b = appendFloatSlot(b, d.StorageTotalGB)
	b = appendFloatSlot(b, d.StorageFreeGB)
	b = jsonenc.AppendString(b, d.Timezone)
	return append(b, ']')
}

// appendIntSlot writes intSlot(v) as a JSON string and a comma; the digits need no escape.
func appendIntSlot(b []byte, v int64) []byte {
	b = append(b, '"')
	if v > 0 {
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, '"', ',')
}

// appendFloatSlot writes floatSlot(v) as a JSON string and a comma.
func appendFloatSlot(b []byte, v float64) []byte {
	b = append(b, '"')
	if !(v <= 0) {
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	return append(b, '"', ',')
}

// hasCustom reports whether customData(c) is not nil.
func hasCustom(c *envelope.CustomData) bool {
	return c.Value.Set || c.Currency != "" || c.ContentIDs != nil || len(c.Contents) > 0 || c.ContentType != "" ||
		c.OrderID != "" || c.NumItems != 0 || c.SearchString != "" || c.PredictedLTV.Set || c.Status != "" ||
		c.Description != "" || c.Level != "" || c.MaxRatingValue.Set || c.Success != envelope.Unset
}

// appendCustom writes the members of customData(c).
func appendCustom(b []byte, c *envelope.CustomData) ([]byte, error) {
	o := members{b: b, first: true}
	ok := o.opt(`"value":`, c.Value)
	o.str(`"currency":`, c.Currency)
	if len(c.ContentIDs) > 0 {
		o.sep(`"content_ids":[`)
		for i, id := range c.ContentIDs {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = jsonenc.AppendString(o.b, id)
		}
		o.b = append(o.b, ']')
	}
	if len(c.Contents) > 0 {
		o.sep(`"contents":[`)
		for i := range c.Contents {
			item := &c.Contents[i]
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = jsonenc.AppendString(append(o.b, `{"id":`...), item.ID)
			if item.Quantity != 0 {
				o.b = strconv.AppendInt(append(o.b, `,"quantity":`...), item.Quantity, 10)
			}
			if item.ItemPrice.Set {
				var fine bool
				o.b, fine = appendFloat(append(o.b, `,"item_price":`...), item.ItemPrice.V)
				ok = ok && fine
			}
			o.b = append(o.b, '}')
		}
		o.b = append(o.b, ']')
	}
	o.str(`"content_type":`, c.ContentType)
	o.str(`"order_id":`, c.OrderID)
	o.int(`"num_items":`, c.NumItems)
	o.str(`"search_string":`, c.SearchString)
	ok = o.opt(`"predicted_ltv":`, c.PredictedLTV) && ok
	o.str(`"status":`, c.Status)
	o.str(`"description":`, c.Description)
	o.str(`"level":`, c.Level)
	ok = o.opt(`"max_rating_value":`, c.MaxRatingValue) && ok
	switch c.Success {
	case envelope.True:
		o.sep(`"success":1`)
	case envelope.False:
		o.sep(`"success":0`)
	}
	if !ok {
		return b, ErrUnencodable
	}
	return o.b, nil
}

// appendFloat writes f as encoding/json does; ok is false for NaN and infinities, which it
// refuses.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-07 becomes e-7, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

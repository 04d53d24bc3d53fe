package envelope

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// Version 2: the events of one user, from one request, in one record.
//
//	{"v":2, "app":"sample-shop", "uk":"<user key>", "received_at":<unix ms>,
//	 "replay":true (only on records replayed from the event archive),
//	 "server":true (only on records of the app's backend),
//	 "user":{...}, "device":{...},
//	 "events":[{"id":"...", "name":"...", "time":<unix s>,
//	            "user":{...} (only when it differs from the record's),
//	            "device":{...} (only when it differs from the record's),
//	            "consent":{...}, "custom_data":{...}}, ...]}
//
// The user and device objects have version 1's members, except that digests are 43 characters
// of unpadded base64url (RFC 4648 §5) instead of 64 hex characters. An event's "user" or
// "device", when present, replaces the record's whole (an empty object means "none"); when
// absent the event has the record's. "events" holds at least one event, in the order the app
// sent them. A record stays under MaxRecordBytes whenever its events allow (AppendGroup's
// callers split a user's events over several records), so on a provisioned stream it is one
// 25 KB PUT payload unit. Within version 2 members may be added (decoders ignore unknown
// members); renaming or removing one, or changing its meaning, needs version 3.

// MaxRecordBytes is the size a version 2 record's writer keeps it under: a Kinesis PUT payload
// unit is 25 KiB of data and partition key, and a user key is 43 bytes; the rest is margin.
const MaxRecordBytes = 25*1024 - 256

// SameRecord reports whether a and b can share a version 2 record: same app, user key, arrival,
// replay mark and sender.
func SameRecord(a, b *Record) bool {
	return a.App == b.App && a.UserKey == b.UserKey && a.ReceivedAt == b.ReceivedAt &&
		a.Replay == b.Replay && a.Event.Server == b.Event.Server
}

// Append appends r encoded as a version 2 record of one event to dst.
func Append(dst []byte, r *Record) []byte {
	dst = AppendHead(dst, r)
	dst = AppendEvent(dst, r, r, true)
	return CloseGroup(dst)
}

// AppendGroup appends recs, which must be non-empty and pairwise SameRecord, encoded as one
// version 2 record to dst; the record's user and device are recs[0]'s. It does not split:
// callers that must stay under MaxRecordBytes use AppendHead, AppendEvent and CloseGroup.
func AppendGroup(dst []byte, recs []Record) []byte {
	dst = AppendHead(dst, &recs[0])
	for i := range recs {
		dst = AppendEvent(dst, &recs[0], &recs[i], i == 0)
	}
	return CloseGroup(dst)
}

// AppendHead appends the start of a version 2 record whose header, user and device are head's,
// up to and including the opening bracket of "events". Follow it with AppendEvent for each event
// and CloseGroup.
func AppendHead(dst []byte, head *Record) []byte {
	return AppendHeadOf(dst, &Head{App: head.App, UserKey: head.UserKey, ReceivedAt: head.ReceivedAt,
		Replay: head.Replay, Server: head.Event.Server, User: &head.Event.User, Device: &head.Event.Device})
}

// AppendEvent appends r's event as an element of the "events" of a record begun with
// AppendHead(head); first says it is the first element. r must be SameRecord as head; its user
// and device are written only where they differ from head's.
func AppendEvent(dst []byte, head, r *Record, first bool) []byte {
	h := Head{User: &head.Event.User, Device: &head.Event.Device}
	return AppendEventOf(dst, &h, &r.Event, &r.Event.User, &r.Event.Device, first)
}

// Head is the header of a version 2 record for writers that keep the events' users and devices
// apart from the events (AppendHeadOf, AppendEventOf): the ingest function holds one user and
// one device per distinct object of a request, not one per event.
type Head struct {
	App        string
	UserKey    string
	ReceivedAt int64
	Replay     bool
	Server     bool
	User       *User   // the record's user; nil for none
	Device     *Device // the record's device; nil for none
	// DeviceJSON, when not nil, is what AppendDeviceJSON writes for Device, and AppendHeadOf
	// copies it instead of encoding Device: a writer that puts one device in many records
	// encodes it once.
	DeviceJSON []byte
}

// AppendDeviceJSON appends the "device" member that AppendHeadOf writes for d (nothing for an
// empty device), for Head.DeviceJSON.
func AppendDeviceJSON(dst []byte, d *Device) []byte { return appendDevice(dst, d) }

// AppendHeadOf is AppendHead for a Head.
func AppendHeadOf(dst []byte, head *Head) []byte {
	b := append(dst, `{"v":2`...)
	b = appendKeyString(b, `,"app":`, head.App)
	b = appendKeyString(b, `,"uk":`, head.UserKey)
	b = append(b, `,"received_at":`...)
	b = strconv.AppendInt(b, head.ReceivedAt, 10)
	if head.Replay {
		b = append(b, `,"replay":true`...)
	}
	if head.Server {
		b = append(b, `,"server":true`...)
	}
	if head.User != nil {
		b = appendUserV2(b, head.User)
	}
	if head.DeviceJSON != nil {
		b = append(b, head.DeviceJSON...)
	} else if head.Device != nil {
		b = appendDevice(b, head.Device)
	}
	return append(b, `,"events":[`...)
}

// AppendEventOf appends ev as an element of the "events" of a record begun with
// AppendHeadOf(head), ignoring ev.User and ev.Device: user and device (nil for none) are the
// event's, written only where they differ from head's (same pointer, or equal values).
func AppendEventOf(dst []byte, head *Head, ev *Event, user *User, device *Device, first bool) []byte {
	b := dst
	if !first {
		b = append(b, ',')
	}
	b = appendKeyString(b, `{"id":`, ev.ID)
	b = appendKeyString(b, `,"name":`, ev.Name)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, ev.Time, 10)
	if user != head.User && !sameUser(user, head.User) {
		start := len(b)
		if user != nil {
			b = appendUserV2(b, user)
		}
		if len(b) == start {
			b = append(b, `,"user":{}`...)
		}
	}
	if device != head.Device && !sameDevice(device, head.Device) {
		start := len(b)
		if device != nil {
			b = appendDevice(b, device)
		}
		if len(b) == start {
			b = append(b, `,"device":{}`...)
		}
	}
	b = appendConsent(b, &ev.Consent)
	b = appendCustom(b, &ev.Custom)
	return append(b, '}')
}

// sameUser and sameDevice compare objects where nil is the zero (absent) object.
func sameUser(a, b *User) bool {
	var zero User
	if a == nil {
		a = &zero
	}
	if b == nil {
		b = &zero
	}
	return *a == *b
}

func sameDevice(a, b *Device) bool {
	var zero Device
	if a == nil {
		a = &zero
	}
	if b == nil {
		b = &zero
	}
	return *a == *b
}

// CloseGroup ends a record begun with AppendHead.
func CloseGroup(dst []byte) []byte { return append(dst, "]}"...) }

func appendUserV2(b []byte, u *User) []byte { return appendUserObject(b, u, true) }

// Decode parses a stream record of any version from MinVersion to Version and returns its
// events, in order, each with the record's header (Record.V is the record's version). It
// returns an error wrapping ErrUnsupportedVersion for other versions, and another error for a
// record that is not valid JSON of its version or lacks app, uk, an event, or an event's id or
// name.
func Decode(data []byte) ([]Record, error) {
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	switch {
	case head.V == nil:
		return nil, fmt.Errorf("envelope: missing version field \"v\": %w", ErrUnsupportedVersion)
	case *head.V == 1:
		r, err := decodeV1(data)
		if err != nil {
			return nil, err
		}
		return []Record{*r}, nil
	case *head.V == 2:
		return decodeV2(data)
	}
	return nil, versionError(*head.V)
}

// DecodeOne is Decode for a record that must hold exactly one event (a dead letter's).
func DecodeOne(data []byte) (*Record, error) {
	recs, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("envelope: the record holds %d events, want one", len(recs))
	}
	return &recs[0], nil
}

// The version 2 wire types of the reference decoder (encoding/json).
type (
	wireV2 struct {
		App        string        `json:"app"`
		UserKey    string        `json:"uk"`
		ReceivedAt int64         `json:"received_at"`
		Replay     bool          `json:"replay"`
		Server     bool          `json:"server"`
		User       *wireUserV2   `json:"user"`
		Device     *Device       `json:"device"`
		Events     []wireEventV2 `json:"events"`
	}
	wireEventV2 struct {
		ID      string      `json:"id"`
		Name    string      `json:"name"`
		Time    int64       `json:"time"`
		User    *wireUserV2 `json:"user"`
		Device  *Device     `json:"device"`
		Consent Consent     `json:"consent"`
		Custom  CustomData  `json:"custom_data"`
	}
	wireUserV2 struct {
		KeySource       identity.IDKind `json:"key_source"`
		ExternalID      b64Hash         `json:"external_id"`
		Email           b64Hash         `json:"em"`
		Phone           b64Hash         `json:"ph"`
		FirstName       b64Hash         `json:"fn"`
		LastName        b64Hash         `json:"ln"`
		Gender          b64Hash         `json:"ge"`
		DateOfBirth     b64Hash         `json:"db"`
		City            b64Hash         `json:"ct"`
		State           b64Hash         `json:"st"`
		Zip             b64Hash         `json:"zp"`
		Country         b64Hash         `json:"country"`
		AnonID          string          `json:"anon_id"`
		MADID           string          `json:"madid"`
		ClientIP        string          `json:"client_ip_address"`
		ClientUserAgent string          `json:"client_user_agent"`
		AppUserID       string          `json:"app_user_id"`
	}
)

// b64Hash is a digest written as 43 characters of unpadded base64url.
type b64Hash identity.Hash

// HashB64Len is the length of a digest in a version 2 record.
const HashB64Len = 43

func (h *b64Hash) UnmarshalText(b []byte) error {
	if len(b) != HashB64Len {
		return errors.New("not a SHA-256 digest in unpadded base64url (43 characters)")
	}
	var d identity.Hash
	if n, err := base64.RawURLEncoding.Strict().Decode(d[:], b); err != nil || n != len(d) {
		return errors.New("not a SHA-256 digest in unpadded base64url (43 characters)")
	}
	*h = b64Hash(d)
	return nil
}

func (w *wireUserV2) user() User {
	return User{KeySource: w.KeySource,
		ExternalID: identity.Hash(w.ExternalID), Email: identity.Hash(w.Email), Phone: identity.Hash(w.Phone),
		FirstName: identity.Hash(w.FirstName), LastName: identity.Hash(w.LastName), Gender: identity.Hash(w.Gender),
		DateOfBirth: identity.Hash(w.DateOfBirth), City: identity.Hash(w.City), State: identity.Hash(w.State),
		Zip: identity.Hash(w.Zip), Country: identity.Hash(w.Country),
		AnonID: w.AnonID, MADID: w.MADID, ClientIP: w.ClientIP, ClientUserAgent: w.ClientUserAgent, AppUserID: w.AppUserID}
}

func decodeV2(data []byte) ([]Record, error) {
	var w wireV2
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("envelope v2: %w", err)
	}
	if w.App == "" || w.UserKey == "" {
		return nil, errors.New("envelope: app and uk are required")
	}
	if len(w.Events) == 0 {
		return nil, errors.New("envelope v2: the record has no events")
	}
	var user User
	if w.User != nil {
		user = w.User.user()
	}
	var device Device
	if w.Device != nil {
		device = *w.Device
	}
	out := make([]Record, len(w.Events))
	for i := range w.Events {
		e := &w.Events[i]
		if e.ID == "" || e.Name == "" {
			return nil, fmt.Errorf("envelope v2: events[%d]: id and name are required", i)
		}
		r := &out[i]
		*r = Record{V: 2, App: w.App, UserKey: w.UserKey, ReceivedAt: w.ReceivedAt, Replay: w.Replay,
			Event: Event{ID: e.ID, Name: e.Name, Time: e.Time, Server: w.Server, User: user, Device: device,
				Consent: e.Consent, Custom: e.Custom}}
		if e.User != nil {
			r.Event.User = e.User.user()
		}
		if e.Device != nil {
			r.Event.Device = *e.Device
		}
	}
	return out, nil
}

// Packed is one version 2 record made by Pack: Data holds recs[First:First+N].
type Packed struct {
	UserKey  string
	First, N int
	Data     []byte
}

// Pack encodes recs as version 2 records: each run of consecutive events that are SameRecord
// shares records, a new record starting where the next event would take one past
// MaxRecordBytes (an event too big for any record gets one of its own). Callers that want a
// user's events together sort them first (stably, to keep each user's order).
func Pack(recs []Record) []Packed {
	var out []Packed
	var buf []byte
	for i := 0; i < len(recs); {
		head := &recs[i]
		start := len(buf)
		buf = AppendHead(buf, head)
		buf = AppendEvent(buf, head, head, true)
		n := 1
		for ; i+n < len(recs) && SameRecord(head, &recs[i+n]); n++ {
			mark := len(buf)
			buf = AppendEvent(buf, head, &recs[i+n], false)
			if len(buf)+len("]}")-start > MaxRecordBytes {
				buf = buf[:mark]
				break
			}
		}
		buf = CloseGroup(buf)
		out = append(out, Packed{UserKey: head.UserKey, First: i, N: n, Data: buf[start:len(buf):len(buf)]})
		i += n
	}
	return out
}

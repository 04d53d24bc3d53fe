// Package envelope defines the stream record format: the versioned JSON document the ingest
// function writes to Kinesis and every consumer reads. It holds no raw personal data: personal
// fields are SHA-256 digests (see package identity) and the user is a pseudonymous key.
//
// The ingest function writes version 2 (v2.go): the events of one user from one request in one
// record, the user and device objects once, digests as unpadded base64url. Every consumer reads
// versions 1 and 2, so a stream may hold both (records written before an upgrade, records
// replayed from dead letters or the archive); Decode returns the events of either as Records.
//
// Version 1, one event per record (field names are part of the contract):
//
//	{"v":1, "app":"sample-shop", "uk":"<43-char pseudonymous user key>", "received_at":<unix ms>,
//	 "replay":true (only on a record replayed from the event archive),
//	 "event":{"id":"...", "name":"fb_mobile_purchase", "time":<unix s>, "server":true,
//	   "user":{"key_source":"app_user_id", "external_id":"<sha256>", "em":"<sha256>", "ph":..., "fn":...,
//	           "ln":..., "ge":..., "db":..., "ct":..., "st":..., "zp":..., "country":...,
//	           "anon_id":"...", "madid":"...", "client_ip_address":"...", "client_user_agent":"..."},
//	   "device":{"platform":"ios", "app_package":..., "os_version":..., ...},
//	   "consent":{"ads_personalization":true, "advertiser_tracking_enabled":true, ...},
//	   "custom_data":{"value":12.5, "currency":"USD", ...}}}
//
// "server" is true for an event the app's backend sent (POST /v1/server/events, signed with
// AWS IAM) and absent for one the app sent with its publishable key. Absent values are
// omitted. Within version 1 fields may be added (decoders ignore unknown
// fields); renaming or removing one, or changing its meaning, needs version 2.
package envelope

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// Version is the envelope version this package writes (Append, AppendGroup). Decode reads
// every version from MinVersion to Version.
const Version = 2

// MinVersion is the oldest envelope version Decode reads.
const MinVersion = 1

// ErrUnsupportedVersion is returned for records of a version this build cannot read.
var ErrUnsupportedVersion = errors.New("unsupported envelope version")

// Record is one event as a stream record carries it, with the record's header. A version 1
// stream record is one Record; a version 2 record is several sharing App, UserKey, ReceivedAt,
// Replay and Event.Server (see AppendGroup).
type Record struct {
	// V is the version of the stream record the event was read from (Decode), or is written as
	// (AppendV1 writes 1 whatever it says; Append and AppendGroup write Version).
	V          int    `json:"v"`
	App        string `json:"app"`
	UserKey    string `json:"uk"`
	ReceivedAt int64  `json:"received_at"` // unix milliseconds, server clock
	// Replay marks a record put back on the stream from the event archive (retarget archive
	// replay), not sent by an app: its event is one the pipeline accepted before, with the
	// same event_id, and received_at is still the original arrival. Consumers deduplicate on
	// event_id as for any redelivery; the CAPI forwarder skips a replayed event Meta would
	// refuse as too old instead of dead-lettering it. Absent (false) on every ingested record.
	Replay bool  `json:"replay,omitempty"`
	Event  Event `json:"event"`
}

// Event is a validated, normalised app event.
type Event struct {
	ID   string `json:"id"`
	Name string `json:"name"` // as the app sent it (fb_mobile_* or custom)
	Time int64  `json:"time"` // unix seconds
	// Server marks an event sent by the app's backend (POST /v1/server/events), not by the app
	// holding the publishable key: only these can be trusted with values (trusted_values).
	Server  bool       `json:"server,omitempty"`
	User    User       `json:"user,omitzero"`
	Device  Device     `json:"device,omitzero"`
	Consent Consent    `json:"consent,omitzero"`
	Custom  CustomData `json:"custom_data,omitzero"`
}

// User holds the user's identifiers: hashed personal data and the ids Meta wants unhashed.
type User struct {
	// KeySource names the identifier the record's user key was derived from.
	KeySource       identity.IDKind `json:"key_source,omitempty"`
	ExternalID      identity.Hash   `json:"external_id,omitzero"`
	Email           identity.Hash   `json:"em,omitzero"`
	Phone           identity.Hash   `json:"ph,omitzero"`
	FirstName       identity.Hash   `json:"fn,omitzero"`
	LastName        identity.Hash   `json:"ln,omitzero"`
	Gender          identity.Hash   `json:"ge,omitzero"`
	DateOfBirth     identity.Hash   `json:"db,omitzero"`
	City            identity.Hash   `json:"ct,omitzero"`
	State           identity.Hash   `json:"st,omitzero"`
	Zip             identity.Hash   `json:"zp,omitzero"`
	Country         identity.Hash   `json:"country,omitzero"`
	AnonID          string          `json:"anon_id,omitempty"`
	MADID           string          `json:"madid,omitempty"`
	ClientIP        string          `json:"client_ip_address,omitempty"`
	ClientUserAgent string          `json:"client_user_agent,omitempty"`
	// AppUserID is the app's own user id as sent, only for apps that share it with their
	// channels ("share_app_user_id": true) and only with consent; every other record carries
	// it hashed (ExternalID) and nothing more.
	AppUserID string `json:"app_user_id,omitempty"`
}

// Hashed returns a pointer to the digest of field f, for code that walks every hashed field.
func (u *User) Hashed(f identity.Field) *identity.Hash {
	switch f {
	case identity.Email:
		return &u.Email
	case identity.Phone:
		return &u.Phone
	case identity.FirstName:
		return &u.FirstName
	case identity.LastName:
		return &u.LastName
	case identity.Gender:
		return &u.Gender
	case identity.DateOfBirth:
		return &u.DateOfBirth
	case identity.City:
		return &u.City
	case identity.State:
		return &u.State
	case identity.Zip:
		return &u.Zip
	case identity.Country:
		return &u.Country
	case identity.ExternalID:
		return &u.ExternalID
	}
	panic(fmt.Sprintf("envelope: unknown identity field %d", f))
}

// Device describes the device; it feeds CAPI's app_data.extinfo.
type Device struct {
	Platform       string  `json:"platform,omitempty"`
	AppPackage     string  `json:"app_package,omitempty"`
	AppVersion     string  `json:"app_version,omitempty"`
	AppBuild       string  `json:"app_build,omitempty"`
	OSVersion      string  `json:"os_version,omitempty"`
	DeviceModel    string  `json:"device_model,omitempty"`
	Locale         string  `json:"locale,omitempty"`
	TimezoneAbbr   string  `json:"timezone_abbr,omitempty"`
	Carrier        string  `json:"carrier,omitempty"`
	ScreenWidth    int64   `json:"screen_width,omitempty"`
	ScreenHeight   int64   `json:"screen_height,omitempty"`
	ScreenDensity  float64 `json:"screen_density,omitempty"`
	CPUCores       int64   `json:"cpu_cores,omitempty"`
	StorageTotalGB float64 `json:"storage_total_gb,omitempty"`
	StorageFreeGB  float64 `json:"storage_free_gb,omitempty"`
	Timezone       string  `json:"timezone,omitempty"`
}

// Consent carries the user's consent signals as the app reported them.
type Consent struct {
	// AdsPersonalization is consent to remarketing. Only an explicit true lets the event be
	// forwarded to Meta or segmented into audiences; without it the record keeps no identifiers.
	AdsPersonalization  Flag  `json:"ads_personalization,omitzero"`
	AdvertiserTracking  Flag  `json:"advertiser_tracking_enabled,omitzero"`
	ApplicationTracking Flag  `json:"application_tracking_enabled,omitzero"`
	LDU                 Flag  `json:"ldu,omitzero"`
	LDUCountry          int64 `json:"ldu_country,omitempty"`
	LDUState            int64 `json:"ldu_state,omitempty"`
}

// CustomData is the event's commerce and app data (CAPI custom_data).
type CustomData struct {
	Value                 OptFloat  `json:"value,omitzero"`
	Currency              string    `json:"currency,omitempty"` // ISO 4217, upper case
	ContentIDs            []string  `json:"content_ids,omitempty"`
	Contents              []Content `json:"contents,omitempty"`
	ContentType           string    `json:"content_type,omitempty"`
	OrderID               string    `json:"order_id,omitempty"`
	NumItems              int64     `json:"num_items,omitempty"`
	SearchString          string    `json:"search_string,omitempty"`
	SubscriptionExpiresAt int64     `json:"subscription_expires_at,omitempty"` // unix seconds
	PredictedLTV          OptFloat  `json:"predicted_ltv,omitzero"`
	Status                string    `json:"status,omitempty"`
	Description           string    `json:"description,omitempty"`
	Level                 string    `json:"level,omitempty"`
	MaxRatingValue        OptFloat  `json:"max_rating_value,omitzero"`
	Success               Flag      `json:"success,omitzero"`
}

// Content is one item of custom_data.contents.
type Content struct {
	ID        string   `json:"id"`
	Quantity  int64    `json:"quantity,omitempty"`
	ItemPrice OptFloat `json:"item_price,omitzero"`
}

// Flag is a boolean that may be absent.
type Flag int8

// Flag values.
const (
	Unset Flag = iota
	False
	True
)

// FlagOf returns True or False.
func FlagOf(b bool) Flag {
	if b {
		return True
	}
	return False
}

// IsZero reports whether f is Unset.
func (f Flag) IsZero() bool { return f == Unset }

// IsTrue reports whether f is an explicit true.
func (f Flag) IsTrue() bool { return f == True }

// MarshalJSON writes true, false or null.
func (f Flag) MarshalJSON() ([]byte, error) {
	switch f {
	case True:
		return []byte("true"), nil
	case False:
		return []byte("false"), nil
	}
	return []byte("null"), nil
}

// UnmarshalJSON reads true, false or null.
func (f *Flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*f = True
	case "false":
		*f = False
	case "null":
		*f = Unset
	default:
		return fmt.Errorf("flag: want true, false or null, got %s", b)
	}
	return nil
}

// OptFloat is a number that may be absent (zero is a real value, e.g. a free purchase).
type OptFloat struct {
	V   float64
	Set bool
}

// Float returns a present OptFloat.
func Float(v float64) OptFloat { return OptFloat{V: v, Set: true} }

// IsZero reports whether the value is absent.
func (o OptFloat) IsZero() bool { return !o.Set }

// MarshalJSON writes the number or null.
func (o OptFloat) MarshalJSON() ([]byte, error) {
	if !o.Set {
		return []byte("null"), nil
	}
	return appendFloat(nil, o.V), nil
}

// UnmarshalJSON reads a number or null.
func (o *OptFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = OptFloat{}
		return nil
	}
	if err := json.Unmarshal(b, &o.V); err != nil {
		return err
	}
	o.Set = true
	return nil
}

// decodeV1 parses a version 1 record with encoding/json.
func decodeV1(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("envelope v1: %w", err)
	}
	if r.App == "" || r.UserKey == "" || r.Event.ID == "" || r.Event.Name == "" {
		return nil, errors.New("envelope: app, uk, event.id and event.name are required")
	}
	r.V = 1
	return &r, nil
}

func versionError(v int) error {
	return fmt.Errorf("envelope: version %d, this build reads %d to %d (deploy a newer consumer): %w", v, MinVersion, Version, ErrUnsupportedVersion)
}

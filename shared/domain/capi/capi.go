// Package capi maps stream records (package envelope) to Meta Conversions API server events for
// app events, and checks each event against Meta's rules before it is batched: one invalid
// event rejects a whole CAPI request, so an event that would fail is set aside (dead-lettered)
// instead of poisoning its batch. Facts: reference/meta-api.md, section 1.
//
// Map, Restrict, Check and json.Marshal of the ServerEvent are the reference; AppendPayload
// (and Encoder, for the events of one record) does the same in one pass without reflection or
// allocation, the forwarder's hot path, and is tested and fuzzed against them byte for byte.
package capi

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// ServerEvent is one CAPI server event (action_source "app").
type ServerEvent struct {
	EventName    string      `json:"event_name"`
	EventTime    int64       `json:"event_time"`
	EventID      string      `json:"event_id"`
	ActionSource string      `json:"action_source"`
	UserData     UserData    `json:"user_data"`
	AppData      AppData     `json:"app_data"`
	CustomData   *CustomData `json:"custom_data,omitempty"`
	// Limited Data Use: ["LDU"] with country and state (0, 0 = Meta geolocates).
	DataProcessingOptions        []string `json:"data_processing_options,omitempty"`
	DataProcessingOptionsCountry *int64   `json:"data_processing_options_country,omitempty"`
	DataProcessingOptionsState   *int64   `json:"data_processing_options_state,omitempty"`
}

// UserData holds the customer information parameters: hashed fields as lists, device ids and
// network data unhashed, as Meta wants them.
type UserData struct {
	Email           []string `json:"em,omitempty"`
	Phone           []string `json:"ph,omitempty"`
	FirstName       []string `json:"fn,omitempty"`
	LastName        []string `json:"ln,omitempty"`
	Gender          []string `json:"ge,omitempty"`
	DateOfBirth     []string `json:"db,omitempty"`
	City            []string `json:"ct,omitempty"`
	State           []string `json:"st,omitempty"`
	Zip             []string `json:"zp,omitempty"`
	Country         []string `json:"country,omitempty"`
	ExternalID      []string `json:"external_id,omitempty"`
	MADID           string   `json:"madid,omitempty"`
	AnonID          string   `json:"anon_id,omitempty"`
	ClientIP        string   `json:"client_ip_address,omitempty"`
	ClientUserAgent string   `json:"client_user_agent,omitempty"`
}

// AppData is CAPI's app_data: tracking flags as 0/1 integers (Meta flags booleans as out of
// range) and the 16-slot extinfo.
type AppData struct {
	AdvertiserTrackingEnabled  int        `json:"advertiser_tracking_enabled"`
	ApplicationTrackingEnabled int        `json:"application_tracking_enabled"`
	ExtInfo                    [16]string `json:"extinfo"`
}

// CustomData is CAPI's custom_data.
type CustomData struct {
	Value          *float64  `json:"value,omitempty"`
	Currency       string    `json:"currency,omitempty"`
	ContentIDs     []string  `json:"content_ids,omitempty"`
	Contents       []Content `json:"contents,omitempty"`
	ContentType    string    `json:"content_type,omitempty"`
	OrderID        string    `json:"order_id,omitempty"`
	NumItems       int64     `json:"num_items,omitempty"`
	SearchString   string    `json:"search_string,omitempty"`
	PredictedLTV   *float64  `json:"predicted_ltv,omitempty"`
	Status         string    `json:"status,omitempty"`
	Description    string    `json:"description,omitempty"`
	Level          string    `json:"level,omitempty"`
	MaxRatingValue *float64  `json:"max_rating_value,omitempty"`
	Success        *int      `json:"success,omitempty"` // 1 or 0
}

// Content is one item of custom_data.contents.
type Content struct {
	ID        string   `json:"id"`
	Quantity  int64    `json:"quantity,omitempty"`
	ItemPrice *float64 `json:"item_price,omitempty"`
}

// ErrNoConsent marks an event that is not forwarded by design: the user did not consent to
// ads personalisation. It is skipped, not dead-lettered.
var ErrNoConsent = errors.New("no consent to ads personalisation: not forwarded")

// Map turns a stream record into a CAPI server event. It returns ErrNoConsent for events that
// must never reach Meta.
func Map(r *envelope.Record) (*ServerEvent, error) {
	e := &r.Event
	c := &e.Consent
	if !c.AdsPersonalization.IsTrue() {
		return nil, ErrNoConsent
	}
	ev := &ServerEvent{
		EventName:    appevent.CAPIName(e.Name),
		EventTime:    e.Time,
		EventID:      e.ID,
		ActionSource: "app",
	}
	ios := e.Device.Platform == "ios"
	ev.AppData = AppData{
		AdvertiserTrackingEnabled:  trackingFlag(c.AdvertiserTracking, !ios),
		ApplicationTrackingEnabled: trackingFlag(c.ApplicationTracking, true),
		ExtInfo:                    ExtInfo(&e.Device),
	}
	u := &e.User
	ev.UserData = UserData{
		Email: hashList(u.Email), Phone: hashList(u.Phone), FirstName: hashList(u.FirstName),
		LastName: hashList(u.LastName), Gender: hashList(u.Gender), DateOfBirth: hashList(u.DateOfBirth),
		City: hashList(u.City), State: hashList(u.State), Zip: hashList(u.Zip), Country: hashList(u.Country),
		ExternalID: hashList(u.ExternalID),
		AnonID:     u.AnonID, ClientIP: u.ClientIP, ClientUserAgent: u.ClientUserAgent,
	}
	if ev.AppData.AdvertiserTrackingEnabled == 1 {
		ev.UserData.MADID = u.MADID // never with tracking off, even if an old record carries one
	}
	if c.LDU.IsTrue() {
		country, state := c.LDUCountry, c.LDUState
		ev.DataProcessingOptions = []string{"LDU"}
		ev.DataProcessingOptionsCountry, ev.DataProcessingOptionsState = &country, &state
	}
	ev.CustomData = customData(&e.Custom)
	return ev, nil
}

// Restrict applies explicit consent flags (the consent API) to a mapped event; nil leaves the
// event's own value. They only ever restrict: advertiser tracking false sets
// advertiser_tracking_enabled 0 and drops the advertising id, application tracking false sets
// application_tracking_enabled 0, LDU true turns Limited Data Use on (country and state 0: Meta
// geolocates) unless the event already set it. A true flag does not enable what the event
// disabled: an event's own refusal stands.
func Restrict(ev *ServerEvent, advertiserTracking, applicationTracking, ldu *bool) {
	if advertiserTracking != nil && !*advertiserTracking {
		ev.AppData.AdvertiserTrackingEnabled = 0
		ev.UserData.MADID = ""
	}
	if applicationTracking != nil && !*applicationTracking {
		ev.AppData.ApplicationTrackingEnabled = 0
	}
	if ldu != nil && *ldu && len(ev.DataProcessingOptions) == 0 {
		var zero, zeroState int64
		ev.DataProcessingOptions = []string{"LDU"}
		ev.DataProcessingOptionsCountry, ev.DataProcessingOptionsState = &zero, &zeroState
	}
}

// trackingFlag turns a consent flag into Meta's 0/1. An absent flag takes def: the app-level
// opt-out defaults to enabled (the user consented to ads personalisation), the advertiser
// tracking flag defaults to enabled on Android and disabled on iOS, where ATT must say yes.
func trackingFlag(f envelope.Flag, def bool) int {
	switch f {
	case envelope.True:
		return 1
	case envelope.False:
		return 0
	}
	if def {
		return 1
	}
	return 0
}

// ExtInfo returns Meta's 16 extinfo slots for a device, "" where unknown.
func ExtInfo(d *envelope.Device) [16]string {
	var x [16]string
	switch d.Platform {
	case "ios":
		x[0] = "i2"
	case "android":
		x[0] = "a2"
	}
	x[1] = d.AppPackage
	x[2] = d.AppBuild   // short version
	x[3] = d.AppVersion // long version
	x[4] = d.OSVersion
	x[5] = d.DeviceModel
	x[6] = d.Locale
	x[7] = d.TimezoneAbbr
	x[8] = d.Carrier
	x[9] = intSlot(d.ScreenWidth)
	x[10] = intSlot(d.ScreenHeight)
	if d.ScreenDensity > 0 {
		x[11] = strconv.FormatFloat(d.ScreenDensity, 'f', 2, 64)
	}
	x[12] = intSlot(d.CPUCores)
	x[13] = floatSlot(d.StorageTotalGB)
	x[14] = floatSlot(d.StorageFreeGB)
	x[15] = d.Timezone
	return x
}

func intSlot(v int64) string {
	if v <= 0 {
		return ""
	}
	return strconv.FormatInt(v, 10)
}

func floatSlot(v float64) string {
	if v <= 0 {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func hashList(h identity.Hash) []string {
	if h.IsZero() {
		return nil
	}
	return []string{h.String()}
}

func customData(c *envelope.CustomData) *CustomData {
	out := &CustomData{
		Currency: c.Currency, ContentIDs: c.ContentIDs, ContentType: c.ContentType, OrderID: c.OrderID,
		NumItems: c.NumItems, SearchString: c.SearchString, Status: c.Status, Description: c.Description,
		Level: c.Level, Value: optFloat(c.Value), PredictedLTV: optFloat(c.PredictedLTV),
		MaxRatingValue: optFloat(c.MaxRatingValue),
	}
	for _, item := range c.Contents {
		out.Contents = append(out.Contents, Content{ID: item.ID, Quantity: item.Quantity, ItemPrice: optFloat(item.ItemPrice)})
	}
	switch c.Success {
	case envelope.True:
		one := 1
		out.Success = &one
	case envelope.False:
		zero := 0
		out.Success = &zero
	}
	if out.Value == nil && out.Currency == "" && out.ContentIDs == nil && out.Contents == nil && out.ContentType == "" &&
		out.OrderID == "" && out.NumItems == 0 && out.SearchString == "" && out.PredictedLTV == nil && out.Status == "" &&
		out.Description == "" && out.Level == "" && out.MaxRatingValue == nil && out.Success == nil {
		return nil
	}
	return out
}

func optFloat(o envelope.OptFloat) *float64 {
	if !o.Set {
		return nil
	}
	v := o.V
	return &v
}

// Meta's limits checked before sending.
const (
	// MaxAge is how old an event may be when Meta receives it. A margin is kept for the time
	// the request takes.
	MaxAge = 7 * 24 * time.Hour
	// SendMargin is kept off MaxAge for the time between this check and Meta's.
	SendMargin = 2 * time.Minute
	// MaxSkew is how far ahead of the clock an event may be before it is refused; less is
	// clamped to now (device clocks drift; Meta refuses future events).
	MaxSkew = 5 * time.Minute
)

// Problem is why an event cannot be sent; Reason is a stable code for dead letters and metrics.
type Problem struct {
	Reason string
	Detail string
}

func (p *Problem) Error() string { return p.Reason + ": " + p.Detail }

// Check validates ev against Meta's rules at send time now, clamping a slightly future
// event_time. It returns a *Problem for an event Meta would refuse.
func Check(ev *ServerEvent, now time.Time) error {
	u := &ev.UserData
	f := facts{
		eventTime: ev.EventTime, eventID: ev.EventID, eventName: ev.EventName,
		platform: ev.AppData.ExtInfo[0], osVersion: ev.AppData.ExtInfo[4] != "",
		ate: ev.AppData.AdvertiserTrackingEnabled, ale: ev.AppData.ApplicationTrackingEnabled, hashed: true,
		identified: u.ExternalID != nil || u.AnonID != "" || u.MADID != "" || u.Email != nil || u.Phone != nil,
	}
	for _, list := range [][]string{u.Email, u.Phone, u.FirstName, u.LastName, u.Gender, u.DateOfBirth, u.City, u.State, u.Zip, u.Country, u.ExternalID} {
		for _, h := range list {
			f.hashed = f.hashed && isLowerHex64(h)
		}
	}
	if c := ev.CustomData; c != nil {
		f.value, f.currency = c.Value != nil, c.Currency != ""
	}
	t, err := f.check(now)
	if err == nil {
		ev.EventTime = t
	}
	return err
}

// facts are what Meta's rules look at in a server event: Check and AppendPayload gather them,
// check applies the rules.
type facts struct {
	eventTime          int64
	eventID, eventName string
	platform           string // extinfo slot 0
	osVersion          bool   // extinfo slot 4 is set
	ate, ale           int    // tracking flags
	hashed             bool   // every customer information parameter is a lowercase hex SHA-256
	identified         bool   // external_id, anon_id, madid, em or ph
	value, currency    bool   // custom_data value and currency are set
}

// check returns the event_time to send (clamped to now when slightly ahead), or a *Problem.
func (f *facts) check(now time.Time) (int64, error) {
	eventTime := f.eventTime
	t := time.Unix(eventTime, 0)
	switch {
	case now.Sub(t) > MaxAge-SendMargin:
		return 0, &Problem{"too_old", fmt.Sprintf("event_time %s is more than 7 days old at send time", t.UTC().Format(time.RFC3339))}
	case t.Sub(now) > MaxSkew:
		return 0, &Problem{"in_future", fmt.Sprintf("event_time %s is in the future", t.UTC().Format(time.RFC3339))}
	case t.After(now):
		eventTime = now.Unix()
	}
	if f.eventID == "" {
		return 0, &Problem{"invalid_event", "event_id is missing"}
	}
	if !validName(f.eventName) {
		return 0, &Problem{"invalid_event_name", fmt.Sprintf("event_name %q is not a valid CAPI name", f.eventName)}
	}
	if f.platform != "i2" && f.platform != "a2" {
		return 0, &Problem{"invalid_app_data", "extinfo slot 0 (platform) is missing"}
	}
	if !f.osVersion {
		return 0, &Problem{"invalid_app_data", "extinfo slot 4 (OS version) is missing"}
	}
	if (f.ate != 0 && f.ate != 1) || (f.ale != 0 && f.ale != 1) {
		return 0, &Problem{"invalid_app_data", "tracking flags must be 0 or 1"}
	}
	if !f.hashed {
		return 0, &Problem{"not_hashed", "a customer information parameter is not a SHA-256 hex digest"}
	}
	if !f.identified {
		return 0, &Problem{"no_user_data", "no identifier Meta can match (external_id, anon_id, madid, em or ph)"}
	}
	if f.value && !f.currency {
		return 0, &Problem{"invalid_custom_data", "value without currency"}
	}
	if f.eventName == "Purchase" && (!f.value || !f.currency) {
		return 0, &Problem{"invalid_custom_data", "a Purchase needs value and currency"}
	}
	return eventTime, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || (i > 0 && (c == ' ' || c == '-'))
		if !ok {
			return false
		}
	}
	return true
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

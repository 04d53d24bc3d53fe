package metasandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"time"
)

// Limits Meta applies to a CAPI call.
const (
	// MaxEventsPerRequest is the most events one call may carry.
	MaxEventsPerRequest = 1000
	// MaxEventAge is how old an event_time may be.
	MaxEventAge = 7 * 24 * time.Hour
	// MaxClockSkew is how far in the future an event_time may be.
	MaxClockSkew = 60 * time.Second
)

var eventNameRE = regexp.MustCompile(`^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$`)

// hashedKeys are the user_data keys Meta wants as SHA-256 hex (a string or a list of them).
var hashedKeys = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// plainKeys are user_data keys sent as they are, each a single string.
var plainKeys = []string{"madid", "anon_id", "client_ip_address", "client_user_agent", "fbc", "fbp",
	"subscription_id", "fb_login_id", "lead_id", "page_id", "page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid"}

var actionSources = map[string]bool{
	"app": true, "website": true, "email": true, "phone_call": true, "chat": true, "physical_store": true,
	"system_generated": true, "business_messaging": true, "other": true,
}

// emptySHA256 is SHA-256 of "": what an integration sends when it hashes a missing value.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// decodedEvent is one element of data, decoded with json.Number for exact integers.
type decodedEvent struct {
	raw    json.RawMessage
	fields map[string]any
}

// decodeData checks the data parameter as a whole and decodes its events (p.splitData has
// split it).
func decodeData(p callParams) ([]decodedEvent, *graphError) {
	if p.data == nil {
		return nil, errParam("The parameter data is required")
	}
	if !p.dataIsList {
		return nil, errParam("param data must be an array.")
	}
	raws := p.elements
	if len(raws) == 0 {
		return nil, errInvalid(0, "No Events", "data must contain at least one event.")
	}
	if len(raws) > MaxEventsPerRequest {
		return nil, errInvalid(0, "Too Many Events", fmt.Sprintf(
			"A request carries at most %d events; this one carries %d.", MaxEventsPerRequest, len(raws)))
	}
	events := make([]decodedEvent, len(raws))
	for i, raw := range raws {
		events[i].raw = raw
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, errParam("param data must be an array.")
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, eventErr(i, SubcodeInvalidValue, "Invalid Event", "each element of data must be a JSON object")
		}
		events[i].fields = obj
	}
	return events, nil
}

func eventErr(i, subcode int, title, format string, args ...any) *graphError {
	return errInvalid(subcode, title, fmt.Sprintf("Event %d: ", i)+fmt.Sprintf(format, args...))
}

// validateEvent applies Meta's rules to data[i]. It returns the first violation, and warnings
// for what Meta accepts but will not match (sent back in the success response's messages).
func validateEvent(i int, ev map[string]any, now time.Time) (warnings []string, gerr *graphError) {
	// event_name
	name, present, isString := stringField(ev, "event_name")
	switch {
	case !present:
		return nil, eventErr(i, SubcodeInvalidValue, "Missing Event Name", "event_name is required")
	case !isString || !eventNameRE.MatchString(name):
		return nil, eventErr(i, SubcodeInvalidValue, "Invalid Event Name",
			"event_name must be a string matching %s", eventNameRE)
	}

	// event_time
	if gerr := checkEventTime(i, ev, now); gerr != nil {
		return nil, gerr
	}

	// event_id is optional for Meta (the forwarder should always send it), but a string.
	if _, present, isString := stringField(ev, "event_id"); present && !isString {
		return nil, eventErr(i, SubcodeInvalidValue, "Invalid Event ID", "event_id must be a string")
	}

	// action_source
	source, present, isString := stringField(ev, "action_source")
	switch {
	case !present:
		return nil, eventErr(i, SubcodeInvalidValue, "Missing Action Source", "action_source is required")
	case !isString || !actionSources[source]:
		return nil, eventErr(i, SubcodeInvalidValue, "Invalid Action Source",
			"action_source must be one of app, website, email, phone_call, chat, physical_store, system_generated, business_messaging, other")
	}
	if _, ok := ev["advertiser_tracking_enabled"]; ok {
		return nil, eventErr(i, SubcodeInvalidValue, "Invalid Parameter Placement",
			"advertiser_tracking_enabled is not a top-level event field; send it in app_data")
	}
	if v, ok := ev["opt_out"]; ok {
		if _, isBool := v.(bool); !isBool {
			return nil, eventErr(i, SubcodeInvalidValue, "Invalid Opt Out", "opt_out must be a boolean")
		}
	}

	// user_data
	ud, ok := ev["user_data"].(map[string]any)
	if !ok {
		if _, present := ev["user_data"]; !present {
			return nil, eventErr(i, SubcodeInvalidValue, "Missing User Data", "user_data is required")
		}
		return nil, eventErr(i, SubcodeInvalidValue, "Invalid User Data", "user_data must be an object")
	}
	warnings, gerr = checkUserData(i, ud)
	if gerr != nil {
		return nil, gerr
	}

	// app_data
	if source == "app" {
		if gerr := checkAppData(i, ev); gerr != nil {
			return nil, gerr
		}
	}

	if gerr := checkCustomData(i, ev, name); gerr != nil {
		return nil, gerr
	}
	if gerr := checkDataProcessingOptions(i, ev); gerr != nil {
		return nil, gerr
	}
	return warnings, nil
}

func checkEventTime(i int, ev map[string]any, now time.Time) *graphError {
	v, present := ev["event_time"]
	if !present {
		return eventErr(i, SubcodeInvalidValue, "Missing Event Time", "event_time is required")
	}
	n, ok := v.(json.Number)
	secs, err := strconv.ParseInt(string(n), 10, 64)
	if !ok || err != nil {
		return eventErr(i, SubcodeInvalidValue, "Invalid Event Time",
			"event_time must be an integer: a unix timestamp in seconds")
	}
	t := time.Unix(secs, 0)
	if t.Before(now.Add(-MaxEventAge)) {
		return eventErr(i, SubcodeEventTooOld, "Event Timestamp Too Old",
			"The timestamp for this event is too far in the past. Events need to be sent from your server within 7 days of when they occurred. Enter a timestamp that has occurred within the last 7 days.")
	}
	if t.After(now.Add(MaxClockSkew)) {
		hint := ""
		if secs > 1e11 {
			hint = " It looks like milliseconds; event_time is in seconds."
		}
		return eventErr(i, SubcodeEventInFuture, "Event Timestamp In Future",
			"The timestamp for this event is in the future (%s ahead of the server).%s",
			t.Sub(now).Round(time.Second), hint)
	}
	return nil
}

func checkUserData(i int, ud map[string]any) (warnings []string, gerr *graphError) {
	identifiers := 0
	for _, key := range hashedKeys {
		v, present := ud[key]
		if !present {
			continue
		}
		values, ok := stringList(v)
		if !ok {
			return nil, eventErr(i, SubcodeInvalidValue, "Invalid User Data",
				"user_data.%s must be a string or an array of strings", key)
		}
		for j, s := range values {
			// Never quote the value: an unhashed one is PII.
			if !isSHA256Hex(s) {
				return nil, eventErr(i, SubcodeNotHashed, "User Parameter Not Hashed",
					"user_data.%s[%d] is not a SHA-256 hash (64 lowercase hex characters; got %d characters%s). Hash it after normalising.",
					key, j, len(s), unhashedHint(s))
			}
			if s == emptySHA256 {
				warnings = append(warnings, fmt.Sprintf(
					"Event %d: user_data.%s[%d] is the SHA-256 of an empty string; leave the key out instead.", i, key, j))
				continue
			}
			identifiers++
		}
	}
	for _, key := range plainKeys {
		v, present := ud[key]
		if !present {
			continue
		}
		s, isString := v.(string)
		if !isString {
			return nil, eventErr(i, SubcodeInvalidValue, "Invalid User Data", "user_data.%s must be a string", key)
		}
		if key == "client_ip_address" {
			if _, err := netip.ParseAddr(s); err != nil {
				return nil, eventErr(i, SubcodeInvalidValue, "Invalid IP Address",
					"user_data.client_ip_address must be an IPv4 or IPv6 address")
			}
		}
		if key == "madid" && isSHA256Hex(s) {
			warnings = append(warnings, fmt.Sprintf(
				"Event %d: user_data.madid looks hashed; Meta expects the advertising id unhashed.", i))
		}
		if s != "" {
			identifiers++
		}
	}
	if identifiers == 0 {
		return nil, eventErr(i, SubcodeInsufficientCustomerInfo, "Insufficient Customer Information",
			"This event has no customer information parameters in user_data.")
	}
	return warnings, nil
}

func unhashedHint(s string) string {
	for _, r := range s {
		switch {
		case r == '@':
			return ", contains '@'"
		case r >= 'A' && r <= 'F':
			return ", contains uppercase"
		}
	}
	return ""
}

func checkAppData(i int, ev map[string]any) *graphError {
	ad, ok := ev["app_data"].(map[string]any)
	if !ok {
		if _, present := ev["app_data"]; !present {
			return eventErr(i, SubcodeInvalidValue, "Missing App Data", "app_data is required when action_source is app")
		}
		return eventErr(i, SubcodeInvalidValue, "Invalid App Data", "app_data must be an object")
	}
	for _, key := range []string{"advertiser_tracking_enabled", "application_tracking_enabled"} {
		v, present := ad[key]
		if !present {
			return eventErr(i, SubcodeInvalidValue, "Missing App Data Field", "app_data.%s is required", key)
		}
		if n, ok := v.(json.Number); !ok || (n != "0" && n != "1") {
			return eventErr(i, SubcodeInvalidValue, "Value Out Of Range",
				"app_data.%s: value %s is out of range; send the integer 0 or 1", key, jsonText(v))
		}
	}
	raw, present := ad["extinfo"]
	if !present {
		return eventErr(i, SubcodeInvalidValue, "Missing Extinfo", "app_data.extinfo is required")
	}
	slots, ok := raw.([]any)
	if !ok || len(slots) != 16 {
		return eventErr(i, SubcodeInvalidValue, "Invalid Extinfo", "app_data.extinfo must be an array of exactly 16 strings")
	}
	for j, s := range slots {
		if _, isString := s.(string); !isString {
			return eventErr(i, SubcodeInvalidValue, "Invalid Extinfo", "app_data.extinfo[%d] must be a string", j)
		}
	}
	if v := slots[0].(string); v != "a2" && v != "i2" {
		return eventErr(i, SubcodeInvalidValue, "Invalid Extinfo",
			"app_data.extinfo[0] (extinfo version) must be \"a2\" (Android) or \"i2\" (iOS)")
	}
	if slots[4].(string) == "" {
		return eventErr(i, SubcodeInvalidValue, "Invalid Extinfo", "app_data.extinfo[4] (OS version) is required")
	}
	return nil
}

var currencyRE = regexp.MustCompile(`^[A-Za-z]{3}$`)

func checkCustomData(i int, ev map[string]any, eventName string) *graphError {
	raw, present := ev["custom_data"]
	if !present {
		if eventName == "Purchase" {
			return eventErr(i, SubcodeInvalidValue, "Missing Purchase Value",
				"Purchase events require custom_data.value and custom_data.currency")
		}
		return nil
	}
	cd, ok := raw.(map[string]any)
	if !ok {
		return eventErr(i, SubcodeInvalidValue, "Invalid Custom Data", "custom_data must be an object")
	}
	value, hasValue := cd["value"]
	if hasValue {
		n, ok := value.(json.Number)
		f, err := strconv.ParseFloat(string(n), 64)
		if !ok || err != nil || math.IsInf(f, 0) {
			return eventErr(i, SubcodeInvalidValue, "Invalid Value", "custom_data.value must be a number")
		}
	}
	currency, hasCurrency, isString := stringField(cd, "currency")
	if hasCurrency && (!isString || !currencyRE.MatchString(currency)) {
		return eventErr(i, SubcodeInvalidValue, "Invalid Currency Code",
			"custom_data.currency must be an ISO 4217 code of three letters")
	}
	if hasValue && !hasCurrency {
		return eventErr(i, SubcodeInvalidValue, "Missing Currency", "custom_data.currency is required when value is set")
	}
	if eventName == "Purchase" && (!hasValue || !hasCurrency) {
		return eventErr(i, SubcodeInvalidValue, "Missing Purchase Value",
			"Purchase events require custom_data.value and custom_data.currency")
	}
	return nil
}

func checkDataProcessingOptions(i int, ev map[string]any) *graphError {
	if raw, present := ev["data_processing_options"]; present {
		opts, ok := raw.([]any)
		if !ok {
			return eventErr(i, SubcodeInvalidValue, "Invalid Data Processing Options",
				"data_processing_options must be an array: [] or [\"LDU\"]")
		}
		for _, o := range opts {
			if o != "LDU" {
				return eventErr(i, SubcodeInvalidValue, "Invalid Data Processing Options",
					"data_processing_options may only contain \"LDU\"")
			}
		}
	}
	_, hasCountry := ev["data_processing_options_country"]
	_, hasState := ev["data_processing_options_state"]
	for _, key := range []string{"data_processing_options_country", "data_processing_options_state"} {
		v, present := ev[key]
		if !present {
			continue
		}
		n, ok := v.(json.Number)
		if _, err := strconv.ParseInt(string(n), 10, 64); !ok || err != nil {
			return eventErr(i, SubcodeInvalidValue, "Invalid Data Processing Options", "%s must be an integer", key)
		}
	}
	if hasCountry != hasState {
		return eventErr(i, SubcodeInvalidValue, "Invalid Data Processing Options",
			"data_processing_options_country and data_processing_options_state go together (0,0 lets Meta geolocate)")
	}
	return nil
}

// stringField reports whether key is present and whether its value is a string.
func stringField(m map[string]any, key string) (value string, present, isString bool) {
	v, present := m[key]
	value, isString = v.(string)
	return value, present, isString
}

// stringList accepts a string or an array of strings.
func stringList(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, len(v))
		for j, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[j] = s
		}
		return out, true
	}
	return nil, false
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// jsonText renders a decoded value for an error message (types, not PII: used for flags).
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 40 {
		return fmt.Sprintf("of type %T", v)
	}
	return string(b)
}

package appevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

var (
	testNow  = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	testApp  = &appconfig.App{ID: "sample-shop", Platforms: []appconfig.Platform{"ios", "android"}}
	testPeps = mustPseudonymizer("test-pepper-0123456789")
)

func mustPseudonymizer(p string) *identity.Pseudonymizer {
	ps, err := identity.NewPseudonymizer([]byte(p))
	if err != nil {
		panic(err)
	}
	return ps
}

// rawPII are the personal values of validEvent; none may ever appear in a stream record.
var rawPII = []string{"Mary.Major@Example.com", "mary.major@example.com", "+1 (650) 555-1212", "6505551212",
	"Mary", "Major", "1990-04-12", "19900412", "Menlo Park", "menlopark", "94025", "u-123"}

// validEvent returns an event with every field set; tests mutate a copy.
func validEvent() map[string]any {
	return map[string]any{
		"event_id":   "9f1c2d3e-0000-4000-8000-000000000001",
		"event_name": "fb_mobile_purchase",
		"event_time": testNow.Add(-time.Hour).Unix(),
		"user": map[string]any{
			"app_user_id": "u-123", "anon_id": "install-42", "madid": "38400000-8CF0-11BD-B23E-10B96E40000D",
			"email": "Mary.Major@Example.com", "phone": "+1 (650) 555-1212", "first_name": "Mary",
			"last_name": "Major", "gender": "female", "date_of_birth": "1990-04-12", "city": "Menlo Park",
			"state": "California", "zip": "94025-1234", "country": "US", "client_ip_address": "203.0.113.7",
			"client_user_agent": "Shop/7.7.1 (iPhone; iOS 17.4.1)",
		},
		"device": map[string]any{
			"platform": "ios", "app_package": "com.example.shop", "app_version": "7.7.1", "app_build": "771",
			"os_version": "17.4.1", "device_model": "iPhone15,2", "locale": "en_US", "timezone_abbr": "PDT",
			"carrier": "T-Mobile", "screen_width": 1179, "screen_height": 2556, "screen_density": 3.0,
			"cpu_cores": 6, "storage_total_gb": 128, "storage_free_gb": 40, "timezone": "America/Los_Angeles",
		},
		"consent": map[string]any{
			"advertiser_tracking_enabled": true, "application_tracking_enabled": true, "ads_personalization": true,
		},
		"custom_data": map[string]any{
			"value": 12.5, "currency": "usd", "content_ids": []any{"sku-1"}, "order_id": "o-1", "num_items": 1,
			"contents": []any{map[string]any{"id": "sku-1", "quantity": 1, "item_price": 12.5}},
		},
	}
}

// set changes the value at a dotted path; a nil value deletes the key.
func set(ev map[string]any, path string, v any) map[string]any {
	parts := strings.Split(path, ".")
	m := ev
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	if v == nil {
		delete(m, parts[len(parts)-1])
	} else {
		m[parts[len(parts)-1]] = v
	}
	return ev
}

func body(events ...any) string {
	b, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func parse(t *testing.T, body string) *Batch {
	t.Helper()
	b, err := NewParser(testPeps).Parse(testApp, body, testNow)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return b
}

// rawNull marks a JSON null (nil deletes the key instead).
type rawNull struct{}

func (rawNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func TestMalformedEvents(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name   string
		mutate func(map[string]any) any // returns the element to send
		field  string                   // after "events[1]."
		reason string                   // substring of the reason
	}{
		{"event_id missing", func(e map[string]any) any { return set(e, "event_id", nil) }, "event_id", "is required"},
		{"event_id empty", func(e map[string]any) any { return set(e, "event_id", "") }, "event_id", "is required"},
		{"event_id null", func(e map[string]any) any { return set(e, "event_id", rawNull{}) }, "event_id", "is required"},
		{"event_id number", func(e map[string]any) any { return set(e, "event_id", 42) }, "event_id", "must be a string, not number"},
		{"event_id too long", func(e map[string]any) any { return set(e, "event_id", long(129)) }, "event_id", "at most 128"},
		{"event_id bad charset", func(e map[string]any) any { return set(e, "event_id", "id with spaces") }, "event_id", "only letters, digits"},
		{"event_name missing", func(e map[string]any) any { return set(e, "event_name", nil) }, "event_name", "is required"},
		{"event_name array", func(e map[string]any) any { return set(e, "event_name", []any{"x"}) }, "event_name", "must be a string, not array"},
		{"event_name unknown fb_mobile", func(e map[string]any) any { return set(e, "event_name", "fb_mobile_purchse") }, "event_name", "unknown fb_ event name"},
		{"event_name bad characters", func(e map[string]any) any { return set(e, "event_name", "add-to-cart!") }, "event_name", "must match"},
		{"event_name leading space", func(e map[string]any) any { return set(e, "event_name", " Purchase") }, "event_name", "must match"},
		{"event_name too long", func(e map[string]any) any { return set(e, "event_name", long(41)) }, "event_name", "at most 40"},
		{"event_time missing", func(e map[string]any) any { return set(e, "event_time", nil) }, "event_time", "is required"},
		{"event_time older than 7 days", func(e map[string]any) any {
			return set(e, "event_time", testNow.Add(-7*24*time.Hour-time.Minute).Unix())
		}, "event_time", "older than 7 days"},
		{"event_time in the future", func(e map[string]any) any { return set(e, "event_time", testNow.Add(10*time.Minute).Unix()) }, "event_time", "in the future"},
		{"event_time milliseconds", func(e map[string]any) any { return set(e, "event_time", testNow.UnixMilli()) }, "event_time", "looks like milliseconds"},
		{"event_time negative", func(e map[string]any) any { return set(e, "event_time", -5) }, "event_time", "not a unix time"},
		{"event_time bad string", func(e map[string]any) any { return set(e, "event_time", "yesterday") }, "event_time", "RFC 3339"},
		{"event_time boolean", func(e map[string]any) any { return set(e, "event_time", true) }, "event_time", "must be unix seconds or an RFC 3339 string, not boolean"},
		{"event_time old RFC 3339", func(e map[string]any) any { return set(e, "event_time", "2020-01-01T00:00:00Z") }, "event_time", "older than 7 days"},
		{"user missing", func(e map[string]any) any { return set(e, "user", nil) }, "user", "is required"},
		{"user not an object", func(e map[string]any) any { return set(e, "user", "u-123") }, "user", "must be an object, not string"},
		{"user without identifier", func(e map[string]any) any {
			return set(set(set(e, "user.app_user_id", nil), "user.anon_id", nil), "user.madid", nil)
		}, "user", "at least one of app_user_id, anon_id, madid"},
		{"user only zero madid", func(e map[string]any) any {
			return set(set(set(e, "user.app_user_id", nil), "user.anon_id", nil), "user.madid", "00000000-0000-0000-0000-000000000000")
		}, "user", "madid is all zeros"},
		{"app_user_id too long", func(e map[string]any) any { return set(e, "user.app_user_id", long(257)) }, "user.app_user_id", "at most 256"},
		{"app_user_id number", func(e map[string]any) any { return set(e, "user.app_user_id", 123) }, "user.app_user_id", "must be a string"},
		{"anon_id control characters", func(e map[string]any) any { return set(e, "user.anon_id", "a\u0001b") }, "user.anon_id", "control characters"},
		{"madid not a uuid", func(e map[string]any) any { return set(e, "user.madid", "not-an-idfa") }, "user.madid", "not an advertising id"},
		{"email invalid", func(e map[string]any) any { return set(e, "user.email", "mary.example.com") }, "user.email", "not an email address"},
		{"email two at signs", func(e map[string]any) any { return set(e, "user.email", "a@b@c.com") }, "user.email", "not an email address"},
		{"phone too short", func(e map[string]any) any { return set(e, "user.phone", "12-34") }, "user.phone", "not a phone number"},
		{"gender invalid", func(e map[string]any) any { return set(e, "user.gender", "x") }, "user.gender", "must be f or m"},
		{"date_of_birth invalid", func(e map[string]any) any { return set(e, "user.date_of_birth", "1990-13-01") }, "user.date_of_birth", "not a date of birth"},
		{"state not a US state", func(e map[string]any) any { return set(e, "user.state", "Bavaria") }, "user.state", "not a US state"},
		{"zip not a US zip", func(e map[string]any) any { return set(e, "user.zip", "ABCDE") }, "user.zip", "not a US ZIP code"},
		{"country unknown", func(e map[string]any) any { return set(e, "user.country", "Narnia") }, "user.country", "unknown country"},
		{"ip invalid", func(e map[string]any) any { return set(e, "user.client_ip_address", "999.1.1.1") }, "user.client_ip_address", "not an IPv4 or IPv6"},
		{"user agent too long", func(e map[string]any) any { return set(e, "user.client_user_agent", long(1025)) }, "user.client_user_agent", "at most 1024"},
		{"device missing", func(e map[string]any) any { return set(e, "device", nil) }, "device", "is required"},
		{"device platform missing", func(e map[string]any) any { return set(e, "device.platform", nil) }, "device.platform", "is required"},
		{"device platform unknown", func(e map[string]any) any { return set(e, "device.platform", "windows") }, "device.platform", "must be ios or android"},
		{"device os_version missing", func(e map[string]any) any { return set(e, "device.os_version", nil) }, "device.os_version", "is required"},
		{"device screen_width negative", func(e map[string]any) any { return set(e, "device.screen_width", -1) }, "device.screen_width", "whole number"},
		{"device screen_width fractional", func(e map[string]any) any { return set(e, "device.screen_width", 10.5) }, "device.screen_width", "whole number"},
		{"device model with DEL", func(e map[string]any) any { return set(e, "device.device_model", "Pixel\u007f8") }, "device.device_model", "control characters"},
		{"device carrier with escaped control character", func(e map[string]any) any { return set(e, "device.carrier", "T\u0001") }, "device.carrier", "control characters"},
		{"device cpu_cores string", func(e map[string]any) any { return set(e, "device.cpu_cores", "6") }, "device.cpu_cores", "must be a number, not string"},
		{"device free storage above total", func(e map[string]any) any { return set(e, "device.storage_free_gb", 500) }, "device.storage_free_gb", "exceeds storage_total_gb"},
		{"ios without ATT status", func(e map[string]any) any { return set(e, "consent.advertiser_tracking_enabled", nil) }, "consent.advertiser_tracking_enabled", "required for ios"},
		{"consent flag as string", func(e map[string]any) any { return set(e, "consent.ads_personalization", "yes") }, "consent.ads_personalization", "must be true or false"},
		{"ldu country without state", func(e map[string]any) any { return set(set(e, "consent.ldu", true), "consent.ldu_country", 1) }, "consent.ldu_state", "required when ldu_country"},
		{"value without currency", func(e map[string]any) any { return set(e, "custom_data.currency", nil) }, "custom_data.currency", "required when value is set"},
		{"purchase without value", func(e map[string]any) any { return set(set(e, "custom_data.value", nil), "custom_data.currency", nil) }, "custom_data.value", "required for purchases"},
		{"currency unknown", func(e map[string]any) any { return set(e, "custom_data.currency", "XYZ") }, "custom_data.currency", "ISO 4217"},
		{"value string", func(e map[string]any) any { return set(e, "custom_data.value", "12.5") }, "custom_data.value", "must be a number"},
		{"content_ids not strings", func(e map[string]any) any { return set(e, "custom_data.content_ids", []any{1}) }, "custom_data.content_ids[0]", "must be a string"},
		{"contents item without id", func(e map[string]any) any {
			return set(e, "custom_data.contents", []any{map[string]any{"quantity": 1}})
		}, "custom_data.contents[0].id", "is required"},
		{"num_items negative", func(e map[string]any) any { return set(e, "custom_data.num_items", -2) }, "custom_data.num_items", "whole number"},
		{"subscription expiry not a time", func(e map[string]any) any { return set(e, "custom_data.subscription_expires_at", "soon") }, "custom_data.subscription_expires_at", "RFC 3339"},
		{"custom_data not an object", func(e map[string]any) any { return set(e, "custom_data", []any{}) }, "custom_data", "must be an object, not array"},
		{"event not an object", func(e map[string]any) any { return "event" }, "", "must be an event object, not string"},
		{"platform not configured for the app", nil, "device.platform", "not configured for app"},
	}
	if len(tests) < 40 {
		t.Fatalf("the table must hold at least 40 malformed inputs, has %d", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testApp
			second := set(validEvent(), "event_id", "second")
			bad := any(second)
			if tt.mutate != nil {
				bad = tt.mutate(second)
			} else {
				app = &appconfig.App{ID: "android-only", Platforms: []appconfig.Platform{"android"}}
			}
			first := set(validEvent(), "device.platform", "android")
			last := set(set(validEvent(), "event_id", "third"), "device.platform", "android")
			b, err := NewParser(testPeps).Parse(app, body(first, bad, last), testNow)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			// One bad event never sinks its neighbours.
			if b.Total != 3 || len(b.Accepted) != 2 || b.Accepted[0].Index != 0 || b.Accepted[1].Index != 2 {
				t.Fatalf("want events 0 and 2 accepted, got total=%d accepted=%d rejected=%+v", b.Total, len(b.Accepted), b.Rejected)
			}
			if len(b.Rejected) != 1 || b.Rejected[0].Index != 1 {
				t.Fatalf("want exactly event 1 rejected, got %+v", b.Rejected)
			}
			want := "events[1]"
			if tt.field != "" {
				want += "." + tt.field
			}
			errs := b.Rejected[0].Errors
			for _, e := range errs {
				if e.Field == want && strings.Contains(e.Reason, tt.reason) {
					if e.Code == "" {
						t.Errorf("error %+v has no code", e)
					}
					return
				}
			}
			t.Fatalf("want %s: ...%s..., got %+v", want, tt.reason, errs)
		})
	}
}

func TestRequestLevelErrors(t *testing.T) {
	many := make([]any, MaxEvents+1)
	for i := range many {
		many[i] = set(validEvent(), "event_id", fmt.Sprintf("e-%d", i))
	}
	tests := []struct {
		name string
		body string
		want error
		msg  string
	}{
		{"not JSON", "hello", nil, `body must be a JSON object`},
		{"truncated", `{"events":[{"event_id":"a"`, nil, "invalid JSON"},
		{"array body", `[{"event_id":"a"}]`, nil, "body must be a JSON object"},
		{"no events key", `{"event":[]}`, nil, `"events" array`},
		{"events not an array", `{"events":{}}`, nil, `"events" must be an array`},
		{"empty events", `{"events":[]}`, nil, "is empty"},
		{"trailing garbage", `{"events":[{}]} x`, nil, "unexpected content"},
		{"trailing NUL byte (found by fuzzing)", "{\"events\":[{}]}\x00", nil, "unexpected content"},
		{"bad escape", `{"events":[{"event_id":"\q"}]}`, nil, "invalid escape"},
		{"501 events", body(many...), ErrTooManyEvents, ""},
		{"over 1 MiB", `{"events":[` + strings.Repeat(" ", MaxBodyBytes) + `]}`, ErrBodyTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewParser(testPeps).Parse(testApp, tt.body, testNow)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.msg)
			}
		})
	}
}

func TestValidEventBecomesPseudonymousRecord(t *testing.T) {
	ev := validEvent()
	ev["unknown_top"] = "SECRET-TOP"
	set(ev, "user.unknown_user", "SECRET-USER")
	set(ev, "custom_data.unknown_custom", "SECRET-CUSTOM")
	b := parse(t, body(ev))
	if len(b.Accepted) != 1 || len(b.Rejected) != 0 {
		t.Fatalf("want 1 accepted: %+v", b.Rejected)
	}
	a := b.Accepted[0]
	data := string(b.Records[0].Data)
	for _, pii := range append(rawPII, "SECRET-TOP", "SECRET-USER", "SECRET-CUSTOM") {
		if strings.Contains(data, pii) {
			t.Errorf("stream record contains %q: %s", pii, data)
		}
	}
	rec, err := envelope.DecodeOne(b.Records[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	wantKey := testPeps.UserKey("sample-shop", identity.KindAppUserID, "u-123")
	if a.UserKey != wantKey || rec.UserKey != wantKey || rec.App != "sample-shop" || rec.V != envelope.Version {
		t.Fatalf("keys: record %q, batch %q, want %q", rec.UserKey, a.UserKey, wantKey)
	}
	if rec.ReceivedAt != testNow.UnixMilli() || rec.Event.Time != testNow.Add(-time.Hour).Unix() {
		t.Fatalf("times: %+v", rec)
	}
	u := rec.Event.User
	checks := map[string]struct {
		got  identity.Hash
		want string
	}{
		"em":          {u.Email, "mary.major@example.com"},
		"ph":          {u.Phone, "16505551212"},
		"fn":          {u.FirstName, "mary"},
		"ln":          {u.LastName, "major"},
		"ge":          {u.Gender, "f"},
		"db":          {u.DateOfBirth, "19900412"},
		"ct":          {u.City, "menlopark"},
		"st":          {u.State, "ca"},
		"zp":          {u.Zip, "94025"},
		"country":     {u.Country, "us"},
		"external_id": {u.ExternalID, "u-123"},
	}
	for k, c := range checks {
		if want := identity.Hash(sha256Sum(c.want)); c.got != want {
			t.Errorf("%s = %s, want sha256(%q)", k, c.got, c.want)
		}
	}
	if u.MADID != "38400000-8cf0-11bd-b23e-10b96e40000d" || u.AnonID != "install-42" ||
		u.ClientIP != "203.0.113.7" || u.KeySource != identity.KindAppUserID {
		t.Errorf("unhashed identifiers: %+v", u)
	}
	if d := rec.Event.Device; d.Platform != "ios" || d.ScreenWidth != 1179 || d.Timezone != "America/Los_Angeles" {
		t.Errorf("device: %+v", d)
	}
	if c := rec.Event.Custom; c.Currency != "USD" || !c.Value.Set || c.Value.V != 12.5 || len(c.Contents) != 1 || c.Contents[0].ItemPrice.V != 12.5 {
		t.Errorf("custom data: %+v", c)
	}
}

func TestConsentWithheldDropsIdentifiersAtTheEdge(t *testing.T) {
	for name, v := range map[string]any{"false": false, "absent": nil} {
		t.Run(name, func(t *testing.T) {
			ev := set(validEvent(), "consent.ads_personalization", v)
			b := parse(t, body(ev))
			if len(b.Accepted) != 1 {
				t.Fatalf("want accepted, got %+v", b.Rejected)
			}
			rec, err := envelope.DecodeOne(b.Records[0].Data)
			if err != nil {
				t.Fatal(err)
			}
			e := rec.Event
			if e.User != (envelope.User{}) || e.Device != (envelope.Device{}) || e.Custom.Currency != "" || len(e.Custom.ContentIDs) != 0 {
				t.Fatalf("identifiers kept without consent: %s", b.Records[0].Data)
			}
			if rec.UserKey == "" || e.Name != "fb_mobile_purchase" || e.Time == 0 || e.ID == "" || e.Consent.AdvertiserTracking != envelope.True {
				t.Fatalf("key, name, time and consent must stay: %s", b.Records[0].Data)
			}
			if name == "false" && e.Consent.AdsPersonalization != envelope.False {
				t.Fatalf("consent signal lost: %s", b.Records[0].Data)
			}
		})
	}
}

func TestATTDeniedDropsMADID(t *testing.T) {
	ev := set(validEvent(), "consent.advertiser_tracking_enabled", false)
	b := parse(t, body(ev))
	rec, err := envelope.DecodeOne(b.Records[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Event.User.MADID != "" || strings.Contains(strings.ToLower(string(b.Records[0].Data)), "38400000") {
		t.Fatalf("madid kept with ATT off: %s", b.Records[0].Data)
	}
}

// TestMADIDsOfOneRequestKeepTheirOwn: the parser remembers the last advertising id it
// lowercased; events with other ids, in upper or lower case, must still get their own.
func TestMADIDsOfOneRequestKeepTheirOwn(t *testing.T) {
	ids := []string{"38400000-8CF0-11BD-B23E-10B96E40000D", "AAAAAAAA-8CF0-11BD-B23E-10B96E40000D",
		"38400000-8CF0-11BD-B23E-10B96E40000D", "bbbbbbbb-8cf0-11bd-b23e-10b96e40000d", "AAAAAAAA-8CF0-11BD-B23E-10B96E40000D"}
	evs := make([]any, len(ids))
	for i, id := range ids {
		evs[i] = set(set(set(validEvent(), "user.madid", id), "user.app_user_id", fmt.Sprintf("u-%d", i)), "event_id", fmt.Sprintf("e-%d", i))
	}
	b := parse(t, body(evs...))
	recs := eventRecords(t, b)
	for i, id := range ids {
		if got := recs[i].Event.User.MADID; got != strings.ToLower(id) {
			t.Errorf("event %d madid %q, want %q", i, got, strings.ToLower(id))
		}
	}
}

func TestUserKeyFallsBackInOrder(t *testing.T) {
	anonOnly := set(set(validEvent(), "user.app_user_id", nil), "event_id", "b")
	madidOnly := set(set(set(validEvent(), "user.app_user_id", nil), "user.anon_id", nil), "event_id", "c")
	b := parse(t, body(validEvent(), anonOnly, madidOnly))
	want := []string{
		testPeps.UserKey("sample-shop", identity.KindAppUserID, "u-123"),
		testPeps.UserKey("sample-shop", identity.KindAnonID, "install-42"),
		testPeps.UserKey("sample-shop", identity.KindMADID, "38400000-8cf0-11bd-b23e-10b96e40000d"),
	}
	for i, a := range b.Accepted {
		if a.UserKey != want[i] {
			t.Errorf("event %d key %s, want %s", i, a.UserKey, want[i])
		}
	}
}

func TestDuplicateEventIDInOneRequest(t *testing.T) {
	b := parse(t, body(validEvent(), validEvent()))
	if len(b.Accepted) != 1 || len(b.Rejected) != 1 || !strings.Contains(b.Rejected[0].Errors[0].Reason, "events[0]") {
		t.Fatalf("got accepted=%d rejected=%+v", len(b.Accepted), b.Rejected)
	}
}

func TestRFC3339TimeAndEscapedStrings(t *testing.T) {
	ev := set(validEvent(), "event_time", testNow.Add(-time.Minute).Format(time.RFC3339))
	set(ev, "device.carrier", "AT\"&\"T \u00e9\U0001F600")
	b := parse(t, body(ev))
	rec, err := envelope.DecodeOne(b.Records[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Event.Time != testNow.Add(-time.Minute).Unix() || rec.Event.Device.Carrier != "AT\"&\"T \u00e9\U0001F600" {
		t.Fatalf("got %+v", rec.Event)
	}
}

// The identity of a repeated user object is reused (see identify); these cases pin down that
// reuse never changes a result.
func TestRepeatedUserObjects(t *testing.T) {
	decodeAll := func(t *testing.T, b *Batch) []*envelope.Record {
		t.Helper()
		return eventRecords(t, b)
	}
	t.Run("same object gives the same key and digests as a fresh parse", func(t *testing.T) {
		b := parse(t, body(validEvent(), set(validEvent(), "event_id", "b"), set(validEvent(), "event_id", "c")))
		recs := decodeAll(t, b)
		alone := decodeAll(t, parse(t, body(set(validEvent(), "event_id", "c"))))
		if len(recs) != 3 || recs[2].UserKey != alone[0].UserKey || recs[2].Event.User != alone[0].Event.User || recs[0].Event.User != recs[2].Event.User {
			t.Fatalf("reused identity differs:\n%+v\n%+v", recs[2].Event.User, alone[0].Event.User)
		}
	})
	t.Run("an invalid object is reported every time", func(t *testing.T) {
		bad := set(validEvent(), "user.email", "not-an-address")
		b := parse(t, body(bad, set(set(validEvent(), "user.email", "not-an-address"), "event_id", "b")))
		if len(b.Rejected) != 2 {
			t.Fatalf("want both rejected, got %+v", b.Rejected)
		}
		for _, r := range b.Rejected {
			if r.Errors[0].Field != fmt.Sprintf("events[%d].user.email", r.Index) {
				t.Fatalf("rejection %+v", r)
			}
		}
	})
	t.Run("objects with type errors are reported every time", func(t *testing.T) {
		for _, mutate := range []func(map[string]any) map[string]any{
			func(e map[string]any) map[string]any { return set(e, "user.email", 123) },
			func(e map[string]any) map[string]any { return set(e, "device.platform", "windows") },
			func(e map[string]any) map[string]any { return set(e, "device.cpu_cores", "six") },
		} {
			b := parse(t, body(mutate(validEvent()), mutate(set(validEvent(), "event_id", "b")), mutate(set(validEvent(), "event_id", "c"))))
			if len(b.Rejected) != 3 || len(b.Accepted) != 0 {
				t.Fatalf("want all 3 rejected, got %+v", b.Rejected)
			}
			for _, r := range b.Rejected {
				if len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0].Field, fmt.Sprintf("events[%d].", r.Index)) {
					t.Fatalf("rejection %+v", r)
				}
			}
		}
	})
	t.Run("a repeated device object gives the same device", func(t *testing.T) {
		other := set(set(validEvent(), "event_id", "b"), "device.device_model", "iPhone16,1")
		recs := decodeAll(t, parse(t, body(validEvent(), set(validEvent(), "event_id", "a2"), other, set(validEvent(), "event_id", "c"))))
		if recs[0].Event.Device != recs[1].Event.Device || recs[2].Event.Device.DeviceModel != "iPhone16,1" ||
			recs[3].Event.Device != recs[0].Event.Device || recs[0].Event.Device.ScreenWidth != 1179 {
			t.Fatalf("devices: %+v", recs)
		}
	})
	t.Run("consent withdrawn mid-batch drops the identifiers", func(t *testing.T) {
		b := parse(t, body(validEvent(), set(set(validEvent(), "event_id", "b"), "consent.ads_personalization", false), set(validEvent(), "event_id", "c")))
		recs := decodeAll(t, b)
		if recs[1].Event.User != (envelope.User{}) || recs[1].UserKey != recs[0].UserKey || recs[2].Event.User != recs[0].Event.User {
			t.Fatalf("consent change not honoured: %+v", recs[1].Event.User)
		}
	})
	t.Run("ATT denied mid-batch drops the advertising id", func(t *testing.T) {
		b := parse(t, body(validEvent(), set(set(validEvent(), "event_id", "b"), "consent.advertiser_tracking_enabled", false)))
		recs := decodeAll(t, b)
		if recs[0].Event.User.MADID == "" || recs[1].Event.User.MADID != "" {
			t.Fatalf("madid: %q then %q", recs[0].Event.User.MADID, recs[1].Event.User.MADID)
		}
	})
}

func TestCAPIName(t *testing.T) {
	for in, want := range map[string]string{
		"fb_mobile_purchase": "Purchase", "fb_mobile_activate_app": "ActivateApp",
		"fb_mobile_initiated_checkout": "InitiateCheckout", "MobileAppInstall": "MobileAppInstall", "level_up_5": "level_up_5",
	} {
		if got := CAPIName(in); got != want {
			t.Errorf("CAPIName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Only ParseServer marks records server-sent: a client cannot claim it in the body, and a
// pooled parser state does not carry the mark over to the next request.
func TestServerSentMark(t *testing.T) {
	p := NewParser(testPeps)
	ev := validEvent()
	ev["server"] = true // an unknown field to the API: ignored
	for _, step := range []struct {
		server bool
		parse  func(*appconfig.App, string, time.Time) (*Batch, error)
	}{{false, p.Parse}, {true, p.ParseServer}, {false, p.Parse}, {true, p.ParseServer}} {
		other := set(validEvent(), "event_id", "8d2e5a47-2a41-4b0a-9c4e-1f7a3b6c9d10")
		b, err := step.parse(testApp, body(ev, other), testNow)
		if err != nil || len(b.Accepted) != 2 {
			t.Fatalf("parse: %v %+v", err, b)
		}
		for _, rec := range eventRecords(t, b) {
			if rec.Event.Server != step.server {
				t.Fatalf("server = %v, want %v: %+v", rec.Event.Server, step.server, rec)
			}
		}
		b.Release()
	}
}

// isUUID accepts exactly the 8-4-4-4-12 hex form (either case): every one-byte change of a
// UUID at every position, checked against a regular expression.
func TestIsUUIDMatchesPattern(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	base := "38400000-8CF0-11bd-B23E-10b96e40000d"
	for _, s := range []string{base, "", base[:35], base + "0", strings.Repeat("-", 36)} {
		if got, want := isUUID(s), re.MatchString(s); got != want {
			t.Fatalf("isUUID(%q) = %v, want %v", s, got, want)
		}
	}
	for i := range len(base) {
		for c := range 256 {
			b := []byte(base)
			b[i] = byte(c)
			if got, want := isUUID(string(b)), re.MatchString(string(b)); got != want {
				t.Fatalf("isUUID(%q) = %v, want %v", b, got, want)
			}
		}
	}
}

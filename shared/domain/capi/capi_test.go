package capi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// ingest runs an API v1 event through the real ingest parser and returns its stream record, so
// these tests cover the path from the request to the CAPI payload.
func ingest(t *testing.T, event map[string]any) *envelope.Record {
	t.Helper()
	pseudo, err := identity.NewPseudonymizer([]byte("capi-test-pepper-012345"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"events": []any{event}})
	app := &appconfig.App{ID: "shop", Platforms: []appconfig.Platform{"ios", "android"}}
	b, err := appevent.NewParser(pseudo).Parse(app, string(body), now)
	if err != nil || len(b.Accepted) != 1 {
		t.Fatalf("ingest: %v %+v", err, b)
	}
	rec, err := envelope.DecodeOne(b.Records[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func event(name string, mutate ...func(map[string]any)) map[string]any {
	e := map[string]any{
		"event_id": "ev-1", "event_name": name, "event_time": now.Add(-time.Minute).Unix(),
		"user": map[string]any{"app_user_id": "u-1", "email": "John_Smith@gmail.com", "phone": "(650)555-1212",
			"first_name": "Mary", "date_of_birth": "2/16/1997", "gender": "f", "country": "United States",
			"madid": "38400000-8cf0-11bd-b23e-10b96e40000d", "anon_id": "install-1",
			"client_ip_address": "203.0.113.7", "client_user_agent": "Shop/1.0"},
		"device": map[string]any{"platform": "ios", "app_package": "com.example.shop", "app_version": "7.7.1",
			"app_build": "771", "os_version": "17.4.1", "device_model": "iPhone15,2", "locale": "en_US",
			"timezone_abbr": "PDT", "carrier": "T-Mobile", "screen_width": 1179, "screen_height": 2556,
			"screen_density": 3, "cpu_cores": 6, "storage_total_gb": 128, "storage_free_gb": 40,
			"timezone": "America/Los_Angeles"},
		"consent":     map[string]any{"ads_personalization": true, "advertiser_tracking_enabled": true, "application_tracking_enabled": true},
		"custom_data": map[string]any{"value": 9.99, "currency": "USD"},
	}
	for _, m := range mutate {
		m(e)
	}
	return e
}

func TestEveryAppEventNameMaps(t *testing.T) {
	names := map[string]string{
		"fb_mobile_activate_app": "ActivateApp", "fb_mobile_complete_registration": "CompleteRegistration",
		"fb_mobile_content_view": "ViewContent", "fb_mobile_search": "Search", "fb_mobile_rate": "Rate",
		"fb_mobile_tutorial_completion": "TutorialCompletion", "fb_mobile_add_to_cart": "AddToCart",
		"fb_mobile_add_to_wishlist": "AddToWishlist", "fb_mobile_initiated_checkout": "InitiateCheckout",
		"fb_mobile_add_payment_info": "AddPaymentInfo", "fb_mobile_purchase": "Purchase",
		"fb_mobile_level_achieved": "LevelAchieved", "fb_mobile_achievement_unlocked": "AchievementUnlocked",
		"fb_mobile_spent_credits": "SpentCredits",
		// standard and custom names pass unchanged
		"MobileAppInstall": "MobileAppInstall", "Subscribe": "Subscribe", "StartTrial": "StartTrial", "level_up 5": "level_up 5",
	}
	for in, want := range names {
		ev, err := Map(ingest(t, event(in)))
		if err != nil || ev.EventName != want {
			t.Errorf("%s: got %q, %v; want %q", in, ev.EventName, err, want)
		}
	}
}

func TestMapFullEvent(t *testing.T) {
	ev, err := Map(ingest(t, event("fb_mobile_purchase", func(e map[string]any) {
		e["custom_data"] = map[string]any{"value": 0, "currency": "eur", "content_ids": []any{"a"},
			"contents": []any{map[string]any{"id": "a", "quantity": 2, "item_price": 1.5}}, "order_id": "o-1", "success": false}
	})))
	if err != nil {
		t.Fatal(err)
	}
	if ev.EventID != "ev-1" || ev.ActionSource != "app" || ev.EventTime != now.Add(-time.Minute).Unix() {
		t.Fatalf("envelope fields: %+v", ev)
	}
	// Digests from Meta's documentation (reference/meta-api.md section 3).
	u := ev.UserData
	for field, got := range map[string][]string{
		"62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f": u.Email,
		"e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176": u.Phone,
		"6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec": u.FirstName,
		"01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c": u.DateOfBirth,
		"252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111": u.Gender,
		"79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621": u.Country,
	} {
		if len(got) != 1 || got[0] != field {
			t.Errorf("want [%s], got %v", field, got)
		}
	}
	if len(u.ExternalID) != 1 || u.MADID != "38400000-8cf0-11bd-b23e-10b96e40000d" || u.AnonID != "install-1" ||
		u.ClientIP != "203.0.113.7" || u.ClientUserAgent != "Shop/1.0" {
		t.Errorf("user_data: %+v", u)
	}
	want := [16]string{"i2", "com.example.shop", "771", "7.7.1", "17.4.1", "iPhone15,2", "en_US", "PDT", "T-Mobile",
		"1179", "2556", "3.00", "6", "128", "40", "America/Los_Angeles"}
	if ev.AppData.ExtInfo != want {
		t.Errorf("extinfo\n got %q\nwant %q", ev.AppData.ExtInfo, want)
	}
	c := ev.CustomData
	if c == nil || c.Value == nil || *c.Value != 0 || c.Currency != "EUR" || c.Contents[0].ItemPrice == nil || *c.Success != 0 {
		t.Errorf("custom_data: %+v", c)
	}
	// The wire form: flags are integers, extinfo 16 strings, no advertiser_tracking_enabled at top level.
	raw, _ := json.Marshal(ev)
	s := string(raw)
	for _, want := range []string{`"advertiser_tracking_enabled":1`, `"application_tracking_enabled":1`, `"action_source":"app"`, `"value":0`} {
		if !strings.Contains(s, want) {
			t.Errorf("payload lacks %s: %s", want, s)
		}
	}
	if strings.Index(s, "advertiser_tracking_enabled") < strings.Index(s, `"app_data"`) {
		t.Errorf("advertiser_tracking_enabled outside app_data: %s", s)
	}
	if err := Check(ev, now); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestExtInfoSlots(t *testing.T) {
	android := ExtInfo(&envelope.Device{Platform: "android", OSVersion: "14"})
	if android[0] != "a2" || android[4] != "14" || len(android) != 16 {
		t.Fatalf("android: %q", android)
	}
	for i, v := range android {
		if i != 0 && i != 4 && v != "" {
			t.Errorf("slot %d = %q, want empty for an unknown value", i, v)
		}
	}
}

func TestConsentATTAndLDU(t *testing.T) {
	setConsent := func(k string, v any) func(map[string]any) {
		return func(e map[string]any) { e["consent"].(map[string]any)[k] = v }
	}
	tests := []struct {
		name         string
		mutate       []func(map[string]any)
		wantErr      error
		ate, ape     int
		madid        bool
		ldu          bool
		country, sta int64
	}{
		{"consented, ATT on", nil, nil, 1, 1, true, false, 0, 0},
		{"no consent: never forwarded", []func(map[string]any){setConsent("ads_personalization", false)}, ErrNoConsent, 0, 0, false, false, 0, 0},
		{"consent absent: never forwarded", []func(map[string]any){setConsent("ads_personalization", nil)}, ErrNoConsent, 0, 0, false, false, 0, 0},
		{"ATT off: 0 and no madid", []func(map[string]any){setConsent("advertiser_tracking_enabled", false)}, nil, 0, 1, false, false, 0, 0},
		{"app-level opt-out", []func(map[string]any){setConsent("application_tracking_enabled", false)}, nil, 1, 0, true, false, 0, 0},
		{"android without ATT flag defaults to 1", []func(map[string]any){func(e map[string]any) {
			e["device"] = map[string]any{"platform": "android", "os_version": "14"}
			delete(e["consent"].(map[string]any), "advertiser_tracking_enabled")
		}}, nil, 1, 1, true, false, 0, 0},
		{"LDU with Meta geolocation", []func(map[string]any){setConsent("ldu", true)}, nil, 1, 1, true, true, 0, 0},
		{"LDU California", []func(map[string]any){setConsent("ldu", true), setConsent("ldu_country", 1), setConsent("ldu_state", 1000)}, nil, 1, 1, true, true, 1, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := event("fb_mobile_purchase", tt.mutate...)
			if c := e["consent"].(map[string]any); c["ads_personalization"] == nil {
				delete(c, "ads_personalization")
			}
			ev, err := Map(ingest(t, e))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if ev.AppData.AdvertiserTrackingEnabled != tt.ate || ev.AppData.ApplicationTrackingEnabled != tt.ape || (ev.UserData.MADID != "") != tt.madid {
				t.Fatalf("app_data %+v madid %q", ev.AppData, ev.UserData.MADID)
			}
			if tt.ldu {
				if fmt.Sprint(ev.DataProcessingOptions) != "[LDU]" || *ev.DataProcessingOptionsCountry != tt.country || *ev.DataProcessingOptionsState != tt.sta {
					t.Fatalf("LDU: %v %v %v", ev.DataProcessingOptions, ev.DataProcessingOptionsCountry, ev.DataProcessingOptionsState)
				}
			} else if ev.DataProcessingOptions != nil {
				t.Fatalf("unexpected LDU: %v", ev.DataProcessingOptions)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	base := func() *ServerEvent {
		ev, err := Map(ingest(t, event("fb_mobile_purchase")))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	tests := []struct {
		name   string
		mutate func(*ServerEvent)
		at     time.Time
		reason string
	}{
		{"valid", func(*ServerEvent) {}, now, ""},
		{"aged past 7 days since ingest", func(*ServerEvent) {}, now.Add(7 * 24 * time.Hour), "too_old"},
		{"far future", func(e *ServerEvent) { e.EventTime = now.Add(time.Hour).Unix() }, now, "in_future"},
		{"bad name", func(e *ServerEvent) { e.EventName = "bad!" }, now, "invalid_event_name"},
		{"no platform slot", func(e *ServerEvent) { e.AppData.ExtInfo[0] = "" }, now, "invalid_app_data"},
		{"no os version slot", func(e *ServerEvent) { e.AppData.ExtInfo[4] = "" }, now, "invalid_app_data"},
		{"flag out of range", func(e *ServerEvent) { e.AppData.AdvertiserTrackingEnabled = 2 }, now, "invalid_app_data"},
		{"raw email", func(e *ServerEvent) { e.UserData.Email = []string{"mary@example.com"} }, now, "not_hashed"},
		{"upper-case digest", func(e *ServerEvent) { e.UserData.Phone = []string{strings.ToUpper(e.UserData.Phone[0])} }, now, "not_hashed"},
		{"nothing to match", func(e *ServerEvent) {
			e.UserData = UserData{ClientIP: "203.0.113.7"}
		}, now, "no_user_data"},
		{"value without currency", func(e *ServerEvent) { v := 1.0; e.CustomData = &CustomData{Value: &v} }, now, "invalid_custom_data"},
		{"purchase without value", func(e *ServerEvent) { e.CustomData = nil }, now, "invalid_custom_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := base()
			tt.mutate(ev)
			err := Check(ev, tt.at)
			var p *Problem
			switch {
			case tt.reason == "" && err != nil:
				t.Fatalf("unexpected %v", err)
			case tt.reason != "" && (!errors.As(err, &p) || p.Reason != tt.reason):
				t.Fatalf("err = %v, want reason %s", err, tt.reason)
			}
		})
	}
	t.Run("slightly future time is clamped", func(t *testing.T) {
		ev := base()
		ev.EventTime = now.Add(time.Minute).Unix()
		if err := Check(ev, now); err != nil || ev.EventTime != now.Unix() {
			t.Fatalf("err %v, time %d", err, ev.EventTime)
		}
	})
}

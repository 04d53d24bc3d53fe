package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"time"
)

// sampleSource generates realistic v1 events for a few users: each user's first event is an
// install, then opens, content views, searches, add-to-carts, purchases, a registration and a
// tutorial completion, spread over the last 6 days in time order (the API refuses events older
// than 7 days). Users are stable across runs (app_user_id sample-user-<n>), so repeated runs
// build up their state; event_ids are random UUIDs every time, so nothing is deduplicated away.
type sampleSource struct {
	n, i  int
	now   time.Time
	users []*sampleUser
	rnd   *mrand.Rand
}

type sampleUser struct {
	n                   int
	platform, osVersion string
	model               string
	country, currency   string
	madid, anonID       string
	consent             bool
	att                 bool // iOS App Tracking Transparency
	start, step         time.Duration
	events              int // generated so far
}

// sampleUserCount is how many users n events are spread over: about 10 events each, 1 to 25.
func sampleUserCount(n int) int { return max(1, min(25, (n+9)/10)) }

func newSampleSource(n int, now time.Time, seed int64, platforms []string) *sampleSource {
	rnd := mrand.New(mrand.NewPCG(uint64(seed), 0x5eed))
	s := &sampleSource{n: n, now: now, rnd: rnd}
	k := sampleUserCount(n)
	perUser := (n + k - 1) / k
	end := now.Add(-time.Minute)
	for i := 1; i <= k; i++ {
		u := &sampleUser{n: i, platform: platforms[(i-1)%len(platforms)], consent: i%5 != 0, att: i%3 != 0}
		u.anonID = "install-" + randomHex(rnd, 8)
		if u.platform == "ios" {
			u.osVersion, u.model = "17.4.1", "iPhone15,2"
		} else {
			u.osVersion, u.model = "14", "Pixel 8"
			u.madid = uuid(rnd)
		}
		u.country, u.currency = "US", "USD"
		if i%4 == 0 {
			u.country, u.currency = "DE", "EUR"
		}
		// Installed between 6 hours and 6 days ago, then events evenly spread until a minute
		// ago: some users are new installers, some have been around for a while.
		first := end.Add(-6*time.Hour - time.Duration(rnd.Int64N(int64(6*24*time.Hour-6*time.Hour))))
		u.start = first.Sub(now)
		u.step = end.Sub(first) / time.Duration(max(1, perUser))
		s.users = append(s.users, u)
	}
	return s
}

// sampleEvent is a v1 API event as apps send it.
type sampleEvent struct {
	EventID   string         `json:"event_id"`
	EventName string         `json:"event_name"`
	EventTime int64          `json:"event_time"`
	User      map[string]any `json:"user"`
	Device    map[string]any `json:"device"`
	Consent   map[string]any `json:"consent"`
	Custom    map[string]any `json:"custom_data,omitempty"`
}

// next returns the next event; users take turns, each user's events move forward in time.
func (s *sampleSource) next() ([]byte, int, error) {
	if s.i == s.n {
		return nil, 0, io.EOF
	}
	s.i++
	u := s.users[(s.i-1)%len(s.users)]
	j := u.events
	u.events++
	t := s.now.Add(u.start + time.Duration(j)*u.step + time.Duration(s.rnd.Int64N(int64(max(u.step/2, time.Second)))))
	ev := sampleEvent{
		EventID:   uuid(nil),
		EventName: s.eventName(u, j),
		EventTime: t.Unix(),
		User: map[string]any{
			"app_user_id": fmt.Sprintf("sample-user-%d", u.n),
			"anon_id":     u.anonID,
			"email":       fmt.Sprintf("Sample.User%d@example.com", u.n),
			"phone":       fmt.Sprintf("+1 650 555 %04d", 100+u.n),
			"country":     u.country,
		},
		Device: map[string]any{
			"platform": u.platform, "os_version": u.osVersion, "device_model": u.model,
			"app_package": "com.example.shop", "app_version": "7.7.1", "locale": "en_US",
		},
		Consent: map[string]any{"ads_personalization": u.consent, "application_tracking_enabled": true},
	}
	if u.madid != "" {
		ev.User["madid"] = u.madid
	}
	if u.platform == "ios" {
		ev.Consent["advertiser_tracking_enabled"] = u.att
	}
	switch ev.EventName {
	case "fb_mobile_add_to_cart", "fb_mobile_content_view":
		sku := fmt.Sprintf("sku-%d", 1+s.rnd.IntN(40))
		ev.Custom = map[string]any{"content_ids": []string{sku}, "value": price(s.rnd), "currency": u.currency}
	case "fb_mobile_purchase":
		ev.Custom = map[string]any{"value": price(s.rnd) * float64(1+s.rnd.IntN(3)), "currency": u.currency,
			"order_id": "order-" + randomHex(s.rnd, 6), "num_items": 1 + s.rnd.IntN(3)}
	case "fb_mobile_search":
		ev.Custom = map[string]any{"search_string": "running shoes"}
	}
	raw, err := json.Marshal(ev)
	return raw, s.i, err
}

// eventName picks the j-th event of user u: an install first, a registration second for most
// users, then a weighted mix.
func (s *sampleSource) eventName(u *sampleUser, j int) string {
	switch {
	case j == 0:
		return "MobileAppInstall"
	case j == 1 && u.n%3 != 2:
		return "fb_mobile_complete_registration"
	case j == 2 && u.n%2 == 0:
		return "fb_mobile_tutorial_completion"
	}
	switch r := s.rnd.IntN(100); {
	case r < 40:
		return "fb_mobile_activate_app"
	case r < 62:
		return "fb_mobile_content_view"
	case r < 70:
		return "fb_mobile_search"
	case r < 86:
		return "fb_mobile_add_to_cart"
	default:
		return "fb_mobile_purchase"
	}
}

// price is a shop price between 4.99 and 149.99.
func price(rnd *mrand.Rand) float64 { return float64(499+rnd.IntN(14500)) / 100 }

func randomHex(rnd *mrand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.UintN(256))
	}
	return hex.EncodeToString(b)
}

// uuid returns a version 4 UUID, from rnd when given (sample identities are reproducible with
// --seed) or else from crypto/rand (event ids must be unique across runs).
func uuid(rnd *mrand.Rand) string {
	var b [16]byte
	if rnd != nil {
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
	} else {
		rand.Read(b[:])
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

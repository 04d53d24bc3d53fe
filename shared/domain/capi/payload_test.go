package capi

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// referencePayload is the forwarder's former path: Map, Restrict, Check and json.Marshal.
func referencePayload(r *envelope.Record, x *Restriction, now time.Time) ([]byte, string, error) {
	ev, err := Map(r)
	if err != nil {
		return nil, "", err
	}
	if x != nil {
		Restrict(ev, x.AdvertiserTracking, x.ApplicationTracking, x.LDU)
	}
	if err := Check(ev, now); err != nil {
		return nil, ev.EventName, err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, ev.EventName, ErrUnencodable
	}
	return b, ev.EventName, nil
}

// matchPayload fails t unless AppendPayload, and enc's, agree with the reference: the same
// bytes (after a prefix it must keep), the same name, the same error.
func matchPayload(t *testing.T, enc *Encoder, r *envelope.Record, x *Restriction, now time.Time) []byte {
	t.Helper()
	out := matchPayloadOf(t, nil, r, x, now)
	matchPayloadOf(t, enc, r, x, now)
	return out
}

func matchPayloadOf(t *testing.T, enc *Encoder, r *envelope.Record, x *Restriction, now time.Time) []byte {
	t.Helper()
	want, wantName, wantErr := referencePayload(r, x, now)
	prefix := []byte(`[{"x":1},`)
	got, name, err := enc.AppendPayload(prefix, r, x, now)
	var p, wp *Problem
	switch {
	case wantErr == nil && err != nil, wantErr != nil && err == nil:
		t.Fatalf("AppendPayload error %v, reference error %v", err, wantErr)
	case errors.As(wantErr, &wp):
		if !errors.As(err, &p) || *p != *wp {
			t.Fatalf("AppendPayload error %v, reference error %v", err, wantErr)
		}
	case wantErr != nil && !errors.Is(err, wantErr):
		t.Fatalf("AppendPayload error %v, reference error %v", err, wantErr)
	}
	if wantErr != nil {
		if !bytes.Equal(got, prefix) {
			t.Fatalf("AppendPayload wrote %q on error", got[len(prefix):])
		}
		return nil
	}
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) || name != wantName {
		t.Fatalf("AppendPayload and json.Marshal differ:\n%s %q\n%s %q", got[len(prefix):], name, want, wantName)
	}
	return got[len(prefix):]
}

func payloadRecord() *envelope.Record {
	h := func(s string) identity.Hash { return sha256.Sum256([]byte(s)) }
	return &envelope.Record{V: 2, App: "shop", UserKey: "k", ReceivedAt: now.UnixMilli(),
		Event: envelope.Event{ID: "ev-<1>&", Name: "fb_mobile_purchase", Time: now.Add(-time.Minute).Unix(),
			User: envelope.User{ExternalID: h("u"), Email: h("e"), Phone: h("p"), FirstName: h("f"), LastName: h("l"),
				Gender: h("g"), DateOfBirth: h("d"), City: h("c"), State: h("s"), Zip: h("z"), Country: h("us"),
				AnonID: "install-1", MADID: "38400000-8cf0-11bd-b23e-10b96e40000d", ClientIP: "203.0.113.7",
				ClientUserAgent: "Shop/1.0 (\"iPhone\" \u2028 \x01 <b>)"},
			Device: envelope.Device{Platform: "ios", AppPackage: "com.example.shop", AppVersion: "7.7.1", AppBuild: "771",
				OSVersion: "17.4.1", DeviceModel: "iPhone15,2", Locale: "en_US", TimezoneAbbr: "PDT", Carrier: "T-Mobile",
				ScreenWidth: 1179, ScreenHeight: 2556, ScreenDensity: 3, CPUCores: 6, StorageTotalGB: 128, StorageFreeGB: 40.25,
				Timezone: "America/Los_Angeles"},
			Consent: envelope.Consent{AdsPersonalization: envelope.True, AdvertiserTracking: envelope.True},
			Custom: envelope.CustomData{Value: envelope.Float(9.99), Currency: "USD", ContentIDs: []string{"sku-1", "sku-2"},
				Contents:    []envelope.Content{{ID: "sku-1", Quantity: 2, ItemPrice: envelope.Float(1e-7)}, {ID: ""}},
				ContentType: "product", OrderID: "o-1", NumItems: 3, SearchString: "shoes", PredictedLTV: envelope.Float(1e21),
				Status: "ok", Description: "d", Level: "3", MaxRatingValue: envelope.Float(-0.5), Success: envelope.False},
		}}
}

func TestAppendPayloadMatchesJSONMarshal(t *testing.T) {
	no, yes := false, true
	var enc Encoder // remembers across the cases: each must see its own user and device
	for name, mutate := range map[string]func(*envelope.Record, **Restriction){
		"full":       func(*envelope.Record, **Restriction) {},
		"no consent": func(r *envelope.Record, _ **Restriction) { r.Event.Consent.AdsPersonalization = envelope.False },
		"minimal android": func(r *envelope.Record, _ **Restriction) {
			r.Event.Name, r.Event.User, r.Event.Device, r.Event.Custom = "fb_mobile_activate_app", envelope.User{AnonID: "a"}, envelope.Device{Platform: "android", OSVersion: "14"}, envelope.CustomData{}
		},
		"ios without ATT": func(r *envelope.Record, _ **Restriction) { r.Event.Consent.AdvertiserTracking = envelope.Unset },
		"LDU": func(r *envelope.Record, _ **Restriction) {
			r.Event.Consent.LDU, r.Event.Consent.LDUCountry, r.Event.Consent.LDUState = envelope.True, 1, 1000
		},
		"empty content_ids": func(r *envelope.Record, _ **Restriction) {
			r.Event.Custom = envelope.CustomData{ContentIDs: []string{}}
		},
		"slightly ahead":         func(r *envelope.Record, _ **Restriction) { r.Event.Time = now.Add(time.Minute).Unix() },
		"too old":                func(r *envelope.Record, _ **Restriction) { r.Event.Time = now.Add(-8 * 24 * time.Hour).Unix() },
		"in future":              func(r *envelope.Record, _ **Restriction) { r.Event.Time = now.Add(time.Hour).Unix() },
		"bad name":               func(r *envelope.Record, _ **Restriction) { r.Event.Name = "bad name!" },
		"no platform":            func(r *envelope.Record, _ **Restriction) { r.Event.Device.Platform = "web" },
		"Purchase without value": func(r *envelope.Record, _ **Restriction) { r.Event.Custom.Value = envelope.OptFloat{} },
		"value without currency": func(r *envelope.Record, _ **Restriction) { r.Event.Name, r.Event.Custom.Currency = "x", "" },
		"NaN":                    func(r *envelope.Record, _ **Restriction) { r.Event.Custom.PredictedLTV = envelope.Float(math.NaN()) },
		"only madid, restricted": func(r *envelope.Record, x **Restriction) {
			r.Event.User = envelope.User{MADID: "m"}
			*x = &Restriction{AdvertiserTracking: &no}
		},
		"restricted": func(_ *envelope.Record, x **Restriction) {
			*x = &Restriction{AdvertiserTracking: &no, ApplicationTracking: &no, LDU: &yes}
		},
		"restriction that allows": func(_ *envelope.Record, x **Restriction) {
			*x = &Restriction{AdvertiserTracking: &yes, ApplicationTracking: &yes, LDU: &no}
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := payloadRecord()
			var x *Restriction
			mutate(r, &x)
			matchPayload(t, &enc, r, x, now)
			matchPayload(t, &enc, payloadRecord(), nil, now)
		})
	}
}

func TestAppendPayloadAllocates(t *testing.T) {
	r := payloadRecord()
	other := payloadRecord()
	other.Event.User.Email, other.Event.Device.Locale = [32]byte{1}, "fr_FR"
	buf := make([]byte, 0, 4096)
	var enc Encoder
	if n := testing.AllocsPerRun(100, func() {
		for _, x := range []*envelope.Record{r, other} {
			if _, _, err := AppendPayload(buf[:0], x, nil, now); err != nil {
				t.Fatal(err)
			}
			if _, _, err := enc.AppendPayload(buf[:0], x, nil, now); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Fatalf("%v allocations per event, want 0", n)
	}
}

// FuzzAppendPayload: for any stream record, AppendPayload writes what json.Marshal writes for
// the ServerEvent of Map, Restrict and Check, or refuses the event as they do.
func FuzzAppendPayload(f *testing.F) {
	f.Add(envelope.Append(nil, payloadRecord()), uint8(0), int64(60))
	f.Add(envelope.AppendV1(nil, payloadRecord()), uint8(0x3f), int64(-30))
	f.Add([]byte(`{"v":2,"app":"a","uk":"k","user":{"anon_id":"a"},"device":{"platform":"android","os_version":"1","screen_density":1e-9},"events":[{"id":"i","name":"Purchase","consent":{"ads_personalization":true,"ldu":true},"custom_data":{"value":1e300,"currency":"\u00e9","content_ids":[]}}]}`), uint8(0x15), int64(0))
	var enc Encoder // remembers from one input to the next
	f.Fuzz(func(t *testing.T, data []byte, flags uint8, age int64) {
		recs, err := envelope.Decode(data)
		if err != nil {
			return
		}
		// flags: three optional decisions (present, value) and forcing consent.
		var x *Restriction
		if flags&0x2a != 0 {
			b := func(present, v uint8) *bool {
				if flags&present == 0 {
					return nil
				}
				val := flags&v != 0
				return &val
			}
			x = &Restriction{AdvertiserTracking: b(0x02, 0x01), ApplicationTracking: b(0x08, 0x04), LDU: b(0x20, 0x10)}
		}
		for i := range recs {
			r := &recs[i]
			matchPayload(t, &enc, r, x, now)
			// The same event, recent and consented, reaches the encoder.
			r.Event.Time = now.Unix() - age%(8*24*3600)
			r.Event.Consent.AdsPersonalization = envelope.True
			if flags&0x40 != 0 {
				r.Event.Device.Platform, r.Event.Device.OSVersion = "android", "14"
			}
			if out := matchPayload(t, &enc, r, x, now); out != nil && !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
		}
	})
}

package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/identity"
)

func fullRecord() *Record {
	h := func(s string) identity.Hash { return sha256.Sum256([]byte(s)) }
	return &Record{
		V: Version, App: "sample-shop", UserKey: "k3y-_abc", ReceivedAt: 1764300000123,
		Event: Event{
			ID: "9f1c-1", Name: "fb_mobile_purchase", Time: 1764300000, Server: true,
			User: User{
				KeySource: identity.KindAppUserID, ExternalID: h("u-1"), Email: h("a@b.co"), Phone: h("1650"),
				FirstName: h("mary"), LastName: h("major"), Gender: h("f"), DateOfBirth: h("19970216"),
				City: h("paris"), State: h("idf"), Zip: h("75001"), Country: h("fr"),
				AnonID: "install-1", MADID: "38400000-8cf0-11bd-b23e-10b96e40000d",
				ClientIP: "2001:db8::1", ClientUserAgent: "Shop/7.7 (iPhone; \"quoted\" \\ \u2028 \x01)",
			},
			Device: Device{Platform: "ios", AppPackage: "com.example.shop", AppVersion: "7.7.1", AppBuild: "771",
				OSVersion: "17.4.1", DeviceModel: "iPhone15,2", Locale: "fr_FR", TimezoneAbbr: "CET", Carrier: "Orange",
				ScreenWidth: 1179, ScreenHeight: 2556, ScreenDensity: 3, CPUCores: 6, StorageTotalGB: 128, StorageFreeGB: 40.5,
				Timezone: "Europe/Paris"},
			Consent: Consent{AdsPersonalization: True, AdvertiserTracking: False, ApplicationTracking: True, LDU: True, LDUCountry: 1, LDUState: 1000},
			Custom: CustomData{Value: Float(0), Currency: "EUR", ContentIDs: []string{"sku-1", "sku-\"2\""},
				Contents:    []Content{{ID: "sku-1", Quantity: 2, ItemPrice: Float(6.25)}, {ID: "sku-2"}},
				ContentType: "product", OrderID: "o-1", NumItems: 2, SearchString: "shoes", SubscriptionExpiresAt: 1767000000,
				PredictedLTV: Float(1e-7), Status: "ok", Description: "d", Level: "3", MaxRatingValue: Float(5), Success: False},
		},
	}
}

func TestAppendRoundTrips(t *testing.T) {
	for name, r := range map[string]*Record{
		"full":    fullRecord(),
		"minimal": {V: Version, App: "a", UserKey: "k", Event: Event{ID: "i", Name: "n", Time: 1}},
		"server":  {V: Version, App: "a", UserKey: "k", Event: Event{ID: "i", Name: "n", Time: 1, Server: true}},
		"replay":  {V: Version, App: "a", UserKey: "k", Replay: true, Event: Event{ID: "i", Name: "n", Time: 1}},
		"huge value": func() *Record {
			r := fullRecord()
			r.Event.Custom.Value = Float(1e22)
			return r
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			r.V = 1
			data := AppendV1(nil, r)
			if !json.Valid(data) {
				t.Fatalf("invalid JSON: %s", data)
			}
			got, err := DecodeOne(data)
			if err != nil {
				t.Fatalf("Decode: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, r)
			}
			// The hand-written encoder and encoding/json agree on the document.
			std, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			_ = json.Unmarshal(data, &a)
			_ = json.Unmarshal(std, &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("Append and json.Marshal disagree:\n%s\n%s", data, std)
			}
		})
	}
}

func TestEncoderReusesTheLastUserOnlyWhenEqual(t *testing.T) {
	var enc Encoder
	a := fullRecord()
	b := fullRecord()
	b.Event.User.Email = identity.Hash{1} // differs from a's
	c := fullRecord()
	c.Event.User = User{} // empty: no "user" member at all
	for i, r := range []*Record{a, a, b, a, c, c, a} {
		got := enc.AppendV1(nil, r)
		if want := AppendV1(nil, r); !bytes.Equal(got, want) {
			t.Fatalf("record %d: Encoder wrote\n%s\nAppend wrote\n%s", i, got, want)
		}
	}
}

func TestAppendEscapesInvalidUTF8(t *testing.T) {
	r := &Record{App: "a", UserKey: "k", Event: Event{ID: "i", Name: "n\xff"}}
	data := Append(nil, r)
	if !json.Valid(data) || !bytes.Contains(data, []byte(`n\ufffd`)) || !bytes.Contains(AppendV1(nil, r), []byte(`n\ufffd`)) {
		t.Fatalf("got %s", data)
	}
}

func TestDecodeRejectsOtherVersions(t *testing.T) {
	tests := map[string]string{
		"missing version":            `{"app":"a","uk":"k","event":{"id":"i","name":"n","time":1}}`,
		"version 3":                  `{"v":3,"app":"a","uk":"k","event":{"id":"i","name":"n","time":1}}`,
		"version 0":                  `{"v":0,"app":"a","uk":"k","event":{"id":"i","name":"n","time":1}}`,
		"version 3 with a new shape": `{"v":3,"app":"a","uk":"k","events":"reshaped"}`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(doc))
			if !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("err = %v, want ErrUnsupportedVersion", err)
			}
		})
	}
	if _, err := Decode([]byte(`{"v":1,"app":"a","uk":"k","event":{"id":"i","name":"n","time":1,"user":{"em":"not-a-hash"}}}`)); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("malformed hash accepted: %v", err)
	}
	if _, err := Decode([]byte(`{"v":2,"app":"a","uk":"k","user":{"em":"` + strings.Repeat("a", 64) + `"},"events":[{"id":"i","name":"n","time":1}]}`)); err == nil || !strings.Contains(err.Error(), "base64url") {
		t.Fatalf("hex digest accepted in a version 2 record: %v", err)
	}
	for _, doc := range []string{`{"v":1,"app":"a"}`, `{"v":2,"app":"a","uk":"k","events":[]}`, `{"v":2,"app":"a","uk":"k"}`,
		`{"v":2,"app":"a","uk":"k","events":[{"id":"i","time":1}]}`, `{"v":2,"uk":"k","events":[{"id":"i","name":"n"}]}`} {
		if _, err := Decode([]byte(doc)); err == nil {
			t.Fatalf("incomplete record accepted: %s", doc)
		}
	}
}

// group returns n events of one user from one request: the second differs in its user, the
// third in its device, the fourth has neither.
func group(n int) []Record {
	out := make([]Record, n)
	for i := range out {
		r := fullRecord()
		r.V = Version
		r.Event.ID = "ev-" + strings.Repeat("x", i)
		switch i % 4 {
		case 1:
			r.Event.User.Email = identity.Hash{byte(i)}
		case 2:
			r.Event.Device.OSVersion = "18.0"
		case 3:
			r.Event.User, r.Event.Device = User{}, Device{}
		}
		out[i] = *r
	}
	return out
}

func TestGroupRoundTrips(t *testing.T) {
	for _, n := range []int{1, 2, 4, 9} {
		recs := group(n)
		data := AppendGroup(nil, recs)
		if !json.Valid(data) {
			t.Fatalf("invalid JSON: %s", data)
		}
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("Decode: %v\n%s", err, data)
		}
		if !reflect.DeepEqual(got, recs) {
			t.Fatalf("%d events: round trip differs:\n got %+v\nwant %+v", n, got, recs)
		}
		if n == 1 && !bytes.Equal(data, Append(nil, &recs[0])) {
			t.Fatalf("Append and AppendGroup of one event differ")
		}
	}
	// The user and device objects are written once when the events share them.
	same := group(1)
	same = append(same, same[0], same[0])
	data := AppendGroup(nil, same)
	if n := bytes.Count(data, []byte(`"user":`)); n != 1 {
		t.Fatalf("user written %d times: %s", n, data)
	}
	if n := bytes.Count(data, []byte(`"device":`)); n != 1 {
		t.Fatalf("device written %d times: %s", n, data)
	}
	// Digests are base64url: 43 characters, not 64 hex.
	if !bytes.Contains(data, []byte(`"em":"`)) || bytes.Contains(data, []byte(same[0].Event.User.Email.String())) {
		t.Fatalf("digest not in base64url: %s", data)
	}
}

func TestMixedVersionsDecodeAlike(t *testing.T) {
	r := fullRecord()
	v1, err := DecodeOne(AppendV1(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := DecodeOne(Append(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	if v1.V != 1 || v2.V != 2 {
		t.Fatalf("versions %d, %d", v1.V, v2.V)
	}
	v1.V, v2.V = 0, 0
	if !reflect.DeepEqual(v1, v2) {
		t.Fatalf("the same event reads differently from v1 and v2:\n%+v\n%+v", v1, v2)
	}
	if l1, l2 := len(AppendV1(nil, r)), len(Append(nil, r)); l2 >= l1 {
		t.Fatalf("v2 (%d bytes) not smaller than v1 (%d)", l2, l1)
	}
}

func BenchmarkAppend(b *testing.B) {
	r := fullRecord()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], r)
	}
}

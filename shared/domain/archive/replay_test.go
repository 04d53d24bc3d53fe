package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// fullRow is an archived row with every column filled (the raw ones too: an opted-in app).
func fullRow(t *testing.T) Row {
	t.Helper()
	h := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	i := func(v int64) *int64 { return &v }
	f := func(v float64) *float64 { return &v }
	b := func(v bool) *bool { return &v }
	at := time.Date(2026, 12, 6, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	r := Row{
		App: "shop", Day: DayOf(at), EnvelopeVersion: envelope.Version, EventID: "ev-1", EventName: "fb_mobile_purchase",
		EventTime: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli(), ReceivedAt: at, UserKey: "uk-1", Server: true,
		KeySource: "app_user_id", ExternalID: h("u-1"), Email: h("a@b.co"), Phone: h("1650"), FirstName: h("mary"),
		LastName: h("major"), Gender: h("f"), DateOfBirth: h("19970216"), City: h("paris"), State: h("idf"),
		Zip: h("75001"), Country: h("fr"), AnonID: "anon-1", MADID: rawMADID, ClientIP: rawIP, ClientUserAgent: rawUA,
		Platform: "android", AppPackage: "com.example.shop", AppVersion: "7.7.1", AppBuild: "771", OSVersion: "14",
		DeviceModel: "Pixel 8", Locale: "fr_FR", TimezoneAbbr: "CET", Timezone: "Europe/Paris", Carrier: "Orange",
		ScreenWidth: i(1080), ScreenHeight: i(2400), ScreenDensity: f(2.5), CPUCores: i(8), StorageTotalGB: f(128),
		StorageFreeGB:      f(40.5),
		AdsPersonalization: b(true), AdvertiserTracking: b(false), ApplicationTracking: b(true), LDU: b(false),
		LDUCountry: i(1), LDUState: i(1000),
		Value: f(0), Currency: "EUR", ContentType: "product", ContentIDs: `["sku-1","sku-2"]`,
		Contents: `[{"id":"sku-1","quantity":2,"item_price":4.5},{"id":"sku-2"}]`, OrderID: "o-1", NumItems: i(3),
		SearchString: "shoes", SubscriptionExpiresAt: i(1767000000), PredictedLTV: f(1e-7), Status: "ok",
		Description: "d", Level: "3", MaxRatingValue: f(5), Success: b(false),
	}
	// Every column is set, so a column added to Row and not mapped back fails the round trip.
	v := reflect.ValueOf(r)
	for k := range v.NumField() {
		if v.Field(k).IsZero() {
			t.Fatalf("fullRow leaves column %s empty", v.Type().Field(k).Name)
		}
	}
	return r
}

func TestToRecordRoundTripsEveryColumn(t *testing.T) {
	row := fullRow(t)
	rec, err := ToRecord(&row)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Replay {
		t.Error("replayed record not marked Replay")
	}
	// Through the stream's own encoder and decoder, as a consumer reads it.
	decoded, err := envelope.DecodeOne(envelope.Append(nil, rec))
	if err != nil {
		t.Fatalf("the replayed record does not decode: %v", err)
	}
	if !decoded.Replay {
		t.Error("Replay lost on the stream")
	}
	back, err := FromRecord(decoded, Options{KeepRawFields: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, row) {
		t.Fatalf("row -> record -> row differs:\n got %+v\nwant %+v", back, row)
	}
}

func TestToRecordKeepsDroppedFieldsDropped(t *testing.T) {
	orig := fullRecord()
	orig.Event.User.AppUserID = "u-123" // shared with channels on the stream, never archived
	row, err := FromRecord(orig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ToRecord(&row)
	if err != nil {
		t.Fatal(err)
	}
	want := fullRecord()
	u := &want.Event.User
	u.AnonID, u.MADID, u.ClientIP, u.ClientUserAgent = "", "", "", ""
	want.Replay, want.V = true, envelope.Version
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record -> row -> record:\n got %+v\nwant %+v (the original minus the dropped fields, marked Replay)", got, want)
	}
	data := string(envelope.Append(nil, got))
	for _, raw := range []string{rawIP, rawUA, rawMADID, "anon-1", "u-123"} {
		if strings.Contains(data, raw) {
			t.Errorf("dropped value %q is back on the stream: %s", raw, data)
		}
	}
}

func TestToRecordRefusesRowsItCannotMap(t *testing.T) {
	for name, edit := range map[string]func(*Row){
		"other envelope version": func(r *Row) { r.EnvelopeVersion = envelope.Version + 1 },
		"digest not hex":         func(r *Row) { r.Email = "a@b.co" },
		"list not JSON":          func(r *Row) { r.ContentIDs = "sku-1,sku-2" },
		"no user key":            func(r *Row) { r.UserKey = "" },
	} {
		t.Run(name, func(t *testing.T) {
			row := fullRow(t)
			edit(&row)
			if rec, err := ToRecord(&row); err == nil {
				t.Fatalf("mapped: %+v", rec)
			}
		})
	}
}

package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
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

// An event archives to the same row from a version 1 record, alone in a version 2 record, or
// among others in one (digests hex in every case), but for envelope_version; Decode gives a
// version 2 record's events in order, each with its own user and device where it has them; and
// rows archived from either version replay to the same record.
func TestEveryVersionArchivesAndReplaysAlike(t *testing.T) {
	first := fullRecord()
	second := fullRecord()
	second.Event.ID, second.Event.Time = "ev-2", second.Event.Time+60
	second.Event.User.Email = identity.Hash(sha256.Sum256([]byte("other@example.com")))
	second.Event.Device.AppVersion = "7.8.0"
	opt := func(string) Options { return Options{KeepRawFields: true} }

	v1, err := Decode(envelope.AppendV1(nil, second), opt)
	if err != nil || len(v1) != 1 {
		t.Fatalf("version 1: %d rows, %v", len(v1), err)
	}
	single, err := Decode(envelope.Append(nil, second), opt)
	if err != nil || len(single) != 1 {
		t.Fatalf("version 2 of one event: %d rows, %v", len(single), err)
	}
	group, err := Decode(envelope.AppendGroup(nil, []envelope.Record{*first, *second}), opt)
	if err != nil || len(group) != 2 {
		t.Fatalf("version 2 of two events: %d rows, %v", len(group), err)
	}
	if group[0].EventID != "ev-1" || group[1].EventID != "ev-2" || group[1].Email != second.Event.User.Email.String() ||
		group[0].Email == group[1].Email || group[1].AppVersion != "7.8.0" || group[0].AppVersion != "" {
		t.Errorf("rows of the group: %+v", group)
	}
	if v1[0].EnvelopeVersion != 1 || single[0].EnvelopeVersion != 2 || group[1].EnvelopeVersion != 2 {
		t.Errorf("envelope_version %d, %d, %d; want 1, 2, 2", v1[0].EnvelopeVersion, single[0].EnvelopeVersion, group[1].EnvelopeVersion)
	}
	for name, row := range map[string]Row{"version 1": v1[0], "version 2 alone": single[0], "version 2 in a group": group[1]} {
		want := single[0]
		row.EnvelopeVersion, want.EnvelopeVersion = 0, 0
		if !reflect.DeepEqual(row, want) {
			t.Errorf("%s: the row differs from the others:\n got %+v\nwant %+v", name, row, want)
		}
	}
	fromV1, err := ToRecord(&v1[0])
	if err != nil {
		t.Fatalf("a row archived from version 1 does not replay: %v", err)
	}
	fromV2, err := ToRecord(&group[1])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromV1, fromV2) || fromV1.V != envelope.Version || !fromV1.Replay {
		t.Errorf("replays differ by the version archived from:\n v1 %+v\n v2 %+v", fromV1, fromV2)
	}
}

package archive

import (
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

const (
	rawIP    = "203.0.113.7"
	rawUA    = "Mozilla/5.0 (Linux; Android 14) RawUA/1"
	rawMADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
)

// fullRecord is a stream record with every group filled, raw fields included.
func fullRecord() *envelope.Record {
	em := identity.Hash(sha256.Sum256([]byte("a@example.com")))
	return &envelope.Record{
		V: 1, App: "shop", UserKey: "uk-1",
		// 23:59:59.999 UTC on 2026-12-06: the day is the UTC date of arrival.
		ReceivedAt: time.Date(2026, 12, 6, 23, 59, 59, 999e6, time.UTC).UnixMilli(),
		Event: envelope.Event{
			ID: "ev-1", Name: "fb_mobile_purchase", Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Unix(), Server: true,
			User: envelope.User{KeySource: identity.KindAppUserID, Email: em, AnonID: "anon-1",
				MADID: rawMADID, ClientIP: rawIP, ClientUserAgent: rawUA},
			Device:  envelope.Device{Platform: "android", ScreenWidth: 1080, ScreenDensity: 2.5},
			Consent: envelope.Consent{AdsPersonalization: envelope.True, LDU: envelope.False},
			Custom: envelope.CustomData{Value: envelope.Float(0), Currency: "EUR",
				ContentIDs: []string{"sku-1", "sku-2"},
				Contents:   []envelope.Content{{ID: "sku-1", Quantity: 2, ItemPrice: envelope.Float(4.5)}}},
		},
	}
}

func TestFromRecordDropsRawFieldsByDefault(t *testing.T) {
	row, err := FromRecord(fullRecord(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Each dropped field on its own, then no raw value anywhere in the JSON form.
	for name, got := range map[string]string{"madid": row.MADID, "client_ip_address": row.ClientIP, "client_user_agent": row.ClientUserAgent, "anon_id": row.AnonID} {
		if got != "" {
			t.Errorf("%s kept without opt-in: %q", name, got)
		}
	}
	b, _ := json.Marshal(row)
	for _, raw := range []string{rawIP, rawUA, rawMADID, "anon-1"} {
		if strings.Contains(string(b), raw) {
			t.Errorf("raw value %q in the row: %s", raw, b)
		}
	}
	// The rest is kept, pseudonymised as on the stream.
	if want := fullRecord().Event.User.Email.String(); row.Email != want || row.KeySource != "app_user_id" || row.UserKey != "uk-1" {
		t.Errorf("identifiers: em %q key source %q uk %q", row.Email, row.KeySource, row.UserKey)
	}
}

func TestFromRecordKeepsRawFieldsWhenOptedIn(t *testing.T) {
	row, err := FromRecord(fullRecord(), Options{KeepRawFields: true})
	if err != nil {
		t.Fatal(err)
	}
	if row.MADID != rawMADID || row.ClientIP != rawIP || row.ClientUserAgent != rawUA || row.AnonID != "anon-1" {
		t.Errorf("opted in, got madid %q ip %q ua %q anon_id %q", row.MADID, row.ClientIP, row.ClientUserAgent, row.AnonID)
	}
}

func TestFromRecordColumns(t *testing.T) {
	row, err := FromRecord(fullRecord(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if row.App != "shop" || row.Day != "2026-12-06" || row.Partition().Dir() != "app=shop/day=2026-12-06" {
		t.Errorf("partition %q %q %q", row.App, row.Day, row.Partition().Dir())
	}
	if row.EventTime != time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli() || row.EventID != "ev-1" || !row.Server {
		t.Errorf("event columns %+v", row)
	}
	if row.Value == nil || *row.Value != 0 {
		t.Errorf("value 0 must stay a value (a free purchase), got %v", row.Value)
	}
	if row.ContentIDs != `["sku-1","sku-2"]` || row.Contents != `[{"id":"sku-1","quantity":2,"item_price":4.5}]` {
		t.Errorf("lists as JSON text: %s %s", row.ContentIDs, row.Contents)
	}
	if row.AdsPersonalization == nil || !*row.AdsPersonalization || row.LDU == nil || *row.LDU || row.AdvertiserTracking != nil {
		t.Errorf("consent: %v %v %v", row.AdsPersonalization, row.LDU, row.AdvertiserTracking)
	}
	if row.ScreenWidth == nil || *row.ScreenWidth != 1080 || row.ScreenHeight != nil {
		t.Errorf("device numbers: %v %v", row.ScreenWidth, row.ScreenHeight)
	}
}

// TestNoArrayColumns: Firehose's Parquet conversion takes no JSON arrays, so every column is a
// scalar (lists travel as JSON text).
func TestNoArrayColumns(t *testing.T) {
	rt := reflect.TypeOf(Row{})
	for i := range rt.NumField() {
		f := rt.Field(i)
		k := f.Type.Kind()
		if k == reflect.Pointer {
			k = f.Type.Elem().Kind()
		}
		if k == reflect.Slice || k == reflect.Array || k == reflect.Map || k == reflect.Struct {
			t.Errorf("column %s is a %s", f.Name, k)
		}
	}
}

func TestDayOfIsUTC(t *testing.T) {
	// 00:30 in Tokyo on the 7th is still the 6th in UTC.
	at := time.Date(2026, 12, 7, 0, 30, 0, 0, time.FixedZone("JST", 9*3600))
	if d := DayOf(at.UnixMilli()); d != "2026-12-06" {
		t.Errorf("DayOf = %s", d)
	}
}

func TestDedupe(t *testing.T) {
	rows := []Row{{App: "a", EventID: "1", EventName: "x"}, {App: "a", EventID: "2"}, {App: "a", EventID: "1", EventName: "y"}, {App: "b", EventID: "1"}}
	got := Dedupe(rows)
	if len(got) != 3 || got[0].EventName != "x" || got[2].App != "b" {
		t.Errorf("Dedupe = %+v", got)
	}
}

package archivetransform

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

const (
	rawIP    = "203.0.113.7"
	rawUA    = "Mozilla/5.0 (Linux; Android 14) RawUA/1"
	rawMADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
)

const twoApps = `{"version": 1, "apps": [
 {"id": "shop", "name": "Shop", "platforms": ["android"],
  "api_key": {"name": "shop"}, "meta": {"dataset_id": "1234567890123456", "ad_account_id": "act_1"}},
 {"id": "fraud", "name": "Fraud", "platforms": ["android"], "archive_raw_fields": true,
  "api_key": {"name": "fraud"}, "meta": {"dataset_id": "1234567890123457", "ad_account_id": "act_2"}}]}`

func record(app, id string, receivedAt time.Time) []byte {
	r := &envelope.Record{V: 1, App: app, UserKey: "uk-" + id, ReceivedAt: receivedAt.UnixMilli(),
		Event: envelope.Event{ID: id, Name: "fb_mobile_purchase", Time: receivedAt.Add(-time.Hour).Unix(),
			User: envelope.User{KeySource: identity.KindAppUserID, Email: identity.Hash(sha256.Sum256([]byte("a@example.com"))),
				AnonID: "anon-1", MADID: rawMADID, ClientIP: rawIP, ClientUserAgent: rawUA},
			Device: envelope.Device{Platform: "android", OSVersion: "14"},
			Custom: envelope.CustomData{Value: envelope.Float(0), Currency: "EUR", ContentIDs: []string{"sku-1"}}}}
	return envelope.Append(nil, r)
}

func newHandler(t *testing.T) *Handler {
	t.Helper()
	apps, err := appconfig.Parse([]byte(twoApps))
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Apps: apps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func fhRecord(id string, data []byte) events.KinesisFirehoseEventRecord {
	return events.KinesisFirehoseEventRecord{RecordID: id, Data: data}
}

// TestRowsAndPartitionKeys: each record becomes one flat JSON object with the table's columns
// (no partition keys, timestamps in epoch milliseconds) and its partition keys as metadata;
// the raw fields follow the app's archive_raw_fields, as in make dev.
func TestRowsAndPartitionKeys(t *testing.T) {
	h := newHandler(t)
	late := time.Date(2026, 12, 6, 23, 59, 59, 999e6, time.UTC)
	resp, err := h.Handle(context.Background(), events.KinesisFirehoseEvent{Records: []events.KinesisFirehoseEventRecord{
		fhRecord("r1", record("shop", "ev-1", late)), fhRecord("r2", record("fraud", "ev-2", late.Add(time.Millisecond)))}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Records) != 2 {
		t.Fatalf("%d records, want 2", len(resp.Records))
	}
	wantKeys := []map[string]string{{"app": "shop", "day": "2026-12-06"}, {"app": "fraud", "day": "2026-12-07"}}
	for i, r := range resp.Records {
		if r.RecordID != []string{"r1", "r2"}[i] || r.Result != events.KinesisFirehoseTransformedStateOk {
			t.Fatalf("record %d: id %q result %q", i, r.RecordID, r.Result)
		}
		if r.Metadata == nil || !reflect.DeepEqual(r.Metadata.PartitionKeys, wantKeys[i]) {
			t.Errorf("record %d partition keys %+v, want %v", i, r.Metadata, wantKeys[i])
		}
		if !strings.HasSuffix(string(r.Data), "}\n") || strings.Count(string(r.Data), "\n") != 1 {
			t.Errorf("record %d is not one JSON line: %q", i, r.Data)
		}
		var obj map[string]any
		if err := json.Unmarshal(r.Data, &obj); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"app", "day"} {
			if _, ok := obj[k]; ok {
				t.Errorf("record %d carries partition key %q as a column: %s", i, k, r.Data)
			}
		}
		for k, v := range obj {
			switch v.(type) {
			case map[string]any, []any:
				t.Errorf("record %d column %s is not a scalar: %v", i, k, v)
			}
		}
	}
	var shop, fraud archive.Row
	_ = json.Unmarshal(resp.Records[0].Data, &shop)
	_ = json.Unmarshal(resp.Records[1].Data, &fraud)
	if shop.ReceivedAt != late.UnixMilli() || shop.EventTime != late.Add(-time.Hour).Truncate(time.Second).UnixMilli() {
		t.Errorf("timestamps not epoch milliseconds: received_at %d event_time %d", shop.ReceivedAt, shop.EventTime)
	}
	if shop.Value == nil || *shop.Value != 0 || shop.ContentIDs != `["sku-1"]` {
		t.Errorf("custom data: value %v content_ids %q", shop.Value, shop.ContentIDs)
	}
	for _, raw := range []string{rawIP, rawUA, rawMADID, "anon-1"} {
		if strings.Contains(string(resp.Records[0].Data), raw) {
			t.Errorf("raw value %q archived for an app without archive_raw_fields", raw)
		}
	}
	if fraud.ClientIP != rawIP || fraud.MADID != rawMADID || fraud.ClientUserAgent != rawUA || fraud.AnonID != "anon-1" {
		t.Errorf("opted-in app lost raw fields: %+v", fraud)
	}
}

// TestMultiEventRecordOneRowPerEvent: a version 2 record of several events becomes one output
// record of newline-delimited rows, one per event in the record's order, all in the record's
// partition (its app, the day of its arrival, whatever the events' own times), each with its
// own user where the event has one; a version 1 record next to it stays one row.
func TestMultiEventRecordOneRowPerEvent(t *testing.T) {
	h := newHandler(t)
	arrival := time.Date(2026, 12, 6, 23, 59, 59, 999e6, time.UTC)
	ev := func(id string, age time.Duration) envelope.Record {
		return envelope.Record{App: "fraud", UserKey: "uk-1", ReceivedAt: arrival.UnixMilli(),
			Event: envelope.Event{ID: id, Name: "fb_mobile_content_view", Time: arrival.Add(-age).Unix(),
				User:   envelope.User{KeySource: identity.KindAppUserID, ClientIP: rawIP, MADID: rawMADID},
				Device: envelope.Device{Platform: "android"}}}
	}
	evs := []envelope.Record{ev("ev-1", time.Hour), ev("ev-2", 30*time.Hour), ev("ev-3", 50*time.Hour)}
	evs[2].Event.User.ClientIP = "198.51.100.23" // an event user of its own
	v1 := ev("ev-4", time.Minute)
	resp, err := h.Handle(context.Background(), events.KinesisFirehoseEvent{Records: []events.KinesisFirehoseEventRecord{
		fhRecord("r1", envelope.AppendGroup(nil, evs)), fhRecord("r2", envelope.AppendV1(nil, &v1))}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Records) != 2 {
		t.Fatalf("%d records answered, want 2", len(resp.Records))
	}
	for i, want := range [][]string{{"ev-1", "ev-2", "ev-3"}, {"ev-4"}} {
		r := resp.Records[i]
		if r.Result != events.KinesisFirehoseTransformedStateOk || r.Metadata == nil ||
			!reflect.DeepEqual(r.Metadata.PartitionKeys, map[string]string{"app": "fraud", "day": "2026-12-06"}) {
			t.Fatalf("record %s: %s, partition %+v; want Ok in app=fraud/day=2026-12-06", r.RecordID, r.Result, r.Metadata)
		}
		lines := strings.SplitAfter(string(r.Data), "\n")
		if lines[len(lines)-1] != "" || len(lines)-1 != len(want) {
			t.Fatalf("record %s: %q, want %d newline-terminated rows", r.RecordID, r.Data, len(want))
		}
		for j, id := range want {
			var row archive.Row
			if err := json.Unmarshal([]byte(lines[j]), &row); err != nil {
				t.Fatalf("record %s row %d: %v", r.RecordID, j, err)
			}
			wantIP := rawIP
			if id == "ev-3" {
				wantIP = "198.51.100.23"
			}
			if row.EventID != id || row.ReceivedAt != arrival.UnixMilli() || row.ClientIP != wantIP || row.MADID != rawMADID {
				t.Errorf("record %s row %d: id %s received_at %d ip %s madid %s; want %s %d %s %s",
					r.RecordID, j, row.EventID, row.ReceivedAt, row.ClientIP, row.MADID, id, arrival.UnixMilli(), wantIP, rawMADID)
			}
		}
	}
}

// TestBadRecordsFailAlone: a record that does not decode is ProcessingFailed with its original
// bytes (Firehose writes it under the error prefix), and its neighbours still go through.
func TestBadRecordsFailAlone(t *testing.T) {
	h := newHandler(t)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	bad := [][]byte{[]byte("not json"), []byte(`{"v":99,"app":"shop"}`), record("", "ev-x", now)}
	recs := []events.KinesisFirehoseEventRecord{fhRecord("ok-1", record("shop", "ev-1", now))}
	for i, b := range bad {
		recs = append(recs, fhRecord("bad-"+string(rune('a'+i)), b))
	}
	recs = append(recs, fhRecord("ok-2", record("unknown-app", "ev-2", now)))
	resp, err := h.Handle(context.Background(), events.KinesisFirehoseEvent{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Records) != len(recs) {
		t.Fatalf("%d records answered, want %d (none dropped)", len(resp.Records), len(recs))
	}
	for i, r := range resp.Records {
		want := events.KinesisFirehoseTransformedStateOk
		if strings.HasPrefix(recs[i].RecordID, "bad-") {
			want = events.KinesisFirehoseTransformedStateProcessingFailed
			if string(r.Data) != string(recs[i].Data) {
				t.Errorf("%s: failed record's data changed: %q", r.RecordID, r.Data)
			}
		}
		if r.RecordID != recs[i].RecordID || r.Result != want {
			t.Errorf("record %d: %s %s, want %s %s", i, r.RecordID, r.Result, recs[i].RecordID, want)
		}
	}
	// An app the config does not know keeps the default: no raw field.
	if strings.Contains(string(resp.Records[len(recs)-1].Data), rawIP) {
		t.Errorf("unknown app kept raw fields: %s", resp.Records[len(recs)-1].Data)
	}
}

// TestResponseWireForm: the answer is what Firehose reads (base64 data, metadata.partitionKeys)
// and carries no Iceberg otfMetadata.
func TestResponseWireForm(t *testing.T) {
	h := newHandler(t)
	resp, err := h.Handle(context.Background(), events.KinesisFirehoseEvent{Records: []events.KinesisFirehoseEventRecord{
		fhRecord("r1", record("shop", "ev-1", time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))), fhRecord("r2", []byte("x"))}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(resp)
	var wire struct {
		Records []map[string]json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	if got := string(wire.Records[0]["metadata"]); got != `{"partitionKeys":{"app":"shop","day":"2026-12-07"}}` {
		t.Errorf("metadata %s", got)
	}
	if _, ok := wire.Records[1]["metadata"]; ok {
		t.Errorf("failed record carries metadata: %s", b)
	}
	if strings.Contains(string(b), "otfMetadata") {
		t.Errorf("otfMetadata in the answer: %s", b)
	}
}

// TestSampleEvent: the fixture of sam local invoke (events/archive-transform) transforms.
func TestSampleEvent(t *testing.T) {
	b, err := os.ReadFile("../../../events/archive-transform/batch.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.KinesisFirehoseEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	resp, err := newHandler(t).Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]int{}
	for _, r := range resp.Records {
		results[r.Result]++
	}
	if results["Ok"] < 1 || results["ProcessingFailed"] != 1 || len(resp.Records) != len(ev.Records) {
		t.Errorf("results %v of %d records, want the good ones Ok and the bad one ProcessingFailed", results, len(ev.Records))
	}
}

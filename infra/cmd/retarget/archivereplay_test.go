package main

import (
	"crypto/sha256"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// replayRow is an archived row as the archiver makes it from a stream record.
func replayRow(t *testing.T, app, id, user string, at time.Time) archive.Row {
	t.Helper()
	rec := &envelope.Record{V: envelope.Version, App: app, UserKey: user, ReceivedAt: at.UnixMilli(),
		Event: envelope.Event{ID: id, Name: "fb_mobile_purchase", Time: at.Add(-time.Minute).Unix(),
			User: envelope.User{KeySource: identity.KindAppUserID, Email: sha256.Sum256([]byte(user + "@example.com")),
				ClientIP: "203.0.113.9"},
			Consent: envelope.Consent{AdsPersonalization: envelope.True},
			Custom:  envelope.CustomData{Value: envelope.Float(9.5), Currency: "EUR", ContentIDs: []string{"sku-1"}}}}
	row, err := archive.FromRecord(rec, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func TestArchiveReplayToKinesalite(t *testing.T) {
	endpoint, kin := kinesalite(t, devStream)
	dir := filepath.Join(t.TempDir(), "archive")
	d1 := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	d2, d3 := d1.Add(24*time.Hour), d1.Add(48*time.Hour)
	rows := map[string]archive.Row{
		"a": replayRow(t, "shop", "a", "uk-1", d1), "b": replayRow(t, "shop", "b", "uk-2", d1),
		"c": replayRow(t, "shop", "c", "uk-1", d2), "d": replayRow(t, "shop", "d", "uk-2", d2),
		"e": replayRow(t, "game", "e", "uk-3", d2), "f": replayRow(t, "shop", "f", "uk-1", d3),
		// g and h arrived with a (one request of uk-1's): the three share a version 2 record.
		"g": replayRow(t, "shop", "g", "uk-1", d1), "h": replayRow(t, "shop", "h", "uk-1", d1),
		// v was archived from a version 1 record.
		"v": replayRowV1(t, "shop", "v", "uk-4", d2),
	}
	writeArchive(t, dir, rows["a"], rows["b"], rows["c"], rows["d"], rows["e"], rows["f"], rows["g"], rows["v"])
	writeArchive(t, dir, rows["d"], rows["h"]) // d archived twice (a batch cut differently)

	h := newHarness(t)
	h.env["AWS_ENDPOINT_URL_KINESIS"] = endpoint // the stream: the dev stack's default name
	h.mustRun(exitUsage, "archive", "replay", "--dir", dir)
	wantContains(t, h.stderr.String(), "--from is required")
	h.mustRun(exitUsage, "archive", "replay", "--dir", dir, "--from", "2026-03-08", "--to", "2026-03-07")

	// Dry run: counts, puts nothing.
	out := h.mustRun(exitOK, "archive", "replay", "--dir", dir, "--from", "2026-03-07", "--to", "2026-03-08", "--dry-run")
	if got := [4]string{fieldValue(t, out, "read"), fieldValue(t, out, "unique"), fieldValue(t, out, "put"), fieldValue(t, out, "failed")}; got != [4]string{"9", "8", "0", "0"} {
		t.Errorf("dry run counts read, unique, put, failed = %v, want 9 8 0 0\n%s", got, out)
	}
	wantContains(t, out, "dry run: 8 event(s) would be replayed; nothing put")
	h.mustRun(exitOK, "archive", "replay", "--dir", dir, "--from", "2026-03-07", "--to", "2026-03-08", "--app", "game", "--dry-run", "--json")
	var res archiveReplayResult
	h.decodeJSON(&res)
	if res.Read != 1 || res.Unique != 1 || res.Put != 0 || !res.DryRun {
		t.Errorf("--app game dry run: %+v", res)
	}
	if n := len(streamRecords(t, kin, devStream)); n != 0 {
		t.Fatalf("a dry run put %d records on the stream", n)
	}

	// The replay: every unique event of the days once, keyed by its user, decodable, marked;
	// the events of one user that arrived together in one version 2 record, in their order.
	out = h.mustRun(exitOK, "archive", "replay", "--dir", dir, "--from", "2026-03-07", "--to", "2026-03-08")
	if got := [5]string{fieldValue(t, out, "read"), fieldValue(t, out, "unique"), fieldValue(t, out, "put"), fieldValue(t, out, "records"), fieldValue(t, out, "failed")}; got != [5]string{"9", "8", "8", "6", "0"} {
		t.Errorf("counts read, unique, put, records, failed = %v, want 9 8 8 6 0\n%s", got, out)
	}
	wantContains(t, out, "retarget-events")
	var ids, groups []string
	for _, r := range streamRecords(t, kin, devStream) {
		recs, err := envelope.Decode(r.Data)
		if err != nil {
			t.Fatalf("record does not decode: %v\n%s", err, r.Data)
		}
		if recs[0].V != envelope.Version {
			t.Errorf("record of version %d, want %d: %s", recs[0].V, envelope.Version, r.Data)
		}
		if len(recs) > 1 {
			var g []string
			for _, rec := range recs {
				g = append(g, rec.Event.ID)
			}
			groups = append(groups, strings.Join(g, ","))
		}
		for i := range recs {
			ids = append(ids, checkReplayed(t, r.PartitionKey, string(r.Data), &recs[i], rows))
		}
	}
	slices.Sort(ids)
	if strings.Join(ids, " ") != "a b c d e g h v" {
		t.Fatalf("stream holds events %v, want each of a b c d e g h v once", ids)
	}
	if len(groups) != 1 || groups[0] != "a,g,h" {
		t.Errorf("records of several events %q, want one of a,g,h", groups)
	}
}

// checkReplayed checks one replayed event (of a record put with partitionKey) against the row
// it came from and returns its id.
func checkReplayed(t *testing.T, partitionKey, data string, rec *envelope.Record, rows map[string]archive.Row) string {
	t.Helper()
	want := rows[rec.Event.ID]
	if !rec.Replay || partitionKey != want.UserKey || rec.UserKey != want.UserKey || rec.ReceivedAt != want.ReceivedAt {
		t.Errorf("event %s: replay %v, partition key %q, uk %q, received_at %d; want true, %q, %q, %d",
			rec.Event.ID, rec.Replay, partitionKey, rec.UserKey, rec.ReceivedAt, want.UserKey, want.UserKey, want.ReceivedAt)
	}
	back, err := archive.FromRecord(rec, archive.Options{})
	want.EnvelopeVersion = envelope.Version // a row archived from version 1 comes back in version 2
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("event %s does not map back to its archived row: %v\n got %+v\nwant %+v", rec.Event.ID, err, back, want)
	}
	if strings.Contains(data, "203.0.113.9") {
		t.Errorf("a field the archive dropped is back on the stream: %s", data)
	}
	return rec.Event.ID
}

// replayRowV1 is replayRow archived from a version 1 record.
func replayRowV1(t *testing.T, app, id, user string, at time.Time) archive.Row {
	t.Helper()
	row := replayRow(t, app, id, user, at)
	rec, err := archive.ToRecord(&row)
	if err != nil {
		t.Fatal(err)
	}
	rec.Replay = false
	rows, err := archive.Decode(envelope.AppendV1(nil, rec), func(string) archive.Options { return archive.Options{} })
	if err != nil || len(rows) != 1 || rows[0].EnvelopeVersion != 1 {
		t.Fatalf("archived from version 1: %+v, %v", rows, err)
	}
	return rows[0]
}

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
	}
	writeArchive(t, dir, rows["a"], rows["b"], rows["c"], rows["d"], rows["e"], rows["f"])
	writeArchive(t, dir, rows["d"]) // the same event archived twice (a batch cut differently)

	h := newHarness(t)
	h.env["AWS_ENDPOINT_URL_KINESIS"] = endpoint // the stream: the dev stack's default name
	h.mustRun(exitUsage, "archive", "replay", "--dir", dir)
	wantContains(t, h.stderr.String(), "--from is required")
	h.mustRun(exitUsage, "archive", "replay", "--dir", dir, "--from", "2026-03-08", "--to", "2026-03-07")

	// Dry run: counts, puts nothing.
	out := h.mustRun(exitOK, "archive", "replay", "--dir", dir, "--from", "2026-03-07", "--to", "2026-03-08", "--dry-run")
	if got := [4]string{fieldValue(t, out, "read"), fieldValue(t, out, "unique"), fieldValue(t, out, "put"), fieldValue(t, out, "failed")}; got != [4]string{"6", "5", "0", "0"} {
		t.Errorf("dry run counts read, unique, put, failed = %v, want 6 5 0 0\n%s", got, out)
	}
	wantContains(t, out, "dry run: 5 event(s) would be replayed; nothing put")
	h.mustRun(exitOK, "archive", "replay", "--dir", dir, "--from", "2026-03-07", "--to", "2026-03-08", "--app", "game", "--dry-run", "--json")
	var res archiveReplayResult
	h.decodeJSON(&res)
	if res.Read != 1 || res.Unique != 1 || res.Put != 0 || !res.DryRun {
		t.Errorf("--app game dry run: %+v", res)
	}
	if n := len(streamRecords(t, kin, devStream)); n != 0 {
		t.Fatalf("a dry run put %d records on the stream", n)
	}

	// The replay: every unique event of the days once, keyed by its user, decodable, marked.
	out = h.mustRun(exitOK, "archive", "replay", "--dir", dir, "--from", "2026-03-07", "--to", "2026-03-08")
	if got := [4]string{fieldValue(t, out, "read"), fieldValue(t, out, "unique"), fieldValue(t, out, "put"), fieldValue(t, out, "failed")}; got != [4]string{"6", "5", "5", "0"} {
		t.Errorf("counts read, unique, put, failed = %v, want 6 5 5 0\n%s", got, out)
	}
	wantContains(t, out, "retarget-events")
	var ids []string
	for _, r := range streamRecords(t, kin, devStream) {
		rec, err := envelope.DecodeOne(r.Data)
		if err != nil {
			t.Fatalf("record does not decode: %v\n%s", err, r.Data)
		}
		ids = append(ids, rec.Event.ID)
		want := rows[rec.Event.ID]
		if !rec.Replay || r.PartitionKey != want.UserKey || rec.UserKey != want.UserKey || rec.ReceivedAt != want.ReceivedAt {
			t.Errorf("event %s: replay %v, partition key %q, uk %q, received_at %d; want true, %q, %q, %d",
				rec.Event.ID, rec.Replay, r.PartitionKey, rec.UserKey, rec.ReceivedAt, want.UserKey, want.UserKey, want.ReceivedAt)
		}
		if back, err := archive.FromRecord(rec, archive.Options{}); err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("event %s does not map back to its archived row: %v\n got %+v\nwant %+v", rec.Event.ID, err, back, want)
		}
		if strings.Contains(string(r.Data), "203.0.113.9") {
			t.Errorf("a field the archive dropped is back on the stream: %s", r.Data)
		}
	}
	slices.Sort(ids)
	if strings.Join(ids, " ") != "a b c d e" {
		t.Fatalf("stream holds events %v, want each of a b c d e once", ids)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// TestArchiverBuffersLikeFirehose: the mapping batches by time (1-5 s) and size, and writes a
// batch before checkpointing it (no partial responses, so a failed write fails the batch).
func TestArchiverBuffersLikeFirehose(t *testing.T) {
	c := archiverESM
	if c.BatchingWindow < time.Second || c.BatchingWindow > 5*time.Second {
		t.Errorf("window %s, want 1-5 s", c.BatchingWindow)
	}
	if c.MaxBatchBytes < 1<<20 || c.BatchSize < 1000 {
		t.Errorf("size buffer %d bytes, %d records: too small to buffer like Firehose", c.MaxBatchBytes, c.BatchSize)
	}
	if c.ReportBatchItemFailures || !c.BisectOnError || c.MaxRetryAttempts == 0 {
		t.Errorf("a failed write must fail, split and retry the batch: %+v", c)
	}
}

func kinesisBatch(app string, ids ...string) events.KinesisEvent {
	var ev events.KinesisEvent
	for i, id := range ids {
		rec := &envelope.Record{V: 1, App: app, UserKey: "uk", ReceivedAt: time.Now().UnixMilli(),
			Event: envelope.Event{ID: id, Name: "Purchase", Time: time.Now().Unix(),
				User: envelope.User{ClientIP: "198.51.100.9", ClientUserAgent: "ua", MADID: "m-1", AnonID: "a-1"}}}
		var r events.KinesisEventRecord
		r.Kinesis.SequenceNumber = fmt.Sprintf("%056d", 1000+i)
		r.Kinesis.Data = envelope.Append(nil, rec)
		ev.Records = append(ev.Records, r)
	}
	return ev
}

// TestArchiveHandlerAtLeastOnce: a batch delivered twice (the mapping retries after a crash that
// came after the write) leaves one file and each event once; the app's opt-in decides the raw
// fields.
func TestArchiveHandlerAtLeastOnce(t *testing.T) {
	ctx := context.Background()
	dir := archivefiles.Dir(t.TempDir())
	opts := func(app string) archive.Options { return archive.Options{KeepRawFields: app == "optin"} }
	h := archiveHandler(dir, opts)
	for range 2 {
		if _, err := h(ctx, kinesisBatch("shop", "e1", "e2", "e3")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h(ctx, kinesisBatch("optin", "o1")); err != nil {
		t.Fatal(err)
	}
	names, _ := dir.List(ctx, "app=shop/")
	if len(names) != 1 {
		t.Errorf("files after a redelivery: %q, want 1", names)
	}
	rows, err := archivefiles.Read(ctx, dir, archivefiles.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("rows %d, want 4", len(rows))
	}
	for _, r := range rows {
		kept := r.ClientIP != "" && r.ClientUserAgent != "" && r.MADID != "" && r.AnonID != ""
		if kept != (r.App == "optin") {
			t.Errorf("app %s: raw fields kept = %v", r.App, kept)
		}
	}
}

// TestArchiveHandlerSkipsReplays: records put back from the archive (retarget archive replay)
// are not archived again: their rows are in the archive already, in their own day, and past
// days' files never change.
func TestArchiveHandlerSkipsReplays(t *testing.T) {
	ctx := context.Background()
	dir := archivefiles.Dir(t.TempDir())
	h := archiveHandler(dir, func(string) archive.Options { return archive.Options{} })
	ev := kinesisBatch("shop", "e1", "r1")
	rec, err := envelope.DecodeOne(ev.Records[1].Kinesis.Data) // kinesisBatch writes one event per record
	if err != nil {
		t.Fatal(err)
	}
	rec.Replay = true
	ev.Records[1].Kinesis.Data = envelope.Append(nil, rec)
	if _, err := h(ctx, ev); err != nil {
		t.Fatal(err)
	}
	rows, err := archivefiles.Read(ctx, dir, archivefiles.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].EventID != "e1" {
		t.Fatalf("rows %+v, want e1 only (r1 is a replay)", rows)
	}
}

// TestArchiveHandlerArchivesEveryEventOfARecord: a version 2 record of several events is one
// row per event, each with its own user where it has one, next to version 1 records; a batch
// delivered again still leaves each event once; a replayed version 2 record is skipped whole.
func TestArchiveHandlerArchivesEveryEventOfARecord(t *testing.T) {
	ctx := context.Background()
	dir := archivefiles.Dir(t.TempDir())
	h := archiveHandler(dir, func(app string) archive.Options { return archive.Options{KeepRawFields: true} })
	now := time.Now()
	ev := func(id string) envelope.Record {
		return envelope.Record{App: "optin", UserKey: "uk", ReceivedAt: now.UnixMilli(),
			Event: envelope.Event{ID: id, Name: "Purchase", Time: now.Unix(), User: envelope.User{ClientIP: "198.51.100.9", MADID: "m-1"}}}
	}
	v1 := ev("e1")
	group := []envelope.Record{ev("e2"), ev("e3"), ev("e4")}
	group[2].Event.User.ClientIP = "203.0.113.4" // an event user of its own
	replayed := []envelope.Record{ev("r1"), ev("r2")}
	for i := range replayed {
		replayed[i].Replay = true
	}
	var batch events.KinesisEvent
	for i, data := range [][]byte{envelope.AppendV1(nil, &v1), envelope.AppendGroup(nil, group), envelope.AppendGroup(nil, replayed)} {
		var r events.KinesisEventRecord
		r.Kinesis.SequenceNumber = fmt.Sprintf("%056d", 2000+i)
		r.Kinesis.Data = data
		batch.Records = append(batch.Records, r)
	}
	for range 2 {
		if _, err := h(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := archivefiles.Read(ctx, dir, archivefiles.Query{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		if _, dup := got[r.EventID]; dup {
			t.Errorf("event %s archived twice", r.EventID)
		}
		got[r.EventID] = r.ClientIP
	}
	want := map[string]string{"e1": "198.51.100.9", "e2": "198.51.100.9", "e3": "198.51.100.9", "e4": "203.0.113.4"}
	if len(rows) != len(want) || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("archived %d rows %v, want %v", len(rows), got, want)
	}
}

type failingFS struct{ archivefiles.FS }

func (failingFS) WriteFile(context.Context, string, []byte) error { return errors.New("disk full") }

// TestArchiveHandlerFailsTheBatch: a batch that cannot be written is not acknowledged.
func TestArchiveHandlerFailsTheBatch(t *testing.T) {
	h := archiveHandler(failingFS{}, func(string) archive.Options { return archive.Options{} })
	if _, err := h(context.Background(), kinesisBatch("shop", "e1")); err == nil {
		t.Error("a failed write returned success: the mapping would checkpoint a batch never archived")
	}
	if _, err := h(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{{Kinesis: events.KinesisRecord{SequenceNumber: "1", Data: []byte(`{"v":9}`)}}}}); err == nil {
		t.Error("an unreadable record returned success")
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// tailInterval is how often the stream is polled when nothing new arrived.
const tailInterval = 250 * time.Millisecond

// streamTail prints the records arriving on the stream, one line each, so a developer sees
// what the ingest function wrote without another tool.
type streamTail struct {
	tailer *kinesisstream.Tailer
	out    *console
	json   bool // print whole records as JSON lines
}

// run polls until ctx ends. Errors are reported (once per distinct message) and polling goes
// on: the stream may be busy or briefly unavailable.
func (t *streamTail) run(ctx context.Context) {
	var lastErr string
	for {
		recs, err := t.tailer.Next(ctx)
		for _, r := range recs {
			t.print(r)
		}
		if ctx.Err() != nil {
			return
		}
		wait := tailInterval
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				t.out.Errorf("tail: %v (retrying)", err)
				lastErr = msg
			}
			wait = time.Second
		} else {
			lastErr = ""
		}
		if len(recs) > 0 && err == nil {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// print writes one record: a summary line, or the record as JSON with -tail-json.
func (t *streamTail) print(r kinesisstream.TailedRecord) {
	if t.json {
		t.out.Println(tailJSON(r))
		return
	}
	t.out.Println(tailLine(r))
}

// tailLine summarises a record: where it is, its envelope version, whose and which event it is
// (a version 2 record of several events: how many, and the first), and its size. The record
// holds hashes only; they are left out for brevity.
//
//	tail shard=shardId-000000000001 seq=4966... v=2 app=sample-shop user=Xk3... event=fb_mobile_purchase id=9f1c... bytes=812
//	tail shard=shardId-000000000001 seq=4967... v=2 app=sample-shop user=Xk3... events=3 first=fb_mobile_purchase id=9f1d... bytes=1210
func tailLine(r kinesisstream.TailedRecord) string {
	head := fmt.Sprintf("tail shard=%s seq=%s", r.ShardID, r.SequenceNumber)
	recs, err := envelope.Decode(r.Data)
	if err != nil {
		return fmt.Sprintf("%s partition_key=%s bytes=%d undecodable: %v", head, r.PartitionKey, len(r.Data), err)
	}
	rec := &recs[0]
	if len(recs) == 1 {
		return fmt.Sprintf("%s v=%d app=%s user=%s event=%s id=%s bytes=%d",
			head, rec.V, rec.App, rec.UserKey, rec.Event.Name, rec.Event.ID, len(r.Data))
	}
	return fmt.Sprintf("%s v=%d app=%s user=%s events=%d first=%s id=%s bytes=%d",
		head, rec.V, rec.App, rec.UserKey, len(recs), rec.Event.Name, rec.Event.ID, len(r.Data))
}

// tailedJSON is the -tail-json line: the Kinesis metadata and the record itself.
type tailedJSON struct {
	ShardID            string          `json:"shard_id"`
	SequenceNumber     string          `json:"sequence_number"`
	PartitionKey       string          `json:"partition_key"`
	ApproximateArrival time.Time       `json:"approximate_arrival"`
	Bytes              int             `json:"bytes"`
	Data               json.RawMessage `json:"data,omitempty"`
	DataBase64         []byte          `json:"data_base64,omitempty"` // when Data is not JSON
}

func tailJSON(r kinesisstream.TailedRecord) string {
	v := tailedJSON{
		ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, PartitionKey: r.PartitionKey,
		ApproximateArrival: r.ApproximateArrival.UTC(), Bytes: len(r.Data),
	}
	if json.Valid(r.Data) {
		v.Data = r.Data
	} else {
		v.DataBase64 = r.Data
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf(`{"shard_id":%q,"sequence_number":%q,"error":%q}`, r.ShardID, r.SequenceNumber, err.Error())
	}
	return string(b)
}

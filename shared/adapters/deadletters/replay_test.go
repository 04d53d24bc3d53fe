package deadletters

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstream"
)

func replayable(id, reason string) ports.DeadLetter {
	return ports.DeadLetter{App: "shop", EventID: id, Reason: reason, Consumer: "capi-forwarder",
		Record: []byte(`{"v":1,"app":"shop","uk":"user-key-` + id + `","received_at":1,"event":{"id":"` + id + `","name":"Purchase","time":1}}`)}
}

func TestReplayFileReplaysMatchesAndKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	all := []ports.DeadLetter{replayable("a", "auth"), replayable("b", "invalid_parameter"), replayable("c", "auth"),
		{EventID: "junk", Reason: "auth", Record: []byte("not an envelope")}}
	if err := NewFile(path).Send(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	s := memstream.New()
	var log bytes.Buffer
	r := Replayer{Publisher: stream.NewPublisher(s, stream.Options{Sleep: func(context.Context, time.Duration) error { return nil }}),
		Filter: Filter{Reason: "auth"}, Log: &log}
	n, err := r.ReplayFile(context.Background(), path)
	if n != 2 || err == nil { // the junk letter cannot be replayed: reported, and kept
		t.Fatalf("n=%d err=%v", n, err)
	}
	recs := s.Records()
	if len(recs) != 2 || recs[0].PartitionKey != "user-key-a" || string(recs[1].Data) != string(all[2].Record) {
		t.Fatalf("stream: %+v", recs)
	}
	left, _ := ReadFile(path)
	if len(left) != 2 || left[0].EventID != "b" || left[1].EventID != "junk" {
		t.Fatalf("left in the file: %+v", left)
	}
}

func TestReplayDryRunChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	NewFile(path).Send(context.Background(), []ports.DeadLetter{replayable("a", "auth")})
	s := memstream.New()
	var log bytes.Buffer
	r := Replayer{Publisher: stream.NewPublisher(s, stream.Options{}), DryRun: true, Log: &log}
	if _, err := r.ReplayFile(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	left, _ := ReadFile(path)
	if len(s.Records()) != 0 || len(left) != 1 || !bytes.Contains(log.Bytes(), []byte("event=a")) {
		t.Fatalf("dry run changed something: %d records, %d letters, log %q", len(s.Records()), len(left), log.String())
	}
}

// A letter's record goes back on the stream as it is, whatever its version: a version 1 record
// of one event, a version 2 record of one event, a version 2 record of several (a forwarder
// that dead-letters a whole record); the partition key is the record's user key.
func TestReplayPutsEveryVersionBackAsItIs(t *testing.T) {
	ev := func(id string) envelope.Record {
		return envelope.Record{App: "shop", UserKey: "user-key-" + id[:1], ReceivedAt: 1700000000000,
			Event: envelope.Event{ID: id, Name: "fb_mobile_purchase", Time: 1700000000,
				User:    envelope.User{KeySource: "app_user_id", Email: identity.Hash{1}, MADID: "m-" + id},
				Consent: envelope.Consent{AdsPersonalization: envelope.True}}}
	}
	a, b1, b2 := ev("a1"), ev("b1"), ev("b2")
	b2.Event.User.ClientIP = "203.0.113.9" // an event user of its own
	letters := []ports.DeadLetter{
		{App: "shop", EventID: "a1", Reason: "auth", Record: envelope.AppendV1(nil, &a)},
		{App: "shop", EventID: "b1", Reason: "auth", Record: envelope.Append(nil, &b1)},
		{App: "shop", EventID: "b2", Reason: "auth", Record: envelope.AppendGroup(nil, []envelope.Record{b1, b2})},
	}
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	if err := NewFile(path).Send(context.Background(), letters); err != nil {
		t.Fatal(err)
	}
	s := memstream.New()
	var log bytes.Buffer
	r := Replayer{Publisher: stream.NewPublisher(s, stream.Options{}), Log: &log}
	if n, err := r.ReplayFile(context.Background(), path); n != 3 || err != nil {
		t.Fatalf("replayed %d, %v", n, err)
	}
	recs := s.Records()
	if len(recs) != 3 {
		t.Fatalf("%d records on the stream, want 3", len(recs))
	}
	for i, l := range letters {
		if !bytes.Equal(recs[i].Data, l.Record) || recs[i].PartitionKey != "user-key-"+l.EventID[:1] {
			t.Errorf("letter %s: put %q with key %q, want its record as it is with key user-key-%s", l.EventID, recs[i].Data, recs[i].PartitionKey, l.EventID[:1])
		}
		got, err := envelope.Decode(recs[i].Data)
		if err != nil || got[len(got)-1].Event.ID != l.EventID {
			t.Errorf("letter %s: the record put back reads %+v, %v", l.EventID, got, err)
		}
	}
	if left, _ := ReadFile(path); len(left) != 0 {
		t.Errorf("%d letters left", len(left))
	}
}

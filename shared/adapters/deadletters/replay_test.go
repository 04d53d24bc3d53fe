package deadletters

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/app/stream"
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

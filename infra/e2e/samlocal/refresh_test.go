//go:build linux

package samlocal

import (
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// refreshKinesisTimes shifts every event of every record, whatever its version, keeps each
// record's version and event count, and leaves a record that does not decode as it is.
func TestRefreshKinesisTimesKeepsVersionsAndEvents(t *testing.T) {
	ev := func(id string, at int64) envelope.Record {
		return envelope.Record{App: "sample-shop", UserKey: "uk", ReceivedAt: at * 1000, Event: envelope.Event{ID: id, Name: "n", Time: at}}
	}
	a, b, c := ev("a", 1000), ev("b", 1500), ev("c", 2000) // c is the latest event
	var kev events.KinesisEvent
	for _, data := range [][]byte{envelope.AppendV1(nil, &a), envelope.AppendGroup(nil, []envelope.Record{b, c}), []byte("junk")} {
		var r events.KinesisEventRecord
		r.Kinesis.Data = data
		kev.Records = append(kev.Records, r)
	}
	now := time.Unix(1_800_000_000, 0)
	refreshKinesisTimes(&kev, now)
	shift := now.Add(-time.Minute).Unix() - 2000
	want := []struct {
		v          int
		receivedAt int64 // the record's, in milliseconds
		times      []int64
	}{{1, (1000 + shift) * 1000, []int64{1000 + shift}}, {2, (1500 + shift) * 1000, []int64{1500 + shift, 2000 + shift}}}
	for i, w := range want {
		recs, err := envelope.Decode(kev.Records[i].Kinesis.Data)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if len(recs) != len(w.times) || recs[0].V != w.v {
			t.Fatalf("record %d: %d events of version %d, want %d of version %d", i, len(recs), recs[0].V, len(w.times), w.v)
		}
		for j, r := range recs {
			if r.Event.Time != w.times[j] || r.ReceivedAt != w.receivedAt {
				t.Errorf("record %d event %d: time %d received_at %d, want %d and %d", i, j, r.Event.Time, r.ReceivedAt, w.times[j], w.receivedAt)
			}
		}
	}
	if string(kev.Records[2].Kinesis.Data) != "junk" {
		t.Errorf("an undecodable record changed: %q", kev.Records[2].Kinesis.Data)
	}
}

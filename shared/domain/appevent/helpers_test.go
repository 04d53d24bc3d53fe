package appevent

import (
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// eventRecords decodes b's records and returns the envelope record of each accepted event, in
// the order of b.Accepted. It fails t unless the records carry exactly the accepted events:
// each record's events are, in order, the batch's events that name it, all under its partition
// key.
func eventRecords(t testing.TB, b *Batch) []*envelope.Record {
	t.Helper()
	byRecord := make([][]int, len(b.Records))
	for i, a := range b.Accepted {
		if a.Record < 0 || a.Record >= len(b.Records) {
			t.Fatalf("event %d names record %d of %d", a.Index, a.Record, len(b.Records))
		}
		byRecord[a.Record] = append(byRecord[a.Record], i)
	}
	out := make([]*envelope.Record, len(b.Accepted))
	for r, rec := range b.Records {
		if !json.Valid(rec.Data) {
			t.Fatalf("record %d is not valid JSON: %s", r, rec.Data)
		}
		evs, err := envelope.Decode(rec.Data)
		if err != nil {
			t.Fatalf("record %d does not decode: %v\n%s", r, err, rec.Data)
		}
		if len(evs) != rec.Events || len(evs) != len(byRecord[r]) {
			t.Fatalf("record %d holds %d events, says %d, the batch names %d: %s", r, len(evs), rec.Events, len(byRecord[r]), rec.Data)
		}
		for j, i := range byRecord[r] {
			a := b.Accepted[i]
			if evs[j].UserKey != rec.PartitionKey || a.UserKey != rec.PartitionKey || evs[j].Event.ID != a.EventID {
				t.Fatalf("record %d event %d: key %q id %q, batch: key %q id %q, partition key %q", r, j,
					evs[j].UserKey, evs[j].Event.ID, a.UserKey, a.EventID, rec.PartitionKey)
			}
			out[i] = &evs[j]
		}
	}
	return out
}

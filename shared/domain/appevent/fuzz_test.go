package appevent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// FuzzParseBatch checks the parser's invariants on arbitrary bodies: it never panics; it
// accepts only valid JSON (differential check against encoding/json); every event is either
// accepted or rejected, once; every record is a valid envelope that carries exactly the events
// the batch says, under their user key; and every event comes out exactly as it does when sent
// alone, so what the parser reuses from one event to another (identity, user and device
// objects, the record's user and device) and how it groups them never changes a result.
func FuzzParseBatch(f *testing.F) {
	for _, name := range []string{"valid-batch.json", "partly-invalid-batch.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "..", "events", "ingest", name))
		if err != nil {
			f.Fatal(err)
		}
		var req struct{ Body string }
		if err := json.Unmarshal(raw, &req); err != nil {
			f.Fatal(err)
		}
		f.Add(req.Body)
	}
	f.Add(body(validEvent()))
	f.Add(body(validEvent(), set(validEvent(), "event_id", "b"), set(set(validEvent(), "event_id", "c"), "consent.ads_personalization", false)))
	f.Add(body(set(validEvent(), "user.email", 1), set(set(validEvent(), "user.email", 1), "event_id", "b")))
	f.Add(`{"events":[{"event_id":"a\u00e9\ud83d\ude00","user":{"email":"\"q\"@x.io"}}]}`)
	f.Add(`{"events":[1,"x",null,[],{}]}`)
	f.Add(`{"events":[{"custom_data":{"contents":[{"id":"a"},{"id":1}],"content_ids":["a",2]}}]}`)
	f.Add(`{"events":[{"event_time":1e400,"device":{"screen_width":-0.0}}]}`)
	p := NewParser(testPeps)
	f.Fuzz(func(t *testing.T, in string) {
		b, err := p.Parse(testApp, in, testNow)
		if err != nil {
			return
		}
		defer b.Release()
		if !json.Valid([]byte(in)) {
			t.Fatalf("accepted a body that is not valid JSON: %q", in)
		}
		seen := make([]int, b.Total)
		for _, a := range b.Accepted {
			seen[a.Index]++
		}
		recs := eventRecords(t, b) // every record decodes, and carries exactly its events
		checkRecordSizes(t, b)
		for _, r := range b.Rejected {
			seen[r.Index]++
			if len(r.Errors) == 0 {
				t.Fatalf("rejection without errors: %+v", r)
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("event %d reported %d times", i, n)
			}
		}
		checkSameAsAlone(t, p, in, b, recs)
	})
}

// checkRecordSizes checks that a record over envelope.MaxRecordBytes holds one event only, and
// that a user's records are split only where the next event would not fit.
func checkRecordSizes(t *testing.T, b *Batch) {
	for _, r := range b.Records {
		if len(r.Data) > envelope.MaxRecordBytes && r.Events != 1 {
			t.Fatalf("record of %d bytes holds %d events", len(r.Data), r.Events)
		}
	}
}

// checkSameAsAlone parses each event of in on its own and compares with the batch's outcome.
func checkSameAsAlone(t *testing.T, p *Parser, in string, b *Batch, recs []*envelope.Record) {
	var doc struct{ Events []json.RawMessage }
	if json.Unmarshal([]byte(in), &doc) != nil || len(doc.Events) != b.Total {
		return // e.g. a repeated "events" key, which encoding/json and the parser read differently
	}
	data := map[int]*envelope.Record{}
	for i, a := range b.Accepted {
		data[a.Index] = recs[i]
	}
	errs := map[int][]FieldError{}
	for _, r := range b.Rejected {
		errs[r.Index] = r.Errors
	}
	for i, raw := range doc.Events {
		alone, err := p.Parse(testApp, `{"events":[`+string(raw)+`]}`, testNow)
		if err != nil {
			t.Fatalf("event %d alone: %v", i, err)
		}
		switch {
		case len(alone.Accepted) == 1:
			if onlyDuplicate(errs[i]) {
				break // repeats an earlier event's id: the one rule that depends on the other events
			}
			if got := eventRecords(t, alone)[0]; !reflect.DeepEqual(data[i], got) {
				t.Fatalf("event %d: in the batch\n%+v\nalone\n%+v", i, data[i], got)
			}
		default:
			prefix := "events[" + strconv.Itoa(i) + "]"
			var want []FieldError
			for _, e := range errs[i] {
				if e.Code != "duplicate" { // the only rule that depends on the other events
					e.Field = "events[0]" + strings.TrimPrefix(e.Field, prefix)
					want = append(want, e)
				}
			}
			if !reflect.DeepEqual(alone.Rejected[0].Errors, want) {
				t.Fatalf("event %d errors: in the batch %+v, alone %+v", i, want, alone.Rejected[0].Errors)
			}
		}
		alone.Release()
	}
}

// onlyDuplicate reports whether errs is exactly a rejection for a repeated event_id.
func onlyDuplicate(errs []FieldError) bool {
	return len(errs) == 1 && errs[0].Code == "duplicate"
}

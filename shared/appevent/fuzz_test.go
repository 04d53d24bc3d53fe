package appevent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/retarget-dev/retarget/shared/envelope"
)

// FuzzParseBatch checks the parser's invariants on arbitrary bodies: it never panics; it
// accepts only valid JSON (differential check against encoding/json); every event is either
// accepted or rejected, once; and every accepted record is a valid v1 envelope.
func FuzzParseBatch(f *testing.F) {
	for _, name := range []string{"valid-batch.json", "partly-invalid-batch.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "events", "ingest", name))
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
			if !json.Valid(a.Data) {
				t.Fatalf("record is not valid JSON: %s", a.Data)
			}
			rec, err := envelope.Decode(a.Data)
			if err != nil {
				t.Fatalf("record does not decode: %v\n%s", err, a.Data)
			}
			if rec.UserKey != a.UserKey || rec.Event.ID != a.EventID {
				t.Fatalf("record and batch disagree: %s", a.Data)
			}
		}
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
	})
}

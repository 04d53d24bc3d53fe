package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecode: Decode never panics on any bytes; what it accepts encodes again (AppendGroup) to a
// record that decodes to the same events, byte for byte stable from then on.
func FuzzDecode(f *testing.F) {
	// Seeds: the stream records of the Kinesis fixtures, and a few edges.
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "events", "capi-forwarder", "batch.json"))
	if err != nil {
		f.Fatal(err)
	}
	var ev struct {
		Records []struct {
			Kinesis struct {
				Data string `json:"data"`
			} `json:"kinesis"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		f.Fatal(err)
	}
	for _, r := range ev.Records {
		data, err := base64.StdEncoding.DecodeString(r.Kinesis.Data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2,"app":"a"}`))
	f.Add([]byte(`{"v":1,"app":"a","uk":"k","event":{"id":"\u00e9","time":1e3,"custom":{"value":-0.0}}}`))
	f.Add([]byte(`{"v":1,"app":"a","uk":"k","event":{"id":"i","name":"n","time":1,"server":true}}`))
	f.Add([]byte(`{"v":1,"app":"a","uk":"k","event":{"id":"i","name":"n","time":1,"server":false,"Server":true}}`))
	f.Add([]byte(`{"v":1,"app":"a","uk":"k","received_at":1,"replay":true,"event":{"id":"i","name":"n","time":1}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":2,"app":"a","uk":"k","received_at":1,"server":true,"user":{"em":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"},"device":{"platform":"ios"},"events":[{"id":"i","name":"n","time":1},{"id":"j","name":"n","time":2,"user":{},"device":{"locale":"fr"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Decode(data)
		if err != nil {
			return
		}
		for i := range recs {
			recs[i].V = Version
		}
		once := AppendGroup(nil, recs)
		again, err := Decode(once)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, once)
		}
		// An empty list and no list encode alike (both left out): compare them as equal.
		for _, x := range [][]Record{recs, again} {
			for i := range x {
				if len(x[i].Event.Custom.ContentIDs) == 0 {
					x[i].Event.Custom.ContentIDs = nil
				}
				if len(x[i].Event.Custom.Contents) == 0 {
					x[i].Event.Custom.Contents = nil
				}
			}
		}
		if !reflect.DeepEqual(recs, again) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", recs, again)
		}
		if twice := AppendGroup(nil, again); !bytes.Equal(once, twice) {
			t.Fatalf("encoding is not stable:\n%s\n%s", once, twice)
		}
	})
}

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

// FuzzDecode: Decode never panics on any bytes; what it accepts encodes again (Append) to a
// record that decodes to the same value, byte for byte stable from then on.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			return
		}
		once := Append(nil, r)
		again, err := Decode(once)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, once)
		}
		// An empty list and no list encode alike (both left out): compare them as equal.
		for _, x := range []*Record{r, again} {
			if len(x.Event.Custom.ContentIDs) == 0 {
				x.Event.Custom.ContentIDs = nil
			}
			if len(x.Event.Custom.Contents) == 0 {
				x.Event.Custom.Contents = nil
			}
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, again)
		}
		if twice := Append(nil, again); !bytes.Equal(once, twice) {
			t.Fatalf("encoding is not stable:\n%s\n%s", once, twice)
		}
	})
}

package envelope

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// decodeSeeds are records of every version and shape, good and broken, for the tests and the
// fuzz target.
func decodeSeeds(t testing.TB) [][]byte {
	full := fullRecord()
	other := fullRecord()
	other.Event.ID, other.Event.User.Email, other.Event.Device = "9f1c-2", [32]byte{}, Device{Platform: "android", OSVersion: "14"}
	bare := fullRecord()
	bare.Event.ID, bare.Event.User, bare.Event.Device, bare.Event.Custom = "9f1c-3", User{}, Device{}, CustomData{}
	seeds := [][]byte{
		Append(nil, full),
		AppendGroup(nil, []Record{*full, *other, *bare}),
		AppendGroup(nil, []Record{*bare, *full}),
		AppendV1(nil, full),
		AppendV1(nil, other),
		[]byte(`{"v":1}`),
		[]byte(`{"v":2,"app":"a"}`),
		[]byte(`{"v":3,"app":"a","uk":"k","events":[{"id":"i","name":"n"}]}`),
		[]byte(`{"v":1,"app":"a","uk":"k","event":{"id":"\u00e9","time":1e3,"custom":{"value":-0.0}}}`),
		[]byte(`{"v":1,"app":"a","uk":"k","event":{"id":"i","name":"n","time":1,"server":false,"Server":true}}`),
		[]byte(`{"V":2,"app":"a","uk":"k","events":[{"id":"i","name":"n"}]}`),
		[]byte(`{"v":2,"app":"a","uk":"k","app":"b","events":[{"id":"i","name":"n"}]}`),
		[]byte(`{"v":2,"app":"a","uk":"k","events":[{"id":"i","name":"n","custom_data":{"content_ids":["a",null,"\ud83d\ude00\udc00"],"contents":[null,{"id":"x","quantity":-0}]}}]}`),
		[]byte(` {"v":2 , "uk":"k","events":[{"id":"i","name":"n","user":null,"device":{}}],"app":"a","user":{"em":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}} `),
		[]byte(`{"v":2,"app":"a","uk":"k","events":[{"id":"i","name":"n","consent":{"ldu":null,"ldu_country":1e0}}]}`),
		// Digests: trailing bits not zero (base64 strict), a character outside base64url, hex in v2.
		[]byte(`{"v":2,"app":"a","uk":"k","user":{"em":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFV"},"events":[{"id":"i","name":"n"}]}`),
		[]byte(`{"v":2,"app":"a","uk":"k","user":{"em":"47DEQpj8HBSa+_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"},"events":[{"id":"i","name":"n"}]}`),
		[]byte(`{"v":2,"app":"a","uk":"k","user":{"em":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},"events":[{"id":"i","name":"n"}]}`),
		[]byte("{\"v\":2,\"app\":\"a\xff\",\"uk\":\"k\",\"events\":[{\"id\":\"i\",\"name\":\"n\",\"x\":{\"\xc3\":[1,{}]}}]}"),
		[]byte(`{"v":1,"app":"a","uk":"k","event":{"id":"i","name":"n","user":{"em":"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"}}}`),
		[]byte(`null`),
		[]byte(`[]`),
		[]byte(``),
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "events", "capi-forwarder", "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Records []struct {
			Kinesis struct {
				Data string `json:"data"`
			} `json:"kinesis"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	for _, r := range ev.Records {
		data, err := base64.StdEncoding.DecodeString(r.Kinesis.Data)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

// matchDecode fails t unless d.Decode(data) is what Decode(data) is.
func matchDecode(t *testing.T, d *Decoder, data []byte) {
	t.Helper()
	want, wantErr := Decode(data)
	got, err := d.Decode(data)
	if (err == nil) != (wantErr == nil) || errors.Is(err, ErrUnsupportedVersion) != errors.Is(wantErr, ErrUnsupportedVersion) {
		t.Fatalf("%q: Decoder error %v, Decode error %v", data, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: Decoder and Decode differ:\n%+v\n%+v", data, got, want)
	}
	d.Reset()
	batch := `{"v":1}` + string(data) // a record within a batch's string
	got, err = d.DecodeMoreString(batch[len(`{"v":1}`):])
	if (err == nil) != (wantErr == nil) || err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: DecodeMoreString differs from Decode: %v", data, err)
	}
}

func TestDecoderMatchesDecode(t *testing.T) {
	var d Decoder
	for _, data := range decodeSeeds(t) {
		matchDecode(t, &d, data)
	}
}

// The records the writers make take the fast path; what it does not take on goes to Decode
// and comes back the same.
func TestDecoderFastAndReferencePaths(t *testing.T) {
	full := fullRecord()
	other := fullRecord()
	other.Event.ID = "9f1c-2"
	for _, tc := range []struct {
		name string
		data string
		slow bool
	}{
		{"v2 group", string(AppendGroup(nil, []Record{*full, *other})), false},
		{"v1", string(AppendV1(nil, full)), false},
		{"escapes and invalid UTF-8", "{\"v\":2,\"app\":\"a\\u00e9\\n\xff\",\"uk\":\"k\",\"events\":[{\"id\":\"i\",\"name\":\"n\"}]}", false},
		{"unknown members", `{"v":2,"app":"a","uk":"k","x":[{"y":"\u0000"},1.5e3,null,true],"events":[{"id":"i","name":"n","server":true}]}`, false},
		{"name differing in case", `{"v":2,"App":"a","uk":"k","events":[{"id":"i","name":"n"}]}`, true},
		{"name folding to a known one", `{"v":2,"app":"a","u` + "\u212a" + `":"k","events":[{"id":"i","name":"n"}]}`, true},
		{"escaped name", `{"v":2,"\u0061pp":"a","uk":"k","events":[{"id":"i","name":"n"}]}`, true},
		{"duplicate member, last wins", `{"v":2,"app":"a","uk":"k","uk":"k2","events":[{"id":"i","name":"n"}]}`, true},
		{"duplicate object, merged", `{"v":2,"app":"a","uk":"k","user":{"madid":"m"},"user":{"anon_id":"x"},"events":[{"id":"i","name":"n"}]}`, true},
		{"version not first", `{"app":"a","v":2,"uk":"k","events":[{"id":"i","name":"n"}]}`, true},
		{"integer as 1e3", `{"v":2,"app":"a","uk":"k","events":[{"id":"i","name":"n","time":1e3}]}`, true},
		{"no events", `{"v":2,"app":"a","uk":"k","events":[]}`, true},
		{"unsupported version", `{"v":3}`, true},
		{"trailing data", `{"v":2,"app":"a","uk":"k","events":[{"id":"i","name":"n"}]} x`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			matchDecode(t, &d, []byte(tc.data))
			if slow := d.slow > 0; slow != tc.slow {
				t.Errorf("reference decoder used: %v, want %v", slow, tc.slow)
			}
		})
	}
}

// DecodeMore keeps the events of earlier records valid; Decode starts again.
func TestDecoderMemory(t *testing.T) {
	full := fullRecord()
	a := Append(nil, full)
	other := fullRecord()
	other.Event.Custom.ContentIDs = []string{"other"}
	other.Event.Custom.Contents = []Content{{ID: "other"}}
	other.Event.User.ClientUserAgent = "Shop/7.7" // no escape: every string is a substring
	b := AppendGroup(nil, []Record{*other, *other})
	var d Decoder
	first, err := d.DecodeMore(a)
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.DecodeMore(b)
	if err != nil || len(second) != 2 {
		t.Fatal(err)
	}
	want, _ := Decode(a)
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("DecodeMore overwrote the first record's events:\n%+v\n%+v", first, want)
	}
	if got := append(second[0].Event.Custom.ContentIDs, "appended"); &got[0] == &second[1].Event.Custom.ContentIDs[0] {
		t.Fatal("appending to one event's content_ids writes into the next event's")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.Decode(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("Decode of a reused Decoder: %.0f allocations per record, want 1 (the record's string)", allocs)
	}
}

// FuzzDecoderMatchesDecode: the Decoder returns what Decode returns for any bytes, with a fresh
// Decoder and with one that decoded other records before.
func FuzzDecoderMatchesDecode(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	var reused Decoder
	prev := Append(nil, fullRecord())
	f.Fuzz(func(t *testing.T, data []byte) {
		var fresh Decoder
		matchDecode(t, &fresh, data)
		if _, err := reused.DecodeMore(prev); err != nil {
			t.Fatal(err)
		}
		matchDecode(t, &reused, data) // Decode resets: the memory of prev is reused
	})
}

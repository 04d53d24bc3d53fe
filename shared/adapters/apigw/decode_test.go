package apigw

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// runtimeDecode is how the Lambda runtime's reflection handler reads an event.
func runtimeDecode(payload []byte) (events.APIGatewayProxyRequest, error) {
	var req events.APIGatewayProxyRequest
	err := json.NewDecoder(bytes.NewReader(payload)).Decode(&req)
	return req, err
}

// fixtures are the proxy events of events/ingest (shared with sam local invoke).
func fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "events", "ingest")
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if filepath.Base(n) == "env.json" {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// Payloads that take every path of DecodeProxyRequest: the fast one with every kind of escape,
// and each case it leaves to encoding/json.
var decodeCases = map[string]string{
	"plain body":            `{"httpMethod":"POST","body":"hello","isBase64Encoded":false}`,
	"escaped body":          `{"body":"{\"events\":[{\"a\":\"b\\\\c\"}]}\n","path":"/v1/events"}`,
	"every escape":          `{"body":"\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u20AC x"}`,
	"surrogate pair":        `{"body":"\ud83d\ude00!"}`,
	"lone high surrogate":   `{"body":"\ud83dA\u0042"}`,
	"high then non-low":     `{"body":"\ud83d\u0041"}`,
	"lone low surrogate":    `{"body":"\ude00"}`,
	"surrogate at end":      `{"body":"abc\ud83d"}`,
	"raw utf-8":             "{\"body\":\"Jürgen München 東京 \xef\xbf\xbd\"}",
	"invalid utf-8":         "{\"body\":\"a\xffb\xc3(c\xed\xa0\x80d\"}",
	"invalid utf-8 at end":  "{\"body\":\"abcdefghij\xe2\x82\"}",
	"long plain body":       `{"body":"` + strings.Repeat("abcdefgh", 40) + `x"}`,
	"long escaped body":     `{"body":"` + strings.Repeat(`{\"k\":\"v\"},`, 40) + `"}`,
	"empty body":            `{"body":""}`,
	"whitespace":            " \n{ \"body\" :\t\"x\" , \"path\" : \"/p\" }\r\n",
	"nested body keys":      `{"headers":{"body":"no"},"requestContext":{"authorizer":{"body":{"x":[1,"]}"]}}},"body":"yes"}`,
	"body first":            `{"body":"x","headers":{"a":"b"},"multiValueHeaders":{"a":["b","c"]},"queryStringParameters":null}`,
	"no body":               `{"path":"/v1/health","httpMethod":"GET"}`,
	"empty object":          `{}`,
	"null body":             `{"body":null,"path":"/p"}`,
	"number body":           `{"body":12}`,
	"object body":           `{"body":{"a":1}}`,
	"capitalised key":       `{"Body":"x"}`,
	"upper-case key":        `{"BODY":"x","body":"y"}`,
	"escaped key":           `{"b\u006fdy":"x"}`,
	"duplicate body":        `{"body":"a","body":"b"}`,
	"body then null":        `{"body":"a","body":null}`,
	"trailing data":         `{"body":"a"} {"body":"b"}`,
	"trailing garbage":      `{"body":"a"}x`,
	"invalid escape":        `{"body":"a\qb"}`,
	"short unicode escape":  `{"body":"a\u12"}`,
	"control character":     "{\"body\":\"a\tb\"}",
	"unterminated body":     `{"body":"abc`,
	"unterminated escape":   `{"body":"abc\`,
	"invalid elsewhere":     `{"body":"a","path":}`,
	"invalid literal":       `{"isBase64Encoded":tru,"body":"a"}`,
	"wrong type elsewhere":  `{"body":"a","isBase64Encoded":"yes"}`,
	"mismatched brackets":   `{"headers":{"a":"b"],"body":"a"}`,
	"not an object":         `["body","x"]`,
	"empty":                 ``,
	"base64 body":           `{"body":"eyJldmVudHMiOltdfQ==","isBase64Encoded":true}`,
	"request context":       `{"requestContext":{"identity":{"apiKeyId":"k","sourceIp":"203.0.113.7"},"authorizer":{"app":"a","n":1.5}},"body":"{}"}`,
	"quote-like in string":  `{"path":"a\"b\\","body":"c"}`,
	"escape at word border": `{"body":"abcdefg\"hijklmn\\op"}`,
}

func TestDecodeProxyRequestMatchesTheRuntime(t *testing.T) {
	all := map[string][]byte{}
	for name, p := range decodeCases {
		all[name] = []byte(p)
	}
	for name, p := range fixtures(t) {
		all[name] = p
	}
	for name, p := range all {
		t.Run(name, func(t *testing.T) { sameAsRuntime(t, p) })
	}
}

func sameAsRuntime(t *testing.T, payload []byte) {
	t.Helper()
	want, wantErr := runtimeDecode(payload)
	got, err := DecodeProxyRequest(payload)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, the runtime's %v", payload, err, wantErr)
	}
	if wantErr != nil {
		if err.Error() != wantErr.Error() {
			t.Fatalf("%q: error %q, the runtime's %q", payload, err, wantErr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", payload, got, want)
	}
}

func FuzzDecodeProxyRequest(f *testing.F) {
	for _, p := range decodeCases {
		f.Add([]byte(p))
	}
	for _, p := range fixtures(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) { sameAsRuntime(t, payload) })
}

// The fast path is the one taken for what API Gateway sends: its body found and unquoted
// without encoding/json (findBody is what makes DecodeProxyRequest cheap).
func TestFixturesTakeTheFastPath(t *testing.T) {
	for name, p := range fixtures(t) {
		want, err := runtimeDecode(p)
		if err != nil || want.Body == "" {
			continue // no body (GET /v1/health)
		}
		if _, _, body, ok := findBody(p); !ok || body != want.Body {
			t.Fatalf("%s: body not found (%v) or not as encoding/json reads it", name, ok)
		}
	}
}

// ProxyHandler answers exactly what the runtime's reflection handler answers for the same
// function: the same bytes, and the same errors.
func TestProxyHandlerMatchesTheRuntime(t *testing.T) {
	echo := func(_ context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		if req.Path == "/fail" {
			return events.APIGatewayProxyResponse{}, context.DeadlineExceeded
		}
		return events.APIGatewayProxyResponse{StatusCode: 202, Headers: map[string]string{"Content-Type": "application/json"},
			Body: `{"echo":` + jsonString(req.Body) + `,"<&>":true}`}, nil
	}
	payloads := [][]byte{[]byte(`{"path":"/fail","body":"x"}`), []byte(`{"body":"\u003c\u0026\u003e"}`), []byte(`not json`)}
	for _, p := range fixtures(t) {
		payloads = append(payloads, p)
	}
	fast, slow := ProxyHandler(echo), lambda.NewHandler(echo)
	for _, p := range payloads {
		got, err := fast.Invoke(context.Background(), p)
		want, wantErr := slow.Invoke(context.Background(), p)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("%.60q:\n got %q, %v\nwant %q, %v", p, got, err, want, wantErr)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func BenchmarkDecodeProxyRequest(b *testing.B) {
	payload := fixtures(b)["valid-batch.json"]
	var req events.APIGatewayProxyRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		b.Fatal(err)
	}
	// A request of 100 events (about 110 KB of body), as a server-side batch sends.
	var body struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal([]byte(req.Body), &body); err != nil {
		b.Fatal(err)
	}
	evs := make([]json.RawMessage, 100)
	for i := range evs {
		evs[i] = body.Events[i%len(body.Events)]
	}
	raw, _ := json.Marshal(map[string]any{"events": evs})
	req.Body = string(raw)
	payload, _ = json.Marshal(req)
	for _, bc := range []struct {
		name   string
		decode func([]byte) (events.APIGatewayProxyRequest, error)
	}{{"fast", DecodeProxyRequest}, {"encoding-json", runtimeDecode}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

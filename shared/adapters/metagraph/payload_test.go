package metagraph

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/ports"
)

// The payload an upload sends is the one the sync planned with: for random chunks (single-key,
// multi-key and value-based schemas, cells that need escaping), in JSON and form bodies, the
// "payload" parameter on the wire is audiences.AppendPayload's output and its length is
// audiences.PayloadSize, the size audiences.Chunk cut by.
func TestUploadSendsThePlannedPayload(t *testing.T) {
	schemas := [][]string{
		{"EXTERN_ID", "EMAIL", "PHONE", "MADID"},
		{"EXTERN_ID", "EMAIL", "PHONE", "MADID", "LOOKALIKE_VALUE"},
		{"EMAIL_SHA256"},
		{"EXTERN_ID"},
		{"MADID"},
	}
	pieces := []string{"u-", hashA, "<", "&", `"`, `\`, "\n", "\x01", "é", "😀", "\u2028", "\xff"}
	values := []string{"0", "12.5", "250", "0.000001", "1e3"}
	rnd := rand.New(rand.NewPCG(3, 5))
	g := newGraph(t, ackJSON)
	clients := map[bool]*Client{
		false: newClient(t, g, nil),
		true:  newClient(t, g, func(c *Config) { c.FormEncoded = true }),
	}
	for n := range 40 {
		schema := schemas[rnd.IntN(len(schemas))]
		rows := make([][]string, 1+rnd.IntN(200))
		for i := range rows {
			row := make([]string, len(schema))
			for j, col := range schema {
				if col == "LOOKALIKE_VALUE" {
					row[j] = values[rnd.IntN(len(values))]
					continue
				}
				var b strings.Builder
				for range rnd.IntN(5) {
					b.WriteString(pieces[rnd.IntN(len(pieces))])
				}
				row[j] = b.String()
			}
			rows[i] = row
		}
		form := n%2 == 1
		for i, chunk := range audiences.Chunk(rows, schema, 1+rnd.IntN(80), 200+rnd.IntN(4000)) {
			u := ports.AudienceUpload{AudienceID: "1", Op: ports.AudienceAdd, Schema: schema, Rows: chunk}
			if _, err := clients[form].Upload(context.Background(), u); err != nil {
				t.Fatal(err)
			}
			var sent []byte
			if body := g.last(t).body; form {
				v, err := url.ParseQuery(string(body))
				if err != nil {
					t.Fatal(err)
				}
				sent = []byte(v.Get("payload"))
			} else {
				var b struct {
					Payload json.RawMessage `json:"payload"`
				}
				if err := json.Unmarshal(body, &b); err != nil {
					t.Fatal(err)
				}
				sent = b.Payload
			}
			want, err := audiences.AppendPayload(nil, schema, chunk)
			if err != nil {
				t.Fatal(err)
			}
			if string(sent) != string(want) {
				t.Fatalf("request %d chunk %d (form %v): sent\n%s\nplanned\n%s", n, i, form, sent, want)
			}
			if size := audiences.PayloadSize(schema, chunk); size != len(sent) {
				t.Fatalf("request %d chunk %d (form %v): planned %d bytes, sent %d", n, i, form, size, len(sent))
			}
		}
	}
}

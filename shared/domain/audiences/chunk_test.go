package audiences

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var defaultSchema = []string{"EXTERN_ID", "EMAIL", "PHONE", "MADID"}

// realisticRows returns n rows of the default schema with full-size cells.
func realisticRows(n int) [][]string {
	rows := make([][]string, n)
	for i := range rows {
		rows[i] = []string{
			fmt.Sprintf("%043d", i), // user key length
			strings.Repeat("a", 64), // SHA-256 hex
			strings.Repeat("b", 64),
			fmt.Sprintf("6d92078a-8246-4ba4-ae5b-%012d", i),
		}
	}
	return rows
}

// encodeWithStdlib is the payload as encoding/json writes Meta's form of it: the single-key
// form for one single-key column, else the multi-key form with LOOKALIKE_VALUE cells as numbers.
func encodeWithStdlib(t testing.TB, schema []string, rows [][]string) []byte {
	t.Helper()
	var v any
	if len(schema) == 1 && singleKeySchemas[schema[0]] {
		data := []string{}
		for _, r := range rows {
			data = append(data, r[0])
		}
		v = struct {
			Schema string   `json:"schema"`
			Data   []string `json:"data"`
		}{schema[0], data}
	} else {
		data := [][]any{}
		for _, r := range rows {
			row := []any{}
			for j, cell := range r {
				if schema[j] == "LOOKALIKE_VALUE" {
					row = append(row, json.Number(cell))
				} else {
					row = append(row, cell)
				}
			}
			data = append(data, row)
		}
		v = struct {
			Schema []string `json:"schema"`
			IsRaw  bool     `json:"is_raw"`
			Data   [][]any  `json:"data"`
		}{schema, true, data}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// payload is AppendPayload's output for rows it accepts.
func payload(t testing.TB, schema []string, rows [][]string) []byte {
	t.Helper()
	b, err := AppendPayload(nil, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sizes(chunks [][][]string) []int {
	var n []int
	for _, c := range chunks {
		n = append(n, len(c))
	}
	return n
}

// 25,000 adds with the defaults: three requests, 10,000 / 10,000 / 5,000 rows, in order.
func TestChunkDefaults25000Rows(t *testing.T) {
	rows := realisticRows(25_000)
	for _, args := range [][2]int{{MaxRows, MaxPayloadBytes}, {0, 0}, {50_000, 0}} {
		chunks := Chunk(rows, defaultSchema, args[0], args[1])
		if got := sizes(chunks); !slices.Equal(got, []int{10_000, 10_000, 5_000}) {
			t.Fatalf("Chunk(%v): sizes %v", args, got)
		}
		if !slices.EqualFunc(slices.Concat(chunks...), rows, slices.Equal) {
			t.Fatal("chunks do not add up to the rows in order")
		}
		for i, c := range chunks {
			if n := PayloadSize(defaultSchema, c); n > MaxPayloadBytes {
				t.Fatalf("request %d: %d bytes over the cap", i, n)
			}
		}
	}
	t.Logf("10,000 default-schema rows: %d bytes of payload", PayloadSize(defaultSchema, rows[:10_000]))
}

func TestChunkByteCap(t *testing.T) {
	rows := realisticRows(100)
	rowBytes := PayloadSize(defaultSchema, rows[:1]) - PayloadSize(defaultSchema, nil)
	exactly7 := PayloadSize(defaultSchema, rows[:7])
	if exactly7 != PayloadSize(defaultSchema, nil)+7*rowBytes+6 {
		t.Fatalf("size of 7 rows %d: rows of %d bytes plus commas expected", exactly7, rowBytes)
	}
	tests := []struct {
		name     string
		maxRows  int
		maxBytes int
		want     []int
	}{
		{"exactly seven rows fit", 0, exactly7, []int{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2}},
		{"one byte less: six", 0, exactly7 - 1, []int{6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 4}},
		{"row cap binds first", 40, exactly7 * 10, []int{40, 40, 20}},
		{"byte cap binds first", 10, exactly7, []int{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := Chunk(rows, defaultSchema, tt.maxRows, tt.maxBytes)
			if got := sizes(chunks); !slices.Equal(got, tt.want) {
				t.Fatalf("sizes %v, want %v", got, tt.want)
			}
			for i, c := range chunks {
				if n := len(payload(t, defaultSchema, c)); n > tt.maxBytes {
					t.Fatalf("request %d: %d bytes, cap %d", i, n, tt.maxBytes)
				}
			}
		})
	}
}

// The "~60 KB" ceiling of the reference, if configured, holds ~270 default-schema rows per
// request: why it is not the default (see MaxPayloadBytes).
func TestChunkSixtyKilobytes(t *testing.T) {
	rows := realisticRows(10_000)
	chunks := Chunk(rows, defaultSchema, 0, 60_000)
	for i, c := range chunks[:len(chunks)-1] {
		next := chunks[i+1][0]
		if n := PayloadSize(defaultSchema, c); n > 60_000 || PayloadSize(defaultSchema, append(slices.Clip(c), next)) <= 60_000 {
			t.Fatalf("request %d: %d bytes, and the next row would have fitted", i, n)
		}
	}
	if len(chunks) != 37 || len(chunks[0]) != 271 {
		t.Fatalf("%d requests of %d rows", len(chunks), len(chunks[0]))
	}
}

// A row larger than the cap goes alone (Meta judges it); its neighbours are not held back.
func TestChunkOversizeRowAlone(t *testing.T) {
	small := []string{"k1", "", "", "m"}
	huge := []string{"k2", strings.Repeat("x", 5000), "", ""}
	rows := [][]string{small, small, huge, small, huge, huge, small}
	maxBytes := PayloadSize(defaultSchema, [][]string{small, small})
	got := Chunk(rows, defaultSchema, 0, maxBytes)
	want := [][][]string{{small, small}, {huge}, {small}, {huge}, {huge}, {small}}
	if !slices.EqualFunc(got, want, func(a, b [][]string) bool { return slices.EqualFunc(a, b, slices.Equal) }) {
		t.Fatalf("sizes %v, want %v", sizes(got), sizes(want))
	}
	if got := Chunk([][]string{huge}, defaultSchema, 0, 10); len(got) != 1 || len(got[0]) != 1 {
		t.Fatalf("single oversize row: %v", sizes(got))
	}
}

func TestChunkEdges(t *testing.T) {
	if got := Chunk(nil, defaultSchema, 0, 0); got != nil {
		t.Fatalf("no rows: %v", got)
	}
	rows := realisticRows(3)
	chunks := Chunk(rows, defaultSchema, 1, 0)
	if got := sizes(chunks); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("maxRows 1: %v", got)
	}
	// Appending to a request must not overwrite the next one's rows.
	_ = append(chunks[0], []string{"intruder"})
	if chunks[1][0][0] != rows[1][0] {
		t.Fatal("requests share capacity")
	}
}

// PayloadSize is exact: it equals the length of AppendPayload's output, which is byte for byte
// what encoding/json writes for Meta's form of the payload, escapes included.
func TestPayloadSizeIsExact(t *testing.T) {
	odd := []string{
		"", "plain", `quote " and \ backslash`, "tab\tnewline\ncr\r", "\b\f\x00\x01\x1f\x7f",
		"<html> & co", "é 정 😀", "\u2028\u2029", "bad \xff utf8 \xc3", strings.Repeat("a", 64),
	}
	cases := []struct {
		schema []string
		rows   [][]string
	}{
		{defaultSchema, nil},
		{defaultSchema, [][]string{{"", "", "", ""}}},
		{[]string{"EXTERN_ID"}, [][]string{{"a"}, {"b"}}},
		{[]string{}, [][]string{{}}},
		{odd, [][]string{odd, odd[:3], {}}},
		{defaultSchema, realisticRows(5)},
		{[]string{"EMAIL_SHA256"}, [][]string{{"a"}, {odd[2]}, {odd[8]}}},
		{[]string{"EMAIL_SHA256"}, nil},
		{[]string{"EXTERN_ID", "LOOKALIKE_VALUE"}, [][]string{{odd[5], "12.5"}, {"k", "0"}, {"k", "-1e3"}}},
		{[]string{"EMAIL"}, [][]string{{odd[6]}}},
	}
	for i, c := range cases {
		want := encodeWithStdlib(t, c.schema, c.rows)
		got := payload(t, c.schema, c.rows)
		if string(got) != string(want) {
			t.Errorf("case %d: AppendPayload\n%s\nencoding/json\n%s", i, got, want)
		}
		if n := PayloadSize(c.schema, c.rows); n != len(want) {
			t.Errorf("case %d: PayloadSize %d, encoded %d", i, n, len(want))
		}
	}
	var decoded struct {
		Schema []string
		Data   [][]string
	}
	if err := json.Unmarshal(payload(t, defaultSchema, realisticRows(2)), &decoded); err != nil || len(decoded.Data) != 2 {
		t.Fatalf("payload does not decode: %v %+v", err, decoded)
	}
}

func TestAppendPayloadRefusesValuesThatAreNotNumbers(t *testing.T) {
	schema := []string{"EXTERN_ID", "LOOKALIKE_VALUE"}
	for _, bad := range []string{"", "NaN", "Inf", "1e999", "0x10", "+1", "1.", "secret-value"} {
		dst := []byte("kept")
		got, err := AppendPayload(dst, schema, [][]string{{"k", "1"}, {"k", bad}})
		if err == nil || err.Error() != "row 1: LOOKALIKE_VALUE is not a number" {
			t.Errorf("value %q: err = %v", bad, err)
		}
		if string(got) != "kept" {
			t.Errorf("value %q: dst became %q", bad, got)
		}
	}
	// A value column is a number only in the multi-key form; elsewhere cells are strings.
	if got := payload(t, []string{"EXTERN_ID"}, [][]string{{"NaN"}}); string(got) != `{"schema":"EXTERN_ID","data":["NaN"]}` {
		t.Errorf("single-key payload %s", got)
	}
}

// randomRequest returns a schema (single-key, multi-key, value-based) and rows whose cells
// mix realistic identifiers with characters that need escaping, and byte and row caps.
func randomRequest(rnd *rand.Rand) (schema []string, rows [][]string, maxRows, maxBytes int) {
	schemas := [][]string{
		defaultSchema,
		{"EXTERN_ID", "EMAIL", "PHONE", "MADID", "LOOKALIKE_VALUE"},
		{"EXTERN_ID", "MADID"},
		{"EMAIL_SHA256"},
		{"EXTERN_ID"},
		{"EMAIL"},
	}
	schema = schemas[rnd.IntN(len(schemas))]
	pieces := []string{"a", "0123456789abcdef", "<", "&", `"`, `\`, "\n", "\x00", "é", "😀", "\u2028", "\xff", "\xe2\x80"}
	cell := func() string {
		var b strings.Builder
		for range rnd.IntN(8) {
			b.WriteString(pieces[rnd.IntN(len(pieces))])
		}
		return b.String()
	}
	values := []string{"0", "12.5", "250", "0.000001", "1e3", "-2"}
	rows = make([][]string, 1+rnd.IntN(300))
	for i := range rows {
		row := make([]string, len(schema))
		for j, col := range schema {
			switch {
			case col == "LOOKALIKE_VALUE":
				row[j] = values[rnd.IntN(len(values))]
			case rnd.IntN(4) == 0:
				row[j] = ""
			case rnd.IntN(3) == 0:
				row[j] = cell()
			default:
				row[j] = strings.Repeat("f", 64)
			}
		}
		rows[i] = row
	}
	return schema, rows, 1 + rnd.IntN(120), 40 + rnd.IntN(6000)
}

// The size Chunk plans with is the size of the payload sent: over many random requests, each
// chunk's payload (as AppendPayload writes it, the bytes the Graph client sends) is within the
// cap unless it is one oversize row, PayloadSize equals its length, and the chunk is cut where
// the next row would not have fitted.
func TestChunkSizesAreTheBytesSent(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 11))
	for n := range 500 {
		schema, rows, maxRows, maxBytes := randomRequest(rnd)
		chunks := Chunk(rows, schema, maxRows, maxBytes)
		if !slices.EqualFunc(slices.Concat(chunks...), rows, slices.Equal) {
			t.Fatalf("request %d: chunks do not add up to the rows in order", n)
		}
		for i, c := range chunks {
			sent := payload(t, schema, c)
			if want := encodeWithStdlib(t, schema, c); string(sent) != string(want) {
				t.Fatalf("request %d chunk %d: payload\n%s\nencoding/json\n%s", n, i, sent, want)
			}
			if got := PayloadSize(schema, c); got != len(sent) {
				t.Fatalf("request %d chunk %d: PayloadSize %d, %d bytes sent", n, i, got, len(sent))
			}
			if len(c) > maxRows || len(sent) > maxBytes && len(c) > 1 {
				t.Fatalf("request %d chunk %d: %d rows, %d bytes; caps %d rows, %d bytes", n, i, len(c), len(sent), maxRows, maxBytes)
			}
			if i+1 < len(chunks) && len(c) < maxRows {
				if grown := payload(t, schema, append(slices.Clip(c), chunks[i+1][0])); len(grown) <= maxBytes {
					t.Fatalf("request %d chunk %d: cut at %d bytes, but the next row fitted (%d <= %d)", n, i, len(sent), len(grown), maxBytes)
				}
			}
		}
	}
}

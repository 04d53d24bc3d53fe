package audiences

import (
	"encoding/json"
	"fmt"
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

// encodeWithStdlib is the payload as encoding/json writes it.
func encodeWithStdlib(t testing.TB, schema []string, rows [][]string) []byte {
	t.Helper()
	if rows == nil {
		rows = [][]string{}
	}
	b, err := json.Marshal(struct {
		Schema []string   `json:"schema"`
		Data   [][]string `json:"data"`
	}{schema, rows})
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
				if n := len(AppendPayload(nil, defaultSchema, c)); n > tt.maxBytes {
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
// what encoding/json writes, escapes included.
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
	}
	for i, c := range cases {
		want := encodeWithStdlib(t, c.schema, c.rows)
		got := AppendPayload(nil, c.schema, c.rows)
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
	if err := json.Unmarshal(AppendPayload(nil, defaultSchema, realisticRows(2)), &decoded); err != nil || len(decoded.Data) != 2 {
		t.Fatalf("payload does not decode: %v %+v", err, decoded)
	}
}

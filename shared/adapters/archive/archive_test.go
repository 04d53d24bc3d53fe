package archive

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	domain "github.com/retarget-dev/retarget/shared/domain/archive"
)

func ptr[T any](v T) *T { return &v }

func row(app, day, id string) domain.Row {
	at, _ := time.Parse(domain.DayLayout, day)
	return domain.Row{App: app, Day: day, EnvelopeVersion: 1, EventID: id, EventName: "Purchase",
		EventTime: at.UnixMilli(), ReceivedAt: at.UnixMilli() + int64(len(id)), UserKey: "uk-" + id}
}

func seqRows(rows ...domain.Row) []SequencedRow {
	out := make([]SequencedRow, len(rows))
	for i, r := range rows {
		out[i] = SequencedRow{Seq: fmt.Sprintf("%056d", 100+i), Row: r}
	}
	return out
}

// TestParquetRoundTrip: every kind of column comes back as written, absent values stay absent
// (null), a zero value stays a value, and the partition keys are not columns of the file.
func TestParquetRoundTrip(t *testing.T) {
	full := row("shop", "2026-12-06", "e1")
	full.Server, full.Email, full.ClientIP = true, "ab12", "203.0.113.7"
	full.Value, full.ScreenDensity, full.NumItems = ptr(0.0), ptr(2.5), ptr(int64(3))
	full.AdsPersonalization, full.LDU = ptr(true), ptr(false)
	full.ContentIDs = `["a","b"]`
	sparse := row("shop", "2026-12-06", "e2")
	data, err := Encode([]domain.Row{full, sparse})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(domain.Partition{App: "shop", Day: "2026-12-06"}, data)
	if err != nil {
		t.Fatal(err)
	}
	if want := []domain.Row{full, sparse}; !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Schema().Fields() {
		if c.Name() == "app" || c.Name() == "day" {
			t.Errorf("partition key %q is a column of the file (Athena refuses a repeated key)", c.Name())
		}
		if c.Name() == "value" && !c.Optional() {
			t.Errorf("value is not optional")
		}
	}
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	dir := Dir(t.TempDir())
	batch := seqRows(row("shop", "2026-12-06", "e1"), row("shop", "2026-12-07", "e2"), row("game", "2026-12-06", "e3"), row("shop", "2026-12-06", "e4"))
	names, err := Write(ctx, dir, batch)
	if err != nil {
		t.Fatal(err)
	}
	s := func(i int) string { return fmt.Sprintf("%056d", 100+i) }
	want := []string{
		"app=shop/day=2026-12-06/part-" + s(0) + "-2.parquet",
		"app=shop/day=2026-12-07/part-" + s(1) + "-1.parquet",
		"app=game/day=2026-12-06/part-" + s(2) + "-1.parquet",
	}
	if !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
	listed, _ := dir.List(ctx, "")
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("files %q, want %q", listed, want)
	}
	// Firehose's own names (the stack's archive) are read too.
	const firehose = "app=shop/day=2026-12-06/retarget-dev-archive-1-2026-12-06-10-15-01-0b1e2c4a-7f0e-4a5b-9c1d-3e2f1a0b9c8d.parquet"
	if p, ok := ParseName(firehose); !ok || p != (domain.Partition{App: "shop", Day: "2026-12-06"}) {
		t.Errorf("ParseName(%q) = %v, %v; want shop's 2026-12-06", firehose, p, ok)
	}
	for _, bad := range []string{"app=shop/day=2026-12-06/other.parquet", "app=shop/day=2026-12-06/retarget-dev-archive-1-2026-12-06-10-15-01-0b1e2c4a-7f0e-4a5b-9c1d-3e2f1a0b9c8d", "app=shop/part-1-1.parquet", "shop/day=2026-12-06/part-1-1.parquet", "app=shop/day=yesterday/part-1-1.parquet"} {
		if _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) accepted a stray file", bad)
		}
	}
	for _, tc := range []struct {
		q    Query
		want []string
	}{
		{Query{}, []string{"e1", "e2", "e3", "e4"}},
		{Query{App: "shop"}, []string{"e1", "e2", "e4"}},
		{Query{From: "2026-12-07"}, []string{"e2"}},
		{Query{To: "2026-12-06", App: "game"}, []string{"e3"}},
	} {
		rows, err := Read(ctx, dir, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.EventID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, tc.want) {
			t.Errorf("Read(%+v) = %q, want %q", tc.q, ids, tc.want)
		}
	}
}

// TestWriteTwice: at least once. The same batch written again replaces its files; a batch cut
// differently (a bisected retry) adds files, and Read still returns each event once.
func TestWriteTwice(t *testing.T) {
	ctx := context.Background()
	dir := Dir(t.TempDir())
	batch := seqRows(row("shop", "2026-12-06", "e1"), row("shop", "2026-12-06", "e2"), row("shop", "2026-12-06", "e3"))
	for range 2 {
		if _, err := Write(ctx, dir, batch); err != nil {
			t.Fatal(err)
		}
	}
	if names, _ := dir.List(ctx, ""); len(names) != 1 {
		t.Errorf("the same batch twice left %d files: %q", len(names), names)
	}
	if _, err := Write(ctx, dir, batch[1:]); err != nil { // the second half again, alone
		t.Fatal(err)
	}
	if names, _ := dir.List(ctx, ""); len(names) != 2 {
		t.Errorf("a re-cut batch should add a file, have %q", names)
	}
	rows, err := Read(ctx, dir, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Errorf("read %d rows, want each of 3 events once: %+v", len(rows), rows)
	}
}

package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	domain "github.com/retarget-dev/retarget/shared/domain/archive"
)

func userRow(app, day, id, userKey string) domain.Row {
	r := row(app, day, id)
	r.UserKey = userKey
	return r
}

// TestRemoveUsers: a file holding the user's rows among others is rewritten with the others
// only; a file holding only the user's rows is deleted; files without them are not touched
// (not rewritten); a second run removes nothing and changes nothing; a missing file is no error.
func TestRemoveUsers(t *testing.T) {
	ctx := context.Background()
	dir := Dir(t.TempDir())
	const day = "2026-12-06"
	mixed, err := Write(ctx, dir, []SequencedRow{
		{Seq: "100", Row: userRow("shop", day, "a1", "gone")},
		{Seq: "101", Row: userRow("shop", day, "b1", "kept")},
		{Seq: "102", Row: userRow("shop", day, "a2", "gone")},
		{Seq: "103", Row: userRow("shop", "2026-12-07", "a3", "gone")},
	})
	if err != nil {
		t.Fatal(err)
	}
	only, err := Write(ctx, dir, []SequencedRow{{Seq: "200", Row: userRow("shop", day, "a4", "gone")}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Write(ctx, dir, []SequencedRow{{Seq: "300", Row: userRow("shop", day, "b2", "kept")}})
	if err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(string(dir), filepath.FromSlash(other[0]))
	before, _ := os.Stat(otherPath)

	files, err := PartitionFiles(ctx, dir, domain.Partition{App: "shop", Day: day})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := []string{mixed[0], only[0], other[0]}; !slices.Equal(files, want) {
		t.Fatalf("partition files = %v, want %v", files, want)
	}
	gone := map[string]bool{"gone": true}
	removed := 0
	for _, f := range files {
		n, err := RemoveUsers(ctx, dir, f, gone)
		if err != nil {
			t.Fatal(err)
		}
		removed += n
	}
	if removed != 3 {
		t.Fatalf("removed %d rows, want 3 (a1, a2, a4)", removed)
	}
	if _, err := os.Stat(filepath.Join(string(dir), filepath.FromSlash(only[0]))); !os.IsNotExist(err) {
		t.Fatalf("file with only the user's rows still there (%v)", err)
	}
	if after, _ := os.Stat(otherPath); !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("a file without the user's rows was rewritten")
	}
	rows, err := Read(ctx, dir, Query{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.EventID)
	}
	slices.Sort(ids)
	// a3 is in another day's partition: not this purge's.
	if want := []string{"a3", "b1", "b2"}; !slices.Equal(ids, want) {
		t.Fatalf("rows left = %v, want %v", ids, want)
	}

	mixedPath := filepath.Join(string(dir), filepath.FromSlash(mixed[0]))
	first, _ := os.ReadFile(mixedPath)
	for _, f := range append(files, "app=shop/day=2026-12-06/part-999-1.parquet") {
		if n, err := RemoveUsers(ctx, dir, f, gone); err != nil || n != 0 {
			t.Fatalf("second run on %s: removed %d, err %v; want 0, nil", f, n, err)
		}
	}
	if again, _ := os.ReadFile(mixedPath); !bytes.Equal(first, again) {
		t.Fatal("second run rewrote a purged file")
	}
	if _, err := RemoveUsers(ctx, dir, "stray.txt", gone); err == nil {
		t.Fatal("RemoveUsers took a name that is not an archive file")
	}
	leftovers, _ := filepath.Glob(filepath.Join(string(dir), "app=shop", "day="+day, ".tmp-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

// TestPartitionFilesListsOnePartition: an app whose name extends another's is not listed.
func TestPartitionFilesListsOnePartition(t *testing.T) {
	ctx := context.Background()
	dir := Dir(t.TempDir())
	if _, err := Write(ctx, dir, seqRows(row("shop", "2026-12-06", "e1"), row("shop2", "2026-12-06", "e2"), row("shop", "2026-12-07", "e3"))); err != nil {
		t.Fatal(err)
	}
	got, err := PartitionFiles(ctx, dir, domain.Partition{App: "shop", Day: "2026-12-06"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || filepath.Dir(got[0]) != "app=shop/day=2026-12-06" {
		t.Fatalf("files = %v, want the one file of shop's 2026-12-06", got)
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/archive"
)

// writeArchive writes one batch per call into dir, like the dev stack's archiver.
func writeArchive(t *testing.T, dir string, rows ...archive.Row) {
	t.Helper()
	batch := make([]archivefiles.SequencedRow, len(rows))
	for i, r := range rows {
		batch[i] = archivefiles.SequencedRow{Seq: fmt.Sprintf("%056d", i), Row: r}
	}
	if _, err := archivefiles.Write(context.Background(), archivefiles.Dir(dir), batch); err != nil {
		t.Fatal(err)
	}
}

func archRow(app, id string, at time.Time) archive.Row {
	return archive.Row{App: app, Day: archive.DayOf(at.UnixMilli()), EnvelopeVersion: 1, EventID: id, EventName: "Purchase",
		EventTime: at.UnixMilli(), ReceivedAt: at.UnixMilli(), UserKey: "uk-" + id}
}

func TestArchiveExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "archive")
	d1 := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	d2 := d1.Add(24 * time.Hour) // testNow's day
	writeArchive(t, dir, archRow("shop", "a", d1), archRow("shop", "b", d2), archRow("game", "c", d2))
	writeArchive(t, dir, archRow("shop", "b", d2)) // written again, cut differently

	ids := func(out string) (got []string) {
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			got = append(got, fmt.Sprintf("%s/%s/%s", m["app"], m["day"], m["event_id"]))
		}
		return got
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "2026-03-08", "--to", "2026-03-09"}, "shop/2026-03-08/a game/2026-03-09/c shop/2026-03-09/b"},
		{nil, "game/2026-03-09/c shop/2026-03-09/b"}, // today (the test clock); ties in arrival by app
		{[]string{"--from", "2026-03-08", "--to", "2026-03-09", "--app", "game", "--format", "jsonl"}, "game/2026-03-09/c"},
	} {
		h := newHarness(t)
		out := h.mustRun(exitOK, append([]string{"archive", "export", "--dir", dir}, tc.args...)...)
		if got := strings.Join(ids(out), " "); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.args, got, tc.want)
		}
	}
	h := newHarness(t)
	for _, bad := range [][]string{{"--format", "csv"}, {"--from", "yesterday"}, {"--from", "2026-03-09", "--to", "2026-03-08"}} {
		if code := h.run(append([]string{"archive", "export", "--dir", dir}, bad...)...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

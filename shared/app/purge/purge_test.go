package purge

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

var erasedAt = time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)

// seed writes one file per (app, day) with an event of each user key, and returns the dir.
func seed(t *testing.T, apps []string, days []string, users []string) archivefiles.Dir {
	t.Helper()
	dir := archivefiles.Dir(t.TempDir())
	seq := 100
	for _, app := range apps {
		for _, day := range days {
			at, _ := time.Parse(DayLayout, day)
			var batch []archivefiles.SequencedRow
			for _, u := range users {
				seq++
				batch = append(batch, archivefiles.SequencedRow{Seq: strconv.Itoa(seq), Row: archive.Row{App: app, Day: day,
					EnvelopeVersion: 1, EventID: app + "/" + day + "/" + u, EventName: "Purchase", EventTime: at.UnixMilli(), ReceivedAt: at.UnixMilli(), UserKey: u}})
			}
			if _, err := archivefiles.Write(context.Background(), dir, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func eventIDs(t *testing.T, dir archivefiles.Dir) []string {
	t.Helper()
	rows, err := archivefiles.Read(context.Background(), dir, archivefiles.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.EventID)
	}
	slices.Sort(ids)
	return ids
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// TestPurgeRemovesTheUserFromEveryDayOfTheRange: after Settle, the erased user's rows are gone
// from every day from the first day to the erasure day; the other user's rows, the days outside
// the range and the other apps are untouched; the erasure is done; a second run changes nothing.
func TestPurgeRemovesTheUserFromEveryDayOfTheRange(t *testing.T) {
	ctx := context.Background()
	days := []string{"2026-12-03", "2026-12-04", "2026-12-05", "2026-12-06", "2026-12-07"}
	dir := seed(t, []string{"shop", "game"}, days, []string{"gone", "kept"})
	store := memstate.New()
	if err := store.PutErasure(ctx, ports.ErasureRecord{ID: "er_1", App: "shop", UserKey: "gone", RequestedAt: erasedAt.Unix(), FirstDay: "2026-12-04"}); err != nil {
		t.Fatal(err)
	}
	clk := &clock{erasedAt.Add(time.Minute)}
	p, err := New(Config{Apps: []string{"shop", "game"}, Pending: store, Archive: archivefiles.Rewriter{FS: dir},
		Settle: 5 * time.Minute, Lookback: 30, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	before := eventIDs(t, dir)

	res, err := p.Run(ctx)
	if err != nil || res.Waiting != 1 || res.Done != 0 || res.Rows != 0 {
		t.Fatalf("within Settle: %+v, %v; want the erasure waiting and nothing removed", res, err)
	}
	if got := eventIDs(t, dir); !slices.Equal(got, before) {
		t.Fatalf("rows changed within Settle: %v", got)
	}

	clk.now = erasedAt.Add(5 * time.Minute)
	res, err = p.Run(ctx)
	if err != nil || res.Done != 1 || res.Rows != 3 || res.Rewrites != 3 || res.Files != 3 {
		t.Fatalf("after Settle: %+v, %v; want 1 done, 3 rows removed from 3 files of 3 days", res, err)
	}
	var want []string
	for _, id := range before {
		if id != "shop/2026-12-04/gone" && id != "shop/2026-12-05/gone" && id != "shop/2026-12-06/gone" {
			want = append(want, id)
		}
	}
	if got := eventIDs(t, dir); !slices.Equal(got, want) {
		t.Fatalf("rows after purge = %v\nwant %v", got, want)
	}
	if pending, _ := store.PendingPurges(ctx, "shop"); len(pending) != 0 {
		t.Fatalf("still pending after the purge: %+v", pending)
	}

	// Twice is harmless: the same erasure pending again removes nothing and rewrites nothing.
	if err := store.PutErasure(ctx, ports.ErasureRecord{ID: "er_1", App: "shop", UserKey: "gone", RequestedAt: erasedAt.Unix(), FirstDay: "2026-12-04"}); err != nil {
		t.Fatal(err)
	}
	res, err = p.Run(ctx)
	if err != nil || res.Done != 1 || res.Rows != 0 || res.Rewrites != 0 {
		t.Fatalf("second run: %+v, %v; want done again with nothing removed", res, err)
	}
	if got := eventIDs(t, dir); !slices.Equal(got, want) {
		t.Fatalf("second run changed rows: %v", got)
	}
}

// failing fails listing one day until fixed.
type failing struct {
	Archive
	day string
}

func (f *failing) Files(ctx context.Context, app, day string) ([]string, error) {
	if day == f.day {
		return nil, errors.New("listing failed")
	}
	return f.Archive.Files(ctx, app, day)
}

// TestPurgeIsDoneOnlyWhenEveryDayIsRewritten: a day that fails leaves the erasure pending (its
// other days are purged); the next run completes it.
func TestPurgeIsDoneOnlyWhenEveryDayIsRewritten(t *testing.T) {
	ctx := context.Background()
	dir := seed(t, []string{"shop"}, []string{"2026-12-05", "2026-12-06"}, []string{"gone", "kept"})
	store := memstate.New()
	if err := store.PutErasure(ctx, ports.ErasureRecord{ID: "er_1", App: "shop", UserKey: "gone", RequestedAt: erasedAt.Unix(), FirstDay: "2026-12-05"}); err != nil {
		t.Fatal(err)
	}
	arch := &failing{Archive: archivefiles.Rewriter{FS: dir}, day: "2026-12-06"}
	p, err := New(Config{Apps: []string{"shop"}, Pending: store, Archive: arch, Now: func() time.Time { return erasedAt.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Run(ctx)
	if err == nil || res.Done != 0 || res.Failed != 1 || res.Rows != 1 {
		t.Fatalf("with a failing day: %+v, %v; want an error, the erasure failed and the other day purged", res, err)
	}
	if pending, _ := store.PendingPurges(ctx, "shop"); len(pending) != 1 {
		t.Fatalf("pending = %+v, want the erasure still pending", pending)
	}
	arch.day = ""
	if res, err = p.Run(ctx); err != nil || res.Done != 1 || res.Rows != 1 {
		t.Fatalf("retry: %+v, %v; want done with the last row removed", res, err)
	}
	if got, want := eventIDs(t, dir), []string{"shop/2026-12-05/kept", "shop/2026-12-06/kept"}; !slices.Equal(got, want) {
		t.Fatalf("rows = %v, want %v", got, want)
	}
}

// TestDays: the range runs from the first day to the erasure day (UTC); without a usable first
// day, from Lookback days before.
func TestDays(t *testing.T) {
	at := time.Date(2026, 12, 6, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)).Unix() // 2026-12-07 04:30 UTC
	for _, c := range []struct {
		first    string
		lookback int
		from, to string
	}{
		{"2026-11-20", 30, "2026-11-20", "2026-12-07"},
		{"", 30, "2026-11-07", "2026-12-07"},
		{"", 0, "2026-12-07", "2026-12-07"},
		{"2026-12-08", 2, "2026-12-05", "2026-12-07"}, // after the erasure: not trusted
		{"garbage", 1, "2026-12-06", "2026-12-07"},
	} {
		from, to := Days(ports.ErasureRecord{RequestedAt: at, FirstDay: c.first}, c.lookback)
		if from != c.from || to != c.to {
			t.Errorf("Days(first %q, lookback %d) = %s..%s, want %s..%s", c.first, c.lookback, from, to, c.from, c.to)
		}
	}
	if got := dayRange("2026-02-27", "2026-03-01"); !slices.Equal(got, []string{"2026-02-27", "2026-02-28", "2026-03-01"}) {
		t.Errorf("dayRange = %v", got)
	}
}

package statetest

import (
	"context"
	"reflect"
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
)

// pendingPurges: PutErasure makes the erasure pending for the archive purge (with its user key,
// request time and first day), per app; PurgeDone removes it, twice harmlessly.
func pendingPurges(ctx context.Context, t *testing.T, s ConsentStore) {
	p, ok := s.(ports.ArchivePurges)
	if !ok {
		t.Fatalf("%T does not implement ports.ArchivePurges", s)
	}
	const app = "app-purge"
	recs := []ports.ErasureRecord{
		{ID: "er-2", App: app, UserKey: "u-2", RequestedAt: 200, CompletedAt: 201, FirstDay: "2026-11-30", ExpiresAt: 9999},
		{ID: "er-1", App: app, UserKey: "u-1", RequestedAt: 100, Audiences: []string{"lapsed"}},
		{ID: "er-3", App: "other", UserKey: "u-3", RequestedAt: 300},
	}
	for _, r := range recs {
		if err := s.PutErasure(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := p.PendingPurges(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	want := []ports.ErasureRecord{
		{ID: "er-1", App: app, UserKey: "u-1", RequestedAt: 100},
		{ID: "er-2", App: app, UserKey: "u-2", RequestedAt: 200, FirstDay: "2026-11-30", ExpiresAt: 9999},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pending = %+v, want %+v", got, want)
	}
	if r, ok, err := s.Erasure(ctx, app, "er-2"); err != nil || !ok || r.FirstDay != "2026-11-30" {
		t.Fatalf("audit record = %+v %v %v, want its first day kept", r, ok, err)
	}
	for range 2 {
		if err := p.PurgeDone(ctx, app, "er-1"); err != nil {
			t.Fatal(err)
		}
	}
	if got, err = p.PendingPurges(ctx, app); err != nil || !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("pending after done = %+v (%v), want %+v", got, err, want[1:])
	}
	if got, err := p.PendingPurges(ctx, "other"); err != nil || len(got) != 1 || got[0].ID != "er-3" {
		t.Fatalf("other app's pending = %+v (%v), want er-3 alone", got, err)
	}
	if err := p.PurgeDone(ctx, app, "a#b"); err == nil {
		t.Fatal("PurgeDone took an id with '#'")
	}
}

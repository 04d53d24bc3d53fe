package dynamostate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// TestScanUsers: every page size finds exactly the users of the app whose stored
// segments include the segment: not another app's (even one whose id extends this one's), not
// change or member items, not users who left.
func TestScanUsers(t *testing.T) {
	client := dynalite(t)
	s := New(client, freshTable(t, client), Options{})
	ctx := context.Background()
	put := func(app, uk string, segs ...string) {
		t.Helper()
		if err := s.PutUser(ctx, ports.UserRecord{App: app, UserKey: uk, State: []byte(`{}`), Segments: segs, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var want, all []string
	for i := range 23 {
		uk := fmt.Sprintf("u-%02d", i)
		all = append(all, uk)
		switch i % 3 {
		case 0:
			put("shop", uk, "vip", "engaged")
			want = append(want, uk)
		case 1:
			put("shop", uk, "engaged")
		default:
			put("shop", uk) // in no segment
		}
	}
	put("shop2", "other-app", "vip")
	put("sho", "prefix-app", "vip")
	// Items of other kinds that name the segment.
	if err := s.RecordChanges(ctx, []ports.MembershipChange{{App: "shop", Segment: "vip", UserKey: "u-01", Joined: true, At: 1000}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMembers(ctx, "shop", "vip", []string{"u-02"}, nil); err != nil {
		t.Fatal(err)
	}

	scan := func(t *testing.T, segment string, limit int) (keys []string, pages int) {
		t.Helper()
		cursor := ""
		for {
			page, next, err := s.ScanUsers(ctx, "shop", segment, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, page...)
			pages++
			if next == "" {
				break
			}
			if pages > 100 {
				t.Fatal("no end after 100 pages")
			}
			cursor = next
		}
		slices.Sort(keys)
		return keys, pages
	}
	for _, limit := range []int{1, 4, 1000} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			got, pages := scan(t, "vip", limit)
			if !slices.Equal(got, want) {
				t.Errorf("vip members = %v, want %v", got, want)
			}
			if limit == 1 && pages < 20 {
				t.Errorf("%d pages at limit 1: the limit is not applied", pages)
			}
			if got, _ := scan(t, "", limit); !slices.Equal(got, all) {
				t.Errorf("all users = %v, want %v", got, all)
			}
		})
	}

	for _, tt := range []struct {
		app, segment, cursor string
		limit                int
	}{
		{"", "vip", "", 10}, {"shop", "a#b", "", 10}, {"shop", "vip", "", 0}, {"shop", "vip", "not-a-cursor", 10},
	} {
		if _, _, err := s.ScanUsers(ctx, tt.app, tt.segment, tt.cursor, tt.limit); !errors.Is(err, storecheck.ErrInvalid) {
			t.Errorf("ScanUsers(%q, %q, %q, %d): %v, want ErrInvalid", tt.app, tt.segment, tt.cursor, tt.limit, err)
		}
	}
}

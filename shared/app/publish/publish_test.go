package publish

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// bus records what it was given; refuse makes it refuse the events of those user keys.
type bus struct {
	calls  [][]ports.SegmentEvent
	refuse map[string]bool
	err    error
}

func (b *bus) Publish(_ context.Context, events []ports.SegmentEvent) ([]int, error) {
	b.calls = append(b.calls, slices.Clone(events))
	if b.err != nil {
		return nil, b.err
	}
	var failed []int
	for i, ev := range events {
		if b.refuse[ev.UserKey] {
			failed = append(failed, i)
		}
	}
	return failed, nil
}

func (b *bus) events() []ports.SegmentEvent {
	var out []ports.SegmentEvent
	for _, c := range b.calls {
		out = append(out, c...)
	}
	return out
}

// segmentMatcher matches every channel to the segments of its config (the test's stand-in for
// package channels).
type segmentMatcher struct{ app *appconfig.App }

func (m segmentMatcher) Match(ev *ports.SegmentEvent) []string {
	var ids []string
	for _, c := range m.app.Channels {
		kind := "left"
		if ev.Joined {
			kind = "joined"
		}
		if slices.Contains(c.Segments, ev.Segment) && slices.Contains(c.EventKinds(), kind) {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T, apps ...*appconfig.App) (*Publisher, *memstate.Store, *bus, *time.Time) {
	t.Helper()
	store, b, clock := memstate.New(), &bus{}, now
	p, err := New(Config{Apps: apps, Feed: store, Cooldowns: store, Bus: b, PageSize: 15,
		Compile: func(a *appconfig.App) (Matcher, error) { return segmentMatcher{a}, nil },
		Now:     func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	return p, store, b, &clock
}

func change(app, seg, uk string, joined bool, at int64) ports.MembershipChange {
	return ports.MembershipChange{App: app, Segment: seg, UserKey: uk, Joined: joined, At: at, StateVersion: 2,
		RecordedAt: at + 10, Reason: ports.ReasonEvents, AppUserID: "raw-" + uk}
}

func record(t *testing.T, s *memstate.Store, cs ...ports.MembershipChange) {
	t.Helper()
	if err := s.RecordChanges(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, p *Publisher) Result {
	t.Helper()
	res, err := p.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEveryChangeOnceInBatchesOfTen(t *testing.T) {
	shop := &appconfig.App{ID: "shop"}
	p, store, b, _ := setup(t, shop)
	var want []string
	for i := range 23 {
		c := change("shop", "cart", "u-"+string(rune('a'+i)), i%2 == 0, 1_773_144_000_000+int64(i))
		record(t, store, c)
		want = append(want, ChangeID(c))
	}
	if res := run(t, p); res.Published != 23 || res.Failed != 0 {
		t.Fatalf("first run = %+v; want 23 published", res)
	}
	var got []string
	for _, c := range b.calls {
		if len(c) > MaxBatch {
			t.Fatalf("a Publish call of %d events", len(c))
		}
	}
	for _, ev := range b.events() {
		got = append(got, ev.ChangeID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v\nwant %v (every change once, in order)", got, want)
	}
	// A rerun publishes nothing new.
	calls := len(b.calls)
	if res := run(t, p); res.Published != 0 || len(b.calls) != calls {
		t.Fatalf("rerun = %+v, %d more calls; want nothing", res, len(b.calls)-calls)
	}
}

func TestEventFields(t *testing.T) {
	shared := &appconfig.App{ID: "shop", ShareAppUserID: true}
	other := &appconfig.App{ID: "game"}
	p, store, b, _ := setup(t, shared, other)
	record(t, store, change("shop", "cart", "u-1", true, 1_773_144_000_123), change("game", "lapsed", "u-2", false, 1_773_144_000_000))
	run(t, p)
	evs := b.events()
	if len(evs) != 2 {
		t.Fatalf("published %d events; want 2", len(evs))
	}
	joined, left := evs[0], evs[1]
	if joined.DetailType() != ports.DetailTypeJoined || left.DetailType() != ports.DetailTypeLeft {
		t.Errorf("detail types %q, %q", joined.DetailType(), left.DetailType())
	}
	if joined.At != "2026-03-10T12:00:00.123Z" || joined.Reason != ports.ReasonEvents || joined.StateVersion != 2 {
		t.Errorf("joined = %+v", joined)
	}
	if joined.AppUserID != "raw-u-1" {
		t.Errorf("opted-in app: app_user_id %q; want raw-u-1", joined.AppUserID)
	}
	if left.AppUserID != "" {
		t.Errorf("app without share_app_user_id: app_user_id %q; want none", left.AppUserID)
	}
	detail, _ := json.Marshal(&left)
	if strings.Contains(string(detail), "raw-") || strings.Contains(string(detail), "app_user_id") {
		t.Errorf("detail of an app that does not share the id: %s", detail)
	}
	if id := ChangeID(change("shop", "cart", "u-1", true, 1_773_144_000_123)); joined.ChangeID != id || id == ChangeID(change("shop", "cart", "u-1", false, 1_773_144_000_123)) {
		t.Errorf("change id %q not stable or not distinct", joined.ChangeID)
	}
	restamped := change("shop", "cart", "u-1", true, 1_773_144_000_123)
	restamped.StateVersion, restamped.RecordedAt, restamped.Reason = 9, 1, ports.ReasonTime
	if ChangeID(restamped) != joined.ChangeID {
		t.Error("the change id depends on the recording, not only the change")
	}
}

func TestRefusedEntriesGoAgainNextRun(t *testing.T) {
	shop := &appconfig.App{ID: "shop"}
	p, store, b, _ := setup(t, shop)
	record(t, store, change("shop", "cart", "u-1", true, 1_000), change("shop", "cart", "u-2", true, 2_000),
		change("shop", "cart", "u-3", true, 3_000))
	b.refuse = map[string]bool{"u-2": true}
	if res := run(t, p); res.Published != 2 || res.Failed != 1 {
		t.Fatalf("run with a refused entry = %+v; want 2 published, 1 failed", res)
	}
	b.refuse, b.calls = nil, nil
	if res := run(t, p); res.Published != 1 || len(b.events()) != 1 || b.events()[0].UserKey != "u-2" {
		t.Fatalf("next run = %+v, %+v; want exactly the refused one", res, b.events())
	}
	// A call that fails as a whole leaves its events unpublished, with an error.
	record(t, store, change("shop", "cart", "u-4", true, 4_000))
	b.err, b.calls = errors.New("bus down"), nil
	if res, err := p.Run(context.Background()); err == nil || res.Failed != 1 || res.Published != 0 {
		t.Fatalf("run with the bus down = %+v, %v; want 1 failed", res, err)
	}
	b.err, b.calls = nil, nil
	if res := run(t, p); res.Published != 1 {
		t.Fatalf("after the bus is back = %+v; want 1 published", res)
	}
}

func TestChannelsAndCooldown(t *testing.T) {
	shop := &appconfig.App{ID: "shop", ChannelCooldown: "24h", Channels: []appconfig.Channel{
		{ID: "push", Type: "webhook", Segments: []string{"cart", "lapsed"}},
		{ID: "email", Type: "webhook", Segments: []string{"lapsed"}, Events: []string{"joined", "left"}},
	}}
	p, store, b, clock := setup(t, shop)
	record(t, store,
		change("shop", "cart", "u-1", true, 1_000),    // push
		change("shop", "lapsed", "u-1", true, 2_000),  // cooled: u-1 got push a moment ago
		change("shop", "vip", "u-2", true, 3_000),     // no channel: not cooled, no delivery recorded
		change("shop", "lapsed", "u-2", true, 4_000),  // push, email
		change("shop", "lapsed", "u-3", false, 5_000), // leave: email, never cooled
	)
	res := run(t, p)
	got := map[string][]string{}
	for _, ev := range b.events() {
		got[ev.Segment+"/"+ev.UserKey] = ev.Channels
		if ev.Channels == nil {
			t.Errorf("%s/%s: channels null; want []", ev.Segment, ev.UserKey)
		}
	}
	want := map[string][]string{"cart/u-1": {"push"}, "lapsed/u-1": {}, "vip/u-2": {}, "lapsed/u-2": {"push", "email"},
		"lapsed/u-3": {"email"}}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("%s: channels %v; want %v", k, got[k], w)
		}
	}
	if res.Published != 5 || res.CooledDown != 1 {
		t.Errorf("result %+v; want 5 published (a cooled join is still published), 1 cooled", res)
	}
	last, _ := store.LastDeliveries(context.Background(), "shop", []string{"u-1", "u-2", "u-3"})
	if want := map[string]int64{"u-1": now.UnixMilli(), "u-2": now.UnixMilli()}; len(last) != 2 || last["u-1"] != want["u-1"] || last["u-2"] != want["u-2"] {
		t.Errorf("last deliveries %v; want %v", last, want)
	}

	// Within the cool-down, on a later run: no channels. After it: channels again.
	b.calls = nil
	*clock = now.Add(23 * time.Hour)
	record(t, store, change("shop", "cart", "u-2", true, 6_000))
	run(t, p)
	if evs := b.events(); len(evs) != 1 || len(evs[0].Channels) != 0 {
		t.Fatalf("a join 23 h after a delivery: %+v; want published without channels", evs)
	}
	b.calls = nil
	*clock = now.Add(25 * time.Hour)
	record(t, store, change("shop", "cart", "u-2", true, 7_000))
	run(t, p)
	if evs := b.events(); len(evs) != 1 || !slices.Equal(evs[0].Channels, []string{"push"}) {
		t.Fatalf("a join 25 h after a delivery: %+v; want push", evs)
	}
}

func TestRefusedJoinRecordsNoDelivery(t *testing.T) {
	shop := &appconfig.App{ID: "shop", ChannelCooldown: "1h", Channels: []appconfig.Channel{{ID: "push", Type: "webhook", Segments: []string{"cart"}}}}
	p, store, b, _ := setup(t, shop)
	record(t, store, change("shop", "cart", "u-1", true, 1_000))
	b.refuse = map[string]bool{"u-1": true}
	run(t, p)
	b.refuse, b.calls = nil, nil
	run(t, p)
	if evs := b.events(); len(evs) != 1 || !slices.Equal(evs[0].Channels, []string{"push"}) {
		t.Fatalf("the retried join: %+v; want it delivered to push (the refused attempt delivered nothing)", evs)
	}
}

func TestNoPersonalDataInEvents(t *testing.T) {
	shop := &appconfig.App{ID: "shop"}
	p, store, b, _ := setup(t, shop)
	c := change("shop", "cart", "u-1", true, 1_000)
	c.AppUserID = "alice@example.com"
	record(t, store, c)
	run(t, p)
	detail, _ := json.Marshal(b.events())
	var fields []map[string]any
	if err := json.Unmarshal(detail, &fields); err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"app", "at", "change_id", "channels", "reason", "segment", "state_version", "user_key"}
	var keys []string
	for k := range fields[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, wantKeys) || strings.Contains(string(detail), "alice") {
		t.Fatalf("detail %s; want exactly %v and no raw id", detail, wantKeys)
	}
}

func TestDefaultMatcherIsPackageChannels(t *testing.T) {
	shop := &appconfig.App{ID: "shop", Channels: []appconfig.Channel{
		{ID: "push", Type: "webhook", URL: "https://push.example.com/hook", Segments: []string{"cart"}},
		{ID: "crm", Type: "webhook", URL: "https://crm.example.com/hook", Segments: []string{"cart"}, Events: []string{"left"}},
	}}
	store, b := memstate.New(), &bus{}
	p, err := New(Config{Apps: []*appconfig.App{shop}, Feed: store, Cooldowns: store, Bus: b})
	if err != nil {
		t.Fatal(err)
	}
	record(t, store, change("shop", "cart", "u-1", true, 1_000), change("shop", "cart", "u-2", false, 2_000))
	run(t, p)
	evs := b.events()
	if len(evs) != 2 || !slices.Equal(evs[0].Channels, []string{"push"}) || !slices.Equal(evs[1].Channels, []string{"crm"}) {
		t.Fatalf("events %+v; want the join to push, the leave to crm", evs)
	}
}

package segmentsweeper

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/app/publish"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

type recordingBus struct {
	got  []ports.SegmentEvent
	fail bool
}

func (b *recordingBus) Publish(_ context.Context, evs []ports.SegmentEvent) ([]int, error) {
	if b.fail {
		return nil, errors.New("bus down")
	}
	b.got = append(b.got, evs...)
	return nil, nil
}

// Every sweep publishes what was recorded since the last one, whoever recorded it: a change
// is on the bus within one sweep interval.
func TestSweepPublishesRecordedChanges(t *testing.T) {
	store, bus := memstate.New(), &recordingBus{}
	pub, err := publish.New(publish.Config{Apps: []*appconfig.App{{ID: "shop"}}, Feed: store, Cooldowns: store, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Rules: map[string]*segments.AppRules{}, Store: store, Publisher: pub,
		Now: func() time.Time { return time.UnixMilli(1_773_144_000_000) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.RecordChanges(context.Background(), []ports.MembershipChange{{App: "shop", Segment: "vip", UserKey: "u-1",
		Joined: true, At: 1_773_143_000_000, StateVersion: 1, RecordedAt: 1_773_143_000_001, Reason: ports.ReasonEvents}}); err != nil {
		t.Fatal(err)
	}
	bus.fail = true
	if res, err := s.Handle(context.Background(), nil); err == nil || res.PublishFailed != 1 {
		t.Fatalf("sweep with the bus down = %+v, %v; want the failure reported", res, err)
	}
	bus.fail = false
	res, err := s.Handle(context.Background(), nil)
	if err != nil || res.Published != 1 || len(bus.got) != 1 || bus.got[0].Segment != "vip" || bus.got[0].Reason != ports.ReasonEvents {
		t.Fatalf("sweep = %+v, %v, bus %+v; want the recorded change published", res, err, bus.got)
	}
	if res, _ := s.Handle(context.Background(), nil); res.Published != 0 {
		t.Fatalf("next sweep published %d again", res.Published)
	}
}

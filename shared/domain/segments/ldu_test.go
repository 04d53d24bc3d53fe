package segments

import (
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

func lduEvent(at int64, ldu envelope.Flag) *envelope.Event {
	return &envelope.Event{Name: "fb_mobile_activate_app", Time: at, Consent: envelope.Consent{AdsPersonalization: envelope.True, LDU: ldu}}
}

// The latest event that carries consent.ldu decides (a tie: LDU on); events without the flag
// decide nothing; the result does not depend on the order events are folded in or merged; the
// explicit decision is kept apart and holds whatever the events say.
func TestLimitedDataUse(t *testing.T) {
	base := t0.Unix()
	tests := []struct {
		name   string
		events []*envelope.Event
		want   bool
	}{
		{"never signalled", []*envelope.Event{lduEvent(base, envelope.Unset)}, false},
		{"on", []*envelope.Event{lduEvent(base, envelope.True)}, true},
		{"on, then an event without the flag", []*envelope.Event{lduEvent(base, envelope.True), lduEvent(base+10, envelope.Unset)}, true},
		{"on, then off", []*envelope.Event{lduEvent(base, envelope.True), lduEvent(base+10, envelope.False)}, false},
		{"off, then on", []*envelope.Event{lduEvent(base, envelope.False), lduEvent(base+10, envelope.True)}, true},
		{"on and off in the same second", []*envelope.Event{lduEvent(base, envelope.False), lduEvent(base, envelope.True)}, true},
		{"on, from an event without consent", []*envelope.Event{lduEvent(base, envelope.Unset), {Time: base + 5, Consent: envelope.Consent{LDU: envelope.True}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var forward, backward, merged State
			for i, ev := range tt.events {
				forward.Apply(ev, nil)
				backward.Apply(tt.events[len(tt.events)-1-i], nil)
				var d State
				d.Apply(ev, nil)
				merged.Merge(&d, nil)
			}
			for name, s := range map[string]*State{"in order": &forward, "reversed": &backward, "merged": &merged} {
				if got := s.LimitedDataUse(); got != tt.want {
					t.Errorf("%s: LimitedDataUse = %v, want %v", name, got, tt.want)
				}
			}
		})
	}

	var s State
	s.Apply(lduEvent(base, envelope.False), nil)
	s.RecordLDUDecision(true, base-100)
	if !s.LimitedDataUse() {
		t.Fatal("an explicit LDU decision must hold whatever the events say")
	}
	s.RecordLDUDecision(false, base+100)
	s.Apply(lduEvent(base+200, envelope.True), nil)
	if !s.LimitedDataUse() {
		t.Fatal("an explicit LDU off must not end the LDU the events ask for")
	}
	var m State
	m.Merge(&s, nil)
	if m.LDU != s.LDU || m.LDUDecision != s.LDUDecision {
		t.Fatalf("Merge lost the LDU signals: %+v %+v", m.LDU, m.LDUDecision)
	}
	if (*State)(nil).LimitedDataUse() {
		t.Fatal("a nil state is not under LDU")
	}
}

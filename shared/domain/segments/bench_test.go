package segments

import (
	"encoding/json"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// BenchmarkFoldEvaluate measures the segment updater's per-user work for a typical batch:
// fold 5 events of one user into a delta, merge it into the stored state and evaluate the
// default pack (membership and next due time).
//
//   - new-user: nothing stored yet.
//   - year-old-user: the stored state of a busy user with a year of history (decoded once;
//     each iteration merges into a clone, as the updater merges into the item it read).
func BenchmarkFoldEvaluate(b *testing.B) {
	r := sampleRules(b)
	now := t0.Add(2 * hour)
	batch := []*envelope.Event{
		ev("fb_mobile_activate_app", t0, email("someone@example.com")),
		ev("fb_mobile_content_view", t0.Add(minute)),
		ev("fb_mobile_add_to_cart", t0.Add(2*minute)),
		ev("fb_mobile_initiated_checkout", t0.Add(3*minute)),
		ev("fb_mobile_purchase", t0.Add(4*minute), value(59.9, "EUR")),
	}
	var year State
	if err := json.Unmarshal([]byte(encode(b, fold(r, yearOfActivity()...))), &year); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		stored *State
	}{{"new-user", &State{}}, {"year-old-user", &year}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var delta State
				for _, e := range batch {
					delta.Apply(e, r)
				}
				s := bc.stored.Clone()
				s.Merge(&delta, r)
				segs, due := r.Evaluate(s, now)
				if len(segs) == 0 || due.IsZero() {
					b.Fatal("no segments")
				}
			}
		})
	}
}

// Package segments is the pure domain of segment membership: the per-user State the segment
// updater keeps, the fold of stream events into it, and the evaluation of an app's declarative
// segment rules (configured in the app config, see appconfig.Segment) into a membership and
// the next moment it changes without a new event.
//
// The flow of one stream batch, per user:
//
//	rules, _ := segments.Compile(app)          // once, at start
//	var delta segments.State
//	for _, ev := range usersNewEvents {        // deduplicated by the storage layer
//	    delta.Apply(ev, rules)                 // fold first ...
//	}
//	stored.Merge(&delta, rules)                // ... write once (commutative, associative)
//	after, nextDue := rules.Evaluate(stored, now)
//	joined, left := segments.Diff(storedMembership, after) // membership changes to record
//	// store DueAt(nextDue) in the due-time index; the sweeper calls Evaluate again then
//
// Everything is keyed by event time, so late and out-of-order events fold to the same state as
// in-order ones. The package does no I/O. README.md describes the state, the rule format and
// their exact semantics.
package segments

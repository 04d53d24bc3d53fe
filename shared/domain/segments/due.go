package segments

import "time"

// DueStep is the resolution of the due index the sweeper reads: the sweeper runs every few
// minutes, so a due time rounded up to the next step loses nothing, and a user whose next flip
// moves within one step (every event moves lapsed_7d) does not rewrite the index entry.
const DueStep = 5 * time.Minute

// DefaultUserTTL is how long the state of an inactive user is kept unless configured
// otherwise: a little over a year, so yearly customers still have their history.
const DefaultUserTTL = 400 * 24 * time.Hour

// DueAt turns nextDue, as Evaluate returns it, into the due index value: unix seconds rounded
// up to DueStep, or 0 for none. Rounding up keeps it exact enough: at the rounded time the
// flip has happened, so the sweep that reads the user finds it.
func DueAt(nextDue time.Time) int64 {
	if nextDue.IsZero() {
		return 0
	}
	step := int64(DueStep / time.Second)
	return (nextDue.Unix() + step - 1) / step * step
}

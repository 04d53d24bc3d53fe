package audiences

import (
	"errors"
	"fmt"
	"math"
)

// MinGuardedSize is the audience size from which RemovalGuard applies. Meta needs about 100
// matched people before an audience can be used, so a smaller audience delivers nothing a flood
// could break, and a new audience still filling up would otherwise trip on its first churn.
const MinGuardedSize = 100

// ErrRemovalFlood is returned by RemovalGuard: the run would remove more of an audience than
// the app allows. The sync pauses that audience and alerts instead of uploading.
var ErrRemovalFlood = errors.New("removal flood")

// RemovalGuard checks one run's removals from one audience against maxFraction of its known
// size (the members the sync has uploaded and not removed, counted before this run's
// removals; Meta's own count lags by up to 24 hours). Removing at most
// floor(maxFraction * audienceSize) members is allowed; more is ErrRemovalFlood. Audiences
// whose known size is below MinGuardedSize are exempt: the guard applies once they have
// reached 100 members. A maxFraction outside [0, 1] or NaN (refused by the config) fails safe:
// NaN and negative values trip on any removal.
func RemovalGuard(maxFraction float64, audienceSize, removals int) error {
	if removals <= 0 || audienceSize < MinGuardedSize {
		return nil
	}
	// The epsilon keeps 0.29 * 100 (28.999999999999996 in floating point) at 29.
	limit := math.Floor(maxFraction*float64(audienceSize) + 1e-9)
	if float64(removals) <= limit {
		return nil
	}
	return fmt.Errorf("%w: %d removals from an audience of %d exceed max_removal_fraction %v (at most %.0f per run)",
		ErrRemovalFlood, removals, audienceSize, maxFraction, math.Max(limit, 0))
}

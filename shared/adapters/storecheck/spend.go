package storecheck

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// DateLayout is the layout of the dates of spend rows (the ad account's calendar day).
const DateLayout = "2006-01-02"

// SpendRow rejects a spend row with an invalid app name, a date that is not YYYY-MM-DD, an ad
// set id that is empty or holds '#', an empty or unsorted audience list entry, or a negative
// amount.
func SpendRow(r ports.SpendDay) error {
	if err := Name("app", r.App); err != nil {
		return err
	}
	if err := Date(r.Date); err != nil {
		return err
	}
	if r.AdSetID == "" || strings.Contains(r.AdSetID, "#") {
		return fmt.Errorf("%w: ad set id %q must be non-empty and without '#'", ErrInvalid, r.AdSetID)
	}
	for _, set := range [][]string{r.Audiences, r.Contaminated} {
		if slices.Contains(set, "") {
			return fmt.Errorf("%w: empty segment in Audiences or Contaminated of ad set %s", ErrInvalid, r.AdSetID)
		}
	}
	if r.SpendMicros < 0 || r.Impressions < 0 || r.Reach < 0 || r.Clicks < 0 || r.PulledAt < 0 {
		return fmt.Errorf("%w: negative spend, impressions, reach, clicks or pull time of ad set %s on %s", ErrInvalid, r.AdSetID, r.Date)
	}
	return nil
}

// SpendRange rejects an invalid app name, dates that are not YYYY-MM-DD, or from after to.
func SpendRange(app, from, to string) error {
	if err := Name("app", app); err != nil {
		return err
	}
	if err := Date(from); err != nil {
		return err
	}
	if err := Date(to); err != nil {
		return err
	}
	if from > to {
		return fmt.Errorf("%w: from %s is after to %s", ErrInvalid, from, to)
	}
	return nil
}

// Date rejects a string that is not a calendar date written YYYY-MM-DD.
func Date(d string) error {
	if t, err := time.Parse(DateLayout, d); err != nil || t.Format(DateLayout) != d {
		return fmt.Errorf("%w: date %q, want YYYY-MM-DD", ErrInvalid, d)
	}
	return nil
}

// SpendKey is a spend row's sort key, <date>#<ad set id>: string order is (date, ad set).
func SpendKey(date, adSetID string) string { return date + "#" + adSetID }

// NormalizeSpend returns r with its segment lists sorted and deduplicated (nil when empty), as
// both stores return them.
func NormalizeSpend(r ports.SpendDay) ports.SpendDay {
	norm := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		s = slices.Clone(s)
		slices.Sort(s)
		return slices.Compact(s)
	}
	r.Audiences, r.Contaminated = norm(r.Audiences), norm(r.Contaminated)
	return r
}

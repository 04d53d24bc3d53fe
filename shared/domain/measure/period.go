package measure

import (
	"fmt"
	"time"
)

// The period of a report, as GET /v1/reports/audiences and `retarget report` take it.
const (
	// DayLayout is how join days are written: YYYY-MM-DD, UTC.
	DayLayout = "2006-01-02"
	// MaxPeriodDays is the longest period one report covers (from and to inclusive): a year,
	// leap day included. A report reads one counter item per audience, day and arm, so the
	// bound keeps one request's reads small.
	MaxPeriodDays = 366
	// DefaultPeriodDays is the period when from is not given: the 28 join days ending with to,
	// the longest outcome window.
	DefaultPeriodDays = 28
)

// Period resolves a report's period from the from and to the caller gave ("" when absent):
// to defaults to today (UTC) and from to DefaultPeriodDays join days ending with to. Each must
// be a calendar day written YYYY-MM-DD, from must not follow to, and the period spans at most
// MaxPeriodDays days. The error says which parameter is wrong and why, in words a caller can
// act on.
func Period(from, to string, now time.Time) (string, string, error) {
	end := now.UTC().Truncate(24 * time.Hour)
	if to != "" {
		t, err := parseDay("to", to)
		if err != nil {
			return "", "", err
		}
		end = t
	}
	start := end.AddDate(0, 0, -(DefaultPeriodDays - 1))
	if from != "" {
		f, err := parseDay("from", from)
		if err != nil {
			return "", "", err
		}
		start = f
	}
	if start.After(end) {
		return "", "", fmt.Errorf("from (%s) is after to (%s)", start.Format(DayLayout), end.Format(DayLayout))
	}
	if days := int(end.Sub(start)/(24*time.Hour)) + 1; days > MaxPeriodDays {
		return "", "", fmt.Errorf("the period %s..%s spans %d days; at most %d", start.Format(DayLayout), end.Format(DayLayout), days, MaxPeriodDays)
	}
	return start.Format(DayLayout), end.Format(DayLayout), nil
}

// parseDay parses a YYYY-MM-DD day strictly: time.Parse accepts the layout only with
// two-digit months and days, and refuses 2026-02-30.
func parseDay(name, s string) (time.Time, error) {
	t, err := time.Parse(DayLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is not a day written YYYY-MM-DD", name, s)
	}
	return t, nil
}

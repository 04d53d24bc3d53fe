package storecheck

import (
	"fmt"
	"math"
	"strings"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Action rejects an automation action with an invalid app name, an id that is empty, holds
// '#' or does not start with its Day (ids sort by day: a range of days is a range of keys), a
// Day that is not YYYY-MM-DD, an unknown status, or a version below 1.
func Action(a ports.AutomationAction) error {
	if err := Name("app", a.App); err != nil {
		return err
	}
	if err := Date(a.Day); err != nil {
		return err
	}
	if a.ID == "" || strings.Contains(a.ID, "#") || !strings.HasPrefix(a.ID, a.Day) {
		return fmt.Errorf("%w: action id %q must be non-empty, without '#', and start with its day %s", ErrInvalid, a.ID, a.Day)
	}
	switch a.Status {
	case ports.ActionProposed, ports.ActionApplied, ports.ActionUndone, ports.ActionRefused:
	default:
		return fmt.Errorf("%w: action %s status %q", ErrInvalid, a.ID, a.Status)
	}
	if a.Version < 1 {
		return fmt.Errorf("%w: action %s version %d, want at least 1", ErrInvalid, a.ID, a.Version)
	}
	return nil
}

// ActionKey rejects an invalid app name or an empty action id, or one with '#'.
func ActionKey(app, id string) error {
	if err := Name("app", app); err != nil {
		return err
	}
	if id == "" || strings.Contains(id, "#") {
		return fmt.Errorf("%w: action id %q must be non-empty and without '#'", ErrInvalid, id)
	}
	return nil
}

// KPIDay rejects a snapshot with an invalid app or segment name, a date that is not
// YYYY-MM-DD, negative members, or a cost that is not a finite number.
func KPIDay(k ports.KPIDay) error {
	if err := Name("app", k.App); err != nil {
		return err
	}
	if err := Name("segment", k.Segment); err != nil {
		return err
	}
	if err := Date(k.Date); err != nil {
		return err
	}
	if k.Members < 0 {
		return fmt.Errorf("%w: KPI day %s of %s: negative members", ErrInvalid, k.Date, k.Segment)
	}
	if c := k.CostPerIncremental; c != nil && (math.IsNaN(*c) || math.IsInf(*c, 0)) {
		return fmt.Errorf("%w: KPI day %s of %s: cost %v", ErrInvalid, k.Date, k.Segment, *c)
	}
	return nil
}

// KPIRange rejects an invalid app or segment name, dates that are not YYYY-MM-DD, or from
// after to.
func KPIRange(app, segment, from, to string) error {
	if err := Name("segment", segment); err != nil {
		return err
	}
	return SpendRange(app, from, to)
}

// Package report is the use case behind GET /v1/reports/audiences, `retarget report` and the
// insights run's KPI metrics: it reads one app's cohort counters, spend and audience ids and
// hands them to measure.Build.
package report

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/ports"
)

// ErrUnknownApp: the app is not in the config (the route answers 404).
var ErrUnknownApp = errors.New("unknown app")

// ErrPeriod is measure.ErrPeriod: the from..to period is invalid (the route answers 400).
var ErrPeriod = measure.ErrPeriod

// DefaultPeriodDays is the length of the period when the caller names no start.
const DefaultPeriodDays = 28

// HoldoutKey is the key of a segment's holdout audience wherever audiences are keyed by
// segment (sync state, member index): "<segment>:holdout". Segment ids never contain ':', so
// it cannot clash with a segment.
func HoldoutKey(segment string) string { return segment + audiences.HoldoutKeySuffix }

// Sources are the stores a report reads.
type Sources struct {
	Config   *appconfig.Config
	Outcomes ports.OutcomeStore
	Spend    ports.SpendStore
	Sync     ports.AudienceSyncStore
}

// Period resolves the from and to parameters the route and the CLI take (YYYY-MM-DD, UTC join
// days, inclusive), either or both empty:
//
//   - neither: the DefaultPeriodDays days up to yesterday (UTC). Today is left out because its
//     cohorts are still growing; a caller who wants it says to=today.
//   - to only: the DefaultPeriodDays days up to to.
//   - from only: from up to yesterday, or up to from itself when from is today or later.
//
// The result is checked as measure.ParsePeriod does (from <= to, at most measure.MaxPeriodDays
// days); errors wrap ErrPeriod and name the parameter.
func Period(from, to string, now time.Time) (string, string, error) {
	yesterday := measure.DayOf(now) - 1
	switch {
	case from == "" && to == "":
		to = measure.DayString(yesterday)
		from = measure.DayString(yesterday - DefaultPeriodDays + 1)
	case from == "":
		toDay, err := measure.ParseDate("to", to)
		if err != nil {
			return "", "", err
		}
		from = measure.DayString(toDay - DefaultPeriodDays + 1)
	case to == "":
		fromDay, err := measure.ParseDate("from", from)
		if err != nil {
			return "", "", err
		}
		to = measure.DayString(max(fromDay, yesterday))
	}
	if _, _, err := measure.ParsePeriod(from, to); err != nil {
		return "", "", err
	}
	return from, to, nil
}

// Audiences returns app's report for the join days from..to (YYYY-MM-DD, inclusive; see
// Period for defaults), made at now: every audience of the app in config order, with its
// holdout fraction; the audience ids configured, else those the sync stored (under the
// segment, and HoldoutKey(segment) for the holdout audience); the cohorts that joined in the
// period; the app's spend rows of the same dates (in the ad account's time zone); the app's
// minimum sample and reporting currency. An app not in the config is ErrUnknownApp, a bad
// period ErrPeriod.
func Audiences(ctx context.Context, src Sources, app, from, to string, now time.Time) (measure.Report, error) {
	if src.Config == nil || src.Outcomes == nil || src.Spend == nil || src.Sync == nil {
		return measure.Report{}, errors.New("report: Sources needs Config, Outcomes, Spend and Sync")
	}
	a, ok := src.Config.App(app)
	if !ok {
		return measure.Report{}, fmt.Errorf("report: %w %q", ErrUnknownApp, app)
	}
	fromDay, toDay, err := measure.ParsePeriod(from, to)
	if err != nil {
		return measure.Report{}, fmt.Errorf("report: %w", err)
	}
	in := measure.Input{
		App:               app,
		From:              from,
		To:                to,
		AsOf:              now,
		ReportingCurrency: a.ReportingCurrency,
		MinSample:         a.Measurement.Sample(),
		Audiences:         make([]measure.AudienceInput, 0, len(a.Audiences)),
	}
	for i := range a.Audiences {
		au := &a.Audiences[i]
		ai := measure.AudienceInput{
			Segment:           au.Segment,
			AudienceID:        au.AudienceID,
			HoldoutAudienceID: au.HoldoutAudienceID,
			HoldoutFraction:   au.Holdout(),
		}
		if ai.AudienceID == "" {
			if ai.AudienceID, err = storedID(ctx, src.Sync, app, au.Segment); err != nil {
				return measure.Report{}, err
			}
		}
		if ai.HoldoutAudienceID == "" && ai.HoldoutFraction > 0 {
			if ai.HoldoutAudienceID, err = storedID(ctx, src.Sync, app, HoldoutKey(au.Segment)); err != nil {
				return measure.Report{}, err
			}
		}
		if ai.Outcomes, err = src.Outcomes.Outcomes(ctx, app, au.Segment, fromDay, toDay); err != nil {
			return measure.Report{}, fmt.Errorf("report: outcomes of %s/%s: %w", app, au.Segment, err)
		}
		in.Audiences = append(in.Audiences, ai)
	}
	if in.Spend, err = src.Spend.Spend(ctx, app, from, to); err != nil {
		return measure.Report{}, fmt.Errorf("report: spend of %s: %w", app, err)
	}
	rep, err := measure.Build(in)
	if err != nil {
		return measure.Report{}, fmt.Errorf("report: %w", err)
	}
	return rep, nil
}

// storedID is the audience id the sync stored under key, "" before the sync created it.
func storedID(ctx context.Context, sync ports.AudienceSyncStore, app, key string) (string, error) {
	st, ok, err := sync.GetAudienceState(ctx, app, key)
	if err != nil {
		return "", fmt.Errorf("report: audience state of %s/%s: %w", app, key, err)
	}
	if !ok {
		return "", nil
	}
	return st.AudienceID, nil
}

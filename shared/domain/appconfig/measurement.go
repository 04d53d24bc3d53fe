package appconfig

// The measurement schema: holdouts per audience and how the app's outcomes are counted and
// judged.
//
//	"audiences": [{"segment": "cart_abandoner", "name": "Cart abandoners", "create": true,
//	               "holdout_fraction": 0.1}],
//	"measurement": {"reengagement_events": ["ActivateApp"], "min_sample": 100,
//	                "target_cost_per_incremental_reengagement": 4.0, "alarm_days": 3}
//
// Audience fields (audiences.go declares them):
//
//	holdout_fraction     share of the segment's users kept out of the audience, 0..0.5
//	                     (default 0.1; 0 turns the holdout off). The assignment is an HMAC of
//	                     the user key and the audience (package holdout): stable across syncs,
//	                     refreshes, exclusive-group moves and rules changes.
//	holdout_salt         re-randomises the assignment when changed (default: none). Changing it,
//	                     or the fraction, starts a new experiment: compare only periods after it.
//	holdout_audience_id  an existing audience for the holdout; absent, the sync creates
//	                     "<name> (holdout)" in the same ad account. Exclude it on every ad set.
//
// measurement (optional, per app):
//
//	reengagement_events  event names that count as coming back (default ["ActivateApp"], the
//	                     app open; fb_mobile_* names are accepted and normalised)
//	min_sample           users per arm below which a KPI says "not enough data" (default 100)
//	target_cost_per_incremental_reengagement
//	                     in the ad account's currency: an alarm fires when the audience's cost per
//	                     incremental re-engagement stays above it for alarm_days days (0: no alarm)
//	alarm_days           days for both alarms, also zero spend while the audience has members
//	                     (default 3, 1..7: CloudWatch evaluates at most 7 days)

import (
	"fmt"
	"slices"
	"strings"
)

// Holdout defaults and bounds.
const (
	DefaultHoldoutFraction = 0.1
	// MaxHoldoutFraction: above half, the "holdout" would be the larger arm.
	MaxHoldoutFraction = 0.5
	// HoldoutNameSuffix names a created holdout audience: "<name> (holdout)".
	HoldoutNameSuffix = " (holdout)"
	// DefaultReengagementEvent is the app open (fb_mobile_activate_app).
	DefaultReengagementEvent = "ActivateApp"
	DefaultMinSample         = 100
	DefaultAlarmDays         = 3
	// MaxAlarmDays: the alarms use daily periods, and CloudWatch refuses an alarm whose period
	// times evaluation periods exceeds 7 days (604,800 s; PutMetricAlarm, Period:
	// https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html).
	MaxAlarmDays   = 7
	maxHoldoutSalt = 64
)

// Measurement tunes how one app's remarketing is measured. Zero values mean the defaults.
type Measurement struct {
	// ReengagementEvents count as coming back; empty means [DefaultReengagementEvent].
	ReengagementEvents []string `json:"reengagement_events,omitempty"`
	// MinSample is the fewest users per arm a KPI is computed from; 0 means DefaultMinSample.
	MinSample int `json:"min_sample,omitempty"`
	// TargetCostPerIncrementalReengagement (account currency, major units): 0 means no alarm.
	TargetCostPerIncrementalReengagement float64 `json:"target_cost_per_incremental_reengagement,omitempty"`
	// AlarmDays: 0 means DefaultAlarmDays.
	AlarmDays int `json:"alarm_days,omitempty"`
}

// Holdout returns the audience's holdout fraction with the default applied.
func (a *Audience) Holdout() float64 {
	if a.HoldoutFraction == nil {
		return DefaultHoldoutFraction
	}
	return *a.HoldoutFraction
}

// HoldoutName is the name of the audience's holdout audience.
func (a *Audience) HoldoutName() string { return a.Name + HoldoutNameSuffix }

// Events returns the re-engagement event names (normalised by the caller), or the default.
func (m *Measurement) Events() []string {
	if len(m.ReengagementEvents) == 0 {
		return []string{DefaultReengagementEvent}
	}
	return slices.Clone(m.ReengagementEvents)
}

// Sample returns the minimum sample per arm.
func (m *Measurement) Sample() int {
	if m.MinSample <= 0 {
		return DefaultMinSample
	}
	return m.MinSample
}

// Days returns the alarm period in days.
func (m *Measurement) Days() int {
	if m.AlarmDays <= 0 {
		return DefaultAlarmDays
	}
	return m.AlarmDays
}

// checkHoldout validates one audience's holdout fields.
func checkHoldout(au *Audience, where string, bad func(field, format string, args ...any)) {
	if f := au.HoldoutFraction; f != nil && !(*f >= 0 && *f <= MaxHoldoutFraction) {
		bad(where+".holdout_fraction", "must be between 0 (no holdout) and %v (got %v)", MaxHoldoutFraction, *f)
	}
	if s := au.HoldoutSalt; len(s) > maxHoldoutSalt || strings.TrimSpace(s) != s {
		bad(where+".holdout_salt", "must be at most %d characters without surrounding spaces", maxHoldoutSalt)
	}
	if id := au.HoldoutAudienceID; id != "" {
		switch {
		case !audienceIDPattern.MatchString(id):
			bad(where+".holdout_audience_id", "must be the holdout audience's numeric id (got %q)", id)
		case id == au.AudienceID:
			bad(where+".holdout_audience_id", "must differ from audience_id (the holdout is excluded where the audience is included)")
		case au.HoldoutFraction != nil && *au.HoldoutFraction == 0:
			bad(where+".holdout_audience_id", "is set while holdout_fraction is 0 (no holdout): drop one")
		}
	}
}

// checkMeasurement validates the app's measurement settings.
func (a *App) checkMeasurement(bad func(field, format string, args ...any)) {
	m := &a.Measurement
	for i, e := range m.ReengagementEvents {
		if strings.TrimSpace(e) == "" || strings.TrimSpace(e) != e || len(e) > 64 {
			bad(fmt.Sprintf("measurement.reengagement_events[%d]", i), "must be an event name of 1-64 characters without surrounding spaces (got %q)", e)
		} else if slices.Contains(m.ReengagementEvents[:i], e) {
			bad(fmt.Sprintf("measurement.reengagement_events[%d]", i), "%q is listed twice", e)
		}
	}
	if m.MinSample < 0 {
		bad("measurement.min_sample", "must be 0 (the default, %d) or a positive number of users per arm (got %d)", DefaultMinSample, m.MinSample)
	}
	if t := m.TargetCostPerIncrementalReengagement; t < 0 {
		bad("measurement.target_cost_per_incremental_reengagement", "must be 0 (no alarm) or a positive amount in the ad account's currency (got %v)", t)
	}
	if d := m.AlarmDays; d < 0 || d > MaxAlarmDays {
		bad("measurement.alarm_days", "must be 0 (the default, %d) or 1..%d (got %d)", DefaultAlarmDays, MaxAlarmDays, d)
	}
}

package appconfig

import (
	"slices"
	"strings"
	"testing"
)

// TestHoldoutAndMeasurementDefaults: an audience without holdout_fraction holds out the
// default share, 0 turns it off, and the measurement settings default as documented.
func TestHoldoutAndMeasurementDefaults(t *testing.T) {
	cfg, err := Parse([]byte(audiencesDoc(`, "audiences": [{"segment": "a", "name": "A", "create": true},
		{"segment": "b", "name": "B", "create": true, "holdout_fraction": 0},
		{"segment": "c", "name": "C", "audience_id": "1", "holdout_fraction": 0.2, "holdout_audience_id": "2", "holdout_salt": "q1"}],
		"measurement": {"reengagement_events": ["fb_mobile_activate_app", "Search"], "alarm_days": 7}`)))
	if err != nil {
		t.Fatal(err)
	}
	app := &cfg.Apps[0]
	if a, b, c := app.Audiences[0].Holdout(), app.Audiences[1].Holdout(), app.Audiences[2].Holdout(); a != DefaultHoldoutFraction || b != 0 || c != 0.2 {
		t.Errorf("holdouts %v %v %v, want %v 0 0.2", a, b, c, DefaultHoldoutFraction)
	}
	if n := app.Audiences[0].HoldoutName(); n != "A (holdout)" {
		t.Errorf("holdout name %q", n)
	}
	m := app.Measurement
	if !slices.Equal(m.Events(), []string{"fb_mobile_activate_app", "Search"}) || m.Sample() != DefaultMinSample || m.Days() != 7 {
		t.Errorf("measurement %v %d %d", m.Events(), m.Sample(), m.Days())
	}
	var none Measurement
	if !slices.Equal(none.Events(), []string{DefaultReengagementEvent}) || none.Days() != DefaultAlarmDays {
		t.Errorf("defaults %v %d", none.Events(), none.Days())
	}
}

func TestHoldoutAndMeasurementErrors(t *testing.T) {
	p := `apps[0] ("shop").`
	tests := []struct {
		name, extra string
		want        []string
	}{
		{"fraction out of range", `, "audiences": [{"segment": "a", "name": "A", "create": true, "holdout_fraction": 0.6}]`,
			[]string{p + `audiences[0] ("a").holdout_fraction: must be between 0 (no holdout) and 0.5 (got 0.6)`}},
		{"holdout id equal to the audience id", `, "audiences": [{"segment": "a", "name": "A", "audience_id": "7", "holdout_audience_id": "7"}]`,
			[]string{p + `audiences[0] ("a").holdout_audience_id: must differ from audience_id (the holdout is excluded where the audience is included)`,
				p + `audiences[0] ("a").holdout_audience_id: duplicates audiences[0] (each audience needs its own holdout)`}},
		{"holdout id without a holdout", `, "audiences": [{"segment": "a", "name": "A", "create": true, "holdout_fraction": 0, "holdout_audience_id": "7"}]`,
			[]string{p + `audiences[0] ("a").holdout_audience_id: is set while holdout_fraction is 0 (no holdout): drop one`}},
		{"created holdout name taken", `, "audiences": [{"segment": "a", "name": "A", "create": true}, {"segment": "b", "name": "A (holdout)", "create": true, "holdout_fraction": 0}]`,
			[]string{p + `audiences[1] ("b").name: "A (holdout)" duplicates audiences[0] in ad account act_456`}},
		{"measurement", `, "measurement": {"reengagement_events": ["", "Open", "Open"], "min_sample": -1, "target_cost_per_incremental_reengagement": -2, "alarm_days": 8}`,
			[]string{p + `measurement.reengagement_events[0]: must be an event name of 1-64 characters without surrounding spaces (got "")`,
				p + `measurement.reengagement_events[2]: "Open" is listed twice`,
				p + `measurement.min_sample: must be 0 (the default, 100) or a positive number of users per arm (got -1)`,
				p + `measurement.target_cost_per_incremental_reengagement: must be 0 (no alarm) or a positive amount in the ad account's currency (got -2)`,
				p + `measurement.alarm_days: must be 0 (the default, 3) or 1..7 (got 8)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(audiencesDoc(tt.extra)))
			if err == nil {
				t.Fatal("accepted")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

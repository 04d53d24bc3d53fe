package ingesttest

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRefreshEventTimes(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 500e6, time.UTC)
	latest := time.Date(2030, 1, 2, 3, 3, 5, 0, time.UTC) // a minute before now, whole seconds

	t.Run("moves valid times, keeps spacing, form and invalid ones", func(t *testing.T) {
		// 1700000000 is 2023-11-14T22:13:20Z; the latest valid time is the last one.
		body := `{"events":[{"event_time":1700000000},{"event_time":"2023-11-14T22:14:20Z"},` +
			`{"event_time":1700000000000},{"event_time":"yesterday"},{"event_time":1700000100},"not an event"]}`
		got := decodeEventTimes(t, RefreshEventTimes(t, body, now))
		want := []any{
			json.Number(itoa(latest.Add(-100 * time.Second).Unix())),
			latest.Add(-40 * time.Second).Format(time.RFC3339),
			json.Number("1700000000000"), // milliseconds: invalid on purpose
			"yesterday",
			json.Number(itoa(latest.Unix())),
		}
		if !slices.Equal(got, want) {
			t.Errorf("event times %v, want %v", got, want)
		}
	})
	t.Run("nothing to move", func(t *testing.T) {
		for _, body := range []string{"", `{"events":[]}`, `{"events":[{"event_time":17}]}`, `{"other": true}`} {
			if got := RefreshEventTimes(t, body, now); got != body {
				t.Errorf("RefreshEventTimes(%q) = %q, want it unchanged", body, got)
			}
		}
	})
	t.Run("fixtures", func(t *testing.T) {
		for _, name := range []string{"valid-batch.json", "partly-invalid-batch.json"} {
			body := RefreshEventTimes(t, FixtureBody(t, name), now)
			var fresh int
			for _, v := range decodeEventTimes(t, body) {
				if ts, ok := parseEventTime(v); ok {
					fresh++
					if ts.Before(now.Add(-time.Hour)) || ts.After(latest) {
						t.Errorf("%s: event time %v, want within the hour before %v", name, v, latest)
					}
				}
			}
			if fresh == 0 {
				t.Errorf("%s: no valid event time", name)
			}
		}
	})
}

func TestPersonalValues(t *testing.T) {
	first := `{"events":[{"user":{"email":"Ann.Lee@Example.com","phone":"+1 (650) 555-0100","first_name":"Ann",` +
		`"last_name":"Lee-Smith","city":"Oslo","zip":"0150","date_of_birth":"1985-07-30","app_user_id":"u-12345",` +
		`"country":"Norway"}},{"user":{"email":"ann.lee@example.com"}},{}]}`
	second := `{"events":[{"user":{"email":"bo.chan@example.org"}}]}`
	got := PersonalValues(t, first, "", second)
	want := []string{
		"ann.lee@example.com",
		"+1 (650) 555-0100", "+1(650)555-0100", "16505550100",
		// "Ann": too short
		"lee-smith",
		"oslo",
		"0150", // four digits: no digits-only form
		"1985-07-30", "19850730",
		"bo.chan@example.org",
		// app_user_id and country are not personal fields
	}
	if !slices.Equal(got, want) {
		t.Errorf("PersonalValues:\n%q\nwant\n%q", got, want)
	}

	fixtures := PersonalValues(t, FixtureBody(t, "valid-batch.json"))
	for _, v := range []string{"mary.major@example.com", "(650) 555-1212", "(650)555-1212", "6505551212", "münchen", "19900412"} {
		if !slices.Contains(fixtures, v) {
			t.Errorf("values of valid-batch.json lack %q: %q", v, fixtures)
		}
	}
}

func decodeEventTimes(t *testing.T, body string) []any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var doc struct{ Events []any }
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var out []any
	for _, e := range doc.Events {
		if ev, ok := e.(map[string]any); ok {
			out = append(out, ev["event_time"])
		}
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

package ingesttest

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RefreshEventTimes moves the valid event times of a request body so that the latest is a
// minute before now, keeping their spacing and form (unix seconds or RFC 3339): the fixtures'
// times are fixed and go stale after 7 days. Times invalid on purpose (not plausible unix
// seconds, not RFC 3339) stay as they are, and so does a body without valid times or an empty
// one. The result is the body re-encoded (keys in order), or the body itself if nothing moved.
func RefreshEventTimes(t testing.TB, body string, now time.Time) string {
	t.Helper()
	if body == "" {
		return body
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("request body: %v", err)
	}
	var evs []map[string]any
	list, _ := doc["events"].([]any)
	for _, e := range list {
		if ev, ok := e.(map[string]any); ok {
			evs = append(evs, ev)
		}
	}
	var latest time.Time
	for _, ev := range evs {
		if ts, ok := parseEventTime(ev["event_time"]); ok && ts.After(latest) {
			latest = ts
		}
	}
	if latest.IsZero() {
		return body
	}
	shift := now.Add(-time.Minute).Sub(latest).Truncate(time.Second)
	for _, ev := range evs {
		ts, ok := parseEventTime(ev["event_time"])
		if !ok {
			continue
		}
		if _, isNum := ev["event_time"].(json.Number); isNum {
			ev["event_time"] = json.Number(strconv.FormatInt(ts.Add(shift).Unix(), 10))
		} else {
			ev["event_time"] = ts.Add(shift).UTC().Format(time.RFC3339)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// parseEventTime reads a valid event time: plausible unix seconds or an RFC 3339 string.
func parseEventTime(v any) (time.Time, bool) {
	switch v := v.(type) {
	case json.Number:
		n, err := v.Int64()
		if err != nil || n < 1e9 || n >= 1e11 {
			return time.Time{}, false
		}
		return time.Unix(n, 0), true
	case string:
		ts, err := time.Parse(time.RFC3339, v)
		return ts, err == nil
	}
	return time.Time{}, false
}

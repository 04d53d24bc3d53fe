package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRulesCheckListsAValidConfig(t *testing.T) {
	h := newHarness(t)
	out := h.mustRun(exitOK, "rules", "check", "--config", sampleConfig)
	wantContains(t, out, "config "+sampleConfig+" is valid: 1 app(s)")
	tableRow(t, out, "sample-shop", "Sample", "Shop", "(iOS", "and", "Android)", "ios,android", "1234567890123456", "act_1234567890", "no", "7", "6")
	tableRow(t, out, "sample-shop", "cart_abandoner", "Cart", "abandoners", "(created", "by", "sync)", "1", "(priority", "1)", "An", "add-to-cart")
	tableRow(t, out, "sample-shop", "vip", "Top", "spenders", "(value-based)")
	tableRow(t, out, "sample-shop", "subscription_expired", "-", "-", "-", "The")

	// The dev config is the sample with a test event code.
	devOut := h.mustRun(exitOK, "rules", "check", "--config", filepath.Join("..", "..", "config", "apps.dev.json"))
	tableRow(t, devOut, "sample-shop", "Sample", "Shop", "(iOS", "and", "Android)", "ios,android", "1234567890123456", "act_1234567890", "yes", "7", "6")

	// APP_CONFIG_FILE is the default, as for the functions; JSON.
	h.env["APP_CONFIG_FILE"] = sampleConfig
	h.mustRun(exitOK, "rules", "check", "--json")
	var v configView
	h.decodeJSON(&v)
	if !v.Valid || len(v.Apps) != 1 || len(v.Apps[0].Segments) != 7 || v.Apps[0].Segments[4].ID != "vip" ||
		v.Apps[0].Segments[4].Audience == nil || !v.Apps[0].Segments[4].Audience.ValueBased || !v.Apps[0].Segments[4].Audience.Create ||
		v.Apps[0].Segments[6].Audience != nil || v.Apps[0].AdAccountID != "act_1234567890" {
		t.Errorf("config view %+v", v)
	}
}

func TestRulesCheckRefusesABadConfig(t *testing.T) {
	data, err := os.ReadFile(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), `"within": "7d", "at_least": 3`, `"within": "36h", "at_least": 3`, 1)
	bad = strings.Replace(bad, `"name": "Top spenders"`, `"name": "High income buyers"`, 1)
	path := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(path, []byte(bad), 0o600)

	h := newHarness(t)
	h.mustRun(exitFailure, "rules", "check", "--config", path)
	wantContains(t, h.stderr.String(),
		"retarget rules check: the config is not valid:\napp config "+path+": ",
		`apps[0] ("sample-shop").segments[1] ("engaged").when[0].count.within: "36h": must be a whole number of days`,
		`apps[0] ("sample-shop").audiences[3]`, "financial status")
	if h.stdout.Len() > 0 {
		t.Errorf("stdout: %s", h.stdout.String())
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"rules", "check", "--config", "no/such.json"}, exitFailure, "retarget rules check: app config: open no/such.json: no such file or directory"},
		{[]string{"rules", "check", "--config", sampleConfig, "--app", "nope"}, exitFailure, `unknown app "nope" (the config has: sample-shop)`},
		{[]string{"rules", "check", "--config", sampleConfig, "--events", "no/such.jsonl"}, exitFailure, "events file: open no/such.jsonl"},
		{[]string{"rules", "check", "--config", sampleConfig, "--now", "yesterday"}, exitUsage, `--now: "yesterday": want RFC 3339`},
		{[]string{"rules", "check", "extra"}, exitUsage, `unexpected arguments ["extra"]`},
	} {
		if code := h.run(tc.args...); code != tc.code || !strings.Contains(h.stderr.String(), tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, h.stderr.String(), tc.code, tc.msg)
		}
	}
}

// dryRunEvents is a small story: user u-1 installs, adds to cart, registers and buys; u-2
// withheld consent; then lines the ingest function refuses.
func dryRunEvents(now time.Time) string {
	ev := func(id, name, user string, ago time.Duration, extra string) string {
		return fmt.Sprintf(`{"event_id":%q,"event_name":%q,"event_time":%d,"user":{"app_user_id":%q,"email":"a@example.com"},`+
			`"device":{"platform":"android","os_version":"14"},"consent":{"ads_personalization":%v}%s}`,
			id, name, now.Add(-ago).Unix(), user, user != "u-2", extra)
	}
	return strings.Join([]string{
		ev("e-1", "MobileAppInstall", "u-1", 50*time.Hour, ""),
		ev("e-2", "fb_mobile_add_to_cart", "u-1", 49*time.Hour, `,"custom_data":{"value":20,"currency":"USD"}`),
		ev("e-5", "fb_mobile_activate_app", "u-2", 2*time.Hour, ""),
		ev("e-3", "fb_mobile_complete_registration", "u-1", 47*time.Hour, ""),
		ev("e-4", "fb_mobile_purchase", "u-1", 30*time.Hour, `,"custom_data":{"value":250,"currency":"USD"}`),
		`not json`,
		ev("e-6", "fb_mobile_purchase", "u-1", time.Hour, ""),
		ev("e-7", "fb_mobile_activate_app", "u-1", 8*24*time.Hour, ""),
		ev("e-1", "fb_mobile_activate_app", "u-1", time.Hour, ""),
		"",
	}, "\n")
}

func TestRulesCheckDryRunsTheRulesOnEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte(dryRunEvents(testNow)), 0o600)
	h := newHarness(t)
	h.env["APP_CONFIG_FILE"] = sampleConfig
	out := h.mustRun(exitOK, "rules", "check", "--events", path)

	wantContains(t, out, "app sample-shop: 9 event(s), 5 accepted, 4 rejected, 2 user(s); evaluated up to 2026-03-09T10:00:00Z")
	at := func(ago time.Duration) string { return testNow.Add(-ago).Format(time.RFC3339) }
	tableRow(t, out, "1", at(50*time.Hour), "enter", "new_installer", "line", "1:", "MobileAppInstall", "(event_id", "e-1)")
	tableRow(t, out, "1", at(48*time.Hour), "enter", "cart_abandoner", "time", "(no", "event:")
	tableRow(t, out, "1", at(30*time.Hour), "enter", "vip", "line", "5:", "fb_mobile_purchase", "(event_id", "e-4)")
	tableRow(t, out, "1", at(30*time.Hour), "leave", "cart_abandoner", "line", "5:", "fb_mobile_purchase")
	tableRow(t, out, "1", at(23*time.Hour), "enter", "onboarding_incomplete", "time")
	if row := tableRow(t, out, "1", "app_user_id"); strings.Join(row[3:], " ") != "4 new_installer, vip, onboarding_incomplete" {
		t.Errorf("user 1 now: %q", row)
	}
	tableRow(t, out, "2", "-") // no consent: keyed, but no identifiers kept, and no segment
	tableRow(t, out, "6", "-", "(line)", "not", "a", "JSON", "object")
	tableRow(t, out, "7", "e-6", "custom_data.value", "is", "required", "for", "purchases")
	tableRow(t, out, "8", "e-7", "event_time", "older", "than", "7", "days:")
	tableRow(t, out, "9", "e-1", "event_id", "repeats", "the", "event_id", "of", "line", "1")
	wantNotContains(t, out, "a@example.com", "u-1", "u-2")

	h.mustRun(exitOK, "rules", "check", "--events", path, "--json")
	var res dryRunResult
	h.decodeJSON(&res)
	if len(res.Users) != 2 || res.Accepted != 5 || len(res.Rejected) != 4 {
		t.Fatalf("result %+v", res)
	}
	u1 := res.Users[0]
	var changes []string
	for _, tr := range u1.Transitions {
		changes = append(changes, fmt.Sprintf("%s %s %s:%d", tr.Change, tr.Segment, tr.Cause, tr.Line))
	}
	want := []string{"enter new_installer event:1", "enter cart_abandoner time:0", "enter vip event:5", "leave cart_abandoner event:5", "enter onboarding_incomplete time:0"}
	if !slices.Equal(changes, want) {
		t.Errorf("transitions %q, want %q", changes, want)
	}
	if !slices.Equal(u1.SegmentsNow, []string{"new_installer", "vip", "onboarding_incomplete"}) || u1.Events != 4 || u1.KeySource != "app_user_id" {
		t.Errorf("user 1 %+v", u1)
	}
	if u2 := res.Users[1]; len(u2.Transitions) != 0 || len(u2.SegmentsNow) != 0 || u2.Events != 1 {
		t.Errorf("user 2 %+v", u2)
	}

	// Later: the time-based changes up to --now are followed (new_installer ends 3 days after
	// the install), and the API's 7-day window moves with --now.
	h.stdin = dryRunEvents(testNow)
	h.mustRun(exitOK, "rules", "check", "--events", "-", "--now", testNow.Add(7*24*time.Hour).Format(time.RFC3339), "--json")
	h.decodeJSON(&res)
	if res.Accepted != 0 || len(res.Users) != 0 {
		t.Errorf("a week later every event is too old for the API: %+v", res)
	}
	h.mustRun(exitOK, "rules", "check", "--events", "-", "--now", fmt.Sprint(testNow.Add(24*time.Hour).Unix()), "--json")
	h.decodeJSON(&res)
	last := res.Users[0].Transitions[len(res.Users[0].Transitions)-1]
	if last.Change != "leave" || last.Segment != "new_installer" || last.Cause != "time" || last.At != testNow.Add(22*time.Hour).Format(time.RFC3339) {
		t.Errorf("last change %+v", last)
	}
}

func TestRulesCheckNeedsAnAppWhenTheConfigHasSeveral(t *testing.T) {
	data, _ := os.ReadFile(sampleConfig)
	two := strings.Replace(string(data), `"apps": [`, `"apps": [{"id": "other-app", "platforms": ["ios"], "api_key": {"name": "other"},
      "meta": {"dataset_id": "1", "ad_account_id": "act_2"}},`, 1)
	path := filepath.Join(t.TempDir(), "two.json")
	os.WriteFile(path, []byte(two), 0o600)
	h := newHarness(t)
	h.stdin = dryRunEvents(testNow)
	h.mustRun(exitUsage, "rules", "check", "--config", path, "--events", "-")
	wantContains(t, h.stderr.String(), "the config has 2 apps: choose one with --app (other-app, sample-shop)")
	h.mustRun(exitOK, "rules", "check", "--config", path, "--events", "-", "--app", "sample-shop")
}

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/measure"
)

// reportHarness is a harness whose reports are hand-built, recording the periods asked for.
func reportHarness(t *testing.T) (*harness, *[]string) {
	h := newHarness(t)
	h.env["APP_CONFIG_FILE"] = sampleConfig
	var asked []string
	h.reports = func(_ context.Context, app, from, to string, now time.Time) (measure.Report, error) {
		asked = append(asked, app+" "+from+".."+to)
		return cliSampleReport(app, from, to), nil
	}
	return h, &asked
}

func cliSampleReport(app, from, to string) measure.Report {
	f := func(v float64) *float64 { return &v }
	return measure.Report{App: app, From: from, To: to, GeneratedAt: "2026-03-09T10:00:00Z",
		Audiences: []measure.AudienceReport{
			{App: app, Segment: "cart_abandoner", AudienceID: "120000000001", HoldoutFraction: 0.1,
				Treated: measure.ArmStats{Users: 1800, Reengaged7d: 540, Retention7d: f(0.3)}, Holdout: measure.ArmStats{Users: 200, Reengaged7d: 40, Retention7d: f(0.2)},
				Lift7d: measure.Lift{Difference: f(0.1), CILow: f(0.043), CIHigh: f(0.157), Significant: true},
				Spend:  f(1234.5), Currency: "USD", CostPerIncrementalReengagement: f(6.8583),
				Contaminated: true, ContaminatedDays: []string{from},
				Days: []measure.DayPoint{{Day: from, TreatedUsers: 1800, HoldoutUsers: 200, TreatedReengaged7d: 540, HoldoutReengaged7d: 40,
					TreatedRate7d: f(0.3), HoldoutRate7d: f(0.2)}}},
			{App: app, Segment: "lapsed", Treated: measure.ArmStats{Users: 30}, Holdout: measure.ArmStats{Users: 3},
				Lift7d: measure.Lift{Note: "not enough data"}, Currency: "USD", Notes: []string{"not enough data: 3 holdout users, the minimum sample is 100"}},
		}}
}

func TestReportTable(t *testing.T) {
	h, asked := reportHarness(t)
	out := h.mustRun(0, "report", "--from", "2026-02-01", "--to", "2026-02-28")
	if want := []string{"sample-shop 2026-02-01..2026-02-28"}; !reflect.DeepEqual(*asked, want) {
		t.Fatalf("asked %v, want %v", *asked, want)
	}
	for _, want := range []string{
		"SEGMENT", "USERS T/H",
		"cart_abandoner  1,800/200",
		"30.0%", "20.0%", "+10.0 pp (95% CI +4.3 to +15.7 pp), significant", "1,234.50 USD", "6.86 USD",
		"lapsed", "not enough data", "no spend",
		"cart_abandoner: contaminated on 2026-02-01",
		"lapsed: not enough data: 3 holdout users",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
}

func TestReportJSONIsTheRoutesJSON(t *testing.T) {
	h, asked := reportHarness(t)
	h.mustRun(0, "report", "--json") // defaults: the 28 days up to yesterday (testNow)
	if want := []string{"sample-shop 2026-02-09..2026-03-08"}; !reflect.DeepEqual(*asked, want) {
		t.Fatalf("asked %v, want %v", *asked, want)
	}
	var got measure.Report
	h.decodeJSON(&got)
	if want := cliSampleReport("sample-shop", "2026-02-09", "2026-03-08").WithEmptyLists(); !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON %+v\nwant %+v", got, want)
	}
	if !strings.Contains(h.stdout.String(), `"groups": []`) {
		t.Errorf("a list is null: %s", h.stdout.String())
	}
}

func TestReportHTML(t *testing.T) {
	h, _ := reportHarness(t)
	file := filepath.Join(t.TempDir(), "report.html")
	out := h.mustRun(0, "report", "--html", file, "--app", "sample-shop")
	page, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Content-Security-Policy", "<svg", `data-series="treated"`, "1,234.50 USD"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if !strings.Contains(out, "wrote "+file) || !strings.Contains(out, "cart_abandoner") {
		t.Errorf("stdout:\n%s", out)
	}
	// --json with --html: the JSON on stdout, the page on disk.
	os.Remove(file)
	h.mustRun(0, "report", "--html", file, "--json")
	var rep measure.Report
	h.decodeJSON(&rep)
	if _, err := os.Stat(file); err != nil || rep.App != "sample-shop" {
		t.Errorf("page %v, report %+v", err, rep)
	}
}

func TestReportBadCommandLines(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--from", "2026-03-05", "--to", "2026-03-01"}, "from 2026-03-05 is after to 2026-03-01"},
		{[]string{"report", "--to", "March"}, `to "March" is not a date (YYYY-MM-DD)`},
		{[]string{"report", "--from", "2024-01-01", "--to", "2025-06-01"}, "is 518 days, at most 366"},
		{[]string{"report", "extra"}, "unexpected arguments"},
	} {
		h, asked := reportHarness(t)
		if code := h.run(c.args...); code != exitUsage || !strings.Contains(h.stderr.String(), c.want) || len(*asked) != 0 {
			t.Errorf("%v: exit %d, stderr %q, asked %v; want 2 and %q", c.args, code, h.stderr.String(), *asked, c.want)
		}
	}
	h, _ := reportHarness(t)
	if code := h.run("report", "--app", "nope"); code != exitFailure || !strings.Contains(h.stderr.String(), `unknown app "nope"`) {
		t.Errorf("unknown app: exit %d, %s", code, h.stderr.String())
	}
}

// With several apps, --app is required: a report is one app's.
func TestReportNeedsAppWithSeveralApps(t *testing.T) {
	raw, err := os.ReadFile(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	apps := doc["apps"].([]any)
	other := map[string]any{}
	for k, v := range apps[0].(map[string]any) {
		other[k] = v
	}
	other["id"] = "other-shop"
	other["api_key"] = map[string]any{"name": "other-shop", "dev_value": "other-dev-key"}
	doc["apps"] = append(apps, other)
	file := filepath.Join(t.TempDir(), "apps.json")
	out, _ := json.Marshal(doc)
	os.WriteFile(file, out, 0o600)
	h, asked := reportHarness(t)
	h.env["APP_CONFIG_FILE"] = file
	if code := h.run("report"); code != exitUsage || !strings.Contains(h.stderr.String(), "choose one with --app") {
		t.Fatalf("exit %d, stderr %s", code, h.stderr.String())
	}
	h.mustRun(0, "report", "--app", "other-shop", "--json")
	if len(*asked) != 1 || !strings.HasPrefix((*asked)[0], "other-shop ") {
		t.Fatalf("asked %v", *asked)
	}
}

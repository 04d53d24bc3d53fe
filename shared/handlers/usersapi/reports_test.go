package usersapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/app/report"
	"github.com/retarget-dev/retarget/shared/domain/measure"
)

// reportCall is one call of the report function.
type reportCall struct {
	app, from, to string
	now           time.Time
}

// withReports gives the harness's handler a report function that records its calls and
// answers a hand-built report (or fails with err).
func (u *usersHarness) withReports(t *testing.T, err error) *[]reportCall {
	t.Helper()
	var calls []reportCall
	cfg := u.cfg
	cfg.Reports = func(_ context.Context, app, from, to string, now time.Time) (measure.Report, error) {
		calls = append(calls, reportCall{app, from, to, now})
		if err != nil {
			return measure.Report{}, err
		}
		return sampleReport(app, from, to), nil
	}
	h, e := New(cfg)
	if e != nil {
		t.Fatal(e)
	}
	u.h = h
	return &calls
}

func sampleReport(app, from, to string) measure.Report {
	f := func(v float64) *float64 { return &v }
	return measure.Report{App: app, From: from, To: to, GeneratedAt: "2026-03-10T12:00:00Z", Groups: []measure.GroupSpend{},
		Audiences: []measure.AudienceReport{{App: app, Segment: "cart_abandoner", AudienceID: "120000000001", HoldoutFraction: 0.1,
			Treated: measure.ArmStats{Users: 900, Reengaged7d: 270}, Holdout: measure.ArmStats{Users: 100, Reengaged7d: 20},
			Lift7d: measure.Lift{Difference: f(0.1), CILow: f(0.02), CIHigh: f(0.18), Significant: true},
			Spend:  f(450), Currency: "USD", CostPerIncrementalReengagement: f(5),
			Days: []measure.DayPoint{{Day: from, TreatedUsers: 900, HoldoutUsers: 100}}, Notes: []string{}, ContaminatedDays: []string{}}}}
}

// report sends GET /v1/reports/audiences with the query q (IAM caller and the app key).
func (u *usersHarness) report(t *testing.T, q map[string]string, multi map[string][]string) (events.APIGatewayProxyResponse, map[string]any) {
	t.Helper()
	req := events.APIGatewayProxyRequest{HTTPMethod: "GET", Resource: RouteReports, Path: RouteReports,
		Headers: map[string]string{"x-api-key": devKey}, QueryStringParameters: q, MultiValueQueryStringParameters: multi}
	req.RequestContext.Identity.UserArn = "arn:aws:iam::123456789012:user/ops"
	resp, err := u.h.Handle(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	return resp, doc
}

func TestReportServesTheKeysApp(t *testing.T) {
	u := newUsersHarness(t)
	u.now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	calls := u.withReports(t, nil)
	resp, _ := u.report(t, map[string]string{"from": "2026-02-01", "to": "2026-02-28"}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	if want := []reportCall{{u.app, "2026-02-01", "2026-02-28", u.now}}; !reflect.DeepEqual(*calls, want) {
		t.Fatalf("report calls %+v, want %+v", *calls, want)
	}
	// The body is the report's own JSON, field for field.
	var got measure.Report
	if err := json.Unmarshal([]byte(resp.Body), &got); err != nil {
		t.Fatal(err)
	}
	if want := sampleReport(u.app, "2026-02-01", "2026-02-28"); !reflect.DeepEqual(got, want) {
		t.Fatalf("body %+v\nwant %+v", got, want)
	}
	if resp.Headers["Content-Type"] != "application/json" || resp.Headers["Cache-Control"] != "no-store" {
		t.Errorf("headers %v", resp.Headers)
	}
}

func TestReportDefaultPeriod(t *testing.T) {
	u := newUsersHarness(t)
	u.now = time.Date(2026, 3, 10, 23, 59, 0, 0, time.UTC)
	calls := u.withReports(t, nil)
	for _, c := range []struct {
		q              map[string]string
		wantFrom, want string
	}{
		{nil, "2026-02-10", "2026-03-09"}, // the 28 days up to yesterday: today's cohorts still grow
		{map[string]string{"to": "2026-01-31"}, "2026-01-04", "2026-01-31"},
		{map[string]string{"from": "2026-03-01"}, "2026-03-01", "2026-03-09"},
		{map[string]string{"to": "2026-03-10"}, "2026-02-11", "2026-03-10"},
	} {
		*calls = nil
		if resp, _ := u.report(t, c.q, nil); resp.StatusCode != http.StatusOK || len(*calls) != 1 ||
			(*calls)[0].from != c.wantFrom || (*calls)[0].to != c.want {
			t.Errorf("%v: status %d, calls %+v; want %s..%s", c.q, resp.StatusCode, *calls, c.wantFrom, c.want)
		}
	}
}

func TestReportRefusesBadPeriods(t *testing.T) {
	u := newUsersHarness(t)
	u.now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	calls := u.withReports(t, nil)
	for _, c := range []struct {
		name  string
		q     map[string]string
		multi map[string][]string
		want  string
	}{
		{"not a date", map[string]string{"from": "last week"}, nil, `from "last week" is not a date (YYYY-MM-DD)`},
		{"no such day", map[string]string{"to": "2026-02-29"}, nil, `to "2026-02-29" is not a date (YYYY-MM-DD)`},
		{"reversed", map[string]string{"from": "2026-03-05", "to": "2026-03-01"}, nil, "from 2026-03-05 is after to 2026-03-01"},
		{"over 366 days", map[string]string{"from": "2025-01-01", "to": "2026-01-02"}, nil, "is 367 days, at most 366"},
		{"empty from", map[string]string{"from": ""}, nil, "from is empty"},
		{"misspelt", map[string]string{"form": "2026-03-01"}, nil, `unknown query parameter "form"`},
		{"repeated", map[string]string{"from": "2026-03-01"}, map[string][]string{"from": {"2026-03-01", "2026-03-02"}}, `"from" given 2 times`},
	} {
		t.Run(c.name, func(t *testing.T) {
			*calls = nil
			resp, doc := u.report(t, c.q, c.multi)
			if msg, _ := doc["error"].(string); resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, c.want) {
				t.Fatalf("status %d %s, want 400 with %q", resp.StatusCode, resp.Body, c.want)
			}
			if len(*calls) != 0 {
				t.Fatalf("the report was made: %+v", *calls)
			}
		})
	}
}

func TestReportUnavailable(t *testing.T) {
	u := newUsersHarness(t)
	u.withReports(t, errors.New("dynamodb: throttled"))
	resp, doc := u.report(t, nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Headers["Retry-After"] == "" {
		t.Fatalf("status %d headers %v body %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	if strings.Contains(doc["error"].(string), "dynamodb") {
		t.Errorf("the store's error reached the client: %v", doc["error"])
	}
}

func TestReportNotConfigured(t *testing.T) {
	u := newUsersHarness(t) // no Reports
	if resp, _ := u.report(t, nil, nil); resp.StatusCode != http.StatusNotImplemented {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
}

// A period the use case refuses is the caller's mistake, not an outage.
func TestReportPeriodErrorOfTheUseCaseIs400(t *testing.T) {
	u := newUsersHarness(t)
	u.withReports(t, fmt.Errorf("%w: from 2026-03-05 is after to 2026-03-01", report.ErrPeriod))
	if resp, doc := u.report(t, nil, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(doc["error"].(string), "is after") {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
}

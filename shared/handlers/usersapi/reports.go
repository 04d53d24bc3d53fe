package usersapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/app/report"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
)

// ReportFunc makes app's report for the join days from..to (YYYY-MM-DD, inclusive), at now:
// report.Audiences over the deployment's stores (the runtime wires it; tests pass their own).
type ReportFunc func(ctx context.Context, app, from, to string, now time.Time) (measure.Report, error)

// reportParams are the query parameters GET /v1/reports/audiences takes.
var reportParams = []string{"from", "to"}

// report handles GET /v1/reports/audiences?from=YYYY-MM-DD&to=YYYY-MM-DD for the app the key
// names: 200 with the report (measure.Report), 400 for a period it cannot take (report.Period:
// by default the 28 days up to yesterday, at most 366 days), 503 when the stores could not be
// read.
func (h *Handler) report(ctx context.Context, app *appconfig.App, req events.APIGatewayProxyRequest) events.APIGatewayProxyResponse {
	if h.cfg.Reports == nil {
		return apigw.Error(http.StatusNotImplemented, "reports are not configured on this deployment")
	}
	if problem := checkReportQuery(req); problem != "" {
		return apigw.Error(http.StatusBadRequest, problem)
	}
	now := h.cfg.Now()
	from, to, err := report.Period(req.QueryStringParameters["from"], req.QueryStringParameters["to"], now)
	if err != nil {
		return apigw.Error(http.StatusBadRequest, err.Error())
	}
	rep, err := h.cfg.Reports(ctx, app.ID, from, to, now)
	if errors.Is(err, report.ErrPeriod) {
		return apigw.Error(http.StatusBadRequest, err.Error())
	}
	if err != nil {
		h.cfg.Logger.Error("make report", "app", app.ID, "from", from, "to", to, "error", err.Error())
		resp := apigw.Error(http.StatusServiceUnavailable, "report sources unavailable, retry")
		resp.Headers["Retry-After"] = "5"
		return resp
	}
	return apigw.JSON(http.StatusOK, rep.WithEmptyLists())
}

// checkReportQuery refuses parameters the route does not take (a misspelt "form" would
// otherwise silently give the default period), repeated ones and empty ones (a parameter left
// out takes its default; one given empty is a mistake).
func checkReportQuery(req events.APIGatewayProxyRequest) string {
	names := map[string]int{}
	for k, v := range req.QueryStringParameters {
		names[k] = max(names[k], 1)
		if v == "" && slices.Contains(reportParams, k) {
			return fmt.Sprintf("%s is empty: a date YYYY-MM-DD, or leave it out for the default", k)
		}
	}
	for k, vs := range req.MultiValueQueryStringParameters {
		names[k] = max(names[k], len(vs))
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(reportParams, k) {
			return fmt.Sprintf("unknown query parameter %q (the report takes from and to, YYYY-MM-DD)", k)
		}
		if names[k] > 1 {
			return fmt.Sprintf("query parameter %q given %d times", k, names[k])
		}
	}
	return ""
}

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/retarget-dev/retarget/shared/adapters/reportview"
	"github.com/retarget-dev/retarget/shared/app/report"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/runtime"
)

var reportCommand = &command{
	name:    "report",
	summary: "what remarketing earned per audience: treated vs holdout, lift, spend, cost per incremental re-engagement",
	help: `The remarketing report of one app, read from the state table (cohort counters, spend,
audience ids) as GET /v1/reports/audiences makes it: per audience, the users who joined the
segment from --from to --to (UTC days, inclusive) in each arm (T: treated, uploaded to the
audience; H: holdout, kept out of it), their 7-day re-engagement rates, the lift with its 95%
confidence interval (or "not enough data" below the app's measurement.min_sample), the spend
of the ad sets that include the audience alone and the cost per incremental re-engagement.
Below the table: contaminated periods (an active ad set did not exclude the holdout audience),
the report's notes and the spend of audience groups (ad sets including several audiences).

With neither --from nor --to: the 28 days up to yesterday (UTC; today's cohorts are still
growing). --to alone: the 28 days up to it; --from alone: from it to yesterday. At most 366
days.
--app is needed when the config has several apps. --json prints the route's JSON exactly.
--html FILE writes a self-contained page (no remote loads: inline CSS and SVG charts of the
daily treated and holdout rates and of the users per day, the KPI tables and the notes).`,
	example: `  retarget report                              # against make dev: the 28 days up to yesterday
  retarget report --from 2026-02-01 --to 2026-02-28 --html report.html
  retarget report --stack Retarget-prod --app sample-shop --json`,
	flags: func(fs *flag.FlagSet) any {
		o := &reportOptions{}
		o.state.register(fs)
		configFlag(fs, &o.config)
		fs.StringVar(&o.app, "app", "", "the `app` (default: the config's only app)")
		fs.StringVar(&o.from, "from", "", "first join `day`, YYYY-MM-DD (default: 27 days before --to)")
		fs.StringVar(&o.to, "to", "", "last join `day`, YYYY-MM-DD (default: yesterday, UTC)")
		fs.BoolVar(&o.json, "json", false, "print the report's JSON (as GET /v1/reports/audiences answers it)")
		fs.StringVar(&o.html, "html", "", "also write the report as a self-contained HTML page to `file`")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.report(ctx, *opts.(*reportOptions), args)
	},
}

type reportOptions struct {
	state          stateOptions
	config, app    string
	from, to, html string
	json           bool
}

func (c *cli) report(ctx context.Context, o reportOptions, args []string) error {
	if len(args) > 0 {
		return usagef("report", "unexpected arguments %q", args)
	}
	now := c.now()
	from, to, err := report.Period(o.from, o.to, now)
	if err != nil {
		return usagef("report", "%v", err)
	}
	cfg, _, err := c.loadConfig(o.config)
	if err != nil {
		return err
	}
	app, err := reportApp(cfg, o.app)
	if err != nil {
		return err
	}
	makeReport := c.reports
	if makeReport == nil {
		store, err := c.stateStore(ctx, o.state)
		if err != nil {
			return err
		}
		makeReport = runtime.Reports(cfg, store)
	}
	rep, err := makeReport(ctx, app.ID, from, to, now)
	if err != nil {
		return fmt.Errorf("make the report: %w", err)
	}
	rep = rep.WithEmptyLists()
	if o.html != "" {
		var page bytes.Buffer
		if err := reportview.WriteHTML(&page, rep); err != nil {
			return err
		}
		if err := os.WriteFile(o.html, page.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write the page: %w", err)
		}
	}
	if o.json {
		return writeJSON(c.stdout, rep)
	}
	if err := writeReportTable(c, rep); err != nil {
		return err
	}
	if o.html != "" {
		fmt.Fprintf(c.stdout, "\nwrote %s\n", o.html)
	}
	return nil
}

// reportApp is the app a report is about: --app, else the config's only app.
func reportApp(cfg *appconfig.Config, id string) (*appconfig.App, error) {
	if id != "" {
		return findApp(cfg, id)
	}
	if len(cfg.Apps) != 1 {
		return nil, usagef("report", "the config has %d apps: choose one with --app (%s)", len(cfg.Apps), strings.Join(appIDs(cfg), ", "))
	}
	return &cfg.Apps[0], nil
}

// writeReportTable prints the report's table and, below it, what the table cannot say.
func writeReportTable(c *cli, rep measure.Report) error {
	fmt.Fprintf(c.stdout, "%s, join days %s to %s (UTC)\n\n", rep.App, rep.From, rep.To)
	rows := make([][]string, len(rep.Audiences))
	for i, a := range rep.Audiences {
		rows[i] = []string{a.Segment, reportview.Count(a.Treated.Users) + "/" + reportview.Count(a.Holdout.Users),
			reportview.Rate(a.Treated.Retention7d), reportview.Rate(a.Holdout.Retention7d),
			reportview.Lift(a.Lift7d), reportview.Spend(a), reportview.CostPerIncremental(a)}
	}
	if err := writeTable(c.stdout, []string{"SEGMENT", "USERS T/H", "RE-ENGAGED 7D T", "RE-ENGAGED 7D H", "LIFT 7D", "SPEND", "COST/INCR. RE-ENGAGEMENT"}, rows); err != nil {
		return err
	}
	var notes []string
	for _, a := range rep.Audiences {
		if a.Contaminated {
			notes = append(notes, fmt.Sprintf("%s: contaminated on %s (an active ad set did not exclude the holdout audience; the lift is biased toward 0)",
				a.Segment, strings.Join(a.ContaminatedDays, ", ")))
		}
		for _, n := range a.Notes {
			notes = append(notes, a.Segment+": "+n)
		}
	}
	for _, g := range rep.Groups {
		notes = append(notes, fmt.Sprintf("group %s (ad sets %s): %s. %s", strings.Join(g.Audiences, " + "), strings.Join(g.AdSets, ", "),
			reportview.Money(g.Spend, g.Currency), g.Note))
	}
	if len(notes) > 0 {
		fmt.Fprintln(c.stdout)
		for _, n := range notes {
			fmt.Fprintln(c.stdout, n)
		}
	}
	return nil
}

package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/handlers/insights"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

var insightsRunCommand = &command{
	name:    "insights run",
	summary: "pull ad sets and Ads Insights spend now, as the daily insights function does",
	help: `Runs the insights function's pull now instead of waiting for its daily schedule: for each
app with audiences, the ad account's currency and time zone, its ad sets and their targeting
(which managed audiences each includes and excludes), and Ads Insights per ad set and day for
the last --days days (default 28: Meta restates recent days, each pull replaces them). The
spend lands in the state table, where GET /v1/reports/audiences and retarget report read it.
An active ad set that includes a treated audience without excluding its holdout audience is
listed as contaminating it.

Meta credentials and the Graph API root as for audiences create (against make dev: the
sandbox, with nothing to set).`,
	example: `  retarget insights run                       # against make dev
  retarget insights run --app sample-shop --days 7 --json
  retarget --stack Retarget-prod insights run --meta-secret-id arn:aws:secretsmanager:...`,
	flags: func(fs *flag.FlagSet) any {
		o := &insightsOptions{}
		o.state.register(fs)
		configFlag(fs, &o.config)
		fs.StringVar(&o.app, "app", "", "only this `app` (default: every app with audiences)")
		fs.IntVar(&o.days, "days", insights.DefaultDays, "pull the last `n` days (1..90)")
		fs.BoolVar(&o.json, "json", false, "print JSON")
		fs.StringVar(&o.metaSecret, "meta-secret-id", "", "Secrets Manager `id` of the Meta credentials (default $META_SECRET_ID)")
		fs.StringVar(&o.graphURL, "graph-url", "", "Graph API root `url` (default $META_GRAPH_URL, else https://graph.facebook.com)")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.insightsRun(ctx, *opts.(*insightsOptions), args)
	},
}

type insightsOptions struct {
	state                stateOptions
	config, app          string
	days                 int
	json                 bool
	metaSecret, graphURL string
}

func (c *cli) insightsRun(ctx context.Context, o insightsOptions, args []string) error {
	const name = "insights run"
	switch {
	case len(args) > 0:
		return usagef(name, "unexpected arguments %q", args)
	case o.days < 1 || o.days > insights.MaxDays:
		return usagef(name, "--days must be 1..%d (got %d)", insights.MaxDays, o.days)
	}
	cfg, _, err := c.loadConfig(o.config)
	if err != nil {
		return err
	}
	if o.app != "" {
		if _, err := findApp(cfg, o.app); err != nil {
			return err
		}
	}
	store, err := c.stateStore(ctx, o.state)
	if err != nil {
		return err
	}
	creds, err := c.metaCredentials(ctx, o.metaSecret)
	if err != nil {
		return err
	}
	// Ad sets and insights follow the Marketing API's version schedule.
	version := cmp.Or(env.MetaVersion(c.getenv, env.MarketingVersion), metaversions.DefaultMarketing)
	ads := metagraph.New(metagraph.Config{BaseURL: cmp.Or(o.graphURL, c.getenv(env.GraphURL)), Version: version,
		AccessToken: creds.AccessToken, AppSecret: creds.AppSecret})
	run, err := insights.New(insights.Config{Apps: cfg, Sync: store, Spend: store, Meta: ads, Outcomes: store, Now: c.now,
		Logger: slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	reports, runErr := run.Run(ctx, insights.Request{App: o.app, Days: o.days})
	if o.json {
		if err := writeJSON(c.stdout, insights.Summary{Apps: reports}); err != nil {
			return err
		}
		return runErr
	}
	var rows [][]string
	for _, r := range reports {
		for _, a := range r.Accounts {
			rows = append(rows, []string{r.App, a.ID, a.Currency, a.Since + ".." + a.Until, strconv.Itoa(a.AdSets), strconv.Itoa(a.Rows),
				cmp.Or(a.Stopped, r.Paused, "pulled")})
		}
	}
	if err := writeTable(c.stdout, []string{"APP", "AD ACCOUNT", "CURRENCY", "DAYS", "MANAGED AD SETS", "ROWS", "RESULT"}, rows); err != nil {
		return err
	}
	for _, r := range reports {
		segs := make([]string, 0, len(r.Contaminated))
		for s := range r.Contaminated {
			segs = append(segs, s)
		}
		sort.Strings(segs)
		for _, s := range segs {
			fmt.Fprintf(c.stdout, "\n%s: %s is contaminated: active ad set(s) %s include it without excluding its holdout audience",
				r.App, s, strings.Join(r.Contaminated[s], ", "))
		}
	}
	return runErr
}

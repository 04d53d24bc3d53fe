package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	appauto "github.com/retarget-dev/retarget/shared/app/automation"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/automation"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// automationOptions are the flags every automation command shares.
type automationOptions struct {
	state                stateOptions
	config, app          string
	json                 bool
	metaSecret, graphURL string
	from, to             string
}

func (o *automationOptions) register(fs *flag.FlagSet) {
	o.state.register(fs)
	configFlag(fs, &o.config)
	fs.StringVar(&o.app, "app", "", "only this `app` (default: every app with automation)")
	fs.StringVar(&o.metaSecret, "meta-secret-id", "", "Secrets Manager `id` of the Meta credentials (default $META_SECRET_ID)")
	fs.StringVar(&o.graphURL, "graph-url", "", "Graph API root `url` (default $META_GRAPH_URL, else https://graph.facebook.com)")
}

const automationCredentials = `Meta credentials and the Graph API root as for audiences create (against make dev: the
sandbox, with nothing to set); writing ad sets needs the ads_management permission.`

var automationRunCommand = &command{
	name:    "automation run",
	summary: "evaluate the automation rules now, as after each insights pull",
	help: `Evaluates each app's automation rules now, as the insights function does after its daily
pull: each rule whose condition holds proposes its action for every ad set that includes the
segment's audience (in the app's ad accounts, and in meta.allowed_campaigns when set), at most
max_changes_per_adset_per_day per ad set and UTC day. Proposals are recorded in the state
table; in "apply" mode they are applied at once (applied, or refused with Meta's answer).

` + automationCredentials,
	example: `  retarget automation run                       # against make dev
  retarget automation run --app sample-shop --json`,
	flags: func(fs *flag.FlagSet) any {
		o := &automationOptions{}
		o.register(fs)
		fs.BoolVar(&o.json, "json", false, "print JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.automationRun(ctx, *opts.(*automationOptions), args)
	},
}

var automationListCommand = &command{
	name:    "automation list",
	summary: "list the automation's actions (proposed, applied, undone, refused)",
	help: `Lists the actions the automation decided from --from to --to (UTC days, default the last 7),
oldest first, with their status: proposed, applied, undone or refused (with Meta's answer).`,
	example: `  retarget automation list
  retarget automation list --app sample-shop --from 2026-03-01 --to 2026-03-31 --json`,
	flags: func(fs *flag.FlagSet) any {
		o := &automationOptions{}
		o.register(fs)
		fs.BoolVar(&o.json, "json", false, "print JSON")
		fs.StringVar(&o.from, "from", "", "first UTC `day` (YYYY-MM-DD; default 6 days before --to)")
		fs.StringVar(&o.to, "to", "", "last UTC `day` (YYYY-MM-DD; default today)")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.automationList(ctx, *opts.(*automationOptions), args)
	},
}

var automationApplyCommand = &command{
	name:    "automation apply",
	args:    "ID",
	summary: "apply a proposed action as an operator",
	help: `Applies a proposed action as an operator. The ad set is read first: if its status or budget
changed since the proposal, the action is refused rather than applied over that change. A
write Meta refuses is recorded as refused with Meta's answer.

` + automationCredentials,
	example: `  retarget automation apply 2026-03-10-3f9a1c2b7d4e5f60`,
	flags: func(fs *flag.FlagSet) any {
		o := &automationOptions{}
		o.register(fs)
		fs.BoolVar(&o.json, "json", false, "print the action as JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.automationStep(ctx, "automation apply", *opts.(*automationOptions), args)
	},
}

var automationUndoCommand = &command{
	name:    "automation undo",
	args:    "ID",
	summary: "restore the ad set an applied action changed",
	help: `Restores the status and budget an applied action found, as an operator. The ad set is read
first: if it changed since the action, undo is refused (the action stays applied).

` + automationCredentials,
	example: `  retarget automation undo 2026-03-10-3f9a1c2b7d4e5f60`,
	flags: func(fs *flag.FlagSet) any {
		o := &automationOptions{}
		o.register(fs)
		fs.BoolVar(&o.json, "json", false, "print the action as JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.automationStep(ctx, "automation undo", *opts.(*automationOptions), args)
	},
}

// automationService builds the use case over the state table and the Graph API, and returns
// the apps it covers: --app, or every app with automation.
func (c *cli) automationService(ctx context.Context, o automationOptions) (*appauto.Service, []*appconfig.App, error) {
	cfg, _, err := c.loadConfig(o.config)
	if err != nil {
		return nil, nil, err
	}
	all, err := selectApps(cfg, o.app)
	if err != nil {
		return nil, nil, err
	}
	var apps []*appconfig.App
	for _, a := range all {
		if a.Automation != nil {
			apps = append(apps, a)
		}
	}
	if len(apps) == 0 {
		return nil, nil, errors.New("no app of the config has \"automation\" (or --app names one without it)")
	}
	store, err := c.stateStore(ctx, o.state)
	if err != nil {
		return nil, nil, err
	}
	creds, err := c.metaCredentials(ctx, o.metaSecret)
	if err != nil {
		return nil, nil, err
	}
	version := cmp.Or(env.MetaVersion(c.getenv, env.MarketingVersion), metaversions.DefaultMarketing)
	graph := metagraph.New(metagraph.Config{BaseURL: cmp.Or(o.graphURL, c.getenv(env.GraphURL)), Version: version,
		AccessToken: creds.AccessToken, AppSecret: creds.AppSecret})
	svc, err := appauto.New(appauto.Config{Apps: cfg, Sync: store, Spend: store, Store: store, Ads: graph, Writer: graph, Now: c.now,
		Logger: slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	return svc, apps, err
}

func (c *cli) automationRun(ctx context.Context, o automationOptions, args []string) error {
	if len(args) > 0 {
		return usagef("automation run", "unexpected arguments %q", args)
	}
	svc, apps, err := c.automationService(ctx, o)
	if err != nil {
		return err
	}
	results := []appauto.RunResult{}
	var errs []error
	for _, a := range apps {
		res, err := svc.Run(ctx, a.ID)
		results = append(results, res)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if o.json {
		if err := writeJSON(c.stdout, results); err != nil {
			return err
		}
		return errors.Join(errs...)
	}
	var acts []ports.AutomationAction
	for _, r := range results {
		acts = append(acts, r.Actions...)
	}
	if err := c.actionTable(acts); err != nil {
		return err
	}
	for _, r := range results {
		for _, s := range r.Skipped {
			fmt.Fprintf(c.stdout, "%s: rule %s left ad set %s alone: %s\n", r.App, s.Rule, s.AdSetID, s.Reason)
		}
	}
	return errors.Join(errs...)
}

func (c *cli) automationList(ctx context.Context, o automationOptions, args []string) error {
	const name = "automation list"
	if len(args) > 0 {
		return usagef(name, "unexpected arguments %q", args)
	}
	to := cmp.Or(o.to, c.now().UTC().Format(automation.DateLayout))
	from := o.from
	if from == "" {
		from = automation.FirstDay(to, 7)
	}
	for _, d := range []string{from, to} {
		if !validDay(d) {
			return usagef(name, "--from and --to are days, YYYY-MM-DD (got %q)", d)
		}
	}
	if from > to {
		return usagef(name, "--from %s is after --to %s", from, to)
	}
	svc, apps, err := c.automationService(ctx, o)
	if err != nil {
		return err
	}
	acts := []ports.AutomationAction{}
	for _, a := range apps {
		got, err := svc.List(ctx, a.ID, from, to)
		if err != nil {
			return err
		}
		acts = append(acts, got...)
	}
	if o.json {
		return writeJSON(c.stdout, acts)
	}
	return c.actionTable(acts)
}

// automationStep applies or undoes one action, found in --app or in any app with automation.
func (c *cli) automationStep(ctx context.Context, name string, o automationOptions, args []string) error {
	if len(args) != 1 {
		return usagef(name, "want one action ID (retarget automation list shows them)")
	}
	id := args[0]
	if automation.DayOfID(id) == "" {
		return usagef(name, "%q is not an action id (they look like 2026-03-10-3f9a1c2b7d4e5f60)", id)
	}
	svc, apps, err := c.automationService(ctx, o)
	if err != nil {
		return err
	}
	for _, a := range apps {
		var act ports.AutomationAction
		if name == "automation apply" {
			act, err = svc.Apply(ctx, a.ID, id, appauto.Operator)
		} else {
			act, err = svc.Undo(ctx, a.ID, id)
		}
		if errors.Is(err, appauto.ErrNotFound) {
			continue
		}
		if act.ID != "" {
			if o.json {
				if jerr := writeJSON(c.stdout, act); jerr != nil {
					return jerr
				}
			} else if terr := c.actionTable([]ports.AutomationAction{act}); terr != nil {
				return terr
			}
		}
		return err
	}
	return fmt.Errorf("no action %s in %d app(s) with automation", id, len(apps))
}

func (c *cli) actionTable(acts []ports.AutomationAction) error {
	rows := make([][]string, 0, len(acts))
	for _, a := range acts {
		change := a.Before.Status + " → " + a.After.Status
		if a.Action == ports.ActionScale {
			change = strconv.FormatInt(a.Before.DailyBudget, 10) + " → " + strconv.FormatInt(a.After.DailyBudget, 10)
		}
		rows = append(rows, []string{a.ID, a.App, a.Rule, a.AdSetID, a.Action, change, a.Status, cmp.Or(a.Refusal, a.Reason)})
	}
	return writeTable(c.stdout, []string{"ID", "APP", "RULE", "ADSET_ID", "ACTION", "CHANGE", "STATUS", "REASON"}, rows)
}

func validDay(d string) bool { return automation.DayOfID(d+"-0000000000000000") == d }

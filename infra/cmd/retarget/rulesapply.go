package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/segmentsweeper"
)

var rulesApplyCommand = &command{
	name:    "rules apply",
	summary: "apply the config's segment rules to every stored user now (after a rules change)",
	help: `Stored users keep the segments the rules gave them when they were last evaluated: after a
change of the config's segment rules (deployed to the functions), a user moves to the new
segments only on their next event or time-based transition. rules apply re-evaluates every
stored user of the app now with the config's rules, as the sweeper does for due users: it
writes the new segments and due time (conditionally, retrying on a concurrent write) and records
the membership changes, which the next audience sync uploads (the removal guard still holds
back a flood of removals).

--dry-run writes nothing and prints, per segment, how many users would join and leave: the
impact of a rules change before it takes effect. Run it with the config being deployed.

The state table is scanned once (on-demand: $0.125 per million read units, 0.5 units per
4 KB read), --page-size items per call, plus one read and one write per user.`,
	example: `  retarget rules apply --config my-apps.json --dry-run
  retarget rules apply --table Retarget-State-ABC --app sample-shop`,
	flags: func(fs *flag.FlagSet) any {
		o := &rulesApplyOptions{}
		o.state.register(fs)
		configFlag(fs, &o.config)
		fs.StringVar(&o.app, "app", "", "only this `app` (default: every app of the config)")
		fs.IntVar(&o.pageSize, "page-size", 1000, "items the scan reads per call (`n`)")
		fs.BoolVar(&o.dryRun, "dry-run", false, "count who would join and leave each segment; write nothing")
		fs.BoolVar(&o.json, "json", false, "print JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.rulesApply(ctx, *opts.(*rulesApplyOptions), args)
	},
}

type rulesApplyOptions struct {
	state        stateOptions
	config, app  string
	pageSize     int
	dryRun, json bool
}

// rulesApplyResult is one app's result.
type rulesApplyResult struct {
	App    string `json:"app"`
	DryRun bool   `json:"dry_run"`
	Users  int    `json:"users"`
	// Changes: membership changes recorded (or, in a dry run, that would be).
	Changes int `json:"changes"`
	Failed  int `json:"failed"`
	// Segments: per segment, users who joined and left (or, in a dry run, would).
	Segments []segmentImpact `json:"segments,omitempty"`
}

type segmentImpact struct {
	Segment string `json:"segment"`
	Join    int    `json:"join"`
	Leave   int    `json:"leave"`
}

func (c *cli) rulesApply(ctx context.Context, o rulesApplyOptions, args []string) error {
	const name = "rules apply"
	switch {
	case len(args) > 0:
		return usagef(name, "unexpected arguments %q", args)
	case o.pageSize <= 0:
		return usagef(name, "--page-size must be positive")
	}
	cfg, _, err := c.loadConfig(o.config)
	if err != nil {
		return err
	}
	apps, err := selectApps(cfg, o.app)
	if err != nil {
		return err
	}
	rules, err := segments.ForConfig(cfg)
	if err != nil {
		return err
	}
	store, err := c.stateStore(ctx, o.state)
	if err != nil {
		return err
	}
	// The joins it makes enrol users in their audiences' cohorts, as the sweeper's do.
	sweeper, err := segmentsweeper.New(segmentsweeper.Config{Rules: rules, Store: store, Now: c.now,
		Outcomes: store, Plans: outcomes.ForConfig(cfg)})
	if err != nil {
		return err
	}
	var results []rulesApplyResult
	var errs []error
	for _, app := range apps {
		r := rulesApplyResult{App: app.ID, DryRun: o.dryRun}
		if err := c.applyApp(ctx, store, sweeper, &r, o); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", app.ID, err))
		}
		results = append(results, r)
	}
	if o.json {
		if err := writeJSON(c.stdout, results); err != nil {
			return err
		}
		return errors.Join(errs...)
	}
	header := []string{"APP", "SEGMENT", "JOINED", "LEFT"}
	if o.dryRun {
		header = []string{"APP", "SEGMENT", "WOULD JOIN", "WOULD LEAVE"}
	}
	for _, r := range results {
		if len(r.Segments) > 0 {
			table := make([][]string, len(r.Segments))
			for i, s := range r.Segments {
				table[i] = []string{r.App, s.Segment, fmt.Sprint(s.Join), fmt.Sprint(s.Leave)}
			}
			if err := writeTable(c.stdout, header, table); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout)
		}
		switch {
		case o.dryRun:
			fmt.Fprintf(c.stdout, "%s: %d users read, %d membership changes would be recorded, %d failed; nothing written (dry run)\n",
				r.App, r.Users, r.Changes, r.Failed)
		default:
			fmt.Fprintf(c.stdout, "%s: %d users re-evaluated, %d membership changes recorded (the next audience sync uploads them), %d failed\n",
				r.App, r.Users, r.Changes, r.Failed)
		}
	}
	return errors.Join(errs...)
}

// applyApp scans one app's users page by page and re-evaluates them (in a dry run, without
// writing), counting the changes per segment.
func (c *cli) applyApp(ctx context.Context, store *dynamostate.Store, sweeper *segmentsweeper.Sweeper, r *rulesApplyResult, o rulesApplyOptions) error {
	impact := map[string]*segmentImpact{}
	var errs []error
	cursor := ""
	for {
		keys, next, err := store.ScanUsers(ctx, r.App, "", cursor, o.pageSize)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		if len(keys) > 0 {
			res, changes, err := sweeper.Reevaluate(ctx, r.App, keys, o.dryRun)
			r.Users, r.Changes, r.Failed = r.Users+res.Users, r.Changes+res.Changes, r.Failed+res.Failed
			if err != nil {
				errs = append(errs, err)
			}
			for _, ch := range changes {
				if impact[ch.Segment] == nil {
					impact[ch.Segment] = &segmentImpact{Segment: ch.Segment}
				}
				if ch.Joined {
					impact[ch.Segment].Join++
				} else {
					impact[ch.Segment].Leave++
				}
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for _, s := range impact {
		r.Segments = append(r.Segments, *s)
	}
	sort.Slice(r.Segments, func(i, j int) bool { return r.Segments[i].Segment < r.Segments[j].Segment })
	return errors.Join(errs...)
}

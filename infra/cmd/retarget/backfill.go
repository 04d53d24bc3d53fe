package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/retarget-dev/retarget/shared/ports"
)

var audiencesBackfillCommand = &command{
	name:    "audiences backfill",
	summary: "queue every current member of a segment for its audience (an audience added late)",
	help: `An audience added to the config for a segment that already has members starts from the
membership changes still kept (30 days): members who joined earlier and have not changed since
would never be uploaded. backfill finds the segment's current members by scanning the state
table and records a pending "joined" change for each; the next audience sync reconciles each
of them from their current state (exclusive groups, consent and identifiers apply as usual)
and uploads them.

The scan reads the whole table once (on-demand: $0.125 per million read units, 0.5 units per
4 KB read), --page-size items per call. Running it twice only queues the members again (the
sync adds a member already in the audience without harm). The segment must be mapped to an
audience in the config.`,
	example: `  retarget audiences backfill --segment vip --dry-run
  retarget audiences backfill --table Retarget-State-ABC --app sample-shop --segment vip`,
	flags: func(fs *flag.FlagSet) any {
		o := &backfillOptions{}
		o.register(fs)
		fs.StringVar(&o.segment, "segment", "", "the `segment` whose members to queue (required)")
		fs.IntVar(&o.pageSize, "page-size", 1000, "items the scan reads per call (`n`)")
		fs.BoolVar(&o.dryRun, "dry-run", false, "count the members; record nothing")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.audiencesBackfill(ctx, *opts.(*backfillOptions), args)
	},
}

type backfillOptions struct {
	audiencesOptions
	segment  string
	pageSize int
}

// backfillRow is one app's result.
type backfillRow struct {
	App     string `json:"app"`
	Segment string `json:"segment"`
	Members int    `json:"members"`
	// Queued is how many pending joins were recorded (0 in a dry run).
	Queued int    `json:"queued"`
	Result string `json:"result"`
}

func (c *cli) audiencesBackfill(ctx context.Context, o backfillOptions, args []string) error {
	const name = "audiences backfill"
	switch {
	case len(args) > 0:
		return usagef(name, "unexpected arguments %q", args)
	case o.segment == "":
		return usagef(name, "--segment is required")
	case o.pageSize <= 0:
		return usagef(name, "--page-size must be positive")
	}
	apps, auds, store, err := c.audiencesBackends(ctx, o.audiencesOptions)
	if err != nil {
		return err
	}
	for _, app := range apps {
		if _, ok := auds[app.ID].Audience(o.segment); !ok {
			return fmt.Errorf("app %s: segment %q has no audience in the config: nothing would upload its members", app.ID, o.segment)
		}
	}
	var rows []backfillRow
	var errs []error
	for _, app := range apps {
		r := backfillRow{App: app.ID, Segment: o.segment}
		err := c.backfillApp(ctx, store, &r, o)
		switch {
		case err != nil:
			r.Result = "failed: " + err.Error()
			errs = append(errs, fmt.Errorf("app %s: %w (the %d members queued so far stay queued)", app.ID, err, r.Queued))
		case o.dryRun:
			r.Result = "would queue"
		default:
			r.Result = "queued for the next audience sync"
		}
		rows = append(rows, r)
	}
	if o.json {
		if err := writeJSON(c.stdout, rows); err != nil {
			return err
		}
	} else {
		table := make([][]string, len(rows))
		for i, r := range rows {
			table[i] = []string{r.App, r.Segment, fmt.Sprint(r.Members), fmt.Sprint(r.Queued), r.Result}
		}
		if err := writeTable(c.stdout, []string{"APP", "SEGMENT", "MEMBERS", "QUEUED", "RESULT"}, table); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// segmentScanner is what backfill needs of the state store (dynamostate.Store).
type segmentScanner interface {
	ScanUsers(ctx context.Context, app, segment, cursor string, limit int) ([]string, string, error)
	RecordChanges(ctx context.Context, changes []ports.MembershipChange) error
}

// backfillApp scans one app's members of the segment and records a pending join for each,
// page by page, so a failure leaves what was recorded in place.
func (c *cli) backfillApp(ctx context.Context, store segmentScanner, r *backfillRow, o backfillOptions) error {
	now := c.now().UnixMilli()
	cursor := ""
	for {
		keys, next, err := store.ScanUsers(ctx, r.App, r.Segment, cursor, o.pageSize)
		if err != nil {
			return err
		}
		r.Members += len(keys)
		if !o.dryRun && len(keys) > 0 {
			changes := make([]ports.MembershipChange, len(keys))
			for i, uk := range keys {
				// No StateVersion: the state is already written; the sync plans from it at once.
				changes[i] = ports.MembershipChange{App: r.App, Segment: r.Segment, UserKey: uk, Joined: true, At: now, RecordedAt: now}
			}
			if err := store.RecordChanges(ctx, changes); err != nil {
				return err
			}
			r.Queued += len(keys)
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

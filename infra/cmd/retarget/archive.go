package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/archive"
)

var archiveExportCommand = &command{
	name:    "archive export",
	summary: "write the archived events of some days as JSON lines",
	help: `Reads the local event archive (make dev's ` + devenv.ArchiveDir + `, or --dir) and writes one JSON
object per archived event to stdout, oldest arrival first: the archive's columns, named as in
the Parquet files, plus its partition keys app and day. Days are UTC dates of arrival (the
partitions), inclusive; --from and --to default to today. Each event is written once even
where the archive holds it twice (a batch written again after a failure).`,
	example: `  retarget archive export --from 2026-12-01 --to 2026-12-07 > events.jsonl
  retarget archive export --app sample-shop --format jsonl | jq -r .event_name | sort | uniq -c`,
	flags: func(fs *flag.FlagSet) any {
		o := &archiveExportOptions{}
		fs.StringVar(&o.from, "from", "", "first `day` (YYYY-MM-DD, UTC; default today)")
		fs.StringVar(&o.to, "to", "", "last `day` (YYYY-MM-DD, UTC; default --from)")
		fs.StringVar(&o.app, "app", "", "only this `app`")
		fs.StringVar(&o.format, "format", "jsonl", "output `format`: jsonl")
		fs.BoolVar(&o.json, "json", false, "the same as --format jsonl (the output is JSON already)")
		fs.StringVar(&o.dir, "dir", "", "the archive `folder` (default: the dev stack's, "+devenv.ArchiveDir+")")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.archiveExport(ctx, *opts.(*archiveExportOptions), args)
	},
}

type archiveExportOptions struct {
	from, to, app, format, dir string
	json                       bool
}

func (c *cli) archiveExport(ctx context.Context, o archiveExportOptions, args []string) error {
	const cmd = "archive export"
	if len(args) > 0 {
		return usagef(cmd, "unexpected arguments %q", args)
	}
	if o.format != "jsonl" {
		return usagef(cmd, "--format %q: only jsonl is supported", o.format)
	}
	if o.from == "" {
		o.from = c.now().UTC().Format(archive.DayLayout)
	}
	if o.to == "" {
		o.to = o.from
	}
	for _, d := range []struct{ flag, v string }{{"--from", o.from}, {"--to", o.to}} {
		if _, err := time.Parse(archive.DayLayout, d.v); err != nil {
			return usagef(cmd, "%s %q: want a day as YYYY-MM-DD", d.flag, d.v)
		}
	}
	if o.from > o.to {
		return usagef(cmd, "--from %s is after --to %s", o.from, o.to)
	}
	dir := o.dir
	switch {
	case dir != "":
	case c.target.devDir != "":
		dir = devenv.ArchivePath(c.target.devDir)
	default:
		dir = devenv.ArchiveDir
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("archive folder %s: %w (start make dev, or pass --dir)", dir, err)
	}
	rows, err := archivefiles.Read(ctx, archivefiles.Dir(dir), archivefiles.Query{From: o.from, To: o.to, App: o.app})
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return fmt.Errorf("write event %s: %w", rows[i].EventID, err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	fmt.Fprintf(c.stderr, "retarget: %d events from %s, days %s to %s\n", len(rows), dir, o.from, o.to)
	return nil
}

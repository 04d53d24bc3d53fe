package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

var archiveReplayCommand = &command{
	name:    "archive replay",
	summary: "put archived events back on the event stream",
	help: `Reads the event archive (` + archiveSourceHelp + `) and puts the archived
events of some days back on the event stream: to recover events past the stream's retention, or
to run new segment rules over history. Each event goes once (the archive may hold it twice),
with its original event_id and received_at, keyed by its user as the ingest function keys it,
and marked as a replay. Consumers deduplicate on event_id, so replaying an event they already
have changes nothing; the CAPI forwarder skips replayed events older than Meta's 7 days.

Days are UTC dates of arrival (the partitions), inclusive; --to defaults to --from. What the
archive dropped stays dropped: the raw fields (IP, user agent, advertising id, install id) are
on the replayed events only for apps with archive_raw_fields. --dry-run reads and counts,
and puts nothing. The stream is --stream, else $EVENT_STREAM_NAME, else (Kinesis on loopback)
the dev stack's ` + devStream + `.`,
	example: `  retarget archive replay --from 2026-12-01 --to 2026-12-07 --dry-run
  retarget archive replay --from 2026-12-01 --to 2026-12-07 --app sample-shop`,
	flags: func(fs *flag.FlagSet) any {
		o := &archiveReplayOptions{}
		fs.StringVar(&o.from, "from", "", "first `day` (YYYY-MM-DD, UTC; required)")
		fs.StringVar(&o.to, "to", "", "last `day` (YYYY-MM-DD, UTC; default --from)")
		fs.StringVar(&o.app, "app", "", "only this `app`")
		o.source.register(fs)
		fs.StringVar(&o.stream, "stream", "", "Kinesis `stream` to put the events on (default $EVENT_STREAM_NAME)")
		fs.BoolVar(&o.dryRun, "dry-run", false, "count what would be replayed, put nothing")
		fs.BoolVar(&o.json, "json", false, "print the counts as JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.archiveReplay(ctx, *opts.(*archiveReplayOptions), args)
	},
}

type archiveReplayOptions struct {
	from, to, app, stream string
	dryRun, json          bool
	source                archiveSource
}

// archiveReplayResult is archive replay's summary: rows read from the files, unique events
// among them, records put on the stream, and events not put (unmappable rows and records the
// stream refused after the publisher's retries).
type archiveReplayResult struct {
	Dir    string `json:"dir"`
	Stream string `json:"stream,omitempty"`
	From   string `json:"from"`
	To     string `json:"to"`
	App    string `json:"app,omitempty"`
	DryRun bool   `json:"dry_run"`
	Read   int    `json:"read"`
	Unique int    `json:"unique"`
	Put    int    `json:"put"`
	// Records is how many stream records carried the events put (version 2: a user's events
	// that arrived together share one).
	Records int `json:"records"`
	Failed  int `json:"failed"`
}

// maxReplayErrors is how many failures are printed one by one; the count covers all.
const maxReplayErrors = 10

func (c *cli) archiveReplay(ctx context.Context, o archiveReplayOptions, args []string) error {
	const cmd = "archive replay"
	if len(args) > 0 {
		return usagef(cmd, "unexpected arguments %q", args)
	}
	if o.from == "" {
		return usagef(cmd, "--from is required (the first day to replay, YYYY-MM-DD)")
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
	fsys, dir, err := c.openArchive(ctx, cmd, o.source)
	if err != nil {
		return err
	}
	res := archiveReplayResult{Dir: dir, From: o.from, To: o.to, App: o.app, DryRun: o.dryRun}

	// The stream is resolved before anything is read, so a missing stream fails at once.
	var publisher *stream.Publisher
	if !o.dryRun {
		name := o.stream
		if name == "" {
			name = c.getenv(env.StreamName)
		}
		if name == "" && c.local(serviceKinesis) {
			name = devStream
		}
		if name == "" {
			return usagef(cmd, "no stream: pass --stream or set %s (the stack output EventStreamName), %s", env.StreamName, c.targetHint())
		}
		cfg, err := c.awsConfig(ctx, serviceKinesis)
		if err != nil {
			return err
		}
		res.Stream = name
		// The same publisher as the ingest function and dlq replay: PutRecords-sized calls,
		// failed entries retried with backoff.
		publisher = stream.NewPublisher(kinesisstream.NewWriter(kinesis.NewFromConfig(cfg), name, ""), stream.Options{})
	}

	rows, read, err := readArchive(ctx, fsys, archivefiles.Query{From: o.from, To: o.to, App: o.app})
	if err != nil {
		return err
	}
	res.Read, res.Unique = read, len(rows)

	recs := make([]envelope.Record, 0, len(rows))
	var errs []error
	for i := range rows {
		rec, err := archive.ToRecord(&rows[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, *rec)
	}
	// One user's events together, oldest arrival first (a stable sort of rows already in
	// arrival order), partitioned by the user key as the ingest function writes them: a user's
	// events go to one shard, where the consumers see them in order. Events of one user that
	// arrived together share version 2 records, as at ingest, so each PutRecords call carries
	// whole histories of a few users and the segment updater folds a history in few batches.
	slices.SortStableFunc(recs, func(a, b envelope.Record) int { return cmp.Compare(a.UserKey, b.UserKey) })
	packed := envelope.Pack(recs)
	records := make([]ports.StreamRecord, len(packed))
	for i, p := range packed {
		records[i] = ports.StreamRecord{PartitionKey: p.UserKey, Data: p.Data}
	}

	if publisher != nil && len(records) > 0 {
		rep := publisher.Publish(ctx, records)
		res.Put, res.Records = len(recs), len(records)-len(rep.Failed)
		failedEvents := 0
		for _, f := range rep.Failed {
			res.Put -= packed[f.Index].N
			failedEvents += packed[f.Index].N
			errs = append(errs, fmt.Errorf("put record of user %s (%d events): %s: %s", records[f.Index].PartitionKey, packed[f.Index].N, f.ErrorCode, f.ErrorMessage))
		}
		res.Failed = failedEvents
	}
	res.Failed += len(rows) - len(recs)

	for i, err := range errs {
		if i == maxReplayErrors {
			fmt.Fprintf(c.stderr, "retarget: ... and %d more\n", len(errs)-i)
			break
		}
		fmt.Fprintf(c.stderr, "retarget: %v\n", err)
	}
	if o.json {
		if err := writeJSON(c.stdout, res); err != nil {
			return err
		}
	} else {
		fs := []field{{"archive", dir}, {"days", o.from + " to " + o.to}}
		if o.app != "" {
			fs = append(fs, field{"app", o.app})
		}
		if res.Stream != "" {
			fs = append(fs, field{"stream", res.Stream})
		}
		fs = append(fs, field{"read", fmt.Sprint(res.Read)}, field{"unique", fmt.Sprint(res.Unique)},
			field{"put", fmt.Sprint(res.Put)}, field{"records", fmt.Sprint(res.Records)}, field{"failed", fmt.Sprint(res.Failed)})
		if err := writeFields(c.stdout, fs); err != nil {
			return err
		}
		if o.dryRun {
			fmt.Fprintf(c.stdout, "\ndry run: %d event(s) would be replayed; nothing put\n", res.Unique-res.Failed)
		}
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d event(s) not replayed (see above); replaying the same days again is safe", res.Failed, res.Unique)
	}
	return nil
}

// readArchive returns the selected rows as archivefiles.Read does (one per (app, event_id),
// in arrival order) and how many rows the files held before deduplication.
func readArchive(ctx context.Context, fsys archivefiles.FS, q archivefiles.Query) ([]archive.Row, int, error) {
	prefix := ""
	if q.App != "" {
		prefix = "app=" + q.App + "/"
	}
	names, err := fsys.List(ctx, prefix)
	if err != nil {
		return nil, 0, err
	}
	slices.Sort(names) // the first copy of a row wins, as in archivefiles.Read
	var rows []archive.Row
	for _, name := range names {
		p, ok := archivefiles.ParseName(name)
		if !ok || (q.App != "" && p.App != q.App) || p.Day < q.From || p.Day > q.To {
			continue
		}
		data, err := fsys.ReadFile(ctx, name)
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", name, err)
		}
		rs, err := archivefiles.Decode(p, data)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", name, err)
		}
		rows = append(rows, rs...)
	}
	read := len(rows)
	rows = archive.Dedupe(rows)
	slices.SortStableFunc(rows, func(a, b archive.Row) int {
		return cmp.Or(cmp.Compare(a.ReceivedAt, b.ReceivedAt), cmp.Compare(a.App, b.App), cmp.Compare(a.EventID, b.EventID))
	})
	return rows, read, nil
}

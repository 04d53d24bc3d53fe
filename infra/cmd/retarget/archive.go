package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

var archiveExportCommand = &command{
	name:    "archive export",
	summary: "write the archived events of some days as JSON lines",
	help: `Reads the event archive (` + archiveSourceHelp + `) and writes one JSON
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
		o.source.register(fs)
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.archiveExport(ctx, *opts.(*archiveExportOptions), args)
	},
}

type archiveExportOptions struct {
	from, to, app, format string
	json                  bool
	source                archiveSource
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
	fsys, where, err := c.openArchive(ctx, cmd, o.source)
	if err != nil {
		return err
	}
	rows, err := archivefiles.Read(ctx, fsys, archivefiles.Query{From: o.from, To: o.to, App: o.app})
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
	fmt.Fprintf(c.stderr, "retarget: %d events from %s, days %s to %s\n", len(rows), where, o.from, o.to)
	return nil
}

// archiveSourceHelp says where the archive commands read, for their help.
const archiveSourceHelp = `--dir FOLDER; else the S3 bucket --bucket, $` + env.ArchiveBucketName + ` or the
--stack output ArchiveBucketName; else make dev's ` + devenv.ArchiveDir

// archiveSource is where an archive command reads the archive: a local folder or an S3 bucket.
type archiveSource struct {
	dir, bucket string
}

func (s *archiveSource) register(fs *flag.FlagSet) {
	fs.StringVar(&s.dir, "dir", "", "a local archive `folder` (default: the dev stack's, "+devenv.ArchiveDir+")")
	fs.StringVar(&s.bucket, "bucket", "", "the archive's S3 `bucket` (default $"+env.ArchiveBucketName+", else the --stack output ArchiveBucketName)")
}

// openArchive returns the archive to read and a name for it (the folder, or s3://bucket):
// --dir, else --bucket, else $ARCHIVE_BUCKET_NAME (which --stack fills from its output), else the
// dev stack's folder. A bucket is read through the S3 client of the CLI's AWS config, so
// AWS_ENDPOINT_URL_S3 and the credential chain apply as for the other services.
func (c *cli) openArchive(ctx context.Context, cmd string, s archiveSource) (archivefiles.FS, string, error) {
	if s.dir != "" && s.bucket != "" {
		return nil, "", usagef(cmd, "--dir and --bucket: pass one (a local archive or the stack's)")
	}
	bucket := s.bucket
	if bucket == "" && s.dir == "" {
		bucket = c.getenv(env.ArchiveBucketName)
	}
	if bucket != "" {
		cfg, err := c.awsConfig(ctx, serviceS3)
		if err != nil {
			return nil, "", err
		}
		// Emulators on loopback (moto) serve buckets by path only: a bucket host name would
		// have to resolve to 127.0.0.1.
		client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = c.local(serviceS3) })
		return archivefiles.S3{Client: client, Bucket: bucket}, "s3://" + bucket, nil
	}
	if c.target.stack != "" && s.dir == "" {
		return nil, "", fmt.Errorf("no archive bucket: stack %s has no output %s (deployed with -c archive=false?); pass --bucket or --dir",
			c.target.stack, outputArchiveBucket)
	}
	dir := s.dir
	switch {
	case dir != "":
	case c.target.devDir != "":
		dir = devenv.ArchivePath(c.target.devDir)
	default:
		dir = devenv.ArchiveDir
	}
	if _, err := os.Stat(dir); err != nil {
		if s.dir != "" {
			return nil, "", fmt.Errorf("archive folder %s: %w", dir, err)
		}
		return nil, "", fmt.Errorf("no archive: no dev stack archive at %s (%v): start make dev, or pass --dir FOLDER, --bucket NAME (or set %s) or --stack NAME",
			dir, err, env.ArchiveBucketName)
	}
	return archivefiles.Dir(dir), dir, nil
}

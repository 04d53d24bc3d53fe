package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
)

// archiverESM buffers like Firehose: a batch is written when it holds 2 s of records or about
// 5 MiB, whichever comes first (Firehose: 1-128 MiB or 0-900 s). The buffering is the event
// source mapping's, so a batch is checkpointed only after its files are written: a crash
// re-delivers it (at least once), never loses it.
var archiverESM = streampoller.Config{
	BatchSize:        10000,
	BatchingWindow:   2 * time.Second,
	MaxBatchBytes:    5 << 20,
	BisectOnError:    true,
	MaxRetryAttempts: env.MappingRetryAttempts,
	FunctionTimeout:  60 * time.Second,
}

// archiver is the third consumer of the stream in make dev: every record into the local
// archive.
type archiver struct {
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
}

// archiveOptions tells what each app lets the archive keep; unknown apps keep the default (the
// raw fields dropped).
func archiveOptions(apps *appconfig.Config) func(app string) archive.Options {
	return func(id string) archive.Options {
		a, ok := apps.App(id)
		return archive.Options{KeepRawFields: ok && a.ArchiveKeepsRawFields()}
	}
}

// archiveHandler writes each batch to fsys before it returns: an error fails the batch, which
// the mapping retries (bisecting it, so a record that cannot be archived ends in OnFailure
// alone). Files are named by their first sequence number and row count, so the same batch
// delivered again replaces its files.
func archiveHandler(fsys archivefiles.FS, opts func(app string) archive.Options) streampoller.Handler {
	return func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		batch := make([]archivefiles.SequencedRow, 0, len(ev.Records))
		for _, r := range ev.Records {
			if recs, err := envelope.Decode(r.Kinesis.Data); err == nil && recs[0].Replay {
				continue // put back from the archive: already there, in its own day
			}
			rows, err := archive.Decode(r.Kinesis.Data, opts)
			if err != nil {
				return events.KinesisEventResponse{}, fmt.Errorf("archive record %s: %w", r.Kinesis.SequenceNumber, err)
			}
			for _, row := range rows {
				batch = append(batch, archivefiles.SequencedRow{Seq: r.Kinesis.SequenceNumber, Row: row})
			}
		}
		if _, err := archivefiles.Write(ctx, fsys, batch); err != nil {
			return events.KinesisEventResponse{}, fmt.Errorf("archive batch: %w", err)
		}
		return events.KinesisEventResponse{}, nil
	}
}

// startArchiver runs the archiver on the stream, writing under <dev dir>/archive.
func startArchiver(s settings, apps *appconfig.Config, kinesisCfg aws.Config, logger *slog.Logger, out *console) (*archiver, error) {
	dir := devenv.ArchivePath(s.DevDir)
	cfg := archiverESM
	cfg.Stream = s.StreamName
	cfg.Logger = logger
	cfg.OnFailure = func(_ context.Context, f streampoller.FailureRecord) error {
		out.Errorf("archiver: records %s..%s of %s not archived (%s)", f.StartSequenceNumber, f.EndSequenceNumber, f.Shard, f.Reason)
		return nil
	}
	poller, err := streampoller.New(kinesis.NewFromConfig(kinesisCfg), cfg, archiveHandler(archivefiles.Dir(dir), archiveOptions(apps)))
	if err != nil {
		return nil, fmt.Errorf("archiver: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &archiver{dir: dir, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		if err := poller.Run(ctx); err != nil && ctx.Err() == nil {
			out.Errorf("archiver poller: %v", err)
		}
	}()
	return a, nil
}

func (a *archiver) stop() {
	a.cancel()
	<-a.done
}

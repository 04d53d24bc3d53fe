package runtime

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/app/purge"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// ArchivePurgeHandler runs one purge per invocation (the Scheduler payload is ignored) and
// answers what it did. A run that left erasures pending fails the invocation, so that the
// function's error alarm reports it; the next run does them again.
type ArchivePurgeHandler func(ctx context.Context, payload json.RawMessage) (purge.Result, error)

// NewArchivePurge builds the scheduled archive purge: every configured app's pending erasures
// from the state table, purged from the archive bucket's files (archive.S3). A run with no
// pending erasure makes one Query per app and no S3 call.
func NewArchivePurge(c env.ArchivePurge, d Deps) (ArchivePurgeHandler, error) {
	if c.StateTable == "" || c.Bucket == "" {
		return nil, fmt.Errorf("archive purge: %s and %s are required", env.StateTableName, env.ArchiveBucketName)
	}
	apps, err := env.LoadApps(c.ConfigFile)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(apps.Apps))
	for i := range apps.Apps {
		ids[i] = apps.Apps[i].ID
	}
	p, err := purge.New(purge.Config{
		Apps:     ids,
		Pending:  dynamostate.New(dynamodb.NewFromConfig(d.AWS), c.StateTable, dynamostate.Options{}),
		Archive:  archivefiles.Rewriter{FS: archivefiles.S3{Client: s3.NewFromConfig(d.AWS), Bucket: c.Bucket}},
		Settle:   c.Settle,
		Lookback: c.Lookback,
		Logger:   d.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("archive purge: %w", err)
	}
	return func(ctx context.Context, _ json.RawMessage) (purge.Result, error) {
		res, err := p.Run(ctx)
		d.Log.Info("archive purge run", "done", res.Done, "waiting", res.Waiting, "failed", res.Failed,
			"files", res.Files, "rows", res.Rows, "rewrites", res.Rewrites)
		if err != nil {
			return res, fmt.Errorf("archive purge: %w", err)
		}
		return res, nil
	}, nil
}

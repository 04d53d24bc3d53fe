package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/app/purge"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// The archive purge's settings in make dev.
const (
	// EnvArchivePurgeInterval is how often the purge runs (a Go duration, default 60s).
	EnvArchivePurgeInterval = "ARCHIVE_PURGE_INTERVAL"
	// EnvArchivePurgeSettle is how long after an erasure the purge waits for the user's last
	// events to land in the archive (default 30s: the archiver's 2 s buffer plus retries).
	EnvArchivePurgeSettle = "ARCHIVE_PURGE_SETTLE"
	// EnvArchivePurgeLookback is how many days before the erasure day the purge reads when the
	// erasure does not know the user's first day (default 400).
	EnvArchivePurgeLookback = "ARCHIVE_PURGE_LOOKBACK_DAYS"
)

type purgeSettings struct {
	interval, settle time.Duration
	lookback         int
}

func readPurgeSettings(getenv func(string) string) (purgeSettings, error) {
	ps := purgeSettings{interval: time.Minute, settle: 30 * time.Second, lookback: 400}
	for _, d := range []struct {
		env  string
		dst  *time.Duration
		zero bool // whether 0 is allowed
	}{{EnvArchivePurgeInterval, &ps.interval, false}, {EnvArchivePurgeSettle, &ps.settle, true}} {
		if v := getenv(d.env); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x < 0 || x == 0 && !d.zero {
				return ps, fmt.Errorf("%s=%q: want a positive Go duration such as 60s", d.env, v)
			}
			*d.dst = x
		}
	}
	if v := getenv(EnvArchivePurgeLookback); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return ps, fmt.Errorf("%s=%q: want a number of days", EnvArchivePurgeLookback, v)
		}
		ps.lookback = n
	}
	return ps, nil
}

// archivePurge runs the archive purge (package app/purge) on a ticker over the local archive,
// as a scheduled function would in the stack: erasures reach .dev/archive within the settle
// time plus one interval.
type archivePurge struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startArchivePurge(getenv func(string) string, s settings, apps *appconfig.Config, dynamoCfg aws.Config, logger *slog.Logger, out *console) (*archivePurge, error) {
	ps, err := readPurgeSettings(getenv)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(apps.Apps))
	for i := range apps.Apps {
		ids[i] = apps.Apps[i].ID
	}
	p, err := purge.New(purge.Config{
		Apps:     ids,
		Pending:  dynamostate.New(dynamodb.NewFromConfig(dynamoCfg), stateTable, dynamostate.Options{}),
		Archive:  archivefiles.Rewriter{FS: archivefiles.Dir(devenv.ArchivePath(s.DevDir))},
		Settle:   ps.settle,
		Lookback: ps.lookback,
		Logger:   logger,
	})
	if err != nil {
		return nil, fmt.Errorf("archive purge: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &archivePurge{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		tick := time.NewTicker(ps.interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				runCtx, stop := context.WithTimeout(ctx, 5*time.Minute)
				res, err := p.Run(runCtx)
				stop()
				if err != nil && ctx.Err() == nil {
					out.Errorf("archive purge: %v", err)
				}
				if res.Done > 0 {
					out.Printf("archive purge: erasures done %d, rows removed %d, files rewritten %d", res.Done, res.Rows, res.Rewrites)
				}
			}
		}
	}()
	return a, nil
}

func (a *archivePurge) stop() {
	a.cancel()
	<-a.done
}

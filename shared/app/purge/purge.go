// Package purge makes erasure reach the event archive: it rewrites the archive's files that hold
// an erased user's rows without them.
//
// Which erasures: each stored erasure is pending (ports.ArchivePurges, a sparse list written
// with the audit record) until a run has rewritten every partition that can hold the user's
// rows; only then is it marked done. A run that fails part way leaves its erasures pending and
// the next run does them again: at least once, and harmless twice, because a file without the
// user's rows is left as it is.
//
// Which partitions: the app's days from the erasure's FirstDay (the first day the archive can
// hold the user's rows, when the audit record knows it), else from Lookback days before the
// erasure, to the erasure day (the UTC day of RequestedAt). Every row of the user reached the
// ingest API before the erasure, and a row's partition is the day it arrived, so no later day
// holds one. The purge lists and reads those days' partitions only, never the whole archive;
// all pending erasures of an app are done in one pass, each file read once per run.
//
// When: an erasure is purged once Settle has passed since it was requested, so that events
// accepted just before it have landed in the archive (the writer buffers: 2 s in make dev, up
// to 900 s with Firehose, plus retries). An erasure therefore leaves the archive within Settle
// plus one purge interval (plus the run's own time).
package purge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// DayLayout is the format of the archive's day partitions (UTC).
const DayLayout = "2006-01-02"

// Archive is what the purge needs of the archive's files (archive.Rewriter).
type Archive interface {
	// Files lists the files of one app's day.
	Files(ctx context.Context, app, day string) ([]string, error)
	// RemoveUsers rewrites one file without the rows of userKeys, returning how many it removed;
	// a file without them is left untouched.
	RemoveUsers(ctx context.Context, name string, userKeys map[string]bool) (int, error)
}

// Config is what a Purger works on.
type Config struct {
	// Apps are the apps whose archive is purged.
	Apps    []string
	Pending ports.ArchivePurges
	Archive Archive
	// Settle is how long after an erasure the archive may still receive the user's rows.
	Settle time.Duration
	// Lookback is how many days before the erasure day are read for an erasure whose first
	// day is unknown.
	Lookback int
	Now      func() time.Time
	Logger   *slog.Logger
}

// Result counts one run's work.
type Result struct {
	Done     int // erasures purged and marked done
	Waiting  int // erasures still within Settle
	Failed   int // erasures left pending by an error
	Files    int // files read
	Rows     int // rows removed
	Rewrites int // files rewritten or deleted
}

// Purger runs purges; it holds no state between runs.
type Purger struct{ cfg Config }

// New returns a Purger; Now defaults to time.Now and Logger to a discarding one.
func New(cfg Config) (*Purger, error) {
	if cfg.Pending == nil || cfg.Archive == nil {
		return nil, errors.New("purge: Pending and Archive are required")
	}
	if cfg.Settle < 0 || cfg.Lookback < 0 {
		return nil, fmt.Errorf("purge: negative Settle %s or Lookback %d", cfg.Settle, cfg.Lookback)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Purger{cfg: cfg}, nil
}

// Run purges every app's settled pending erasures. An error on one day leaves the erasures
// that need that day pending and the run goes on with the others; the errors are returned
// joined.
func (p *Purger) Run(ctx context.Context) (Result, error) {
	var res Result
	var errs []error
	for _, app := range p.cfg.Apps {
		if err := p.runApp(ctx, app, &res); err != nil {
			errs = append(errs, fmt.Errorf("purge %s: %w", app, err))
		}
	}
	return res, errors.Join(errs...)
}

func (p *Purger) runApp(ctx context.Context, app string, res *Result) error {
	pending, err := p.cfg.Pending.PendingPurges(ctx, app)
	if err != nil {
		return err
	}
	now := p.cfg.Now()
	type job struct {
		rec      ports.ErasureRecord
		from, to string
	}
	var jobs []job
	keysByDay := map[string]map[string]bool{}
	for _, r := range pending {
		requested := time.Unix(r.RequestedAt, 0)
		if now.Before(requested.Add(p.cfg.Settle)) {
			res.Waiting++
			continue
		}
		from, to := Days(r, p.cfg.Lookback)
		jobs = append(jobs, job{r, from, to})
		for _, day := range dayRange(from, to) {
			if keysByDay[day] == nil {
				keysByDay[day] = map[string]bool{}
			}
			keysByDay[day][r.UserKey] = true
		}
	}
	days := make([]string, 0, len(keysByDay))
	for d := range keysByDay {
		days = append(days, d)
	}
	slices.Sort(days)
	failed := map[string]bool{}
	var errs []error
	for _, day := range days {
		if err := p.purgeDay(ctx, app, day, keysByDay[day], res); err != nil {
			failed[day] = true
			errs = append(errs, err)
		}
	}
	for _, j := range jobs {
		ok := true
		for _, d := range dayRange(j.from, j.to) {
			ok = ok && !failed[d]
		}
		if !ok {
			res.Failed++
			continue
		}
		if err := p.cfg.Pending.PurgeDone(ctx, app, j.rec.ID); err != nil {
			res.Failed++
			errs = append(errs, err)
			continue
		}
		res.Done++
		p.cfg.Logger.Info("erasure purged from the archive", "app", app, "erasure_id", j.rec.ID, "from", j.from, "to", j.to)
	}
	return errors.Join(errs...)
}

func (p *Purger) purgeDay(ctx context.Context, app, day string, keys map[string]bool, res *Result) error {
	files, err := p.cfg.Archive.Files(ctx, app, day)
	if err != nil {
		return fmt.Errorf("day %s: %w", day, err)
	}
	slices.Sort(files)
	var errs []error
	for _, f := range files {
		res.Files++
		n, err := p.cfg.Archive.RemoveUsers(ctx, f, keys)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n > 0 {
			res.Rows += n
			res.Rewrites++
		}
	}
	return errors.Join(errs...)
}

// Days returns the first and last day (inclusive, YYYY-MM-DD) of the partitions that can hold
// the erased user's rows: from r.FirstDay (when valid and not after the erasure day), else
// lookback days before the erasure day, to the erasure day.
func Days(r ports.ErasureRecord, lookback int) (from, to string) {
	end := time.Unix(r.RequestedAt, 0).UTC()
	to = end.Format(DayLayout)
	if _, err := time.Parse(DayLayout, r.FirstDay); err == nil && r.FirstDay <= to {
		return r.FirstDay, to
	}
	return end.AddDate(0, 0, -lookback).Format(DayLayout), to
}

// dayRange lists the days from..to inclusive.
func dayRange(from, to string) []string {
	start, err1 := time.Parse(DayLayout, from)
	end, err2 := time.Parse(DayLayout, to)
	if err1 != nil || err2 != nil {
		return nil
	}
	var out []string
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(DayLayout))
	}
	return out
}

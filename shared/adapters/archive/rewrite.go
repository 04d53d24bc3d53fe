package archive

// Erasure in the archive: the purge (package app/purge) rewrites each file holding an erased
// user's rows without them. Plain Parquet files have no row-level deletes, so a file is
// rewritten whole: decoded, filtered, encoded again and written under its own name, which
// replaces it in one step (FS.WriteFile) — a reader sees the file with the rows or without
// them, never a part. Keeping the name keeps the archive's idempotence: the row count in the
// name is the count as written, and a redelivered batch still replaces its file (the purge
// waits for in-flight batches to land before it rewrites a day, see app/purge).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	domain "github.com/retarget-dev/retarget/shared/domain/archive"
)

// RemoveFS is an FS that can also delete a file.
type RemoveFS interface {
	FS
	// Remove deletes the file; a missing file is not an error.
	Remove(ctx context.Context, name string) error
}

var _ RemoveFS = Dir("")

// Remove deletes a file under the directory; a missing file is not an error.
func (d Dir) Remove(_ context.Context, name string) error {
	err := os.Remove(filepath.Join(string(d), filepath.FromSlash(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove archive file %s: %w", name, err)
	}
	return nil
}

// PartitionFiles returns the names of partition p's files (names Write gives), in any order.
// It lists that partition's prefix only (on a Dir, that one directory rather than a walk of
// the whole archive).
func PartitionFiles(ctx context.Context, fsys FS, p domain.Partition) ([]string, error) {
	var names []string
	if d, ok := fsys.(Dir); ok {
		entries, err := os.ReadDir(filepath.Join(string(d), filepath.FromSlash(p.Dir())))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list archive partition %s: %w", p.Dir(), err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				names = append(names, p.Dir()+"/"+e.Name())
			}
		}
	} else {
		var err error
		if names, err = fsys.List(ctx, p.Dir()+"/"); err != nil {
			return nil, err
		}
	}
	out := names[:0]
	for _, n := range names {
		if q, ok := ParseName(n); ok && q == p {
			out = append(out, n)
		}
	}
	return out, nil
}

// RemoveUsers rewrites file name without the rows whose user key is in userKeys and returns
// how many rows it removed. A file with none of them is left untouched (not even rewritten); a
// file left with no rows is deleted; a missing file removes nothing. Running it again removes
// nothing more, so a purge retried after a failure is harmless.
func RemoveUsers(ctx context.Context, fsys RemoveFS, name string, userKeys map[string]bool) (int, error) {
	p, ok := ParseName(name)
	if !ok {
		return 0, fmt.Errorf("remove users: %q is not an archive file name", name)
	}
	data, err := fsys.ReadFile(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("remove users: read %s: %w", name, err)
	}
	rows, err := Decode(p, data)
	if err != nil {
		return 0, fmt.Errorf("remove users: %s: %w", name, err)
	}
	kept := rows[:0:0]
	for _, r := range rows {
		if !userKeys[r.UserKey] {
			kept = append(kept, r)
		}
	}
	removed := len(rows) - len(kept)
	switch {
	case removed == 0:
		return 0, nil
	case len(kept) == 0:
		if err := fsys.Remove(ctx, name); err != nil {
			return 0, fmt.Errorf("remove users: %w", err)
		}
	default:
		out, err := Encode(kept)
		if err != nil {
			return 0, fmt.Errorf("remove users: %s: %w", name, err)
		}
		if err := fsys.WriteFile(ctx, name, out); err != nil {
			return 0, fmt.Errorf("remove users: %w", err)
		}
	}
	return removed, nil
}

// Rewriter gives the archive purge (app/purge) the two operations it needs on fsys.
type Rewriter struct{ FS RemoveFS }

// Files lists the files of one app's day.
func (r Rewriter) Files(ctx context.Context, app, day string) ([]string, error) {
	return PartitionFiles(ctx, r.FS, domain.Partition{App: app, Day: day})
}

// RemoveUsers rewrites one file without the users' rows (see the function RemoveUsers).
func (r Rewriter) RemoveUsers(ctx context.Context, name string, userKeys map[string]bool) (int, error) {
	return RemoveUsers(ctx, r.FS, name, userKeys)
}

// Package archive writes archived rows (package domain/archive) to Parquet files and reads them
// back, in the layout Athena and Glue partition projection read:
//
//	<root>/app=<app>/day=<YYYY-MM-DD>/part-<first sequence number>-<rows>.parquet
//
// One write of a batch puts one file in each partition its rows belong to; the file is named by
// the stream sequence number of its first row and its row count, so writing the same batch
// again (a redelivery after a crash) replaces the file rather than adding one. A batch cut
// differently on redelivery (a bisected retry) still writes rows twice, as Firehose may: Read
// therefore keeps one row per (app, event_id), and queries over the files do the same.
//
// The files go through FS, a small filesystem interface: a local directory (Dir) in make dev
// and the tests; S3 can implement it with PutObject, GetObject and ListObjectsV2.
package archive

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	domain "github.com/retarget-dev/retarget/shared/domain/archive"
)

// FS is where the archive's files live. Names are slash-separated and relative to the root.
type FS interface {
	// WriteFile stores data under name, replacing any file of that name as one step: a reader
	// sees the old file or the new one, never part of either.
	WriteFile(ctx context.Context, name string, data []byte) error
	// ReadFile returns the file's bytes.
	ReadFile(ctx context.Context, name string) ([]byte, error)
	// List returns the names of all files under prefix ("" for all), in any order.
	List(ctx context.Context, prefix string) ([]string, error)
}

// Dir is an FS on a local directory (created on the first write).
type Dir string

var _ FS = Dir("")

// WriteFile writes to a temporary file beside name, then renames it over name.
func (d Dir) WriteFile(_ context.Context, name string, data []byte) error {
	full := filepath.Join(string(d), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("archive dir: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(full), ".tmp-*")
	if err != nil {
		return fmt.Errorf("archive file %s: %w", name, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("archive file %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), full); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("archive file %s: %w", name, err)
	}
	return nil
}

// ReadFile reads a file under the directory.
func (d Dir) ReadFile(_ context.Context, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), filepath.FromSlash(name)))
}

// List walks the directory; a missing directory is an empty archive. Temporary files of
// writes under way are not listed.
func (d Dir) List(_ context.Context, prefix string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(string(d), p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); strings.HasPrefix(rel, prefix) {
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list archive %s: %w", string(d), err)
	}
	return names, nil
}

// SequencedRow is a row with the stream sequence number it was read at.
type SequencedRow struct {
	Seq string
	Row domain.Row
}

// FileName is the name of the file holding n rows of partition p whose first row was read at
// sequence number firstSeq.
func FileName(p domain.Partition, firstSeq string, n int) string {
	return p.Dir() + "/part-" + firstSeq + "-" + strconv.Itoa(n) + ".parquet"
}

// firehoseFile is the name Firehose gives the files it delivers into a partition (the stack's
// archive): <delivery stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid>.parquet.
var firehoseFile = regexp.MustCompile(`^.+-[0-9]+-[0-9]{4}(-[0-9]{2}){5}-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\.parquet$`)

// ParseName returns the partition of a file name written by Write or delivered by the stack's
// Firehose, and false for any other name (a stray file is not read).
func ParseName(name string) (domain.Partition, bool) {
	appDir, rest, ok1 := strings.Cut(name, "/")
	dayDir, file, ok2 := strings.Cut(rest, "/")
	app, ok3 := strings.CutPrefix(appDir, "app=")
	day, ok4 := strings.CutPrefix(dayDir, "day=")
	if !ok1 || !ok2 || !ok3 || !ok4 || app == "" || strings.Contains(file, "/") ||
		!(strings.HasPrefix(file, "part-") && path.Ext(file) == ".parquet" || firehoseFile.MatchString(file)) || !validDay(day) {
		return domain.Partition{}, false
	}
	return domain.Partition{App: app, Day: day}, true
}

func validDay(day string) bool {
	return len(day) == len(domain.DayLayout) && day[4] == '-' && day[7] == '-'
}

// Write writes one batch, in stream order: one Parquet file per partition of its rows. It
// returns the names written. The call is whole or failed: on error some files may be written,
// and writing the batch again completes it.
func Write(ctx context.Context, fsys FS, batch []SequencedRow) ([]string, error) {
	var parts []domain.Partition
	byPart := map[domain.Partition][]SequencedRow{}
	for _, r := range batch {
		p := r.Row.Partition()
		if _, seen := byPart[p]; !seen {
			parts = append(parts, p)
		}
		byPart[p] = append(byPart[p], r)
	}
	names := make([]string, 0, len(parts))
	for _, p := range parts {
		rs := byPart[p]
		rows := make([]domain.Row, len(rs))
		for i := range rs {
			rows[i] = rs[i].Row
		}
		data, err := Encode(rows)
		if err != nil {
			return names, err
		}
		name := FileName(p, rs[0].Seq, len(rs))
		if err := fsys.WriteFile(ctx, name, data); err != nil {
			return names, err
		}
		names = append(names, name)
	}
	return names, nil
}

// Encode returns rows as one Parquet file (Snappy, as Firehose writes by default). The
// partition keys are not written (they are in the path).
func Encode(rows []domain.Row) ([]byte, error) {
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows, parquet.Compression(&parquet.Snappy)); err != nil {
		return nil, fmt.Errorf("encode parquet: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode reads one Parquet file of partition p; the partition keys come from p.
func Decode(p domain.Partition, data []byte) ([]domain.Row, error) {
	rows, err := parquet.Read[domain.Row](bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("decode parquet: %w", err)
	}
	for i := range rows {
		rows[i].App, rows[i].Day = p.App, p.Day
	}
	return rows, nil
}

// Query selects partitions: days From to To inclusive (YYYY-MM-DD; empty: open), and one app
// or all.
type Query struct {
	From, To string
	App      string
}

func (q Query) matches(p domain.Partition) bool {
	return (q.App == "" || p.App == q.App) && (q.From == "" || p.Day >= q.From) && (q.To == "" || p.Day <= q.To)
}

// Read returns the rows of the selected partitions, one per (app, event_id), ordered by
// arrival (received_at, then app and event_id).
func Read(ctx context.Context, fsys FS, q Query) ([]domain.Row, error) {
	prefix := ""
	if q.App != "" {
		prefix = "app=" + q.App + "/"
	}
	names, err := fsys.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // the first copy of a row wins, whatever order List gives
	var rows []domain.Row
	for _, name := range names {
		p, ok := ParseName(name)
		if !ok || !q.matches(p) {
			continue
		}
		data, err := fsys.ReadFile(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		rs, err := Decode(p, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rows = append(rows, rs...)
	}
	rows = domain.Dedupe(rows)
	slices.SortStableFunc(rows, func(a, b domain.Row) int {
		return cmp.Or(cmp.Compare(a.ReceivedAt, b.ReceivedAt), cmp.Compare(a.App, b.App), cmp.Compare(a.EventID, b.EventID))
	})
	return rows, nil
}

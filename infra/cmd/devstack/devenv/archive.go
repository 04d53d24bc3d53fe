package devenv

import "path/filepath"

// ArchiveSubdir is the dev stack's local event archive in the state folder: Parquet files
// app=<app>/day=<YYYY-MM-DD>/part-<first seq>-<n>.parquet. It outlives the stack (the stream
// starts empty on every run; the archive keeps what earlier runs accepted).
const ArchiveSubdir = "archive"

// ArchiveDir is the default archive folder, relative to where make dev runs.
const ArchiveDir = Dir + "/" + ArchiveSubdir

// ArchivePath is the archive folder of the state folder dir.
func ArchivePath(dir string) string { return filepath.Join(dir, ArchiveSubdir) }

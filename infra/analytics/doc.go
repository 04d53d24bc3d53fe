// Package analytics holds the sample Athena queries over the event archive (the .sql files
// beside this one, described in README.md) and their test, which runs them with DuckDB over
// Parquet files written by shared/adapters/archive. It has no Go code of its own.
package analytics

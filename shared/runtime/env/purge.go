package env

import (
	"fmt"
	"strconv"
	"time"
)

// Names of the archive purge's variables (make dev's purge reads the same settle and lookback
// names).
const (
	// ArchiveBucketName is the S3 bucket of the event archive (the purge's files).
	ArchiveBucketName = "ARCHIVE_BUCKET_NAME"
	// ArchivePurgeSettle is how long after an erasure the purge waits for the user's last events
	// to land in the archive (a Go duration such as 30m; default DefaultArchivePurgeSettle).
	ArchivePurgeSettle = "ARCHIVE_PURGE_SETTLE"
	// ArchivePurgeLookbackDays is how many days before the erasure day the purge reads when the
	// erasure does not know the user's first day (default DefaultArchivePurgeLookbackDays).
	ArchivePurgeLookbackDays = "ARCHIVE_PURGE_LOOKBACK_DAYS"
)

// Defaults of the archive purge in AWS.
const (
	// DefaultArchivePurgeSettle is twice Firehose's largest buffer interval (900 s): a record
	// older than that is what the archive's staleness alarm reports as stuck.
	DefaultArchivePurgeSettle = 30 * time.Minute
	// DefaultArchivePurgeLookbackDays is make dev's lookback; the stack sets the archive's expiry.
	DefaultArchivePurgeLookbackDays = 400
)

// ArchivePurge configures the scheduled archive purge: the state table's pending purges and
// the archive bucket's files.
type ArchivePurge struct {
	Common
	StateTable string
	Bucket     string
	Settle     time.Duration
	Lookback   int // days
}

// ReadArchivePurge reads the archive purge's configuration; the table and the bucket are
// required.
func ReadArchivePurge(getenv Getenv) (ArchivePurge, error) {
	c := ArchivePurge{Common: readCommon(getenv), StateTable: getenv(StateTableName), Bucket: getenv(ArchiveBucketName),
		Settle: DefaultArchivePurgeSettle, Lookback: DefaultArchivePurgeLookbackDays}
	if c.StateTable == "" {
		return c, fmt.Errorf("%s is not set", StateTableName)
	}
	if c.Bucket == "" {
		return c, fmt.Errorf("%s is not set", ArchiveBucketName)
	}
	if v := getenv(ArchivePurgeSettle); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("%s=%q: want a Go duration such as 30m", ArchivePurgeSettle, v)
		}
		c.Settle = d
	}
	if v := getenv(ArchivePurgeLookbackDays); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("%s=%q: want a number of days", ArchivePurgeLookbackDays, v)
		}
		c.Lookback = n
	}
	return c, nil
}

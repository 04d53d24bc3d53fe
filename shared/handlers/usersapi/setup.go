package usersapi

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
)

// Environment of the users routes besides the segment functions' (segmentupdater.CommonFromEnv)
// and the API keys and pepper (as the ingest function reads them).
const (
	// EnvTombstoneDays keeps an erased user's hashed identifiers this many days for the audience
	// removals (default 30).
	EnvTombstoneDays = "ERASURE_TOMBSTONE_DAYS"
	// EnvAuditDays keeps erasure audit records this many days (default 1095, three years).
	EnvAuditDays = "ERASURE_AUDIT_DAYS"
)

// FromEnv builds the users handler: STATE_TABLE_NAME, APP_CONFIG_FILE, USER_TTL_DAYS, the
// pepper, the API key mapping, ERASURE_TOMBSTONE_DAYS and ERASURE_AUDIT_DAYS.
func FromEnv(ctx context.Context, getenv func(string) string, awsCfg aws.Config, log *slog.Logger) (*Handler, error) {
	c, err := segmentupdater.CommonFromEnv(getenv, awsCfg)
	if err != nil {
		return nil, err
	}
	keyIDs, devKeys, err := ingestapi.KeysFromEnv(getenv, c.Apps)
	if err != nil {
		return nil, err
	}
	pseudo, err := ingestapi.PseudonymizerFromEnv(ctx, getenv, awsCfg)
	if err != nil {
		return nil, err
	}
	aa, err := audiences.ForConfig(c.Apps)
	if err != nil {
		return nil, err
	}
	tombstone, err := days(getenv, EnvTombstoneDays)
	if err != nil {
		return nil, err
	}
	audit, err := days(getenv, EnvAuditDays)
	if err != nil {
		return nil, err
	}
	return New(Config{Apps: c.Apps, Rules: c.Rules, Store: c.Store, Pseudo: pseudo, KeyIDs: keyIDs, DevKeys: devKeys, Logger: log,
		Consents: c.Store, Audiences: aa, UserTTL: c.UserTTL, TombstoneTTL: tombstone, AuditRetention: audit})
}

// days reads a positive number of days (0 when unset: the default).
func days(getenv func(string) string, name string) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive number of days", name, v)
	}
	return time.Duration(n) * 24 * time.Hour, nil
}

package segmentsapi

import (
	"context"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/retarget-dev/retarget/shared/ingestapi"
	"github.com/retarget-dev/retarget/shared/segmentupdater"
)

// FromEnv builds the read handler: STATE_TABLE_NAME, APP_CONFIG_FILE, the pepper and the API
// key mapping exactly as the ingest function reads them (see ingestapi and segmentupdater).
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
	return New(Config{Apps: c.Apps, Rules: c.Rules, Store: c.Store, Pseudo: pseudo, KeyIDs: keyIDs, DevKeys: devKeys, Logger: log})
}

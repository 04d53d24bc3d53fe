package segmentupdater

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// Environment variables of the segment functions (the stack sets the deployed values).
const (
	EnvTableName  = "STATE_TABLE_NAME"  // the segment state table (required)
	EnvConfigFile = "APP_CONFIG_FILE"   // app config; default $LAMBDA_TASK_ROOT/config.json
	EnvUserTTL    = "USER_TTL_DAYS"     // inactive users' state expires after this many days (default 400)
	EnvMetricsNS  = "METRICS_NAMESPACE" // CloudWatch namespace of the EMF metrics
)

// Common is what every segment function reads from the environment.
type Common struct {
	Apps    *appconfig.Config
	Rules   map[string]*segments.AppRules
	Store   *dynamostate.Store
	UserTTL time.Duration
}

// CommonFromEnv loads the config, compiles the rules and builds the DynamoDB store.
func CommonFromEnv(getenv func(string) string, awsCfg aws.Config) (*Common, error) {
	table := getenv(EnvTableName)
	if table == "" {
		return nil, fmt.Errorf("%s is not set", EnvTableName)
	}
	path := getenv(EnvConfigFile)
	if path == "" {
		path = filepath.Join(getenv("LAMBDA_TASK_ROOT"), "config.json")
	}
	apps, err := appconfig.Load(path)
	if err != nil {
		return nil, err
	}
	rules, err := segments.ForConfig(apps)
	if err != nil {
		return nil, err
	}
	ttl := DefaultUserTTL
	if v := getenv(EnvUserTTL); v != "" {
		days, err := strconv.Atoi(v)
		if err != nil || days <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive number of days", EnvUserTTL, v)
		}
		ttl = time.Duration(days) * 24 * time.Hour
	}
	store := dynamostate.New(dynamodb.NewFromConfig(awsCfg), table, dynamostate.Options{})
	return &Common{Apps: apps, Rules: rules, Store: store, UserTTL: ttl}, nil
}

// FromEnv builds the updater handler: the wiring shared by the Lambda and the dev stack.
func FromEnv(getenv func(string) string, awsCfg aws.Config, log *slog.Logger, metrics io.Writer) (*Handler, error) {
	c, err := CommonFromEnv(getenv, awsCfg)
	if err != nil {
		return nil, err
	}
	return New(Config{Rules: c.Rules, Store: c.Store, UserTTL: c.UserTTL, Logger: log, Consents: c.Store,
		Metrics: observability.NewEmitter(metrics, getenv(EnvMetricsNS))})
}

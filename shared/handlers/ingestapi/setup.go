package ingestapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/adapters/secrets"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// Environment variables of the ingest function (the stack sets the deployed values).
const (
	EnvStreamName   = "EVENT_STREAM_NAME" // Kinesis stream to write to (required)
	EnvConfigFile   = "APP_CONFIG_FILE"   // app config; default $LAMBDA_TASK_ROOT/config.json
	EnvPepperSecret = "PEPPER_SECRET_ID"  // Secrets Manager id of the pseudonym pepper (AWS)
	EnvPepper       = "PSEUDONYM_PEPPER"  // the pepper itself (make dev and local invokes only)
	EnvKeyIDs       = "API_KEY_APP_IDS"   // JSON {"<API Gateway key id>": "<app id>"}
	EnvDevAuth      = "DEV_AUTH"          // "true": accept the config's api_key.dev_value keys
	EnvDevAPIKey    = "DEV_API_KEY"       // replaces the first app's dev key when DEV_AUTH is on
	EnvLogLevel     = "LOG_LEVEL"         // debug | info | warn | error
	EnvMetricsNS    = "METRICS_NAMESPACE" // CloudWatch namespace of the EMF metrics
)

// FromEnv builds the ingest handler from the environment (getenv, normally os.Getenv) and an
// AWS config: the single wiring shared by the Lambda and the dev stack. Logs go to log, EMF
// metric lines to metrics (os.Stdout in Lambda, where CloudWatch picks them up).
func FromEnv(ctx context.Context, getenv func(string) string, awsCfg aws.Config, log *slog.Logger, metrics io.Writer) (*Handler, error) {
	streamName := getenv(EnvStreamName)
	if streamName == "" {
		return nil, errors.New(EnvStreamName + " is not set")
	}
	cfgPath := getenv(EnvConfigFile)
	if cfgPath == "" {
		cfgPath = filepath.Join(getenv("LAMBDA_TASK_ROOT"), "config.json")
	}
	apps, err := appconfig.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	keyIDs, devKeys, err := KeysFromEnv(getenv, apps)
	if err != nil {
		return nil, err
	}
	pseudo, err := PseudonymizerFromEnv(ctx, getenv, awsCfg)
	if err != nil {
		return nil, err
	}

	// The Publisher owns retries (per record, within the request's deadline); SDK retries on top
	// would multiply them.
	client := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
	return New(Config{
		Apps:      apps,
		Parser:    appevent.NewParser(pseudo),
		Publisher: stream.NewPublisher(kinesisstream.NewWriter(client, streamName, ""), stream.Options{}),
		KeyIDs:    keyIDs,
		DevKeys:   devKeys,
		Logger:    log,
		Metrics:   observability.NewEmitter(metrics, getenv(EnvMetricsNS)),
	})
}

// KeysFromEnv reads how requests map to apps: API_KEY_APP_IDS, and the dev keys when DEV_AUTH
// is on. Every keyed function of the API uses it.
func KeysFromEnv(getenv func(string) string, apps *appconfig.Config) (keyIDs, devKeys map[string]string, err error) {
	keyIDs, err = ParseKeyIDs(getenv(EnvKeyIDs))
	if err != nil {
		return nil, nil, err
	}
	if getenv(EnvDevAuth) == "true" {
		devKeys = DevKeys(apps, getenv(EnvDevAPIKey))
	}
	return keyIDs, devKeys, nil
}

// PseudonymizerFromEnv keys users with the pepper from Secrets Manager (PEPPER_SECRET_ID) or,
// locally, from PSEUDONYM_PEPPER.
func PseudonymizerFromEnv(ctx context.Context, getenv func(string) string, awsCfg aws.Config) (*identity.Pseudonymizer, error) {
	pepper := getenv(EnvPepper)
	if id := getenv(EnvPepperSecret); id != "" {
		var err error
		pepper, err = secrets.NewSecretsManager(secretsmanager.NewFromConfig(awsCfg)).SecretValue(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("pseudonym pepper: %w", err)
		}
	}
	if pepper == "" {
		return nil, fmt.Errorf("no pseudonym pepper: set %s (AWS) or %s (local)", EnvPepperSecret, EnvPepper)
	}
	return identity.NewPseudonymizer([]byte(pepper))
}

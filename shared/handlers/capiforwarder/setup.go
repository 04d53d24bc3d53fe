package capiforwarder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/adapters/secrets"
	"github.com/retarget-dev/retarget/shared/app/forward"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Environment variables of the forwarder (the stack sets the deployed values).
const (
	EnvConfigFile  = "APP_CONFIG_FILE"       // app config; default $LAMBDA_TASK_ROOT/config.json
	EnvGraphURL    = "META_GRAPH_URL"        // default https://graph.facebook.com
	EnvAPIVersion  = "META_API_VERSION"      // default v26.0
	EnvMetaSecret  = "META_SECRET_ID"        // Secrets Manager id of {"access_token": ..., "app_secret": ...} (AWS)
	EnvAccessToken = "META_ACCESS_TOKEN"     // the token itself (make dev only)
	EnvAppSecret   = "META_APP_SECRET"       // the app secret itself (make dev only; enables appsecret_proof)
	EnvDLQURL      = "DEAD_LETTER_QUEUE_URL" // SQS queue for dead letters (AWS)
	EnvDLQFile     = "DEAD_LETTER_FILE"      // JSON lines file for dead letters (make dev)
	EnvMetricsNS   = "METRICS_NAMESPACE"
	EnvHoldPause   = "HOLD_PAUSE" // pause before answering on credential errors (Go duration, default 10s)
	// EnvStateTable is the segment state table holding explicit consent decisions; unset
	// (a stack without the segment state), only the events' consent applies.
	EnvStateTable = "STATE_TABLE_NAME"
	// EnvDynamoEndpoint is the SDK's standard endpoint override, honoured for the state table
	// when the AWS config has another service's endpoint (make dev).
	EnvDynamoEndpoint = "AWS_ENDPOINT_URL_DYNAMODB"
)

// MetaCredentials is the JSON document of the Meta secret.
type MetaCredentials struct {
	AccessToken string `json:"access_token"`
	AppSecret   string `json:"app_secret"`
}

// FromEnv builds the forwarder handler from the environment and an AWS config: the single
// wiring shared by the Lambda and the dev stack.
func FromEnv(ctx context.Context, getenv func(string) string, awsCfg aws.Config, log *slog.Logger, metrics io.Writer) (*Handler, error) {
	cfgPath := getenv(EnvConfigFile)
	if cfgPath == "" {
		cfgPath = filepath.Join(getenv("LAMBDA_TASK_ROOT"), "config.json")
	}
	apps, err := appconfig.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	creds, err := CredentialsFromEnv(ctx, getenv, awsCfg)
	if err != nil {
		return nil, err
	}

	var dlq ports.DeadLetterQueue
	switch {
	case getenv(EnvDLQURL) != "":
		dlq = deadletters.NewSQS(sqs.NewFromConfig(awsCfg), getenv(EnvDLQURL))
	case getenv(EnvDLQFile) != "":
		dlq = deadletters.NewFile(getenv(EnvDLQFile))
	default:
		return nil, errors.New("no dead-letter queue: set " + EnvDLQURL + " (AWS) or " + EnvDLQFile + " (local)")
	}

	var pause time.Duration
	if v := getenv(EnvHoldPause); v != "" {
		if pause, err = time.ParseDuration(v); err != nil || pause <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive Go duration such as 10s", EnvHoldPause, v)
		}
	}
	var consents ports.ConsentStore
	if table := getenv(EnvStateTable); table != "" {
		client := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
			if ep := getenv(EnvDynamoEndpoint); ep != "" {
				o.BaseEndpoint = aws.String(ep)
			}
		})
		consents = dynamostate.New(client, table, dynamostate.Options{})
	}
	sender := metagraph.New(metagraph.Config{
		BaseURL: getenv(EnvGraphURL), Version: getenv(EnvAPIVersion),
		AccessToken: creds.AccessToken, AppSecret: creds.AppSecret,
	})
	return New(Config{
		Apps:      apps,
		Forwarder: forward.New(sender, dlq, forward.Options{Consumer: Consumer}),
		DLQ:       dlq,
		Logger:    log,
		Metrics:   observability.NewEmitter(metrics, getenv(EnvMetricsNS)),
		HoldPause: pause,
		Consents:  consents,
	})
}

// CredentialsFromEnv reads the Meta credentials: the Secrets Manager secret META_SECRET_ID in
// AWS, META_ACCESS_TOKEN and META_APP_SECRET locally. Every function that calls Meta uses it.
func CredentialsFromEnv(ctx context.Context, getenv func(string) string, awsCfg aws.Config) (MetaCredentials, error) {
	creds := MetaCredentials{AccessToken: getenv(EnvAccessToken), AppSecret: getenv(EnvAppSecret)}
	if id := getenv(EnvMetaSecret); id != "" {
		raw, err := secrets.NewSecretsManager(secretsmanager.NewFromConfig(awsCfg)).SecretValue(ctx, id)
		if err != nil {
			return creds, fmt.Errorf("meta credentials: %w", err)
		}
		if err := json.Unmarshal([]byte(raw), &creds); err != nil {
			return creds, fmt.Errorf("meta credentials: secret %s must be JSON {\"access_token\": ..., \"app_secret\": ...}", id)
		}
	}
	if creds.AccessToken == "" {
		return creds, fmt.Errorf("no Meta access token: set %s (AWS) or %s (local)", EnvMetaSecret, EnvAccessToken)
	}
	return creds, nil
}

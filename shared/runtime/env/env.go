// Package env is the functions' configuration contract: the name of every environment variable
// (each declared once, here), and one typed configuration per function read from them.
//
// The stack (infra/stack) sets these names on the deployed functions; the functions read them
// with the Read functions below; the dev stack, the CLI, the load test and the end-to-end suites
// build the same typed values directly instead of faking an environment. The package links no
// AWS SDK, so the CDK app may import it; it reads no environment itself (the Read functions
// take getenv) and no file but the app config (LoadApps).
package env

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// Names of the environment variables.
const (
	// ConfigFile is the app config's path; default $LAMBDA_TASK_ROOT/config.json (the file the
	// stack bundles next to each bootstrap).
	ConfigFile = "APP_CONFIG_FILE"
	// LambdaTaskRoot is set by the Lambda runtime: the folder of the function's code.
	LambdaTaskRoot = "LAMBDA_TASK_ROOT"
	// LogLevel is the level of the JSON log: debug | info | warn | error (default info).
	LogLevel = "LOG_LEVEL"
	// MetricsNamespace is the CloudWatch namespace of the EMF metric lines.
	MetricsNamespace = "METRICS_NAMESPACE"

	// StreamName is the Kinesis stream the ingest function writes to.
	StreamName = "EVENT_STREAM_NAME"
	// StreamFormat is the envelope version the ingest function writes: v2 (default: a user's
	// events of one request in one record) or v1 (one event per record), for a rollout that
	// upgrades the stream's consumers first.
	StreamFormat = "STREAM_FORMAT"
	// PepperSecretID is the Secrets Manager id of the pseudonym pepper (AWS).
	PepperSecretID = "PEPPER_SECRET_ID"
	// Pepper is the pepper itself (make dev and local invokes only).
	Pepper = "PSEUDONYM_PEPPER"
	// APIKeyAppIDs maps API Gateway key ids to app ids: JSON {"<key id>": "<app id>"}.
	APIKeyAppIDs = "API_KEY_APP_IDS"
	// DevAuth "true" accepts the config's api_key.dev_value keys (make dev only).
	DevAuth = "DEV_AUTH"
	// DevAPIKey replaces the first app's dev key when DevAuth is on.
	DevAPIKey = "DEV_API_KEY"
	// AppKeySecrets names each app's key secret on the HTTP API front door: JSON {"<app id>":
	// "<secret ARN>"}; each secret holds {"key": ..., "sha256": [...]} (appkey.Secret).
	AppKeySecrets = "APP_KEY_SECRETS"
	// RateTableName is the DynamoDB table of the ingest function's shared per-app request
	// counts (HTTP API front door); unset: no per-app limit in the function.
	RateTableName = "RATE_TABLE_NAME"

	// GraphURL is the Meta Graph API's base URL (default https://graph.facebook.com).
	GraphURL = "META_GRAPH_URL"
	// CAPIVersion is the Graph API version of the Conversions API calls (CAPI forwarder; default
	// metaversions.DefaultConversions). Graph API versions live at least two years.
	CAPIVersion = "META_CAPI_VERSION"
	// MarketingVersion is the Marketing API version of the Custom Audiences calls (audience sync,
	// retarget audiences create; default metaversions.DefaultMarketing). Marketing API versions
	// live about a year.
	MarketingVersion = "META_MARKETING_VERSION"
	// APIVersion is deprecated: the one version both APIs used before they were set apart. It
	// is still read as the fallback of CAPIVersion and MarketingVersion when they are unset.
	APIVersion = "META_API_VERSION"
	// MetaSecretID is the Secrets Manager id of {"access_token": ..., "app_secret": ...} (AWS).
	MetaSecretID = "META_SECRET_ID"
	// AccessToken is the Meta access token itself (make dev only).
	AccessToken = "META_ACCESS_TOKEN"
	// AppSecret is the Meta app secret itself (make dev only; enables appsecret_proof).
	AppSecret = "META_APP_SECRET"

	// DeadLetterQueueURL is the SQS queue of the forwarder's dead letters (AWS).
	DeadLetterQueueURL = "DEAD_LETTER_QUEUE_URL"
	// DeadLetterFile is a JSON-lines file of dead letters (make dev).
	DeadLetterFile = "DEAD_LETTER_FILE"
	// HoldPause is the forwarder's pause before answering on credential errors (Go duration).
	HoldPause = "HOLD_PAUSE"
	// DynamoEndpoint is the SDK's standard endpoint override of DynamoDB, honoured for the
	// state table when the AWS config names another service's endpoint (make dev).
	DynamoEndpoint = "AWS_ENDPOINT_URL_DYNAMODB"

	// StateTableName is the segment state table.
	StateTableName = "STATE_TABLE_NAME"
	// UserTTLDays expires inactive users' state after this many days (default 400).
	UserTTLDays = "USER_TTL_DAYS"
	// EventBusName is the event bus the sweeper publishes segment events on (name or ARN);
	// unset: no events are published.
	EventBusName = "EVENT_BUS_NAME"
	// SweepLookbackHours is how far back the sweeper looks for due users (default 48).
	SweepLookbackHours = "SWEEP_LOOKBACK_HOURS"
	// ErasureTombstoneDays keeps an erased user's hashed identifiers this many days for the
	// audience removals (default 30).
	ErasureTombstoneDays = "ERASURE_TOMBSTONE_DAYS"
	// ErasureAuditDays keeps erasure audit records this many days (default 1095).
	ErasureAuditDays = "ERASURE_AUDIT_DAYS"
)

// Common is what every function reads.
type Common struct {
	ConfigFile       string // app config path
	MetricsNamespace string
}

// Keys maps requests to apps: API Gateway key ids, and in make dev the config's dev keys.
type Keys struct {
	KeyIDs map[string]string // API Gateway key id -> app id
	// KeySecrets: app id -> its key secret (front door "http": the keys are not API Gateway's).
	KeySecrets map[string]string
	DevAuth    bool   // accept the config's api_key.dev_value keys
	DevAPIKey  string // replaces the first app's dev key when DevAuth is on
}

// PepperSource says where the pseudonym pepper comes from: Secrets Manager or the value itself.
type PepperSource struct {
	SecretID string
	Value    string
}

// Meta is how a function reaches the Graph API. The credentials come from the secret when
// SecretID is set, else from AccessToken and AppSecret.
type Meta struct {
	GraphURL string
	// CAPIVersion and MarketingVersion are the versions of the Conversions API and of the
	// Marketing API (Custom Audiences), "" for the defaults (metaversions).
	CAPIVersion, MarketingVersion string
	SecretID                      string
	AccessToken                   string
	AppSecret                     string
}

// State is the segment state table of the segment functions.
type State struct {
	Table   string
	UserTTL time.Duration // 0: the handlers' default
}

// Ingest configures the ingest function.
type Ingest struct {
	Common
	StreamName string
	// StreamFormat is "v1" or "v2" (StreamFormatV1, StreamFormatV2); "" is v2.
	StreamFormat string
	Pepper       PepperSource
	Keys         Keys
	// RateTable holds the per-app request counts (front door "http"); empty: no limit here.
	RateTable string
}

// KeyAuthorizer configures the key authorizer (front door "http").
type KeyAuthorizer struct {
	Common
	Keys Keys
}

// Forwarder configures the CAPI forwarder.
type Forwarder struct {
	Common
	Meta               Meta
	DeadLetterQueueURL string
	DeadLetterFile     string
	HoldPause          time.Duration // 0: the handler's default
	// StateTable holds explicit consent decisions; empty (a stack without the segment state),
	// only the events' consent applies.
	StateTable     string
	DynamoEndpoint string
}

// Updater configures the segment updater.
type Updater struct {
	Common
	State State
}

// Sweeper configures the segment sweeper.
type Sweeper struct {
	Common
	State    State
	Lookback time.Duration // 0: the handler's default
	// EventBus is the bus segment events go to; "": none are published.
	EventBus string
}

// UsersAPI configures the users routes (segments, consent, erasure).
type UsersAPI struct {
	Common
	State          State
	Pepper         PepperSource
	Keys           Keys
	TombstoneTTL   time.Duration // 0: the handler's default
	AuditRetention time.Duration // 0: the handler's default
	// DevEndUser is make dev's token issuer, trusted by the /v1/me routes in place of each
	// app's own (its JWKS on loopback, plain http). No environment variable sets it: only the
	// dev stack, in process, so a deployed function can never be made to trust it.
	DevEndUser *appconfig.EndUserAuth
}

// AudienceSync configures the audience sync.
type AudienceSync struct {
	Common
	State State
	Meta  Meta
}

// Insights configures the insights run: the state table (spend rows, the audience sync's
// state, the cohort counters) and the Graph API as the audience sync reaches it (the Marketing
// API's version).
type Insights struct {
	Common
	State State
	Meta  Meta
}

// Values of StreamFormat.
const (
	StreamFormatV1 = "v1"
	StreamFormatV2 = "v2"
)

// Getenv reads one variable, normally os.Getenv.
type Getenv func(string) string

// ReadIngest reads the ingest function's configuration.
func ReadIngest(getenv Getenv) (Ingest, error) {
	keys, err := readKeys(getenv)
	if err != nil {
		return Ingest{}, err
	}
	c := Ingest{Common: readCommon(getenv), StreamName: getenv(StreamName), StreamFormat: getenv(StreamFormat),
		Pepper: readPepper(getenv), Keys: keys, RateTable: getenv(RateTableName)}
	if c.StreamName == "" {
		return c, fmt.Errorf("%s is not set", StreamName)
	}
	switch c.StreamFormat {
	case "", StreamFormatV1, StreamFormatV2:
	default:
		return c, fmt.Errorf("%s=%q: want %s or %s", StreamFormat, c.StreamFormat, StreamFormatV1, StreamFormatV2)
	}
	return c, nil
}

// ReadForwarder reads the forwarder's configuration.
func ReadForwarder(getenv Getenv) (Forwarder, error) {
	c := Forwarder{Common: readCommon(getenv), Meta: readMeta(getenv),
		DeadLetterQueueURL: getenv(DeadLetterQueueURL), DeadLetterFile: getenv(DeadLetterFile),
		StateTable: getenv(StateTableName), DynamoEndpoint: getenv(DynamoEndpoint)}
	if v := getenv(HoldPause); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("%s=%q: want a positive Go duration such as 10s", HoldPause, v)
		}
		c.HoldPause = d
	}
	return c, nil
}

// ReadUpdater reads the segment updater's configuration.
func ReadUpdater(getenv Getenv) (Updater, error) {
	st, err := readState(getenv)
	return Updater{Common: readCommon(getenv), State: st}, err
}

// ReadSweeper reads the segment sweeper's configuration.
func ReadSweeper(getenv Getenv) (Sweeper, error) {
	st, err := readState(getenv)
	if err != nil {
		return Sweeper{}, err
	}
	lookback, err := positive(getenv, SweepLookbackHours, time.Hour, "hours")
	return Sweeper{Common: readCommon(getenv), State: st, Lookback: lookback, EventBus: getenv(EventBusName)}, err
}

// ReadUsersAPI reads the users routes' configuration.
func ReadUsersAPI(getenv Getenv) (UsersAPI, error) {
	st, err := readState(getenv)
	if err != nil {
		return UsersAPI{}, err
	}
	keys, err := readKeys(getenv)
	if err != nil {
		return UsersAPI{}, err
	}
	tombstone, err := positive(getenv, ErasureTombstoneDays, 24*time.Hour, "days")
	if err != nil {
		return UsersAPI{}, err
	}
	audit, err := positive(getenv, ErasureAuditDays, 24*time.Hour, "days")
	if err != nil {
		return UsersAPI{}, err
	}
	return UsersAPI{Common: readCommon(getenv), State: st, Pepper: readPepper(getenv), Keys: keys,
		TombstoneTTL: tombstone, AuditRetention: audit}, nil
}

// ReadAudienceSync reads the audience sync's configuration.
func ReadAudienceSync(getenv Getenv) (AudienceSync, error) {
	st, err := readState(getenv)
	return AudienceSync{Common: readCommon(getenv), State: st, Meta: readMeta(getenv)}, err
}

// ReadInsights reads the insights run's configuration (the audience sync's variables).
func ReadInsights(getenv Getenv) (Insights, error) {
	st, err := readState(getenv)
	return Insights{Common: readCommon(getenv), State: st, Meta: readMeta(getenv)}, err
}

// ParseKeyIDs reads an APIKeyAppIDs value: a JSON object mapping API Gateway key ids to app
// ids. An empty string yields an empty map.
func ParseKeyIDs(s string) (map[string]string, error) {
	m := map[string]string{}
	if s == "" {
		return m, nil
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object {\"<api key id>\": \"<app id>\"}: %w", APIKeyAppIDs, err)
	}
	return m, nil
}

func readCommon(getenv Getenv) Common {
	path := getenv(ConfigFile)
	if path == "" {
		path = filepath.Join(getenv(LambdaTaskRoot), "config.json")
	}
	return Common{ConfigFile: path, MetricsNamespace: getenv(MetricsNamespace)}
}

func readKeys(getenv Getenv) (Keys, error) {
	ids, err := ParseKeyIDs(getenv(APIKeyAppIDs))
	if err != nil {
		return Keys{}, err
	}
	secrets := map[string]string{}
	if s := getenv(AppKeySecrets); s != "" {
		if err := json.Unmarshal([]byte(s), &secrets); err != nil {
			return Keys{}, fmt.Errorf("%s: want a JSON object {\"<app id>\": \"<secret arn>\"}: %w", AppKeySecrets, err)
		}
	}
	return Keys{KeyIDs: ids, KeySecrets: secrets, DevAuth: getenv(DevAuth) == "true", DevAPIKey: getenv(DevAPIKey)}, nil
}

// ReadKeyAuthorizer reads the key authorizer's configuration.
func ReadKeyAuthorizer(getenv Getenv) (KeyAuthorizer, error) {
	keys, err := readKeys(getenv)
	return KeyAuthorizer{Common: readCommon(getenv), Keys: keys}, err
}

func readPepper(getenv Getenv) PepperSource {
	return PepperSource{SecretID: getenv(PepperSecretID), Value: getenv(Pepper)}
}

func readMeta(getenv Getenv) Meta {
	return Meta{GraphURL: getenv(GraphURL), CAPIVersion: MetaVersion(getenv, CAPIVersion),
		MarketingVersion: MetaVersion(getenv, MarketingVersion), SecretID: getenv(MetaSecretID),
		AccessToken: getenv(AccessToken), AppSecret: getenv(AppSecret)}
}

// MetaVersion reads the version variable name (CAPIVersion or MarketingVersion), falling back
// on the deprecated APIVersion; "" when neither is set.
func MetaVersion(getenv Getenv, name string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return getenv(APIVersion)
}

func readState(getenv Getenv) (State, error) {
	st := State{Table: getenv(StateTableName)}
	if st.Table == "" {
		return st, fmt.Errorf("%s is not set", StateTableName)
	}
	ttl, err := positive(getenv, UserTTLDays, 24*time.Hour, "days")
	st.UserTTL = ttl
	return st, err
}

// positive reads a positive whole number of units (0 when unset: the default).
func positive(getenv Getenv, name string, unit time.Duration, units string) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive number of %s", name, v, units)
	}
	return time.Duration(n) * unit, nil
}

// LoadApps reads and validates the app config file at path (Common.ConfigFile): the one place
// the file is read, so that the domain's appconfig package stays free of I/O.
func LoadApps(path string) (*appconfig.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("app config: %w", err)
	}
	cfg, err := appconfig.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("app config %s: %w", path, err)
	}
	return cfg, nil
}

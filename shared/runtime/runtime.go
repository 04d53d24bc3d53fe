// Package runtime is the composition layer: from a function's typed configuration (package env)
// and an AWS config it builds the clients, the adapters and the handler, the same way for the
// Lambda functions, the dev stack, the CLI, the load test and the end-to-end suites.
//
// functions/<fn>/main.go is one call to Start; everything that reads the environment or builds
// a client lives here.
package runtime

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/eventbus"
	"github.com/retarget-dev/retarget/shared/adapters/jwtverify"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/adapters/secrets"
	"github.com/retarget-dev/retarget/shared/app/forward"
	"github.com/retarget-dev/retarget/shared/app/publish"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/audiencesync"
	"github.com/retarget-dev/retarget/shared/handlers/capiforwarder"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/handlers/segmentsweeper"
	"github.com/retarget-dev/retarget/shared/handlers/segmentupdater"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Deps is what every builder takes besides its configuration: the AWS config its clients are
// made from, the logger, and where EMF metric lines go (os.Stdout in Lambda, where CloudWatch
// picks them up).
type Deps struct {
	AWS     aws.Config
	Log     *slog.Logger
	Metrics io.Writer
}

// Start is a Lambda function's main: it builds the handler with build (from os.Getenv and the
// default AWS config) and hands it to the Lambda runtime. A wiring error is logged and exits 1.
func Start(name string, build func(ctx context.Context, getenv env.Getenv, d Deps) (handler any, err error)) {
	ctx := context.Background()
	log := observability.NewLogger(os.Stdout, os.Getenv(env.LogLevel))
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error(name+": aws config", "error", err.Error())
		os.Exit(1)
	}
	h, err := build(ctx, os.Getenv, Deps{AWS: awsCfg, Log: log, Metrics: os.Stdout})
	if err != nil {
		log.Error(name+": cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}

// NewIngest builds the ingest handler.
func NewIngest(ctx context.Context, c env.Ingest, d Deps) (*ingestapi.Handler, error) {
	if c.StreamName == "" {
		return nil, fmt.Errorf("%s is not set", env.StreamName)
	}
	apps, err := env.LoadApps(c.ConfigFile)
	if err != nil {
		return nil, err
	}
	pseudo, err := NewPseudonymizer(ctx, c.Pepper, d.AWS)
	if err != nil {
		return nil, err
	}
	format, err := appevent.ParseFormat(c.StreamFormat)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env.StreamFormat, err)
	}
	// The Publisher owns retries (per record, within the request's deadline); SDK retries on top
	// would multiply them.
	client := kinesis.NewFromConfig(d.AWS, func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
	keys, err := frontDoorKeys(ctx, c.Keys, apps, d.AWS)
	if err != nil {
		return nil, err
	}
	return ingestapi.New(ingestapi.Config{
		Apps:      apps,
		Parser:    appevent.NewParserWith(pseudo, appevent.Options{Format: format}),
		Publisher: stream.NewPublisher(kinesisstream.NewWriter(client, c.StreamName, ""), stream.Options{}),
		KeyIDs:    c.Keys.KeyIDs,
		DevKeys:   devKeys(c.Keys, apps),
		Keys:      keys,
		Limiter:   rateLimiter(c.RateTable, apps, d.AWS, d.Log),
		Logger:    d.Log,
		Metrics:   observability.NewEmitter(d.Metrics, c.MetricsNamespace),
	})
}

// NewForwarder builds the CAPI forwarder.
func NewForwarder(ctx context.Context, c env.Forwarder, d Deps) (*capiforwarder.Handler, error) {
	apps, err := env.LoadApps(c.ConfigFile)
	if err != nil {
		return nil, err
	}
	creds, err := MetaCredentials(ctx, c.Meta, d.AWS)
	if err != nil {
		return nil, err
	}
	var dlq ports.DeadLetterQueue
	switch {
	case c.DeadLetterQueueURL != "":
		dlq = deadletters.NewSQS(sqs.NewFromConfig(d.AWS), c.DeadLetterQueueURL)
	case c.DeadLetterFile != "":
		dlq = deadletters.NewFile(c.DeadLetterFile)
	default:
		return nil, errors.New("no dead-letter queue: set " + env.DeadLetterQueueURL + " (AWS) or " + env.DeadLetterFile + " (local)")
	}
	var consents ports.ConsentStore
	if c.StateTable != "" {
		client := dynamodb.NewFromConfig(d.AWS, func(o *dynamodb.Options) {
			if c.DynamoEndpoint != "" {
				o.BaseEndpoint = aws.String(c.DynamoEndpoint)
			}
		})
		consents = dynamostate.New(client, c.StateTable, dynamostate.Options{})
	}
	metrics := observability.NewEmitter(d.Metrics, c.MetricsNamespace)
	graph := newGraph(c.Meta, creds, metaversions.Conversions, capiforwarder.Consumer, d.Log, metrics)
	return capiforwarder.New(capiforwarder.Config{
		Apps:      apps,
		Forwarder: forward.New(graph, dlq, forward.Options{Consumer: capiforwarder.Consumer}),
		DLQ:       dlq,
		Logger:    d.Log,
		Metrics:   metrics,
		HoldPause: c.HoldPause,
		Consents:  consents,
	})
}

// NewUpdater builds the segment updater.
func NewUpdater(c env.Updater, d Deps) (*segmentupdater.Handler, error) {
	s, err := NewSegments(c.Common, c.State, d.AWS)
	if err != nil {
		return nil, err
	}
	return segmentupdater.New(segmentupdater.Config{Rules: s.Rules, Store: s.Store, Reader: s.Store, UserTTL: c.State.UserTTL,
		Logger: d.Log, Consents: s.Store, Metrics: observability.NewEmitter(d.Metrics, c.MetricsNamespace),
		Outcomes: s.Store, Plans: outcomes.ForConfig(s.Apps)})
}

// NewSweeper builds the segment sweeper.
func NewSweeper(c env.Sweeper, d Deps) (*segmentsweeper.Sweeper, error) {
	s, err := NewSegments(c.Common, c.State, d.AWS)
	if err != nil {
		return nil, err
	}
	var pub segmentsweeper.Publisher
	if c.EventBus != "" {
		if pub, err = NewSegmentPublisher(s, eventbridge.NewFromConfig(d.AWS), c.EventBus, d.Log); err != nil {
			return nil, err
		}
	}
	return segmentsweeper.New(segmentsweeper.Config{Rules: s.Rules, Store: s.Store, Lookback: c.Lookback,
		Logger: d.Log, Metrics: observability.NewEmitter(d.Metrics, c.MetricsNamespace),
		Outcomes: s.Store, Plans: outcomes.ForConfig(s.Apps), Publisher: pub})
}

// NewSegmentPublisher builds the publisher of segment events: every app's recorded membership
// changes from the state table onto the bus named bus, through client (make dev passes its
// own bus's client).
func NewSegmentPublisher(s *Segments, client eventbus.API, bus string, log *slog.Logger) (*publish.Publisher, error) {
	b, err := eventbus.New(client, bus)
	if err != nil {
		return nil, err
	}
	apps := make([]*appconfig.App, len(s.Apps.Apps))
	for i := range s.Apps.Apps {
		apps[i] = &s.Apps.Apps[i]
	}
	return publish.New(publish.Config{Apps: apps, Feed: s.Store, Cooldowns: s.Store, Bus: b, Logger: log})
}

// NewUsersAPI builds the users routes (segments, consent, erasure).
func NewUsersAPI(ctx context.Context, c env.UsersAPI, d Deps) (*usersapi.Handler, error) {
	s, err := NewSegments(c.Common, c.State, d.AWS)
	if err != nil {
		return nil, err
	}
	pseudo, err := NewPseudonymizer(ctx, c.Pepper, d.AWS)
	if err != nil {
		return nil, err
	}
	aa, err := audiences.ForConfig(s.Apps)
	if err != nil {
		return nil, err
	}
	// One verifier for the container's life: it caches each issuer's keys across invocations.
	verifier := jwtverify.New(jwtverify.Options{AllowLoopbackHTTP: c.DevEndUser != nil, Logger: d.Log})
	keys, err := frontDoorKeys(ctx, c.Keys, s.Apps, d.AWS)
	if err != nil {
		return nil, err
	}
	return usersapi.New(usersapi.Config{Apps: s.Apps, Rules: s.Rules, Store: s.Store, Pseudo: pseudo,
		KeyIDs: c.Keys.KeyIDs, DevKeys: devKeys(c.Keys, s.Apps), Keys: keys, Logger: d.Log, Consents: s.Store, Audiences: aa,
		Verifier: verifier, DevEndUser: c.DevEndUser,
		UserTTL: c.State.UserTTL, TombstoneTTL: c.TombstoneTTL, AuditRetention: c.AuditRetention,
		Reports: Reports(s.Apps, s.Store)})
}

// NewAudienceSync builds the audience sync.
func NewAudienceSync(ctx context.Context, c env.AudienceSync, d Deps) (*audiencesync.Syncer, error) {
	s, err := NewSegments(c.Common, c.State, d.AWS)
	if err != nil {
		return nil, err
	}
	aa, err := audiences.ForConfig(s.Apps)
	if err != nil {
		return nil, err
	}
	creds, err := MetaCredentials(ctx, c.Meta, d.AWS)
	if err != nil {
		return nil, err
	}
	metrics := observability.NewEmitter(d.Metrics, c.MetricsNamespace)
	tiers := map[string]string{}
	for _, a := range s.Apps.Apps {
		tiers[a.ID] = a.Meta.Tier()
	}
	return audiencesync.New(audiencesync.Config{Audiences: aa, Users: s.Store, State: s.Store,
		Meta:        newGraph(c.Meta, creds, metaversions.Marketing, audiencesync.Consumer, d.Log, metrics),
		AccessTiers: tiers, Logger: d.Log, Metrics: metrics})
}

// Segments is what every segment function builds first: the config, its compiled rules and the
// state table's store.
type Segments struct {
	Apps  *appconfig.Config
	Rules map[string]*segments.AppRules
	Store *dynamostate.Store
}

// NewSegments loads the config, compiles the rules and builds the DynamoDB store.
func NewSegments(c env.Common, st env.State, awsCfg aws.Config) (*Segments, error) {
	if st.Table == "" {
		return nil, fmt.Errorf("%s is not set", env.StateTableName)
	}
	apps, err := env.LoadApps(c.ConfigFile)
	if err != nil {
		return nil, err
	}
	rules, err := segments.ForConfig(apps)
	if err != nil {
		return nil, err
	}
	store := dynamostate.New(dynamodb.NewFromConfig(awsCfg), st.Table, dynamostate.Options{})
	return &Segments{Apps: apps, Rules: rules, Store: store}, nil
}

// NewPseudonymizer keys users with the pepper from Secrets Manager or, locally, the value.
func NewPseudonymizer(ctx context.Context, p env.PepperSource, awsCfg aws.Config) (*identity.Pseudonymizer, error) {
	pepper := p.Value
	if p.SecretID != "" {
		var err error
		pepper, err = secrets.NewSecretsManager(secretsmanager.NewFromConfig(awsCfg)).SecretValue(ctx, p.SecretID)
		if err != nil {
			return nil, fmt.Errorf("pseudonym pepper: %w", err)
		}
	}
	if pepper == "" {
		return nil, fmt.Errorf("no pseudonym pepper: set %s (AWS) or %s (local)", env.PepperSecretID, env.Pepper)
	}
	return identity.NewPseudonymizer([]byte(pepper))
}

// Credentials is the JSON document of the Meta secret.
type Credentials struct {
	AccessToken string `json:"access_token"`
	AppSecret   string `json:"app_secret"`
}

// MetaCredentials reads the Meta credentials: the Secrets Manager secret in AWS, the values
// themselves locally.
func MetaCredentials(ctx context.Context, m env.Meta, awsCfg aws.Config) (Credentials, error) {
	creds := Credentials{AccessToken: m.AccessToken, AppSecret: m.AppSecret}
	if m.SecretID != "" {
		raw, err := secrets.NewSecretsManager(secretsmanager.NewFromConfig(awsCfg)).SecretValue(ctx, m.SecretID)
		if err != nil {
			return creds, fmt.Errorf("meta credentials: %w", err)
		}
		if err := json.Unmarshal([]byte(raw), &creds); err != nil {
			return creds, fmt.Errorf("meta credentials: secret %s must be JSON {\"access_token\": ..., \"app_secret\": ...}", m.SecretID)
		}
	}
	if creds.AccessToken == "" {
		return creds, fmt.Errorf("no Meta access token: set %s (AWS) or %s (local)", env.MetaSecretID, env.AccessToken)
	}
	return creds, nil
}

// newGraph builds the Graph API client of function, on the version of api the config gives. The
// version is checked against the expiry table once here, at cold start (a log line and the
// days-left metric the stack alarms on), and Meta's version warnings are logged and counted.
func newGraph(m env.Meta, creds Credentials, api metaversions.API, function string, log *slog.Logger, metrics *observability.Emitter) *metagraph.Client {
	version := MetaVersion(m, api)
	watch := &metagraph.VersionWatch{Logger: log, Metrics: metrics, Function: function, API: api, Version: version}
	watch.Start()
	return metagraph.New(metagraph.Config{BaseURL: m.GraphURL, Version: version,
		AccessToken: creds.AccessToken, AppSecret: creds.AppSecret, OnVersionWarning: watch.Warned})
}

// MetaVersion is the version of api that m configures, or the default of that API.
func MetaVersion(m env.Meta, api metaversions.API) string {
	if api == metaversions.Marketing {
		return cmp.Or(m.MarketingVersion, metaversions.DefaultMarketing)
	}
	return cmp.Or(m.CAPIVersion, metaversions.DefaultConversions)
}

// devKeys is the dev key mapping when DevAuth is on, else nil.
func devKeys(k env.Keys, apps *appconfig.Config) map[string]string {
	if !k.DevAuth {
		return nil
	}
	return ingestapi.DevKeys(apps, k.DevAPIKey)
}

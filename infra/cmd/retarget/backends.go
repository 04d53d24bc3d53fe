package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// Service ids of the SDK's AWS_ENDPOINT_URL_<SERVICE> variables.
const (
	serviceDynamoDB = "DYNAMODB"
	serviceKinesis  = "KINESIS"
	serviceSQS      = "SQS"
	serviceSecrets  = "SECRETS_MANAGER"
	serviceS3       = "S3"
)

// Defaults of the dev stack (infra/cmd/devstack), used only when the service's endpoint is on
// loopback: against AWS every name must be given.
const (
	devStateTable  = devenv.StateTable
	devStream      = devenv.Stream
	devConfigFile  = "infra/config/apps.json"
	devDeadLetters = devenv.LogDir + "/" + devenv.DeadLettersFile
	devPepper      = devenv.Pepper
	devMetaToken   = devenv.MetaAccessToken
	devMetaSecret  = devenv.MetaAppSecret
)

// Environment variables the CLI reads besides the SDK's and the functions' own.
const (
	envAPIURL = "RETARGET_API_URL" // send: the ingest API's base URL
	envAPIKey = "RETARGET_API_KEY" // send: the API key
)

// endpoint is the endpoint override of an AWS service: AWS_ENDPOINT_URL_<SERVICE>, else
// AWS_ENDPOINT_URL; "" when none.
func (c *cli) endpoint(service string) string {
	if v := c.getenv("AWS_ENDPOINT_URL_" + service); v != "" {
		return v
	}
	return c.getenv("AWS_ENDPOINT_URL")
}

// local reports whether service is served on loopback (the dev stack's emulators).
func (c *cli) local(service string) bool { return isLoopbackURL(c.endpoint(service)) }

func isLoopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// awsConfig returns the SDK config for one service. A loopback endpoint gets the config the
// dev stack uses for its emulators (emulators.AWSConfig: fixed region, dummy credentials,
// nothing from the shell's profiles); anything else the SDK's default chain, which honours
// AWS_PROFILE, AWS_REGION, the credential sources and AWS_ENDPOINT_URL_<SERVICE>.
func (c *cli) awsConfig(ctx context.Context, service string) (aws.Config, error) {
	if ep := c.endpoint(service); isLoopbackURL(ep) {
		return emulators.AWSConfig(ctx, ep)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return cfg, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		return cfg, fmt.Errorf("no AWS region: set AWS_REGION, %s", c.targetHint())
	}
	return cfg, nil
}

// stateOptions are the flags of commands that read the state table.
type stateOptions struct {
	table string
}

func (o *stateOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.table, "table", "", "state `table` (default $STATE_TABLE_NAME, else the --stack output or the dev stack's)")
}

// stateStore opens the segment state table (user state, pending changes, audience sync state).
func (c *cli) stateStore(ctx context.Context, o stateOptions) (*dynamostate.Store, error) {
	table := o.table
	if table == "" {
		table = c.getenv(env.StateTableName)
	}
	if table == "" {
		if !c.local(serviceDynamoDB) {
			return nil, fmt.Errorf("no state table: pass --table or set %s (the stack output StateTableName), %s",
				env.StateTableName, c.targetHint())
		}
		table = devStateTable
	}
	cfg, err := c.awsConfig(ctx, serviceDynamoDB)
	if err != nil {
		return nil, err
	}
	return dynamostate.New(dynamodb.NewFromConfig(cfg), table, dynamostate.Options{}), nil
}

// configFlag registers --config.
func configFlag(fs *flag.FlagSet, dst *string) {
	fs.StringVar(dst, "config", "", "app config `file` (default $APP_CONFIG_FILE, else "+devConfigFile+")")
}

// loadConfig loads and validates the app config: the flag, APP_CONFIG_FILE, or the sample.
func (c *cli) loadConfig(path string) (*appconfig.Config, string, error) {
	if path == "" {
		path = c.getenv(env.ConfigFile)
	}
	if path == "" {
		path = devConfigFile
	}
	cfg, err := env.LoadApps(path)
	if err != nil {
		return nil, path, err
	}
	return cfg, path, nil
}

// findApp returns the app with the given id, or an error that lists the configured ones.
func findApp(cfg *appconfig.Config, id string) (*appconfig.App, error) {
	if app, ok := cfg.App(id); ok {
		return app, nil
	}
	return nil, fmt.Errorf("unknown app %q (the config has: %s)", id, strings.Join(appIDs(cfg), ", "))
}

func appIDs(cfg *appconfig.Config) []string {
	ids := make([]string, len(cfg.Apps))
	for i, a := range cfg.Apps {
		ids[i] = a.ID
	}
	return ids
}

// selectApps returns the apps a command covers: the one named by --app, or all of them.
func selectApps(cfg *appconfig.Config, id string) ([]*appconfig.App, error) {
	if id != "" {
		app, err := findApp(cfg, id)
		if err != nil {
			return nil, err
		}
		return []*appconfig.App{app}, nil
	}
	apps := make([]*appconfig.App, len(cfg.Apps))
	for i := range cfg.Apps {
		apps[i] = &cfg.Apps[i]
	}
	return apps, nil
}

// pseudonymizer builds the user-key function with the pepper the functions use: the Secrets
// Manager secret (--pepper-secret-id, PEPPER_SECRET_ID), else PSEUDONYM_PEPPER, else, when
// DynamoDB is the dev stack's emulator, the dev stack's built-in pepper. source says which, for
// messages.
func (c *cli) pseudonymizer(ctx context.Context, secretID string) (p *identity.Pseudonymizer, source string, err error) {
	if secretID == "" {
		secretID = c.getenv(env.PepperSecretID)
	}
	pepper := c.getenv(env.Pepper)
	switch {
	case secretID != "":
		source = "secret " + secretID
	case pepper != "":
		source = env.Pepper
	case c.local(serviceDynamoDB):
		pepper, source = devPepper, "the dev stack's built-in pepper"
	default:
		return nil, "", fmt.Errorf("no pseudonym pepper: pass --pepper-secret-id or set %s (the stack output PepperSecretArn), or set %s (local), %s",
			env.PepperSecretID, env.Pepper, c.targetHint())
	}
	var awsCfg aws.Config
	if secretID != "" {
		if awsCfg, err = c.awsConfig(ctx, serviceSecrets); err != nil {
			return nil, "", err
		}
	}
	p, err = runtime.NewPseudonymizer(ctx, env.PepperSource{SecretID: secretID, Value: pepper}, awsCfg)
	return p, source, err
}

// metaCredentials reads the Meta credentials as the functions do (runtime.MetaCredentials): the secret
// (--meta-secret-id, META_SECRET_ID), else META_ACCESS_TOKEN / META_APP_SECRET, else, when
// META_GRAPH_URL is on loopback (the dev stack's sandbox), the sandbox's dev credentials.
func (c *cli) metaCredentials(ctx context.Context, secretID string) (runtime.Credentials, error) {
	if secretID == "" {
		secretID = c.getenv(env.MetaSecretID)
	}
	m := env.Meta{SecretID: secretID, AccessToken: c.getenv(env.AccessToken), AppSecret: c.getenv(env.AppSecret)}
	if secretID == "" && m.AccessToken == "" && isLoopbackURL(c.getenv(env.GraphURL)) {
		m.AccessToken, m.AppSecret = devMetaToken, devMetaSecret
	}
	var awsCfg aws.Config
	if secretID != "" {
		var err error
		if awsCfg, err = c.awsConfig(ctx, serviceSecrets); err != nil {
			return runtime.Credentials{}, err
		}
	}
	return runtime.MetaCredentials(ctx, m, awsCfg)
}

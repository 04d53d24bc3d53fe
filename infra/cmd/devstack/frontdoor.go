package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/jwtverify"
	"github.com/retarget-dev/retarget/shared/adapters/ratecounter"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/handlers/keyauthorizer"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/devissuer"
)

// The HTTP API front door in the dev stack (API=http; infra/docs/front-door.md): the gateway
// runs the real key authorizer (keyauthorizer.Handler, with a key ring of the apps' dev keys
// built as runtime builds the function's) in front of the keyed routes, API Gateway's JWT
// authorizer on /v1/me, and the ingest function limits each app (ratelimit, its shared count
// in the rate table in dynalite).

// rateTable is the rate count table in dynalite.
const rateTable = devenv.RateTable

// newHTTPDoor builds the gateway's HTTP door for apps: the key authorizer of their dev keys
// (DEV_API_KEY replacing the first app's), cached keyauthorizer.CacheTTLSeconds, and the JWT
// authorizer the stack would declare for the dev issuer (jwksURL). log receives the
// authorizer's decisions. The returned stop releases the JWT verifier.
func newHTTPDoor(ctx context.Context, s settings, apps *appconfig.Config, jwksURL string, log *slog.Logger) (*HTTPDoor, func(), error) {
	auth, err := runtime.NewKeyAuthorizer(ctx, env.KeyAuthorizer{
		Common: env.Common{ConfigFile: s.ConfigFile},
		Keys:   env.Keys{DevAuth: true, DevAPIKey: s.APIKey},
	}, runtime.Deps{Log: log.With("function", "key-authorizer")})
	if err != nil {
		return nil, nil, fmt.Errorf("key authorizer: %w", err)
	}
	door := &HTTPDoor{
		KeyAuthorizer: auth.Handle,
		CacheTTL:      keyauthorizer.CacheTTLSeconds * time.Second,
		EndUserJWT:    devEndUserJWT(apps, jwksURL),
	}
	stop := func() {}
	if door.EndUserJWT != nil {
		v := jwtverify.New(jwtverify.Options{AllowLoopbackHTTP: true, Logger: log})
		door.JWT, stop = v, v.Close
	}
	return door, stop, nil
}

// devEndUserJWT is the JWT authorizer of the /v1/me routes as stack.EndUserJWTFor would
// declare it in dev: the users function trusts the dev issuer for every app with
// auth.end_user (with the app's id as audience), so the apps share one issuer signing RS256
// and the native authorizer fits, with their ids as audiences. nil when no app has end-user
// tokens (the routes then take the key authorizer, and the function answers 404).
func devEndUserJWT(apps *appconfig.Config, jwksURL string) *appconfig.EndUserAuth {
	var audiences []string
	for _, a := range apps.Apps {
		if a.Auth.EndUser != nil {
			audiences = append(audiences, a.ID)
		}
	}
	if len(audiences) == 0 {
		return nil
	}
	slices.Sort(audiences)
	auth := devissuer.EndUserAuth(jwksURL, "")
	auth.Audiences = audiences
	return auth
}

// ingestAWS is the ingest function's AWS config: Kinesis at kinesisCfg's endpoint and, with a
// rate table, DynamoDB (its rate counter) at dynamoEndpoint. One config serves both, as in
// Lambda, through the SDK's per-service endpoint source (what AWS_ENDPOINT_URL_DYNAMODB and
// the shared config's services section feed).
func ingestAWS(kinesisCfg aws.Config, dynamoEndpoint string) (aws.Config, error) {
	// The SDK skips the per-service sources when AWS_ENDPOINT_URL is set without
	// AWS_ENDPOINT_URL_DYNAMODB: the counter would then call Kinesis's emulator.
	if _, global := os.LookupEnv("AWS_ENDPOINT_URL"); global {
		if _, dynamo := os.LookupEnv("AWS_ENDPOINT_URL_DYNAMODB"); !dynamo {
			return aws.Config{}, errors.New(devenv.EnvFrontDoor + "=" + devenv.FrontDoorHTTP +
				": unset AWS_ENDPOINT_URL (the dev stack sets its emulators' endpoints itself)")
		}
	}
	cfg := kinesisCfg.Copy()
	cfg.ConfigSources = append(slices.Clone(cfg.ConfigSources), serviceEndpoint{sdkID: "DynamoDB", url: dynamoEndpoint})
	return cfg, nil
}

// serviceEndpoint is a per-service endpoint source of an aws.Config (the SDK's
// ServiceBaseEndpointProvider).
type serviceEndpoint struct{ sdkID, url string }

// GetServiceBaseEndpoint returns the endpoint of the service named sdkID, if it is this one.
func (e serviceEndpoint) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	if sdkID != e.sdkID {
		return "", false, nil
	}
	return e.url, true, nil
}

// createRateTable creates the rate count table as the stack declares it (partition key
// ratecounter.KeyAttribute, on demand; dynalite has no TTL) and waits until it is active.
func createRateTable(ctx context.Context, client *dynamodb.Client, name string) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(ratecounter.KeyAttribute), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(ratecounter.KeyAttribute), KeyType: types.KeyTypeHash}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("create table %s: %w", name, err)
		}
		if out.Table != nil && out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create table %s: waiting for ACTIVE: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/retarget-dev/retarget/shared/adapters/ratecounter"
	"github.com/retarget-dev/retarget/shared/adapters/secrets"
	"github.com/retarget-dev/retarget/shared/app/ratelimit"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appkey"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/handlers/keyauthorizer"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// AppKeys builds the apps' accepted keys of the HTTP API front door: each app's key secret
// (k.KeySecrets, read once per container: a key taken out of a secret stops opening the API
// when the containers are recycled, or at the next deploy), and with DevAuth the config's dev
// keys. nil when neither is configured (the REST door). Errors name the app and the secret,
// never a value.
func AppKeys(ctx context.Context, k env.Keys, apps *appconfig.Config, reader ports.SecretReader) (*appkey.Ring, error) {
	if len(k.KeySecrets) == 0 && !k.DevAuth {
		return nil, nil
	}
	ring := &appkey.Ring{}
	ids := make([]string, 0, len(k.KeySecrets))
	for id := range k.KeySecrets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, ok := apps.App(id); !ok {
			return nil, fmt.Errorf("%s: app %s is not in the app config", env.AppKeySecrets, id)
		}
		value, err := reader.SecretValue(ctx, k.KeySecrets[id])
		if err != nil {
			return nil, fmt.Errorf("key secret of app %s: %w", id, err)
		}
		digests, err := appkey.ParseSecret(value)
		if err != nil {
			return nil, fmt.Errorf("key secret of app %s (%s): %w", id, k.KeySecrets[id], err)
		}
		for _, d := range digests {
			if err := ring.Add(id, d); err != nil {
				return nil, err
			}
		}
	}
	if k.DevAuth {
		for key, id := range ingestapi.DevKeys(apps, k.DevAPIKey) {
			if err := ring.AddKey(id, key); err != nil {
				return nil, err
			}
		}
	}
	return ring, nil
}

// secretReader reads Secrets Manager when any key secret is configured.
func secretReader(k env.Keys, cfg aws.Config) ports.SecretReader {
	if len(k.KeySecrets) == 0 {
		return nil
	}
	return secrets.NewSecretsManager(secretsmanager.NewFromConfig(cfg))
}

// NewKeyAuthorizer builds the HTTP API's key authorizer.
func NewKeyAuthorizer(ctx context.Context, c env.KeyAuthorizer, d Deps) (*keyauthorizer.Handler, error) {
	apps, err := env.LoadApps(c.ConfigFile)
	if err != nil {
		return nil, err
	}
	ring, err := AppKeys(ctx, c.Keys, apps, secretReader(c.Keys, d.AWS))
	if err != nil {
		return nil, err
	}
	return keyauthorizer.New(ring, d.Log)
}

// frontDoorKeys is the accepted keys of the functions behind the HTTP door (nil on the REST
// door: there API Gateway checks the keys and the dev keys are mapped as before).
func frontDoorKeys(ctx context.Context, k env.Keys, apps *appconfig.Config, cfg aws.Config) (*appkey.Ring, error) {
	if len(k.KeySecrets) == 0 {
		return nil, nil
	}
	return AppKeys(ctx, env.Keys{KeySecrets: k.KeySecrets}, apps, secretReader(k, cfg))
}

// rateLimiter is the ingest function's per-app limit when a rate table is configured.
func rateLimiter(table string, apps *appconfig.Config, cfg aws.Config, log *slog.Logger) *ratelimit.Limiter {
	if table == "" {
		return nil
	}
	counter := ratecounter.New(dynamodb.NewFromConfig(cfg), table)
	return ratelimit.New(ratelimit.Options{
		Limits:  ratelimit.ConfigLimits(apps),
		Counter: counter,
		// Fail open (package ratelimit): the request passes, the failure is logged.
		OnSyncError: func(app string, err error) { log.Warn("rate counter unavailable", "app", app, "error", err.Error()) },
	})
}

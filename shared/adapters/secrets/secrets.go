// Package secrets implements ports.SecretReader: SecretsManager reads AWS Secrets Manager, Env
// reads environment variables (make dev, tests).
package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Sentinel errors callers can branch on (wrapped with the secret id).
var (
	// ErrNotFound: no secret with that id (or no such environment variable).
	ErrNotFound = errors.New("secret not found")
	// ErrNoString: the secret exists but holds no text (binary or empty).
	ErrNoString = errors.New("secret has no string value")
)

// GetSecretValueAPI is the part of *secretsmanager.Client SecretsManager uses.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// SecretsManager reads the current (AWSCURRENT) version of secrets. It does not cache: wrap it
// if a hot path reads the same secret often.
type SecretsManager struct {
	client GetSecretValueAPI
}

var (
	_ ports.SecretReader = (*SecretsManager)(nil)
	_ ports.SecretReader = Env{}
)

// NewSecretsManager returns a SecretReader backed by client.
func NewSecretsManager(client GetSecretValueAPI) *SecretsManager {
	return &SecretsManager{client: client}
}

// SecretValue returns the SecretString of the secret with the given name or ARN.
func (s *SecretsManager) SecretValue(ctx context.Context, id string) (string, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		return "", fmt.Errorf("get secret %s: %w: %w", id, ErrNotFound, err)
	case err != nil:
		return "", fmt.Errorf("get secret %s: %w", id, err)
	case aws.ToString(out.SecretString) == "":
		return "", fmt.Errorf("get secret %s: %w", id, ErrNoString)
	}
	return *out.SecretString, nil
}

// Env reads secrets from environment variables: the id is upper-cased, every character other
// than A-Z and 0-9 becomes '_', and Prefix is put in front. With Prefix "SECRET_", the id
// "retarget/meta-capi-token" is read from SECRET_RETARGET_META_CAPI_TOKEN. The zero value uses
// no prefix and os.LookupEnv.
type Env struct {
	// Prefix is prepended to the variable name.
	Prefix string
	// Lookup replaces os.LookupEnv (tests).
	Lookup func(name string) (string, bool)
}

// VarName returns the environment variable Env reads for a secret id.
func (e Env) VarName(id string) string {
	var b strings.Builder
	b.WriteString(e.Prefix)
	for _, r := range strings.ToUpper(id) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// SecretValue returns the value of the secret's environment variable; an unset or empty
// variable is ErrNotFound.
func (e Env) SecretValue(_ context.Context, id string) (string, error) {
	lookup := e.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	name := e.VarName(id)
	v, ok := lookup(name)
	if !ok || v == "" {
		return "", fmt.Errorf("secret %s: environment variable %s: %w", id, name, ErrNotFound)
	}
	return v, nil
}

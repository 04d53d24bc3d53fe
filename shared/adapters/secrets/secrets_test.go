package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

func TestEnv(t *testing.T) {
	vars := map[string]string{
		"SECRET_RETARGET_META_CAPI_TOKEN": "tok",
		"SECRET_EMPTY":                    "",
		"PLAIN":                           "p",
	}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	tests := []struct {
		name    string
		env     Env
		id      string
		wantVar string
		want    string
		wantErr error
	}{
		{"prefix and mapping", Env{Prefix: "SECRET_", Lookup: lookup}, "retarget/meta-capi-token", "SECRET_RETARGET_META_CAPI_TOKEN", "tok", nil},
		{"no prefix", Env{Lookup: lookup}, "plain", "PLAIN", "p", nil},
		{"unset", Env{Prefix: "SECRET_", Lookup: lookup}, "missing", "SECRET_MISSING", "", ErrNotFound},
		{"empty counts as unset", Env{Prefix: "SECRET_", Lookup: lookup}, "empty", "SECRET_EMPTY", "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.env.VarName(tt.id); got != tt.wantVar {
				t.Errorf("VarName(%q) = %q, want %q", tt.id, got, tt.wantVar)
			}
			got, err := tt.env.SecretValue(context.Background(), tt.id)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("SecretValue(%q) = %q, %v; want %q, %v", tt.id, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestEnvDefaultsToProcessEnvironment(t *testing.T) {
	t.Setenv("RT_TEST_SECRET_DB", "s3cret")
	if got, err := (Env{Prefix: "RT_TEST_SECRET_"}).SecretValue(context.Background(), "db"); err != nil || got != "s3cret" {
		t.Errorf("SecretValue = %q, %v", got, err)
	}
}

// fakeSecretsManager speaks the Secrets Manager JSON protocol for GetSecretValue.
func fakeSecretsManager() *httptest.Server {
	secrets := map[string]map[string]any{
		"text":   {"Name": "text", "SecretString": "hunter2"},
		"binary": {"Name": "binary", "SecretBinary": "AAEC"},
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"__type": "UnknownOperationException"})
			return
		}
		var in struct{ SecretId string }
		json.NewDecoder(r.Body).Decode(&in)
		s, ok := secrets[in.SecretId]
		switch {
		case in.SecretId == "broken":
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"__type": "AccessDeniedException", "message": "no"})
		case !ok:
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."})
		default:
			json.NewEncoder(w).Encode(s)
		}
	}))
}

func TestSecretsManager(t *testing.T) {
	srv := fakeSecretsManager()
	defer srv.Close()
	cfg, err := emulators.AWSConfig(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	sm := NewSecretsManager(secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.Retryer = aws.NopRetryer{} }))
	tests := []struct {
		id      string
		want    string
		wantErr error
		anyErr  bool
	}{
		{id: "text", want: "hunter2"},
		{id: "binary", wantErr: ErrNoString},
		{id: "missing", wantErr: ErrNotFound},
		{id: "broken", anyErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := sm.SecretValue(context.Background(), tt.id)
			if tt.anyErr {
				if err == nil || errors.Is(err, ErrNotFound) {
					t.Errorf("SecretValue(%q) error = %v, want a plain API error", tt.id, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("SecretValue(%q) = %q, %v; want %q, %v", tt.id, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

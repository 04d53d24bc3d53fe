package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/jwtverify"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/devissuer"
)

// devJWKS serves the dev issuer's keys on loopback, as the dev stack does.
func devJWKS(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != devissuer.JWKSPath {
			http.NotFound(w, r)
			return
		}
		w.Write(devissuer.JWKS())
	}))
	t.Cleanup(srv.Close)
	return srv.URL + devissuer.JWKSPath
}

// verifyDevToken verifies token for app as the dev stack's users API would, at now.
func verifyDevToken(t *testing.T, jwksURL, app, token string, now time.Time) (string, error) {
	t.Helper()
	v := jwtverify.New(jwtverify.Options{AllowLoopbackHTTP: true, Now: func() time.Time { return now }})
	defer v.Close()
	return v.Verify(context.Background(), app, devissuer.EndUserAuth(jwksURL, app), token)
}

func TestDevTokenVerifiesForItsAppAndUser(t *testing.T) {
	jwks := devJWKS(t)
	h := newHarness(t)
	out := h.mustRun(exitOK, "dev", "token", "--user", "u-cli", "--config", sampleConfig)
	token := strings.TrimSuffix(out, "\n")
	if token == "" || strings.ContainsAny(token, " \n") {
		t.Fatalf("stdout %q: want the token alone on one line", out)
	}
	user, err := verifyDevToken(t, jwks, "sample-shop", token, testNow.Add(59*time.Minute))
	if err != nil || user != "u-cli" {
		t.Fatalf("the printed token: user %q, %v; want u-cli of sample-shop", user, err)
	}
	hint := h.stderr.String()
	if strings.Count(hint, "\n") != 1 {
		t.Errorf("stderr %q: want one line", hint)
	}
	wantContains(t, hint, "-H 'Authorization: Bearer "+token+"'")
	wantContains(t, hint, "-H 'x-api-key: dev-api-key'")
	wantContains(t, hint, "http://127.0.0.1:3000/v1/me/segments")

	// The default ttl is an hour: past it (and the leeway), the token is refused.
	if _, err := verifyDevToken(t, jwks, "sample-shop", token, testNow.Add(time.Hour+jwtverify.Leeway+time.Second)); !errors.Is(err, ports.ErrTokenInvalid) {
		t.Errorf("an hour and more later: %v, want invalid", err)
	}
}

func TestDevTokenAppAndTTL(t *testing.T) {
	jwks := devJWKS(t)
	data, err := os.ReadFile(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	two := strings.Replace(string(data), `"apps": [`, `"apps": [{"id": "other-app", "platforms": ["ios"], "api_key": {"name": "other", "dev_value": "other-dev-key"},
      "meta": {"dataset_id": "1", "ad_account_id": "act_2"}},`, 1)
	path := filepath.Join(t.TempDir(), "two.json")
	if err := os.WriteFile(path, []byte(two), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.env["RETARGET_API_URL"] = "http://127.0.0.1:3999/"

	// Default: the config's first app.
	token := strings.TrimSpace(h.mustRun(exitOK, "dev", "token", "--user", "u-1", "--config", path))
	if user, err := verifyDevToken(t, jwks, "other-app", token, testNow); err != nil || user != "u-1" {
		t.Fatalf("default app: %q, %v; want u-1 of other-app (the first app)", user, err)
	}
	wantContains(t, h.stderr.String(), "-H 'x-api-key: other-dev-key'")
	wantContains(t, h.stderr.String(), "http://127.0.0.1:3999/v1/me/segments")

	token = strings.TrimSpace(h.mustRun(exitOK, "dev", "token", "--user", "u-2", "--app", "sample-shop", "--ttl", "10m", "--config", path))
	if user, err := verifyDevToken(t, jwks, "sample-shop", token, testNow.Add(10*time.Minute)); err != nil || user != "u-2" {
		t.Fatalf("--app sample-shop: %q, %v", user, err)
	}
	if _, err := verifyDevToken(t, jwks, "other-app", token, testNow); !errors.Is(err, ports.ErrTokenInvalid) {
		t.Errorf("sample-shop's token taken by other-app: %v", err)
	}
	if _, err := verifyDevToken(t, jwks, "sample-shop", token, testNow.Add(10*time.Minute+jwtverify.Leeway+time.Second)); !errors.Is(err, ports.ErrTokenInvalid) {
		t.Errorf("past --ttl 10m: %v, want invalid", err)
	}

	h.mustRun(exitOK, "dev", "token", "--user", "u-3", "--ttl", "90s", "--config", path, "--json")
	var view devTokenView
	h.decodeJSON(&view)
	if view.App != "other-app" || view.User != "u-3" || view.ExpiresAt != testNow.Add(90*time.Second).Format(time.RFC3339) {
		t.Errorf("--json: %+v", view)
	}
	if user, err := verifyDevToken(t, jwks, "other-app", view.Token, testNow); err != nil || user != "u-3" {
		t.Errorf("--json token: %q, %v", user, err)
	}
}

func TestDevTokenCommandLine(t *testing.T) {
	h := newHarness(t)
	h.mustRun(exitUsage, "dev", "token", "--config", sampleConfig)
	wantContains(t, h.stderr.String(), "--user is required")
	h.mustRun(exitUsage, "dev", "token", "--user", "u-1", "--ttl", "-1h", "--config", sampleConfig)
	wantContains(t, h.stderr.String(), "--ttl must be positive")
	h.mustRun(exitUsage, "dev", "token", "u-1", "--config", sampleConfig)
	h.mustRun(exitFailure, "dev", "token", "--user", "u-1", "--app", "nope", "--config", sampleConfig)
	wantContains(t, h.stderr.String(), `unknown app "nope"`)
	if h.stdout.Len() != 0 {
		t.Errorf("a failed run printed %q on stdout", h.stdout.String())
	}
	out := h.mustRun(exitOK, "dev", "token", "--help")
	wantContains(t, out, "Authorization: Bearer")
	h.mustRun(exitOK, "--help")
	wantContains(t, h.stdout.String(), "dev token")
}

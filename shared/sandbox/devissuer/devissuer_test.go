package devissuer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/jwtverify"
	"github.com/retarget-dev/retarget/shared/ports"
)

var testNow = time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)

// serveJWKS serves JWKS() at JWKSPath on loopback, as the dev stack does, and returns the URL.
func serveJWKS(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(JWKS())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + JWKSPath
}

func verifier(t *testing.T, now time.Time) *jwtverify.Verifier {
	v := jwtverify.New(jwtverify.Options{AllowLoopbackHTTP: true, Now: func() time.Time { return now }})
	t.Cleanup(v.Close)
	return v
}

func TestMintedTokenVerifies(t *testing.T) {
	url := serveJWKS(t)
	token, err := Mint("sample-shop", "u-dev", time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v := verifier(t, testNow.Add(30*time.Minute))
	user, err := v.Verify(ctx, "sample-shop", EndUserAuth(url, "sample-shop"), token)
	if err != nil || user != "u-dev" {
		t.Fatalf("Verify = %q, %v; want u-dev", user, err)
	}

	// Another app's dev config does not take it (aud is the app).
	if _, err := v.Verify(ctx, "other-app", EndUserAuth(url, "other-app"), token); !errors.Is(err, ports.ErrTokenInvalid) {
		t.Errorf("another app accepted the token: %v", err)
	}
	// Nor does anything once the ttl (and the leeway) has passed.
	late := verifier(t, testNow.Add(time.Hour+jwtverify.Leeway+time.Second))
	if _, err := late.Verify(ctx, "sample-shop", EndUserAuth(url, "sample-shop"), token); !errors.Is(err, ports.ErrTokenInvalid) {
		t.Errorf("an expired dev token verified: %v", err)
	}
	// And a deployed function, which fetches keys over https only, refuses the dev issuer's.
	deployed := jwtverify.New(jwtverify.Options{Now: func() time.Time { return testNow }})
	t.Cleanup(deployed.Close)
	if _, err := deployed.Verify(ctx, "sample-shop", EndUserAuth(url, "sample-shop"), token); err == nil {
		t.Error("a verifier without the dev option trusted the dev JWKS")
	}
}

// The key is committed, not generated: the same across calls and runs, so tokens minted by the
// CLI verify against any dev stack.
func TestKeyIsFixed(t *testing.T) {
	if !bytes.Equal(JWKS(), JWKS()) {
		t.Fatal("JWKS differs between calls")
	}
	a, err := Mint("sample-shop", "u-1", time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Mint("sample-shop", "u-1", time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("the same claims minted two different tokens (RS256 is deterministic under one key)")
	}
	var set struct {
		Keys []struct{ KTY, KID, ALG, USE, N, E string }
	}
	if err := json.Unmarshal(JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys in the JWKS, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	if k.KTY != "RSA" || k.KID != KeyID || k.ALG != "RS256" || k.USE != "sig" || k.E != "AQAB" {
		t.Errorf("JWK %+v", k)
	}
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil || len(n) != 256 {
		t.Fatalf("modulus: %d bytes, %v; want a 2048-bit key", len(n), err)
	}
	sum := sha256.Sum256(n)
	if got := hex.EncodeToString(sum[:]); got != pinnedModulusSHA256 {
		t.Errorf("the dev key changed: modulus SHA-256 %s, want %s (tokens minted before no longer verify)", got, pinnedModulusSHA256)
	}
}

// pinnedModulusSHA256 pins the committed dev key.
const pinnedModulusSHA256 = "5c51499bae05c5545e144653d27876b0499addc1714e4b6c880f0d8caebc71a4"

func TestMintRefusesIncompleteClaims(t *testing.T) {
	for _, tc := range []struct {
		app, user string
		ttl       time.Duration
	}{{"", "u-1", time.Hour}, {"sample-shop", "", time.Hour}, {"sample-shop", "u-1", 0}, {"sample-shop", "u-1", -time.Minute}} {
		if tok, err := Mint(tc.app, tc.user, tc.ttl, testNow); err == nil {
			t.Errorf("Mint(%q, %q, %s) = %q, want an error", tc.app, tc.user, tc.ttl, tok)
		}
	}
}

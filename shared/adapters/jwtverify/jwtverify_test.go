package jwtverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// testNow is the verifier's clock in these tests.
var testNow = time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)

const (
	testIssuer   = "https://id.example.com/project-1"
	testAudience = "sample-shop-client"
)

// Keys are generated once per test binary: RSA generation is slow under the race detector.
var (
	keysOnce           sync.Once
	rsaKey, rsaKey2    *rsa.PrivateKey
	ecKey              *ecdsa.PrivateKey
	errKeyGenerationFn error
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err1, err2, err3 error
		rsaKey, err1 = rsa.GenerateKey(rand.Reader, 2048)
		rsaKey2, err2 = rsa.GenerateKey(rand.Reader, 2048)
		ecKey, err3 = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		errKeyGenerationFn = errors.Join(err1, err2, err3)
	})
	if errKeyGenerationFn != nil {
		t.Fatal(errKeyGenerationFn)
	}
}

// issuer is an identity provider's JWKS endpoint on loopback.
type issuer struct {
	t    testing.TB
	srv  *httptest.Server
	hits atomic.Int64 // JWKS requests served

	mu     sync.Mutex
	status int    // 0: 200 with the JWKS
	body   []byte // nil: the JWKS of keys
	keys   map[string]crypto.PublicKey
}

func newIssuer(t testing.TB) *issuer {
	t.Helper()
	testKeys(t)
	is := &issuer{t: t, keys: map[string]crypto.PublicKey{"rsa-1": &rsaKey.PublicKey, "ec-1": &ecKey.PublicKey}}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		is.mu.Lock()
		status, body := is.status, is.body
		if body == nil {
			body = is.jwks()
		}
		is.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// jwks is the JWK Set of is.keys; the caller holds is.mu.
func (is *issuer) jwks() []byte {
	var set jwkset.JWKSMarshal
	for kid, pub := range is.keys {
		alg := jwkset.AlgRS256
		if _, ok := pub.(*ecdsa.PublicKey); ok {
			alg = jwkset.AlgES256
		}
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig}})
		if err != nil {
			is.t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	b, err := json.Marshal(set)
	if err != nil {
		is.t.Fatal(err)
	}
	return b
}

func (is *issuer) set(f func(is *issuer)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	f(is)
}

func (is *issuer) url() string { return is.srv.URL + "/.well-known/jwks.json" }

func (is *issuer) config() *appconfig.EndUserAuth {
	return &appconfig.EndUserAuth{Issuer: testIssuer, Audiences: []string{"other-client", testAudience}, JWKSURL: is.url(),
		Algorithms: []string{"RS256", "ES256"}}
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newVerifier(t testing.TB, opts Options) (*Verifier, *clock) {
	clk := &clock{now: testNow}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v := New(opts)
	t.Cleanup(v.Close)
	return v, clk
}

// claims are a valid token's claims for user.
func claims(user string) jwt.MapClaims {
	return jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": user,
		"iat": testNow.Add(-time.Minute).Unix(), "nbf": testNow.Add(-time.Minute).Unix(), "exp": testNow.Add(time.Hour).Unix()}
}

func mint(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rs256(t testing.TB, c jwt.MapClaims) string {
	return mint(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", c)
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// mustInvalid checks err is a 401 with a reason containing why and never the token.
func mustInvalid(t *testing.T, user string, err error, token, why string) {
	t.Helper()
	if err == nil || !errors.Is(err, ports.ErrTokenInvalid) || errors.Is(err, ports.ErrTokenUnverifiable) {
		t.Fatalf("want ErrTokenInvalid, got user %q, err %v", user, err)
	}
	if user != "" {
		t.Errorf("user %q returned with an error", user)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("reason %q does not say %q", err, why)
	}
	mustNotLeak(t, err, token)
}

func mustUnverifiable(t *testing.T, user string, err error, token, why string) {
	t.Helper()
	if err == nil || !errors.Is(err, ports.ErrTokenUnverifiable) || errors.Is(err, ports.ErrTokenInvalid) {
		t.Fatalf("want ErrTokenUnverifiable, got user %q, err %v", user, err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("reason %q does not say %q", err, why)
	}
	mustNotLeak(t, err, token)
}

// mustNotLeak checks the error quotes no part of the token (each segment, encoded or decoded).
func mustNotLeak(t testing.TB, err error, token string) {
	t.Helper()
	if token == "" {
		return
	}
	msg := err.Error()
	for _, seg := range strings.Split(token, ".") {
		if len(seg) < 8 {
			continue
		}
		if strings.Contains(msg, seg) {
			t.Errorf("error %q quotes a token segment", msg)
		}
		if dec, derr := base64.RawURLEncoding.DecodeString(seg); derr == nil && len(dec) >= 8 && strings.Contains(msg, string(dec)) {
			t.Errorf("error %q quotes a decoded token segment", msg)
		}
	}
}

func TestValidTokensReturnTheirUser(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	ctx := context.Background()
	cfg := is.config()
	for _, tc := range []struct {
		name, token, want string
	}{
		{"RS256", rs256(t, claims("u-1")), "u-1"},
		{"another user's token, ES256", mint(t, jwt.SigningMethodES256, ecKey, "ec-1", claims("u-2")), "u-2"},
		{"trimmed as ingest trims app_user_id", rs256(t, claims("  u-3\t")), "u-3"},
		{"aud as a list holding one accepted audience", rs256(t, with(claims("u-4"), "aud", []string{"someone-else", testAudience})), "u-4"},
		{"the second configured audience", rs256(t, with(claims("u-5"), "aud", "other-client")), "u-5"},
		{"expired within the leeway", rs256(t, with(claims("u-6"), "exp", testNow.Add(-59*time.Second).Unix())), "u-6"},
		{"nbf within the leeway", rs256(t, with(claims("u-7"), "nbf", testNow.Add(59*time.Second).Unix())), "u-7"},
		{"iat within the leeway", rs256(t, with(claims("u-8"), "iat", testNow.Add(59*time.Second).Unix())), "u-8"},
		{"no nbf, no iat", rs256(t, with(claims("u-9"), "nbf", nil, "iat", nil)), "u-9"},
		{"256 characters", rs256(t, claims(strings.Repeat("x", 256))), strings.Repeat("x", 256)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(ctx, "sample-shop", cfg, tc.token)
			if err != nil || got != tc.want {
				t.Fatalf("Verify = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if n := is.hits.Load(); n != 1 {
		t.Errorf("the JWKS was fetched %d times, want once (cached)", n)
	}
}

func TestInvalidTokensAreRefused(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	ctx := context.Background()

	valid := rs256(t, claims("u-1"))
	parts := strings.Split(valid, ".")
	tamperedClaims, _ := json.Marshal(claims("u-admin"))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedClaims) + "." + parts[2]

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("u-1")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// A token whose signature segment is the valid one re-encoded with nonzero padding bits:
	// the same signature bytes under lax base64, refused under strict decoding.
	sig := []byte(parts[2])
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", sig[len(sig)-1])
	sig[len(sig)-1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1]
	paddingBits := parts[0] + "." + parts[1] + "." + string(sig)

	for _, tc := range []struct {
		name  string
		cfg   func(*appconfig.EndUserAuth)
		token string
		why   string
	}{
		{"empty", nil, "", "no token"},
		{"garbage", nil, "not-a-jwt", "malformed"},
		{"two segments", nil, parts[0] + "." + parts[1], "malformed"},
		{"too long", nil, strings.Repeat("a", MaxTokenBytes+1), "too long"},
		{"expired beyond the leeway", nil, rs256(t, with(claims("u-1"), "exp", testNow.Add(-61*time.Second).Unix())), "expired"},
		{"no exp", nil, rs256(t, with(claims("u-1"), "exp", nil)), "missing exp"},
		{"nbf in the future", nil, rs256(t, with(claims("u-1"), "nbf", testNow.Add(61*time.Second).Unix())), "not valid yet"},
		{"iat in the future beyond the leeway", nil, rs256(t, with(claims("u-1"), "iat", testNow.Add(61*time.Second).Unix())), "issued in the future"},
		{"wrong iss", nil, rs256(t, with(claims("u-1"), "iss", "https://id.example.com/project-2")), "wrong issuer"},
		{"iss with a trailing slash", nil, rs256(t, with(claims("u-1"), "iss", testIssuer+"/")), "wrong issuer"},
		{"no iss", nil, rs256(t, with(claims("u-1"), "iss", nil)), "missing"},
		{"wrong aud", nil, rs256(t, with(claims("u-1"), "aud", "another-app")), "wrong audience"},
		{"aud list without an accepted one", nil, rs256(t, with(claims("u-1"), "aud", []string{"a", "b"})), "wrong audience"},
		{"aud a prefix of an accepted one", nil, rs256(t, with(claims("u-1"), "aud", "sample-shop")), "wrong audience"},
		{"no aud", nil, rs256(t, with(claims("u-1"), "aud", nil)), "missing"},
		{"exp of the wrong type", nil, rs256(t, with(claims("u-1"), "exp", "tomorrow")), "wrong type"},
		{"alg none (unsigned)", nil, none, "algorithm not accepted"},
		{"HS256 keyed with the RSA public key PEM (algorithm confusion)", nil, mint(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", claims("u-1")), "algorithm not accepted"},
		{"HS256 keyed with the RSA public key DER", nil, mint(t, jwt.SigningMethodHS256, pubDER, "rsa-1", claims("u-1")), "algorithm not accepted"},
		{"HS256 even when the config lists it", func(c *appconfig.EndUserAuth) { c.Algorithms = []string{"HS256", "RS256"} },
			mint(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", claims("u-1")), "algorithm not accepted"},
		{"ES256 when only RS256 is accepted", func(c *appconfig.EndUserAuth) { c.Algorithms = nil },
			mint(t, jwt.SigningMethodES256, ecKey, "ec-1", claims("u-1")), "algorithm not accepted"},
		{"RS256 header over the EC key's kid", nil, mint(t, jwt.SigningMethodRS256, rsaKey, "ec-1", claims("u-1")), "no issuer key matches"},
		{"tampered payload", nil, tampered, "bad signature"},
		{"signature padding bits changed", nil, paddingBits, "malformed"},
		{"signed by another key under a known kid", nil, mint(t, jwt.SigningMethodRS256, rsaKey2, "rsa-1", claims("u-1")), "bad signature"},
		{"no sub", nil, rs256(t, with(claims("u-1"), "sub", nil)), "no sub claim"},
		{"empty sub", nil, rs256(t, claims("")), "1 to 256"},
		{"blank sub", nil, rs256(t, claims(" \t ")), "1 to 256"},
		{"sub of 257 characters", nil, rs256(t, claims(strings.Repeat("x", 257))), "1 to 256"},
		{"sub not a string", nil, rs256(t, with(claims("u-1"), "sub", 42)), "not a string"},
		{"custom user_claim missing", func(c *appconfig.EndUserAuth) { c.UserClaim = "uid" }, rs256(t, claims("u-1")), "no uid claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := is.config()
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			user, err := v.Verify(ctx, "sample-shop", cfg, tc.token)
			mustInvalid(t, user, err, tc.token, tc.why)
		})
	}
	// The valid token the tampered ones came from does verify.
	if user, err := v.Verify(ctx, "sample-shop", is.config(), valid); err != nil || user != "u-1" {
		t.Fatalf("the untouched token: %q, %v", user, err)
	}
}

func TestCustomUserClaim(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	cfg := is.config()
	cfg.UserClaim = "https://example.com/app_user_id"
	user, err := v.Verify(context.Background(), "sample-shop", cfg, rs256(t, with(claims("provider-sub"), cfg.UserClaim, "u-custom")))
	if err != nil || user != "u-custom" {
		t.Fatalf("Verify = %q, %v; want u-custom (the configured claim, not sub)", user, err)
	}
}

func TestUnknownKIDRefreshesOnceThenFails(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	ctx := context.Background()
	cfg := is.config()
	if _, err := v.Verify(ctx, "sample-shop", cfg, rs256(t, claims("u-1"))); err != nil {
		t.Fatal(err)
	}
	if n := is.hits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches after the first token, want 1", n)
	}

	unknown := mint(t, jwt.SigningMethodRS256, rsaKey2, "rsa-unknown", claims("u-1"))
	user, err := v.Verify(ctx, "sample-shop", cfg, unknown)
	mustInvalid(t, user, err, unknown, "no issuer key matches")
	if n := is.hits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after an unknown kid, want 2 (one refresh)", n)
	}

	// More made-up kids do not make the verifier ask the issuer again (rate limit).
	for i := range 3 {
		other := mint(t, jwt.SigningMethodRS256, rsaKey2, "made-up-"+string(rune('a'+i)), claims("u-1"))
		user, err := v.Verify(ctx, "sample-shop", cfg, other)
		mustInvalid(t, user, err, other, "no issuer key matches")
	}
	if n := is.hits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after more unknown kids, want still 2 (rate-limited)", n)
	}
}

func TestRotatedKeyIsFetchedOnItsFirstToken(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	ctx := context.Background()
	cfg := is.config()
	if _, err := v.Verify(ctx, "sample-shop", cfg, rs256(t, claims("u-1"))); err != nil {
		t.Fatal(err)
	}
	is.set(func(is *issuer) { is.keys["rsa-2"] = &rsaKey2.PublicKey })
	user, err := v.Verify(ctx, "sample-shop", cfg, mint(t, jwt.SigningMethodRS256, rsaKey2, "rsa-2", claims("u-rotated")))
	if err != nil || user != "u-rotated" {
		t.Fatalf("token of the rotated key: %q, %v", user, err)
	}
	if n := is.hits.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
}

func TestJWKSFailuresAreUnverifiable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		breakIt func(is *issuer)
		why     string
	}{
		{"server down", func(is *issuer) { is.srv.Close() }, "connection refused"},
		{"500", func(is *issuer) { is.set(func(is *issuer) { is.status = http.StatusInternalServerError }) }, "500"},
		{"404", func(is *issuer) { is.set(func(is *issuer) { is.status = http.StatusNotFound }) }, "404"},
		{"bad JSON", func(is *issuer) { is.set(func(is *issuer) { is.body = []byte(`{"keys": [`) }) }, "decode"},
		{"a key that is not one", func(is *issuer) {
			is.set(func(is *issuer) { is.body = []byte(`{"keys":[{"kty":"RSA","kid":"rsa-1","n":"!!","e":"AQAB"}]}`) })
		}, "JWK"},
		{"larger than the limit", func(is *issuer) {
			is.set(func(is *issuer) {
				is.body = []byte(`{"keys":[],"padding":"` + strings.Repeat("x", MaxJWKSBytes) + `"}`)
			})
		}, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer(t)
			v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
			tc.breakIt(is)
			token := rs256(t, claims("u-1"))
			user, err := v.Verify(ctx, "sample-shop", is.config(), token)
			mustUnverifiable(t, user, err, token, tc.why)
			// A token that is bad on its face is refused without the keys: 401, not 503.
			user, err = v.Verify(ctx, "sample-shop", is.config(), "not-a-jwt")
			mustInvalid(t, user, err, "not-a-jwt", "malformed")
		})
	}
}

func TestSlowJWKSTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	is := newIssuer(t)
	cfg := is.config()
	cfg.JWKSURL = srv.URL + "/jwks.json"
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	v.fetchTimeout = 100 * time.Millisecond
	token := rs256(t, claims("u-1"))
	start := time.Now()
	user, err := v.Verify(context.Background(), "sample-shop", cfg, token)
	mustUnverifiable(t, user, err, token, "JWKS")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a hanging JWKS held the request %s (timeout 100ms)", d)
	}
}

func TestFirstFetchFailureIsRetriedAfterAPause(t *testing.T) {
	is := newIssuer(t)
	v, clk := newVerifier(t, Options{AllowLoopbackHTTP: true})
	ctx := context.Background()
	is.set(func(is *issuer) { is.status = http.StatusServiceUnavailable })
	token := rs256(t, claims("u-1"))
	for range 3 {
		user, err := v.Verify(ctx, "sample-shop", is.config(), token)
		mustUnverifiable(t, user, err, token, "503")
	}
	if n := is.hits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches while the issuer is down, want 1 (then a pause)", n)
	}
	is.set(func(is *issuer) { is.status = 0 })
	clk.add(RetryAfterFailedFetch)
	if user, err := v.Verify(ctx, "sample-shop", is.config(), token); err != nil || user != "u-1" {
		t.Fatalf("after the pause, the issuer back: %q, %v", user, err)
	}
}

func TestCachedKeysSurviveAnIssuerOutage(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	ctx := context.Background()
	cfg := is.config()
	if _, err := v.Verify(ctx, "sample-shop", cfg, rs256(t, claims("u-1"))); err != nil {
		t.Fatal(err)
	}
	is.set(func(is *issuer) { is.status = http.StatusBadGateway })
	if user, err := v.Verify(ctx, "sample-shop", cfg, rs256(t, claims("u-2"))); err != nil || user != "u-2" {
		t.Fatalf("a known kid while the issuer is down: %q, %v (want the cached key)", user, err)
	}
	// An unknown kid cannot be checked while the issuer is down: it may be a key published since.
	unknown := mint(t, jwt.SigningMethodRS256, rsaKey2, "rsa-2", claims("u-1"))
	user, err := v.Verify(ctx, "sample-shop", cfg, unknown)
	mustUnverifiable(t, user, err, unknown, "502")
}

func TestIssuerBackAfterAFailedRefresh(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	v.unknownKIDEvery = 20 * time.Millisecond
	ctx := context.Background()
	cfg := is.config()
	if _, err := v.Verify(ctx, "sample-shop", cfg, rs256(t, claims("u-1"))); err != nil {
		t.Fatal(err)
	}
	is.set(func(is *issuer) { is.status = http.StatusBadGateway })
	unknown := mint(t, jwt.SigningMethodRS256, rsaKey2, "rsa-2", claims("u-1"))
	user, err := v.Verify(ctx, "sample-shop", cfg, unknown)
	mustUnverifiable(t, user, err, unknown, "502")

	// The issuer is back, without the key: once a refresh succeeds, the kid is simply unknown.
	is.set(func(is *issuer) { is.status = 0 })
	time.Sleep(50 * time.Millisecond)
	user, err = v.Verify(ctx, "sample-shop", cfg, unknown)
	mustInvalid(t, user, err, unknown, "no issuer key matches")
	if n := is.hits.Load(); n != 3 {
		t.Errorf("%d JWKS fetches, want 3 (first, failed refresh, refresh)", n)
	}
}

func TestJWKSURLScheme(t *testing.T) {
	is := newIssuer(t)
	ctx := context.Background()
	token := rs256(t, claims("u-1"))

	strict, _ := newVerifier(t, Options{})
	user, err := strict.Verify(ctx, "sample-shop", is.config(), token)
	mustUnverifiable(t, user, err, token, "plain http")
	if n := is.hits.Load(); n != 0 {
		t.Errorf("the refused URL was fetched %d times", n)
	}

	dev, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	if user, err := dev.Verify(ctx, "sample-shop", is.config(), token); err != nil || user != "u-1" {
		t.Fatalf("with AllowLoopbackHTTP: %q, %v", user, err)
	}

	for _, u := range []string{"http://id.example.com/jwks.json", "ftp://127.0.0.1/jwks.json", "/jwks.json", "http://127.0.0.1.example.com/jwks"} {
		cfg := is.config()
		cfg.JWKSURL = u
		user, err := dev.Verify(ctx, "sample-shop", cfg, token)
		mustUnverifiable(t, user, err, token, "jwks_url")
	}
}

func TestBrokenConfigIsUnverifiable(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	token := rs256(t, claims("u-1"))
	for name, mutate := range map[string]func(*appconfig.EndUserAuth){
		"no issuer":          func(c *appconfig.EndUserAuth) { c.Issuer = "" },
		"no audience":        func(c *appconfig.EndUserAuth) { c.Audiences = []string{""} },
		"only HMAC accepted": func(c *appconfig.EndUserAuth) { c.Algorithms = []string{"HS256"} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := is.config()
			mutate(cfg)
			user, err := v.Verify(context.Background(), "sample-shop", cfg, token)
			mustUnverifiable(t, user, err, token, "auth.end_user")
		})
	}
	user, err := v.Verify(context.Background(), "sample-shop", nil, token)
	mustUnverifiable(t, user, err, token, "no auth.end_user")
}

func TestConcurrentFirstUsesFetchOnce(t *testing.T) {
	is := newIssuer(t)
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	token := rs256(t, claims("u-1"))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), "sample-shop", is.config(), token); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := is.hits.Load(); n != 1 {
		t.Errorf("%d JWKS fetches for 16 concurrent first uses, want 1", n)
	}
}

func TestOneCachePerJWKSURL(t *testing.T) {
	a, b := newIssuer(t), newIssuer(t)
	// b publishes only the second RSA key, under the kid a uses for the first.
	b.set(func(is *issuer) { is.keys = map[string]crypto.PublicKey{"rsa-1": &rsaKey2.PublicKey} })
	v, _ := newVerifier(t, Options{AllowLoopbackHTTP: true})
	ctx := context.Background()
	if user, err := v.Verify(ctx, "app-a", a.config(), rs256(t, claims("u-a"))); err != nil || user != "u-a" {
		t.Fatalf("app a: %q, %v", user, err)
	}
	if user, err := v.Verify(ctx, "app-b", b.config(), mint(t, jwt.SigningMethodRS256, rsaKey2, "rsa-1", claims("u-b"))); err != nil || user != "u-b" {
		t.Fatalf("app b: %q, %v", user, err)
	}
	// a's token does not verify against b's keys, though the kid is the same.
	token := rs256(t, claims("u-a"))
	user, err := v.Verify(ctx, "app-b", b.config(), token)
	mustInvalid(t, user, err, token, "bad signature")
	if a.hits.Load() != 1 || b.hits.Load() != 1 {
		t.Errorf("fetches a=%d b=%d, want 1 each", a.hits.Load(), b.hits.Load())
	}
}

// FuzzVerify feeds the verifier malformed tokens and mutations of a valid one: it never panics,
// never answers 503 (the issuer is up), and returns a user only for the untouched valid token.
// With mutate, the token is the valid one with the byte at pos replaced by b (raw is ignored), so
// the fuzzer walks every single-byte change of every segment; otherwise the token is raw.
func FuzzVerify(f *testing.F) {
	is := newIssuer(f)
	v, _ := newVerifier(f, Options{AllowLoopbackHTTP: true})
	cfg := is.config()
	valid := rs256(f, claims("u-fuzz"))
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid, "", ".", "..", "...", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		parts[0] + "." + parts[1], valid + ".", valid + "=", strings.Replace(valid, ".", "..", 1),
		mint(f, jwt.SigningMethodRS256, rsaKey2, "rsa-1", claims("u-fuzz")),
		mint(f, jwt.SigningMethodHS256, []byte("secret"), "rsa-1", claims("u-fuzz")),
		mint(f, jwt.SigningMethodRS256, rsaKey, "rsa-1", with(claims("u-fuzz"), "exp", "x")),
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1LWZ1enoifQ.",
	} {
		f.Add(seed, false, uint16(0), byte(0))
	}
	f.Add("", true, uint16(len(valid)-1), byte('B'))
	f.Add("", true, uint16(len(parts[0])), byte('x'))
	f.Add("", true, uint16(len(parts[0])+5), byte('A'))
	f.Fuzz(func(t *testing.T, raw string, mutate bool, pos uint16, b byte) {
		token := raw
		if mutate {
			buf := []byte(valid)
			buf[int(pos)%len(buf)] = b
			token = string(buf)
		}
		user, err := v.Verify(context.Background(), "sample-shop", cfg, token)
		if err == nil {
			if token != valid || user != "u-fuzz" {
				t.Fatalf("accepted a token that is not the valid one: user %q for %q", user, token)
			}
			return
		}
		if token == valid {
			t.Fatalf("the valid token was refused: %v", err)
		}
		if user != "" {
			t.Fatalf("user %q returned with error %v", user, err)
		}
		if !errors.Is(err, ports.ErrTokenInvalid) || errors.Is(err, ports.ErrTokenUnverifiable) {
			t.Fatalf("want ErrTokenInvalid, got %v", err)
		}
		mustNotLeak(t, err, token)
	})
}

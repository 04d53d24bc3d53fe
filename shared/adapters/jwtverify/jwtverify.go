// Package jwtverify implements ports.EndUserVerifier: it checks an end user's identity token (a
// JWT from the app's identity provider) against the provider's published keys (JWKS) and returns
// the app_user_id it names.
//
// The rules, all of them checked on every token:
//   - the signature algorithm is one the app accepts (auth.end_user.algorithms), and asymmetric:
//     never "none", never HS* (a public key used as an HMAC secret forges anything);
//   - the signature verifies with a key of the issuer's JWKS, found by the token's kid;
//   - exp is present and not past, nbf and iat not in the future, each with 60 s of leeway for
//     clock skew;
//   - iss is exactly the configured issuer, aud contains one of the configured audiences;
//   - the user claim (sub unless configured) is a string of 1 to 256 bytes once trimmed, trimmed
//     as the ingest function trims app_user_id, so the token's user is keyed as their events are.
//
// Errors wrap ports.ErrTokenUnverifiable when the issuer's keys could not be fetched (the caller
// answers 503 and the client retries) and ports.ErrTokenInvalid otherwise (401). Their reasons are
// fixed phrases: they never quote the token or a part of it.
package jwtverify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Limits and timings.
const (
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway = 60 * time.Second
	// MaxUserIDBytes bounds the app_user_id, as the ingest API and the users API bound it.
	MaxUserIDBytes = 256
	// MaxTokenBytes bounds the token read at all; real ones are 1 to 2 KB, and API Gateway caps a
	// header at 10 KB anyway.
	MaxTokenBytes = 16 << 10
	// FetchTimeout bounds one JWKS request: a slow issuer costs a request at most this much.
	FetchTimeout = 3 * time.Second
	// MaxJWKSBytes bounds a JWKS response body (real ones are a few KB).
	MaxJWKSBytes = 1 << 20
	// RefreshInterval is how often a JWKS is fetched again in the background, so a key the issuer
	// revoked stops verifying.
	RefreshInterval = time.Hour
	// UnknownKIDRefreshEvery is the most often a token with an unknown kid makes the verifier
	// fetch the JWKS again (an issuer rotating its key): any more often and anyone could make
	// every container hammer the issuer with made-up kids.
	UnknownKIDRefreshEvery = 5 * time.Minute
	// RetryAfterFailedFetch is how long after a failed first fetch of a JWKS the tokens naming it
	// are answered "unverifiable" without trying again, so a down issuer is not asked once per
	// request.
	RetryAfterFailedFetch = 5 * time.Second
)

// Options configure a Verifier.
type Options struct {
	// AllowLoopbackHTTP accepts a plain-http jwks_url on a loopback host (the dev stack's token
	// issuer). Off, only https JWKS URLs are fetched.
	AllowLoopbackHTTP bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives background JWKS refresh failures (default slog.Default()).
	Logger *slog.Logger
}

// Verifier verifies end-user tokens. Build one per process (New) and share it: it keeps one
// JWKS cache per jwks_url, created on first use, and the keys are fetched once, then refreshed in
// the background and when a token names an unknown kid.
type Verifier struct {
	opts   Options
	ctx    context.Context // ends the background refreshes (Close)
	cancel context.CancelFunc

	// unknownKIDEvery and fetchTimeout are UnknownKIDRefreshEvery and FetchTimeout; tests
	// shorten them.
	unknownKIDEvery, fetchTimeout time.Duration

	mu     sync.Mutex
	caches map[string]*jwksCache
}

var _ ports.EndUserVerifier = (*Verifier)(nil)

// New returns a Verifier.
func New(opts Options) *Verifier {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Verifier{opts: opts, ctx: ctx, cancel: cancel, unknownKIDEvery: UnknownKIDRefreshEvery, fetchTimeout: FetchTimeout, caches: map[string]*jwksCache{}}
}

// Close stops the background JWKS refreshes. The Verifier still verifies with the keys it has.
func (v *Verifier) Close() { v.cancel() }

// errKeysUnavailable marks a keyfunc failure caused by the JWKS, not by the token.
var errKeysUnavailable = errors.New("issuer keys unavailable")

// Verify checks token against the app's identity provider cfg and returns the app_user_id it
// names. See the package documentation for the rules.
func (v *Verifier) Verify(ctx context.Context, appID string, cfg *appconfig.EndUserAuth, token string) (string, error) {
	if err := v.checkConfig(cfg); err != nil {
		// A configuration the verifier refuses is the operator's mistake, not the user's: answered
		// like keys that cannot be fetched (503), so a client does not sign its user out over it,
		// and logged by the caller with this reason, which names the app and the fix.
		return "", fmt.Errorf("%w: app %q: %v", ports.ErrTokenUnverifiable, appID, err)
	}
	if token == "" {
		return "", invalid("no token")
	}
	if len(token) > MaxTokenBytes {
		return "", invalid("token too long")
	}
	algs := acceptedAlgs(cfg)
	var audiences []string
	for _, a := range cfg.Audiences {
		if a != "" {
			audiences = append(audiences, a)
		}
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(Leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(audiences...),
		jwt.WithTimeFunc(v.opts.Now),
		// One encoding per token: lax base64 would accept a signature segment with its padding
		// bits changed as the same signature.
		jwt.WithStrictDecoding(),
	)
	claims := jwt.MapClaims{}
	// The keys are looked up only once the token has parsed and named an accepted algorithm, so
	// garbage never costs a JWKS fetch and is answered 401 even while the issuer is down.
	keys := func(t *jwt.Token) (any, error) {
		c, err := v.cache(cfg.JWKSURL)
		if err != nil {
			return nil, err
		}
		fctx, cancel := context.WithTimeout(ctx, v.fetchTimeout)
		defer cancel()
		key, err := c.kf.KeyfuncCtx(fctx)(t)
		if err != nil {
			// Unknown kid after the refresh it triggered: the token's fault, unless that refresh
			// (or the last one) failed, when the key may be one the issuer published since.
			if ferr := c.lastFetchErr(); ferr != nil {
				return nil, fmt.Errorf("%w: JWKS %s: %v", errKeysUnavailable, c.url, ferr)
			}
			return nil, err
		}
		return key, nil
	}
	tok, err := parser.ParseWithClaims(token, claims, keys)
	if err != nil {
		if errors.Is(err, errKeysUnavailable) {
			return "", fmt.Errorf("%w: %v", ports.ErrTokenUnverifiable, keysReason(err))
		}
		return "", invalid(reason(err, tok, algs))
	}
	raw, ok := claims[cfg.Claim()]
	if !ok {
		return "", invalid("no " + cfg.Claim() + " claim")
	}
	s, ok := raw.(string)
	if !ok {
		return "", invalid("the " + cfg.Claim() + " claim is not a string")
	}
	// Trimmed as the ingest function trims app_user_id before keying: " u-1" and "u-1" are one
	// user.
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxUserIDBytes {
		return "", invalid(fmt.Sprintf("the %s claim must be 1 to %d characters", cfg.Claim(), MaxUserIDBytes))
	}
	return s, nil
}

func invalid(reason string) error { return fmt.Errorf("%w: %s", ports.ErrTokenInvalid, reason) }

// keysReason is the JWKS failure without the jwt package's wrapping (and the marker).
func keysReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, errKeysUnavailable.Error()+": "); i >= 0 {
		return msg[i+len(errKeysUnavailable.Error())+2:]
	}
	return errKeysUnavailable.Error()
}

// reason names why the jwt package refused a token, in a fixed phrase: its own messages may quote
// parts of the token (a kid, an algorithm name).
func reason(err error, tok *jwt.Token, algs []string) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case tok != nil && (tok.Method == nil || !slices.Contains(algs, tok.Method.Alg())):
		return "signature algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The keyfunc failed for the token's sake: no key with its kid (after a refresh), a key
		// for another algorithm or use.
		return "no issuer key matches the token"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing exp, iss or aud"
	case errors.Is(err, jwt.ErrInvalidType):
		return "a registered claim has the wrong type"
	}
	return "invalid claims"
}

// acceptedAlgs are the configured algorithms that are also asymmetric: the config is validated
// on load, and this keeps HS* and none out even of a config built some other way.
func acceptedAlgs(cfg *appconfig.EndUserAuth) []string {
	var algs []string
	for _, a := range cfg.Algs() {
		if slices.Contains(appconfig.EndUserAlgorithms, a) {
			algs = append(algs, a)
		}
	}
	return algs
}

// checkConfig refuses what appconfig validation refuses and what this verifier additionally
// requires (https, unless the dev option allows loopback http).
func (v *Verifier) checkConfig(cfg *appconfig.EndUserAuth) error {
	if cfg == nil {
		return errors.New("no auth.end_user")
	}
	if cfg.Issuer == "" {
		return errors.New("auth.end_user.issuer is empty")
	}
	if !slices.ContainsFunc(cfg.Audiences, func(a string) bool { return a != "" }) {
		return errors.New("auth.end_user.audiences is empty")
	}
	if len(acceptedAlgs(cfg)) == 0 {
		return fmt.Errorf("auth.end_user.algorithms has no accepted algorithm (one of %v)", appconfig.EndUserAlgorithms)
	}
	return v.checkJWKSURL(cfg.JWKSURL)
}

// checkJWKSURL accepts https URLs, and plain http on a loopback host when the Verifier was built
// with AllowLoopbackHTTP. Keys fetched over plain http could be replaced by anyone on the path,
// and whoever supplies the keys decides who is signed in.
func (v *Verifier) checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("auth.end_user.jwks_url %q is not an absolute URL", raw)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && appconfig.IsLoopbackHost(u.Hostname()):
		if v.opts.AllowLoopbackHTTP {
			return nil
		}
		return fmt.Errorf("auth.end_user.jwks_url %q is plain http: accepted on loopback only by the dev stack (DEV_AUTH); deployed functions fetch keys over https only", raw)
	}
	return fmt.Errorf("auth.end_user.jwks_url %q must be https", raw)
}

// checkRedirect keeps a redirected JWKS request on URLs the verifier would fetch directly: no
// downgrade to http.
func (v *Verifier) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("too many redirects")
	}
	return v.checkJWKSURL(req.URL.String())
}

// jwksCache is the keys of one jwks_url.
type jwksCache struct {
	url string

	// initMu guards kf, failedAt and firstErr; it is held across the first fetch, so concurrent
	// first uses of a URL wait for one fetch instead of each making their own.
	initMu   sync.Mutex
	kf       keyfunc.Keyfunc // nil until a first fetch succeeded
	failedAt time.Time       // when the last first fetch failed
	firstErr error           // why
	// stop ends the background refreshes of kf (Verifier.Close ends them all through the
	// parent context; a failed first fetch ends its own at once).
	stop context.CancelFunc

	// healthMu guards fetchErr, written by the fetches (refreshes run on other goroutines).
	healthMu sync.Mutex
	fetchErr error // why the last fetch failed, nil once one succeeds
}

// cache returns the ready cache of url, fetching its keys on first use. The error wraps
// errKeysUnavailable.
func (v *Verifier) cache(u string) (*jwksCache, error) {
	v.mu.Lock()
	c, ok := v.caches[u]
	if !ok {
		c = &jwksCache{url: u}
		v.caches[u] = c
	}
	v.mu.Unlock()

	c.initMu.Lock()
	defer c.initMu.Unlock()
	if c.kf != nil {
		return c, nil
	}
	if !c.failedAt.IsZero() && v.opts.Now().Sub(c.failedAt) < RetryAfterFailedFetch {
		return nil, fmt.Errorf("%w: JWKS %s: %v (tried again %s after a failure)", errKeysUnavailable, u, c.firstErr, RetryAfterFailedFetch)
	}
	kf, err := v.newKeyfunc(c)
	if err != nil {
		c.failedAt, c.firstErr = v.opts.Now(), err
		return nil, fmt.Errorf("%w: JWKS %s: %v", errKeysUnavailable, u, err)
	}
	c.kf = kf
	return c, nil
}

func (c *jwksCache) lastFetchErr() error {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	return c.fetchErr
}

func (c *jwksCache) setFetchErr(err error) {
	c.healthMu.Lock()
	c.fetchErr = err
	c.healthMu.Unlock()
}

// newKeyfunc builds the keyfunc of c's URL and fetches its keys once; the caller holds c.mu.
func (v *Verifier) newKeyfunc(c *jwksCache) (keyfunc.Keyfunc, error) {
	ctx, cancel := context.WithCancel(v.ctx)
	client := &http.Client{
		Timeout:       v.fetchTimeout,
		Transport:     limitedTransport{base: http.DefaultTransport, max: MaxJWKSBytes},
		CheckRedirect: v.checkRedirect,
	}
	store, err := jwkset.NewStorageFromHTTP(c.url, jwkset.HTTPClientStorageOptions{
		Client:      client,
		Ctx:         ctx,
		HTTPTimeout: v.fetchTimeout,
		// A failed first fetch is an error here (no cache is kept, the next token tries again
		// after RetryAfterFailedFetch); later failures keep the keys already fetched.
		NoErrorReturnFirstHTTPReq: false,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			c.setFetchErr(err)
			v.opts.Logger.WarnContext(ctx, "end-user token keys: JWKS refresh failed", "jwks_url", c.url, "error", err.Error())
		},
		RefreshInterval: RefreshInterval,
		// Every successful fetch replaces the whole key set (a revoked key goes): the fetch
		// health is recorded there.
		Storage: &healthStorage{Storage: jwkset.NewMemoryStorage(), ok: func() { c.setFetchErr(nil) }},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{c.url: store},
		RefreshUnknownKID: rate.NewLimiter(rate.Every(v.unknownKIDEvery), 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwks client for %s: %w", c.url, err)
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:     ctx,
		Storage: storage,
		// Keys published for encryption never verify a signature; keys without "use" do.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("keyfunc for %s: %w", c.url, err)
	}
	c.stop = cancel
	return kf, nil
}

// healthStorage calls ok after every successful fetch (jwkset replaces the whole set then).
type healthStorage struct {
	jwkset.Storage
	ok func()
}

// KeyReplaceAll implements jwkset.Storage.
func (s *healthStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if err := s.Storage.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	s.ok()
	return nil
}

// limitedTransport fails the reading of a response body longer than max, so a misbehaving JWKS
// endpoint cannot make the function read without end.
type limitedTransport struct {
	base http.RoundTripper
	max  int64
}

// RoundTrip implements http.RoundTripper.
func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
	max  int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("JWKS response larger than %d bytes", b.max)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

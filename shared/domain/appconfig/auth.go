package appconfig

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
)

// Auth says who may call an app's routes besides its publishable API key.
type Auth struct {
	// EndUser enables the /v1/me routes: the signed-in user, identified by a token from the
	// app's identity provider. Without it the app has no /v1/me routes (they answer 404).
	EndUser *EndUserAuth `json:"end_user,omitempty"`
}

// EndUserAuth is the app's identity provider: the tokens it issues are JWTs signed with a key
// published at JWKSURL.
type EndUserAuth struct {
	// Issuer is the exact "iss" of the tokens (e.g. https://securetoken.google.com/<project>).
	Issuer string `json:"issuer"`
	// Audiences are the accepted "aud" values (exact match, at least one).
	Audiences []string `json:"audiences"`
	// JWKSURL is where the issuer publishes its signing keys (https).
	JWKSURL string `json:"jwks_url"`
	// UserClaim is the claim that holds the app_user_id (default "sub").
	UserClaim string `json:"user_claim,omitempty"`
	// Algorithms are the signature algorithms accepted (default RS256); asymmetric only.
	Algorithms []string `json:"algorithms,omitempty"`
}

// Values of App.TrustedValues.
const (
	// TrustedValuesAny counts every purchase and subscription toward value rules (the default).
	TrustedValuesAny = "any"
	// TrustedValuesServer counts only server-sent ones (POST /v1/server/events), so a client
	// holding the publishable key cannot buy itself into a value segment.
	TrustedValuesServer = "server"
)

// DefaultUserClaim is the claim that names the user when EndUserAuth.UserClaim is unset.
const DefaultUserClaim = "sub"

// EndUserAlgorithms are the signature algorithms an end-user token may use: asymmetric only, so
// a public key can never be used as an HMAC secret, and never "none".
var EndUserAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Claim returns the claim that names the user.
func (e *EndUserAuth) Claim() string {
	if e.UserClaim == "" {
		return DefaultUserClaim
	}
	return e.UserClaim
}

// Algs returns the accepted algorithms (default RS256).
func (e *EndUserAuth) Algs() []string {
	if len(e.Algorithms) == 0 {
		return []string{"RS256"}
	}
	return e.Algorithms
}

// ValuesFromServerOnly reports whether only server-sent purchases and subscriptions count
// toward the app's value rules.
func (a *App) ValuesFromServerOnly() bool { return a.TrustedValues == TrustedValuesServer }

func (a *App) checkAuth(bad func(field, format string, args ...any)) {
	switch a.TrustedValues {
	case "", TrustedValuesAny, TrustedValuesServer:
	default:
		bad("trusted_values", "must be %q or %q (got %q)", TrustedValuesAny, TrustedValuesServer, a.TrustedValues)
	}
	e := a.Auth.EndUser
	if e == nil {
		return
	}
	if u, err := url.Parse(e.Issuer); e.Issuer == "" || err != nil || u.Scheme == "" || u.Host == "" {
		bad("auth.end_user.issuer", "must be the issuer URL, exactly as in the tokens' iss (got %q)", e.Issuer)
	}
	if len(e.Audiences) == 0 || slices.Contains(e.Audiences, "") {
		bad("auth.end_user.audiences", "list the accepted aud values (at least one, none empty)")
	}
	if u, err := url.Parse(e.JWKSURL); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopbackHost(u.Hostname()))) {
		bad("auth.end_user.jwks_url", "must be an https URL (plain http only on loopback, for local tests) (got %q)", e.JWKSURL)
	}
	if c := e.UserClaim; c != "" && len(c) > 64 {
		bad("auth.end_user.user_claim", "must be a claim name of at most 64 characters")
	}
	for k, alg := range e.Algorithms {
		if !slices.Contains(EndUserAlgorithms, alg) {
			bad(fmt.Sprintf("auth.end_user.algorithms[%d]", k), "%q is not accepted (one of %v; never none or HS*)", alg, EndUserAlgorithms)
		}
	}
}

// IsLoopbackHost reports whether host names this machine (localhost or a loopback address).
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

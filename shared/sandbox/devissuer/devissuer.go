// Package devissuer is the identity provider of the dev stack (make dev): it signs end-user
// tokens for the /v1/me routes with a fixed RSA key and publishes that key as a JWKS, so a
// developer can call the routes as any user (retarget dev token --user ID) without a real
// identity provider.
//
// The key is committed below, public like the dev pepper: anyone can mint a token it signs. It is
// trusted only in dev mode (DEV_AUTH=true, the dev stack), where the JWKS is served on loopback;
// a deployed function never trusts it, because a deployed app's auth.end_user names its own
// issuer and an https JWKS.
package devissuer

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

const (
	// Issuer is the iss of the dev tokens. It is URL-shaped, as appconfig requires of an issuer,
	// and under .invalid (RFC 2606), so it can name no real issuer.
	Issuer = "https://dev.retarget.invalid/issuer"
	// JWKSPath is where the dev stack serves JWKS() on its API address.
	JWKSPath = "/_dev/jwks.json"
	// KeyID is the kid of the dev key, in the JWKS and every token's header.
	KeyID = "retarget-dev-1"
	// Algorithm is the signature algorithm of the dev tokens.
	Algorithm = "RS256"
	// UserClaim is the claim naming the user.
	UserClaim = "sub"
)

// keyPEM is the dev signing key (RSA 2048, PKCS #8). Public: a dev value like the dev pepper,
// trusted only in dev mode, never by a deployed function.
const keyPEM = `-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCyVNzLCITO7QKE
IUZLkz0U0Un8ZnkB5JFMW7/d6X8E4INIIUXFIfLJtWZvSM3QcwwO92XhNF093Hl6
ev/usewAErCjjioPKAypkcD3skx5b2uuKCQbGGFmIBhgxpThCHPbFML3JznjQBx8
1KAw+KxGj+347WCqhLi0A8kmE6v1d7GIrkwwr6IDqG/N0hLzZI4RhtvQb9ZOE1bN
U6VlLHbTmvX4NcbrRpwlcKi7HuywkO7ZnXrn0tWIDiatNC2jlMHCEGfzqPxKYc0l
rpJsQZBs+h0RIfYT238Yvd8Rh+9DpcjIamRs/bpFRcGg6WLwvyFQp+/1MVPmi/U5
tzDujb9PAgMBAAECggEAJjnKmjrZPQHQ6EG5r7l//lZeZZwRlDZKbvO7zPWgJIt7
mJqJOhhs0o/vxSr18xi2HP8q93siAYChCYAUHDZHQDzBYE249ka/cBmuI2o0ulMH
4ez40FYJirqWfygSAaquKufoYtIltnCnqpppPBYR145ClHlNnz+T2AJ3u5G76oHB
Ks812264FjDozryYCjOVVYA+eMld4Mm0wa7HaVysoyGJRCGVOEMLfFQhF9ak4cpb
jWkw56qwYYFRYEPEZxjp0vMY5wJ7xZASgBPkQ/T5QzttZA23wQdo1M7lg/JkvfNg
qQmSU9YwX8HjwUnxUQxENmvCeZSICviN+mV7gNZkAQKBgQD15a4W7GYRs07zh/ZY
AnX1sF7FGOi6H1N2XbnRXWVgfAIPqjnQ2Mp2dz1rLzoM3QvVWxj2EXRsN5z6Hwnd
cxO7SXaDOzzzXQA8iyTGV/56d7YKNU0vU+BVDJc9KDDVK5vhYpbbqCT5weliSAhw
6zgs7O3lfEawQ5gN6T88lDccEQKBgQC5qIimySkil+mKRlfQ+gztWllKvmH1gpV/
bTQyD0i6NYRDgRpn5blPGFbb8YL3SjQXT8eccGYjHWLVo1s2VUp8DMaUWp63uUP4
G+Ewh0O4Nsi6OvkB9jqMFaHHePDkuuEb8i1sPfw/PQ0APKNgU7ZijgFQWiyBPXmS
acWyV64FXwKBgQDfSJ5aZnMQo5ePf+hrZmCipnKH2uSJDaUGGHmA6aQChtiATPyO
7ix6gjAdQhceUyJJrJzv5E2pbp52aPTWR4alTEH3TDU+bzalw1uzV3fW0RlWD6x0
y18rG3HBsNsW1rCHarS95OMef7xi6DHyB0VNVh93gO/XYqmSCDjJ03RvYQKBgCHM
j8wlVQrKMycMNVKDIzVWvGjCDh1e/45qOBVg+PGFaqXLbB48ESdYHAAAkMIqTR9t
U76kK8P6xpJ0IdfbYSsCPGinsrtpy/jwQmfOSELSHmrg75Iu3GvCSGiDGP/bEb4/
sYtCIZj1qVdAstGHi+2XQp/5Op7wrSA9h1M3aSPrAoGAJjpMwmdt+TtSbI0JxwkJ
s8qZC1ltxHpBUJ0S9bRtRt9dSKvcUyFn1pwp0GiubdYoYa9xc4vUfCe+wOeFV+3g
KdBc1hwQNOj4eEJP/QMAJJwMPAZYnw4qFYLcuiDdTJaDm5lWJPyN9bA08ztATmG5
8nFDls70eJvzn7A1kxziBtw=
-----END PRIVATE KEY-----
`

var (
	loadOnce sync.Once
	key      *rsa.PrivateKey
	jwks     []byte
	errLoad  error
)

// load parses the key and builds the JWKS once.
func load() (*rsa.PrivateKey, []byte, error) {
	loadOnce.Do(func() {
		block, _ := pem.Decode([]byte(keyPEM))
		if block == nil {
			errLoad = errors.New("devissuer: the dev key is not PEM")
			return
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			errLoad = fmt.Errorf("devissuer: parse the dev key: %w", err)
			return
		}
		k, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			errLoad = fmt.Errorf("devissuer: the dev key is a %T, want RSA", parsed)
			return
		}
		jwk, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: KeyID, ALG: jwkset.AlgRS256, USE: jwkset.UseSig,
		}})
		if err != nil {
			errLoad = fmt.Errorf("devissuer: the dev key as a JWK: %w", err)
			return
		}
		set, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
		if err != nil {
			errLoad = fmt.Errorf("devissuer: encode the JWKS: %w", err)
			return
		}
		key, jwks = k, set
	})
	return key, jwks, errLoad
}

// JWKS returns the public dev key as a JWK Set (one key, kid KeyID), as the dev stack serves it
// at JWKSPath. It panics if the committed key does not parse, which the tests rule out.
func JWKS() []byte {
	_, set, err := load()
	if err != nil {
		panic(err)
	}
	return append([]byte(nil), set...)
}

// Mint returns a dev token for appUserID of app appID: RS256 under the dev key, iss Issuer,
// aud appID, sub appUserID, iat and nbf now, exp now+ttl.
func Mint(appID, appUserID string, ttl time.Duration, now time.Time) (string, error) {
	if appID == "" || appUserID == "" {
		return "", errors.New("devissuer: a token needs an app and a user")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("devissuer: ttl must be positive (got %s)", ttl)
	}
	k, _, err := load()
	if err != nil {
		return "", err
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   appUserID,
		Audience:  jwt.ClaimStrings{appID},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	})
	tok.Header["kid"] = KeyID
	s, err := tok.SignedString(k)
	if err != nil {
		return "", fmt.Errorf("devissuer: sign: %w", err)
	}
	return s, nil
}

// EndUserAuth is the auth.end_user that trusts the dev tokens of app appID, their keys served at
// jwksURL (the dev stack's API address plus JWKSPath).
func EndUserAuth(jwksURL, appID string) *appconfig.EndUserAuth {
	return &appconfig.EndUserAuth{
		Issuer:     Issuer,
		Audiences:  []string{appID},
		JWKSURL:    jwksURL,
		UserClaim:  UserClaim,
		Algorithms: []string{Algorithm},
	}
}

// Package sigv4 checks AWS Signature Version 4 on HTTP requests the way API Gateway does for
// methods with AWS_IAM authorization, so the dev stack can enforce the API's IAM routes with
// local credentials. It holds no cryptography of its own: it rebuilds the request from the
// headers the caller signed, signs that copy with the AWS SDK's signer (the one every SDK
// client uses) and compares the two signatures in constant time.
//
// Only the Authorization header form is read (no presigned query strings), with the time in
// X-Amz-Date, as the SDKs send it.
package sigv4

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Defaults of a Verifier.
const (
	// Service is the signing name of API Gateway's invoke API.
	Service = "execute-api"
	// DefaultRegion is the region a Verifier expects when none is set.
	DefaultRegion = "us-east-1"
	// MaxSkew is how far the signing time may be from the verifier's clock, either way.
	MaxSkew = 5 * time.Minute
)

const (
	algorithm  = "AWS4-HMAC-SHA256"
	terminator = "aws4_request"
	// TimeFormat is the layout of X-Amz-Date; DateFormat of the credential scope's date.
	TimeFormat = "20060102T150405Z"
	DateFormat = "20060102"
	// HeaderDate and HeaderContentSHA256 are the signing headers a request carries.
	HeaderDate          = "X-Amz-Date"
	HeaderContentSHA256 = "X-Amz-Content-Sha256"
)

// Why a request is refused. Every error Verify returns wraps exactly one of them, so a caller
// can answer each the way API Gateway does.
var (
	// ErrMissing: the request has no Authorization header at all.
	ErrMissing = errors.New("sigv4: no Authorization header")
	// ErrMalformed: the Authorization header or X-Amz-Date cannot be read as SigV4.
	ErrMalformed = errors.New("sigv4: malformed signature")
	// ErrUnknownKey: the access key id is not one of the verifier's.
	ErrUnknownKey = errors.New("sigv4: unknown access key id")
	// ErrService: the credential scope names another service than execute-api.
	ErrService = errors.New("sigv4: credential scoped to the wrong service")
	// ErrRegion: the credential scope names another region.
	ErrRegion = errors.New("sigv4: credential scoped to the wrong region")
	// ErrDate: the credential scope's date is not the date of X-Amz-Date.
	ErrDate = errors.New("sigv4: credential date does not match X-Amz-Date")
	// ErrExpired: the signing time is more than MaxSkew from now, in the past or the future.
	ErrExpired = errors.New("sigv4: signing time too far from now")
	// ErrPayloadHash: X-Amz-Content-Sha256 is not the SHA-256 of the body.
	ErrPayloadHash = errors.New("sigv4: X-Amz-Content-Sha256 does not match the body")
	// ErrSignature: the signature is not the one the secret key gives for this request.
	ErrSignature = errors.New("sigv4: signature does not match")
)

// Credential is what the verifier knows of one access key.
type Credential struct {
	// SecretAccessKey signs the requests made with the key.
	SecretAccessKey string
	// UserARN and Caller name the principal, as API Gateway puts them in the request context
	// (identity.userArn, identity.caller).
	UserARN, Caller string
}

// Identity is who signed a request that verified.
type Identity struct {
	AccessKeyID string
	UserARN     string
	Caller      string
}

// Verifier checks signatures against a fixed set of credentials.
type Verifier struct {
	// Credentials are the known keys by access key id.
	Credentials map[string]Credential
	// Region is the region signatures must be scoped to; "" means DefaultRegion.
	Region string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Authorization is the parsed Authorization header of a SigV4 request.
type Authorization struct {
	AccessKeyID                       string
	Date, Region, Service, Terminator string // the credential scope
	SignedHeaders                     []string
	Signature                         string
}

// ParseAuthorization reads "AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/service/aws4_request,
// SignedHeaders=a;b, Signature=hex". Errors wrap ErrMalformed.
func ParseAuthorization(h string) (Authorization, error) {
	var a Authorization
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return a, fmt.Errorf("%w: Authorization does not start with %s", ErrMalformed, algorithm)
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return a, fmt.Errorf("%w: Authorization part %q", ErrMalformed, part)
		}
		seen[k] = true
		switch k {
		case "Credential":
			scope := strings.Split(v, "/")
			if len(scope) != 5 || slices.Contains(scope, "") {
				return a, fmt.Errorf("%w: Credential %q is not AKID/date/region/service/aws4_request", ErrMalformed, v)
			}
			a.AccessKeyID, a.Date, a.Region, a.Service, a.Terminator = scope[0], scope[1], scope[2], scope[3], scope[4]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
			if slices.Contains(a.SignedHeaders, "") || !slices.IsSorted(a.SignedHeaders) {
				return a, fmt.Errorf("%w: SignedHeaders %q", ErrMalformed, v)
			}
		case "Signature":
			if b, err := hex.DecodeString(v); err != nil || len(b) != sha256.Size {
				return a, fmt.Errorf("%w: Signature is not 64 hex digits", ErrMalformed)
			}
			a.Signature = v
		default:
			return a, fmt.Errorf("%w: unknown Authorization part %q", ErrMalformed, k)
		}
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if !seen[k] {
			return a, fmt.Errorf("%w: Authorization has no %s", ErrMalformed, k)
		}
	}
	if a.Terminator != terminator {
		return a, fmt.Errorf("%w: credential scope ends with %q, not %s", ErrMalformed, a.Terminator, terminator)
	}
	if !slices.Contains(a.SignedHeaders, "host") {
		return a, fmt.Errorf("%w: SignedHeaders lacks host", ErrMalformed)
	}
	return a, nil
}

// Verify checks the signature of r, whose body (already read) is body, and returns who signed
// it. The error wraps one of the Err* values.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (Identity, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Identity{}, ErrMissing
	}
	a, err := ParseAuthorization(h)
	if err != nil {
		return Identity{}, err
	}
	amzDate := r.Header.Get(HeaderDate)
	signedAt, err := time.Parse(TimeFormat, amzDate)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %s %q is not yyyymmddThhmmssZ", ErrMalformed, HeaderDate, amzDate)
	}
	cred, ok := v.Credentials[a.AccessKeyID]
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q", ErrUnknownKey, a.AccessKeyID)
	}
	region := v.Region
	if region == "" {
		region = DefaultRegion
	}
	switch {
	case a.Service != Service:
		return Identity{}, fmt.Errorf("%w: %q, want %s", ErrService, a.Service, Service)
	case a.Region != region:
		return Identity{}, fmt.Errorf("%w: %q, want %s", ErrRegion, a.Region, region)
	case a.Date != signedAt.Format(DateFormat):
		return Identity{}, fmt.Errorf("%w: %s in the credential, %s in %s", ErrDate, a.Date, amzDate, HeaderDate)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if skew := now().Sub(signedAt); skew > MaxSkew || skew < -MaxSkew {
		return Identity{}, fmt.Errorf("%w: signed at %s, now %s", ErrExpired, amzDate, now().UTC().Format(TimeFormat))
	}

	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if claimed := r.Header.Get(HeaderContentSHA256); claimed != "" && claimed != payloadHash {
		return Identity{}, fmt.Errorf("%w", ErrPayloadHash)
	}

	// The copy carries only what the caller signed: the signer signs every header it is given
	// (but a few it always ignores), and adds host, content-length and X-Amz-Date itself.
	u := *r.URL // path escaping (RawPath) and the raw query as the client sent them
	cp := (&http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}).WithContext(ctx)
	for _, name := range a.SignedHeaders {
		switch name {
		case "host":
		case "content-length":
			cp.ContentLength = int64(len(body))
		default:
			if vs := r.Header.Values(name); len(vs) > 0 {
				cp.Header[http.CanonicalHeaderKey(name)] = slices.Clone(vs)
			}
		}
	}
	creds := aws.Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: cred.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, cp, payloadHash, a.Service, a.Region, signedAt); err != nil {
		return Identity{}, fmt.Errorf("sigv4: re-sign the request: %w", err)
	}
	want, err := ParseAuthorization(cp.Header.Get("Authorization"))
	if err != nil {
		return Identity{}, fmt.Errorf("sigv4: read the re-signed request: %w", err)
	}
	// A header the caller signed but the signer never signs (user-agent, ...) makes the lists
	// differ, and the signatures with them.
	if subtle.ConstantTimeCompare([]byte(want.Signature), []byte(a.Signature)) != 1 {
		return Identity{}, fmt.Errorf("%w (signed headers %s, recomputed over %s)", ErrSignature,
			strings.Join(a.SignedHeaders, ";"), strings.Join(want.SignedHeaders, ";"))
	}
	return Identity{AccessKeyID: a.AccessKeyID, UserARN: cred.UserARN, Caller: cred.Caller}, nil
}

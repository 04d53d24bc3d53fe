//go:build unix

package devstack

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/sandbox/devissuer"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// API Gateway's own answers (403, {"message": ...}) to requests its checks refuse.
const (
	gwForbidden    = "Forbidden"
	gwMissingToken = "Missing Authentication Token"
	gwBadSignature = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	gwExpiredPrefix = "Signature expired: "
	// A bearer token where a SigV4 signature is due. API Gateway's text for it varies (an
	// incomplete signature, or "... not a valid key=value pair (missing equal-sign) in
	// Authorization header: 'Bearer ...'"); each names the Authorization header.
	gwNotSigV4 = "Authorization header"
)

// The matrix's users. Each plays one part, so the order of the requests only matters within a
// route (its successful DELETE comes last, see matrixRouteOrder).
const (
	iamUser   = "mx-iam"   // the {app_user_id} of the IAM routes
	tokenUser = "mx-alice" // the user of the valid token
	otherUser = "mx-bob"   // another user's (valid) token
	eventUser = "mx-events"
)

// The other app of the matrix config: a dev key, no auth.end_user.
const (
	otherApp    = "mx-other-shop"
	otherAppKey = "mx-other-dev-key"
)

// matrixCase is one set of credentials a request carries.
type matrixCase struct {
	name string
	// key is the x-api-key: keyApp, keyOther (another app's) or none.
	key string
	// bearer is the kind of the Authorization: Bearer token (bearerValid, ...), none when empty.
	bearer string
	// token is the bearer token itself (built once the dev stack runs).
	token string
	// sig is the kind of the SigV4 signature (sigValid, ...), none when empty.
	sig string
}

const (
	keyApp   = "app"
	keyOther = "other"

	bearerValid      = "valid"      // the dev issuer's, for the app and tokenUser
	bearerOtherUser  = "other-user" // the dev issuer's, for the app and otherUser
	bearerOtherApp   = "other-app"  // the dev issuer's, for the other app (its audience)
	bearerInvalid    = "invalid"    // refused by the verifier, whatever the reason
	sigValid         = "valid"
	sigWrongSecret   = "wrong-secret"
	sigSixMinutesOld = "6-minutes-old"
)

// matrixCases are the credential cases of the matrix; their tokens are filled in by
// matrixTokens.
func matrixCases() []matrixCase {
	return []matrixCase{
		{name: "no credential"},
		{name: "another app's key", key: keyOther},
		{name: "the app key alone", key: keyApp},
		{name: "app key + valid token", key: keyApp, bearer: bearerValid},
		{name: "app key + another user's token", key: keyApp, bearer: bearerOtherUser},
		{name: "app key + expired token", key: keyApp, bearer: bearerInvalid},
		{name: "app key + token of another issuer", key: keyApp, bearer: bearerInvalid},
		{name: "app key + token for another app", key: keyApp, bearer: bearerInvalid},
		{name: "app key + alg none token", key: keyApp, bearer: bearerInvalid},
		{name: "app key + HS256 token keyed with the public key PEM", key: keyApp, bearer: bearerInvalid},
		{name: "app key + HS256 token keyed with the public key DER", key: keyApp, bearer: bearerInvalid},
		{name: "app key + token with a tampered sub", key: keyApp, bearer: bearerInvalid},
		{name: "app key + token with an unknown kid", key: keyApp, bearer: bearerInvalid},
		{name: "another app's key + a valid token for that app", key: keyOther, bearer: bearerOtherApp},
		{name: "valid SigV4 + app key", key: keyApp, sig: sigValid},
		{name: "SigV4 with a wrong secret + app key", key: keyApp, sig: sigWrongSecret},
		{name: "SigV4 dated 6 minutes ago + app key", key: keyApp, sig: sigSixMinutesOld},
		{name: "valid SigV4 without the app key", sig: sigValid},
	}
}

// routeSpec is what the matrix needs of a route beyond the access table: a request that the
// route serves when its credential is right, and what that success looks like.
type routeSpec struct {
	ok   int                             // the status of a success
	body func() string                   // the request body, nil for none
	user func(matrixCase) string         // the {app_user_id} a success is about (checked in the answer), nil for none
	good func(doc map[string]any) string // extra check of a success's body: "" or what is wrong
}

// matrixRoutes gives every route of access.Routes its request and success. A route of the
// table missing here fails the test: a new route gets an expectation before it ships.
func matrixRoutes(eventsBody func() string) map[string]routeSpec {
	consent := func() string { return `{"ads_personalization": true}` }
	pathUser := func(matrixCase) string { return iamUser }
	meUser := func(c matrixCase) string {
		if c.bearer == bearerOtherUser {
			return otherUser
		}
		return tokenUser
	}
	accepted := func(doc map[string]any) string {
		if doc["accepted"] != float64(1) {
			return fmt.Sprintf("accepted %v, want 1", doc["accepted"])
		}
		return ""
	}
	erasure := func(doc map[string]any) string {
		if id, _ := doc["erasure_id"].(string); !strings.HasPrefix(id, "er_") {
			return fmt.Sprintf("erasure_id %v", doc["erasure_id"])
		}
		return ""
	}
	return map[string]routeSpec{
		"POST " + access.PathEvents:       {ok: 202, body: eventsBody, good: accepted},
		"POST " + access.PathServerEvents: {ok: 202, body: eventsBody, good: accepted},
		"GET " + access.PathHealth: {ok: 200, good: func(doc map[string]any) string {
			if doc["status"] != "ok" {
				return fmt.Sprintf("status %v", doc["status"])
			}
			return ""
		}},
		"GET " + access.PathOpenAPI: {ok: 200, good: func(doc map[string]any) string {
			if _, ok := doc["openapi"].(string); !ok {
				return "not an OpenAPI document"
			}
			return ""
		}},
		"GET " + access.PathUserSegments: {ok: 200, user: pathUser},
		"PUT " + access.PathUserConsent:  {ok: 200, body: consent, user: pathUser},
		"DELETE " + access.PathUser:      {ok: 202, good: erasure},
		"GET " + access.PathMeSegments:   {ok: 200, user: meUser},
		"PUT " + access.PathMeConsent:    {ok: 200, body: consent, user: meUser},
		"DELETE " + access.PathMe:        {ok: 202, good: erasure},
		"GET " + access.PathReportsAudiences: {ok: 200, good: func(doc map[string]any) string {
			if _, ok := doc["audiences"].([]any); !ok || doc["app"] == "" || doc["from"] == nil {
				return fmt.Sprintf("not a report: %v", doc)
			}
			return ""
		}},
	}
}

// want is the expected answer to one request.
type want struct {
	status int
	// message is API Gateway's {"message"} (exact), or with prefix true its beginning; "" for
	// an answer of a function.
	message string
	prefix  bool
	// challenge is the WWW-Authenticate header of a 401, "" for none.
	challenge string
	// success: the route served the request (routeSpec's checks apply).
	success bool
	// unknownUser: the answer is the one for a user the API never saw, byte for byte (no
	// existence oracle: an app without end-user tokens has no /v1/me, and says so that way).
	unknownUser bool
}

// expect is the access model: what a request carrying c gets on route r.
func expect(t *testing.T, r access.Route, spec routeSpec, c matrixCase) want {
	t.Helper()
	ok := want{status: spec.ok, success: true}
	switch r.Credential {
	case access.Public:
		return ok // API Gateway checks nothing on a public method
	case access.AppKey:
		if c.key == "" {
			return want{status: 403, message: gwForbidden}
		}
		return ok // another app's key sends that app's events; tokens and signatures are ignored
	case access.EndUser:
		switch {
		case c.key == "":
			return want{status: 403, message: gwForbidden}
		case c.key == keyOther:
			// The other app has no auth.end_user: no /v1/me routes, the unknown user's answer.
			return want{status: 404, unknownUser: true}
		case c.sig != "" || c.bearer == "":
			// A SigV4 Authorization header is no bearer token.
			return want{status: 401, challenge: "Bearer"}
		case c.bearer == bearerValid || c.bearer == bearerOtherUser:
			return ok
		default:
			return want{status: 401, challenge: `Bearer error="invalid_token"`}
		}
	case access.IAM:
		// API Gateway checks the signature first, then the key.
		switch c.sig {
		case "":
			if c.bearer != "" {
				return want{status: 403, message: gwNotSigV4, prefix: true}
			}
			return want{status: 403, message: gwMissingToken}
		case sigWrongSecret:
			return want{status: 403, message: gwBadSignature}
		case sigSixMinutesOld:
			return want{status: 403, message: gwExpiredPrefix, prefix: true}
		case sigValid:
			if c.key != keyApp {
				return want{status: 403, message: gwForbidden}
			}
			return ok
		}
	}
	t.Fatalf("no expectation for %s %s (%v) with %q", r.Method, r.Path, r.Credential, c.name)
	return want{}
}

// matrixRouteOrder runs the routes that change a user after those that read it: a route's
// successful DELETE (an erasure) must not precede the successful GET of the same user.
func matrixRouteOrder(routes []access.Route) []access.Route {
	rank := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "DELETE": 3}
	out := slices.Clone(routes)
	slices.SortStableFunc(out, func(a, b access.Route) int { return rank[a.Method] - rank[b.Method] })
	return out
}

// TestAuthorizationMatrix sends every route of the access table, with every credential case,
// to a running dev stack over HTTP and checks each answer against the access model (expect):
// the status, API Gateway's message where the gateway refuses, the WWW-Authenticate challenge
// of the /v1/me routes, and, for a success, that it is about the right user.
func TestAuthorizationMatrix(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	config := matrixConfig(t, root)
	// Dev admin credentials of the test's own: the signatures must use what the endpoints file
	// says, not the built-in defaults.
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false", "-config="+config,
		devenv.EnvAdminAccessKeyID+"=AKIDMATRIXTEST", devenv.EnvAdminSecretAccessKey+"=matrix-admin-secret")
	ds.ready(t)
	defer ds.stop(t, syscall.SIGTERM, 30*time.Second)
	e, err := devenv.ReadEndpoints(ds.devDir)
	if err != nil {
		t.Fatal(err)
	}
	if e.Credentials.AdminAccessKeyID != "AKIDMATRIXTEST" || e.APIKey == "" || e.App != "sample-shop" {
		t.Fatalf("endpoints file: app %q, key %q, admin key %q", e.App, e.APIKey, e.Credentials.AdminAccessKeyID)
	}
	c := &matrixClient{t: t, http: &http.Client{Timeout: 15 * time.Second}, e: e}

	// The users the successful requests are about exist (events folded into their state).
	seeded := []string{iamUser, tokenUser, otherUser, "mx-carol", "mx-dave", "mx-lazarus"}
	c.seed(seeded...)

	cases := matrixCases()
	tokens := matrixTokens(t, c, e.App)
	for i := range cases {
		tok, ok := tokens[cases[i].name]
		if cases[i].bearer != "" && !ok {
			t.Fatalf("case %q: no token built", cases[i].name)
		}
		cases[i].token = tok
	}
	// The answer for a user the API never saw, which the refusals of /v1/me must not differ from.
	unknown := c.iamSegments("mx-never-seen")
	if unknown.status != 404 {
		t.Fatalf("segments of a user never seen: %+v, want 404", unknown)
	}
	specs := matrixRoutes(func() string { return c.eventsBody(eventUser) })
	routes := matrixRouteOrder(access.Routes)
	n := 0
	for _, r := range routes {
		spec, ok := specs[r.Method+" "+r.Path]
		if !ok {
			t.Errorf("route %s %s (%v) has no expectation in matrixRoutes", r.Method, r.Path, r.Credential)
			continue
		}
		for _, mc := range cases {
			w := expect(t, r, spec, mc)
			path := strings.ReplaceAll(r.Path, "{app_user_id}", iamUser)
			var body string
			if spec.body != nil {
				body = spec.body()
			}
			status, hdr, raw := c.do(r.Method, path, body, mc)
			n++
			where := fmt.Sprintf("%s %s with %s", r.Method, path, mc.name)
			checkAnswer(t, where, w, spec, mc, status, hdr, raw, unknown.raw)
		}
	}
	t.Logf("authorisation matrix: %d routes × %d credential cases = %d requests", len(routes), len(cases), n)
	if t.Failed() {
		return
	}

	t.Run("a token reaches its own user only", func(t *testing.T) {
		carol := c.mint(e.App, "mx-carol")
		daveBefore := c.iamSegments("mx-dave")
		if daveBefore.status != 200 || len(daveBefore.segments) == 0 {
			t.Fatalf("mx-dave before: %+v", daveBefore)
		}
		// Carol withdraws her consent with her token: she leaves every segment, Dave stays.
		status, _, raw := c.do("PUT", access.PathMeConsent, `{"ads_personalization": false}`, matrixCase{key: keyApp, bearer: bearerValid, token: carol})
		if status != 200 || !strings.Contains(string(raw), `"app_user_id":"mx-carol"`) {
			t.Fatalf("PUT /v1/me/consent as mx-carol: %d %s", status, raw)
		}
		if got := c.iamSegments("mx-carol"); got.status != 200 || len(got.segments) != 0 {
			t.Errorf("mx-carol after withdrawing: %+v, want 200 without segments", got)
		}
		if got := c.iamSegments("mx-dave"); !slices.Equal(got.segments, daveBefore.segments) {
			t.Errorf("mx-dave after mx-carol's withdrawal: %+v, want %v untouched", got, daveBefore.segments)
		}
		// Carol erases herself: she is gone, Dave is still there.
		if status, _, raw := c.do("DELETE", access.PathMe, "", matrixCase{key: keyApp, bearer: bearerValid, token: carol}); status != 202 {
			t.Fatalf("DELETE /v1/me as mx-carol: %d %s", status, raw)
		}
		if got := c.iamSegments("mx-carol"); got.status != 404 {
			t.Errorf("mx-carol after erasing herself: %+v, want 404", got)
		}
		if got := c.iamSegments("mx-dave"); got.status != 200 || !slices.Equal(got.segments, daveBefore.segments) {
			t.Errorf("mx-dave after mx-carol's erasure: %+v, want 200 %v", got, daveBefore.segments)
		}
	})

	t.Run("an erased user comes back only by a grant", func(t *testing.T) {
		const user = "mx-lazarus"
		if status, _, raw := c.do("DELETE", "/v1/users/"+user, "", matrixCase{key: keyApp, sig: sigValid}); status != 202 {
			t.Fatalf("DELETE %s over IAM: %d %s", user, status, raw)
		}
		// The app key alone cannot grant consent on either route ...
		grant := `{"ads_personalization": true}`
		if status, _, raw := c.do("PUT", "/v1/users/"+user+"/consent", grant, matrixCase{key: keyApp}); status != 403 || gatewayMessage(raw) != gwMissingToken {
			t.Errorf("PUT /v1/users/%s/consent with the app key alone: %d %s, want 403 %s", user, status, raw, gwMissingToken)
		}
		if status, _, raw := c.do("PUT", access.PathMeConsent, grant, matrixCase{key: keyApp}); status != 401 {
			t.Errorf("PUT /v1/me/consent with the app key alone: %d %s, want 401", status, raw)
		}
		// ... nor by sending events that claim consent: the user's events are dropped while
		// another user's, in the same request, are folded.
		marker := "mx-marker"
		c.postEvents(c.eventsBody(user, marker))
		c.waitSegments(marker)
		if got := c.iamSegments(user); got.status != 404 {
			t.Fatalf("%s after events sent with the app key: %+v, want still erased (404)", user, got)
		}
		// The user's own token grants consent; the user's next events count again.
		status, _, raw := c.do("PUT", access.PathMeConsent, grant, matrixCase{key: keyApp, bearer: bearerValid, token: c.mint(e.App, user)})
		if status != 200 || !strings.Contains(string(raw), `"ads_personalization":true`) {
			t.Fatalf("PUT /v1/me/consent with %s's token: %d %s", user, status, raw)
		}
		c.postEvents(c.eventsBody(user))
		c.waitSegments(user)
	})
}

// checkAnswer checks one answer against w.
func checkAnswer(t *testing.T, where string, w want, spec routeSpec, mc matrixCase, status int, hdr http.Header, raw []byte, unknownUser string) {
	t.Helper()
	if status != w.status {
		t.Errorf("%s: status %d, want %d; body %s", where, status, w.status, raw)
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Errorf("%s: body %q is not a JSON object: %v", where, raw, err)
		return
	}
	msg, fromGateway := doc["message"].(string)
	switch {
	case w.message == "" && fromGateway:
		t.Errorf("%s: API Gateway answered %q, want the function's answer", where, msg)
	case w.message != "" && w.prefix && !strings.HasPrefix(msg, w.message):
		t.Errorf("%s: message %q, want one starting with %q", where, msg, w.message)
	case w.message != "" && !w.prefix && msg != w.message:
		t.Errorf("%s: message %q, want %q", where, msg, w.message)
	}
	if w.unknownUser && string(raw) != unknownUser {
		t.Errorf("%s: body %s, want the unknown user's %s", where, raw, unknownUser)
	}
	if got := hdr.Get("WWW-Authenticate"); got != w.challenge {
		t.Errorf("%s: WWW-Authenticate %q, want %q", where, got, w.challenge)
	}
	if !w.success {
		return
	}
	if spec.user != nil {
		if got, want := doc["app_user_id"], spec.user(mc); got != want {
			t.Errorf("%s: answered about app_user_id %v, want %q", where, got, want)
		}
	}
	if spec.good != nil {
		if problem := spec.good(doc); problem != "" {
			t.Errorf("%s: %s; body %s", where, problem, raw)
		}
	}
}

func gatewayMessage(raw []byte) string {
	var doc struct{ Message string }
	json.Unmarshal(raw, &doc)
	return doc.Message
}

// matrixConfig writes the sample config with a second app: its own dev key, no
// auth.end_user (so no /v1/me routes), its own Meta ids. It returns the file's path.
func matrixConfig(t *testing.T, root string) string {
	t.Helper()
	return withOtherApp(t, filepath.Join(root, "infra", "config", "apps.json"), "Matrix test: another app",
		map[string]any{"name": otherApp, "dev_value": otherAppKey}, func(first map[string]any) {
			if _, ok := first["auth"].(map[string]any)["end_user"]; !ok {
				t.Fatal("the sample app has no auth.end_user: the /v1/me expectations assume it")
			}
		})
}

// withOtherApp writes the config at src with a second app (otherApp, named name, with apiKey as
// its api_key, no auth, its own Meta ids) copied from the first, which check sees first. It
// returns the new file's path.
func withOtherApp(t *testing.T, src, name string, apiKey map[string]any, check func(first map[string]any)) string {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	apps, _ := doc["apps"].([]any)
	if len(apps) == 0 {
		t.Fatalf("%s has no app", src)
	}
	first, _ := apps[0].(map[string]any)
	if check != nil {
		check(first)
	}
	var other map[string]any
	if err := json.Unmarshal(mustMarshal(t, first), &other); err != nil { // a deep copy
		t.Fatal(err)
	}
	other["id"], other["name"] = otherApp, name
	other["api_key"] = apiKey
	other["meta"] = map[string]any{"dataset_id": "6543210987654321", "ad_account_id": "act_6543210987"}
	delete(other, "auth")
	doc["apps"] = append(apps, other)
	delete(doc, "$schema")
	path := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(path, mustMarshal(t, doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// matrixTokens builds the bearer token of every case that carries one, by case name.
func matrixTokens(t *testing.T, c *matrixClient, app string) map[string]string {
	t.Helper()
	now := time.Now()
	valid := c.mint(app, tokenUser)
	expired, err := devissuer.Mint(app, tokenUser, time.Hour, now.Add(-2*time.Hour)) // expired an hour ago
	if err != nil {
		t.Fatal(err)
	}
	wrongAud, err := devissuer.Mint(otherApp, tokenUser, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(iss string) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Issuer: iss, Subject: tokenUser, Audience: jwt.ClaimStrings{app},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}
	}
	sign := func(method jwt.SigningMethod, kid string, cl jwt.RegisteredClaims, key any) string {
		t.Helper()
		tok := jwt.NewWithClaims(method, cl)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatalf("sign a %s token: %v", method.Alg(), err)
		}
		return s
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The dev issuer's public key, as anyone gets it: from the JWKS the dev stack serves.
	pub := c.devPublicKey()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	// The payload of the valid token with another sub, its signature kept.
	parts := strings.Split(valid, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(payload, []byte(`"sub":"`+tokenUser+`"`), []byte(`"sub":"`+otherUser+`"`), 1)
	if bytes.Equal(tampered, payload) {
		t.Fatalf("no sub %q in the payload %s", tokenUser, payload)
	}
	return map[string]string{
		"app key + valid token":                               valid,
		"app key + another user's token":                      c.mint(app, otherUser),
		"app key + expired token":                             expired,
		"app key + token of another issuer":                   sign(jwt.SigningMethodRS256, "other-issuer-1", claims("https://issuer.example.com/"), otherKey),
		"app key + token for another app":                     wrongAud,
		"app key + alg none token":                            sign(jwt.SigningMethodNone, devissuer.KeyID, claims(devissuer.Issuer), jwt.UnsafeAllowNoneSignatureType),
		"app key + HS256 token keyed with the public key PEM": sign(jwt.SigningMethodHS256, devissuer.KeyID, claims(devissuer.Issuer), pemKey),
		"app key + HS256 token keyed with the public key DER": sign(jwt.SigningMethodHS256, devissuer.KeyID, claims(devissuer.Issuer), der),
		"app key + token with a tampered sub":                 parts[0] + "." + base64.RawURLEncoding.EncodeToString(tampered) + "." + parts[2],
		"app key + token with an unknown kid":                 sign(jwt.SigningMethodRS256, "not-in-the-jwks", claims(devissuer.Issuer), otherKey),
		"another app's key + a valid token for that app":      c.mint(otherApp, tokenUser),
	}
}

// matrixClient sends the matrix's requests to the dev stack.
type matrixClient struct {
	t    *testing.T
	http *http.Client
	e    *devenv.Endpoints
	seq  int
}

// do sends one request with the credentials of mc and returns the answer.
func (c *matrixClient) do(method, path, body string, mc matrixCase) (int, http.Header, []byte) {
	t := c.t
	t.Helper()
	req, err := http.NewRequest(method, c.e.APIURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch mc.key {
	case keyApp:
		req.Header.Set("x-api-key", c.e.APIKey)
	case keyOther:
		req.Header.Set("x-api-key", otherAppKey)
	}
	if mc.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+mc.token)
	}
	if mc.sig != "" {
		creds := aws.Credentials{AccessKeyID: c.e.Credentials.AdminAccessKeyID, SecretAccessKey: c.e.Credentials.AdminSecretAccessKey}
		at := time.Now()
		switch mc.sig {
		case sigWrongSecret:
			creds.SecretAccessKey = "not-the-" + creds.SecretAccessKey
		case sigSixMinutesOld:
			at = at.Add(-6 * time.Minute)
		}
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(req.Context(), creds, req, hex.EncodeToString(sum[:]), "execute-api", c.e.Credentials.APIRegion, at); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// mint returns a valid dev token of app for user.
func (c *matrixClient) mint(app, user string) string {
	c.t.Helper()
	tok, err := devissuer.Mint(app, user, time.Hour, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// devPublicKey reads the dev issuer's key from the JWKS the dev stack serves.
func (c *matrixClient) devPublicKey() *rsa.PublicKey {
	t := c.t
	t.Helper()
	var set struct {
		Keys []struct{ KID, N, E string }
	}
	getJSON(t, c.http, c.e.APIURL+devissuer.JWKSPath, &set)
	if len(set.Keys) != 1 || set.Keys[0].KID != devissuer.KeyID {
		t.Fatalf("dev JWKS %+v, want the one key %s", set, devissuer.KeyID)
	}
	n, errN := base64.RawURLEncoding.DecodeString(set.Keys[0].N)
	e, errE := base64.RawURLEncoding.DecodeString(set.Keys[0].E)
	if errN != nil || errE != nil {
		t.Fatalf("dev JWK: %v %v", errN, errE)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

// eventsBody is a valid events request: one first-day purchase per user (each a new
// installer and a VIP), with consent and a fresh event id.
func (c *matrixClient) eventsBody(users ...string) string {
	var evs []map[string]any
	for _, u := range users {
		c.seq++
		evs = append(evs, map[string]any{
			"event_id": fmt.Sprintf("mx-%d-%d", time.Now().UnixNano(), c.seq), "event_name": "fb_mobile_purchase",
			"event_time":  time.Now().Add(-time.Minute).Unix(),
			"user":        map[string]any{"app_user_id": u, "email": u + "@example.com"},
			"device":      map[string]any{"platform": "android", "os_version": "14"},
			"consent":     map[string]any{"ads_personalization": true},
			"custom_data": map[string]any{"value": 250, "currency": "USD"},
		})
	}
	return string(mustMarshal(c.t, map[string]any{"events": evs}))
}

// postEvents sends body to POST /v1/events with the app key.
func (c *matrixClient) postEvents(body string) {
	c.t.Helper()
	if status, _, raw := c.do("POST", access.PathEvents, body, matrixCase{key: keyApp}); status != 202 {
		c.t.Fatalf("POST /v1/events: %d %s", status, raw)
	}
}

// seed sends one event per user and waits until the pipeline has folded each into its state.
func (c *matrixClient) seed(users ...string) {
	c.t.Helper()
	c.postEvents(c.eventsBody(users...))
	for _, u := range users {
		c.waitSegments(u)
	}
}

// segmentsAnswer is GET /v1/users/{id}/segments over IAM.
type segmentsAnswer struct {
	status   int
	segments []string
	raw      string
}

func (c *matrixClient) iamSegments(user string) segmentsAnswer {
	c.t.Helper()
	status, _, raw := c.do("GET", "/v1/users/"+user+"/segments", "", matrixCase{key: keyApp, sig: sigValid})
	var doc struct{ Segments []string }
	json.Unmarshal(raw, &doc)
	slices.Sort(doc.Segments)
	return segmentsAnswer{status: status, segments: doc.Segments, raw: string(raw)}
}

// waitSegments waits until user is in a segment (its events were folded).
func (c *matrixClient) waitSegments(user string) {
	c.t.Helper()
	const wait = 20 * time.Second
	deadline := time.Now().Add(wait)
	for {
		got := c.iamSegments(user)
		if got.status == 200 && len(got.segments) > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not segmented after %s: %+v", user, wait, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

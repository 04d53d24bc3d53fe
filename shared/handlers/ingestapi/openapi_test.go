package ingestapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/endusertest"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
	"github.com/retarget-dev/retarget/shared/testkit/memstream"
)

// gatewayOnly are documented answers API Gateway gives itself, before any function runs: the
// usage plan's throttle, on every route that takes the app key.
var gatewayOnly = func() map[string]string {
	m := map[string]string{}
	for _, r := range access.Routes {
		if r.Credential.NeedsAppKey() {
			m[r.Method+" "+r.Path+" 429"] = "usage plan throttle"
		}
	}
	return m
}()

// apiCase makes a request that must get one documented answer from the real handlers.
type apiCase struct {
	method, resource, path, body string
	key                          bool
	// iam adds an IAM caller (as API Gateway does once SigV4 checked out).
	iam bool
	// token is the end user's token: a user id (a valid token of that user), or one of the
	// endusertest tokens.
	token string
	// plainApp sends the key of an app without end-user tokens.
	plainApp bool
	// broken makes the stores fail (503 answers).
	broken bool
	// query is the query string.
	query map[string]string
}

// TestOpenAPIMatchesHandlers: every documented route, status and response field is what the
// real handlers answer, and every route the handlers serve is documented.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	var doc openAPI
	if err := json.Unmarshal(ingestapi.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	bodies := newBodyValidator(t)
	valid := ingesttest.RefreshEventTimes(t, ingesttest.FixtureBody(t, "valid-batch.json"), time.Now())
	cases := map[string]apiCase{
		"POST /v1/events 202":                      {method: "POST", resource: ingestapi.RouteEvents, body: valid, key: true},
		"POST /v1/events 400":                      {method: "POST", resource: ingestapi.RouteEvents, body: `{"events": [{"event_id": "x"}]}`, key: true},
		"POST /v1/events 401":                      {method: "POST", resource: ingestapi.RouteEvents, body: valid},
		"POST /v1/events 413":                      {method: "POST", resource: ingestapi.RouteEvents, body: ingesttest.FixtureBody(t, "oversized-batch.json"), key: true},
		"POST /v1/events 503":                      {method: "POST", resource: ingestapi.RouteEvents, body: valid, key: true, broken: true},
		"POST /v1/server/events 202":               {method: "POST", resource: ingestapi.RouteServerEvents, body: valid, key: true, iam: true},
		"POST /v1/server/events 400":               {method: "POST", resource: ingestapi.RouteServerEvents, body: `{"events": [{"event_id": "x"}]}`, key: true, iam: true},
		"POST /v1/server/events 401":               {method: "POST", resource: ingestapi.RouteServerEvents, body: valid, iam: true},
		"POST /v1/server/events 403":               {method: "POST", resource: ingestapi.RouteServerEvents, body: valid, key: true},
		"POST /v1/server/events 413":               {method: "POST", resource: ingestapi.RouteServerEvents, body: ingesttest.FixtureBody(t, "oversized-batch.json"), key: true, iam: true},
		"POST /v1/server/events 503":               {method: "POST", resource: ingestapi.RouteServerEvents, body: valid, key: true, iam: true, broken: true},
		"GET /v1/health 200":                       {method: "GET", resource: ingestapi.RouteHealth},
		"GET /v1/openapi.json 200":                 {method: "GET", resource: ingestapi.RouteOpenAPI},
		"GET /v1/users/{app_user_id}/segments 200": {method: "GET", resource: usersapi.Route, path: "known", key: true, iam: true},
		"GET /v1/users/{app_user_id}/segments 400": {method: "GET", resource: usersapi.Route, path: " ", key: true, iam: true},
		"GET /v1/users/{app_user_id}/segments 401": {method: "GET", resource: usersapi.Route, path: "known", iam: true},
		"GET /v1/users/{app_user_id}/segments 403": {method: "GET", resource: usersapi.Route, path: "known", key: true},
		"GET /v1/users/{app_user_id}/segments 404": {method: "GET", resource: usersapi.Route, path: "nobody", key: true, iam: true},
		"GET /v1/users/{app_user_id}/segments 503": {method: "GET", resource: usersapi.Route, path: "known", key: true, iam: true, broken: true},
		"PUT /v1/users/{app_user_id}/consent 200":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{"ads_personalization": false, "ldu": true}`, key: true, iam: true},
		"PUT /v1/users/{app_user_id}/consent 400":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{}`, key: true, iam: true},
		"PUT /v1/users/{app_user_id}/consent 401":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{"ldu": true}`, iam: true},
		"PUT /v1/users/{app_user_id}/consent 403":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{"ldu": true}`, key: true},
		"PUT /v1/users/{app_user_id}/consent 503":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{"ldu": true}`, key: true, iam: true, broken: true},
		"DELETE /v1/users/{app_user_id} 202":       {method: "DELETE", resource: usersapi.RouteUser, path: "known", key: true, iam: true},
		"DELETE /v1/users/{app_user_id} 400":       {method: "DELETE", resource: usersapi.RouteUser, path: " ", key: true, iam: true},
		"DELETE /v1/users/{app_user_id} 401":       {method: "DELETE", resource: usersapi.RouteUser, path: "known", iam: true},
		"DELETE /v1/users/{app_user_id} 403":       {method: "DELETE", resource: usersapi.RouteUser, path: "known", key: true},
		"DELETE /v1/users/{app_user_id} 503":       {method: "DELETE", resource: usersapi.RouteUser, path: "known", key: true, iam: true, broken: true},
		"GET /v1/me/segments 200":                  {method: "GET", resource: usersapi.RouteMeSegments, key: true, token: "known"},
		"GET /v1/me/segments 401":                  {method: "GET", resource: usersapi.RouteMeSegments, key: true, token: endusertest.Invalid},
		"GET /v1/me/segments 404":                  {method: "GET", resource: usersapi.RouteMeSegments, key: true, token: "nobody"},
		"GET /v1/me/segments 503":                  {method: "GET", resource: usersapi.RouteMeSegments, key: true, token: endusertest.Unverifiable},
		"PUT /v1/me/consent 200":                   {method: "PUT", resource: usersapi.RouteMeConsent, body: `{"ads_personalization": false}`, key: true, token: "known"},
		"PUT /v1/me/consent 400":                   {method: "PUT", resource: usersapi.RouteMeConsent, body: `{}`, key: true, token: "known"},
		"PUT /v1/me/consent 401":                   {method: "PUT", resource: usersapi.RouteMeConsent, body: `{"ldu": true}`, key: true},
		"PUT /v1/me/consent 404":                   {method: "PUT", resource: usersapi.RouteMeConsent, body: `{"ldu": true}`, key: true, plainApp: true, token: "known"},
		"PUT /v1/me/consent 503":                   {method: "PUT", resource: usersapi.RouteMeConsent, body: `{"ldu": true}`, key: true, token: "known", broken: true},
		"DELETE /v1/me 202":                        {method: "DELETE", resource: usersapi.RouteMe, key: true, token: "known"},
		"DELETE /v1/me 401":                        {method: "DELETE", resource: usersapi.RouteMe, token: "known"},
		"DELETE /v1/me 404":                        {method: "DELETE", resource: usersapi.RouteMe, key: true, plainApp: true, token: "known"},
		"DELETE /v1/me 503":                        {method: "DELETE", resource: usersapi.RouteMe, key: true, token: endusertest.Unverifiable},
		"GET /v1/reports/audiences 200":            {method: "GET", resource: usersapi.RouteReports, query: map[string]string{"from": "2026-02-01", "to": "2026-02-28"}, key: true, iam: true},
		"GET /v1/reports/audiences 400":            {method: "GET", resource: usersapi.RouteReports, query: map[string]string{"from": "2026-03-01", "to": "2026-02-28"}, key: true, iam: true},
		"GET /v1/reports/audiences 401":            {method: "GET", resource: usersapi.RouteReports, iam: true},
		"GET /v1/reports/audiences 403":            {method: "GET", resource: usersapi.RouteReports, key: true},
		"GET /v1/reports/audiences 503":            {method: "GET", resource: usersapi.RouteReports, key: true, iam: true, broken: true},
	}

	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for status, resp := range op.Responses {
				name := fmt.Sprintf("%s %s %s", strings.ToUpper(method), path, status)
				documented[name] = true
				if why, ok := gatewayOnly[name]; ok {
					t.Logf("%s: answered by API Gateway (%s)", name, why)
					continue
				}
				c, ok := cases[name]
				if !ok {
					t.Errorf("%s is documented but no case makes the handlers answer it", name)
					continue
				}
				t.Run(name, func(t *testing.T) {
					got := newAPI(t, c.broken).call(t, c)
					if fmt.Sprint(got.StatusCode) != status {
						t.Fatalf("status %d, want %s; body %s", got.StatusCode, status, got.Body)
					}
					schema := doc.responseSchema(resp, "paths", path, method, "responses", status)
					if schema == "" {
						return // documented without a body
					}
					if ct := got.Headers["Content-Type"]; ct != "application/json" {
						t.Errorf("content type %q", ct)
					}
					if err := bodies.validate(schema, []byte(got.Body)); err != nil {
						t.Errorf("%v\nbody %s", err, got.Body)
					}
				})
			}
		}
	}
	for name := range cases {
		if !documented[name] {
			t.Errorf("the handlers answer %s, which openapi.json does not document", name)
		}
	}
	// Every route of the access table is documented with its method, and nothing else is.
	for _, r := range access.Routes {
		if _, ok := doc.Paths[r.Path][strings.ToLower(r.Method)]; !ok {
			t.Errorf("%s %s is served but not documented", r.Method, r.Path)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if _, ok := access.Find(strings.ToUpper(method), path); !ok {
				t.Errorf("%s %s is documented but not in the access table", method, path)
			}
		}
	}
}

// schemesOf are the security requirement each credential of the access table is documented
// with: the names of the schemes that must all be met (one requirement object), none for a
// public route.
var schemesOf = map[access.Credential][]string{
	access.Public:  nil,
	access.AppKey:  {"appKey"},
	access.EndUser: {"appKey", "endUserToken"},
	access.IAM:     {"appKey", "sigv4"},
}

// TestOpenAPISecurityMatchesAccessTable: every operation declares exactly the credential the
// access table gives its route, the schemes are the three the API uses, and every operation
// has a summary and an operation id.
func TestOpenAPISecurityMatchesAccessTable(t *testing.T) {
	var doc struct {
		Info struct {
			License struct {
				Name string `json:"name"`
			} `json:"license"`
		} `json:"info"`
		Security *[]map[string][]string `json:"security"`
		Paths    map[string]map[string]struct {
			OperationID string                 `json:"operationId"`
			Summary     string                 `json:"summary"`
			Security    *[]map[string][]string `json:"security"`
		} `json:"paths"`
		Components struct {
			SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(ingestapi.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.License.Name == "" {
		t.Error("info.license has no name")
	}
	if doc.Security != nil {
		t.Error("a document-wide security requirement: each operation declares its own, from the access table")
	}
	wantSchemes := map[string]map[string]any{
		"appKey":       {"type": "apiKey", "in": "header", "name": "x-api-key"},
		"endUserToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
		"sigv4":        {"type": "apiKey", "in": "header", "name": "Authorization", "x-amazon-apigateway-authtype": "awsSigv4"},
	}
	if len(doc.Components.SecuritySchemes) != len(wantSchemes) {
		t.Errorf("security schemes %v, want %v", slices.Sorted(maps.Keys(doc.Components.SecuritySchemes)), slices.Sorted(maps.Keys(wantSchemes)))
	}
	for name, want := range wantSchemes {
		got := doc.Components.SecuritySchemes[name]
		for k, v := range want {
			if got[k] != v {
				t.Errorf("security scheme %s: %s = %v, want %v", name, k, got[k], v)
			}
		}
	}
	ids := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			name := strings.ToUpper(method) + " " + path
			if op.Summary == "" || op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: summary %q, operationId %q (each unique)", name, op.Summary, op.OperationID)
			}
			ids[op.OperationID] = true
			route, ok := access.Find(strings.ToUpper(method), path)
			if !ok {
				t.Errorf("%s is documented but not in the access table", name)
				continue
			}
			if op.Security == nil {
				t.Errorf("%s declares no security (want %s)", name, route.Credential)
				continue
			}
			var got [][]string
			for _, req := range *op.Security {
				got = append(got, slices.Sorted(maps.Keys(req)))
			}
			want := [][]string{}
			if s := schemesOf[route.Credential]; s != nil {
				want = append(want, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
				t.Errorf("%s: security %v, want %v (%s)", name, got, want, route.Credential)
			}
		}
	}
	for _, r := range access.Routes {
		if _, ok := doc.Paths[r.Path][strings.ToLower(r.Method)]; !ok {
			t.Errorf("%s %s (%s) is not documented", r.Method, r.Path, r.Credential)
		}
	}
}

// The validator itself: a body missing a required field, with a wrong type or with a field
// the document does not list fails.
func TestOpenAPIValidatorCatchesMismatches(t *testing.T) {
	bodies := newBodyValidator(t)
	ref := pointer("components", "schemas", "EventsResponse")
	for _, bad := range []string{`{"accepted": 1}`, `{"accepted": "1", "rejected": []}`, `{"accepted": 1, "rejected": [{"index": 0}]}`, `[]`,
		`{"accepted": 1, "rejected": [], "acepted": 1}`, `{"accepted": 1, "rejected": [{"index": 0, "errors": [{"field": "f", "reason": "r", "hint": "h"}]}]}`} {
		if err := bodies.validate(ref, []byte(bad)); err == nil {
			t.Errorf("%s validated against EventsResponse", bad)
		}
	}
	if err := bodies.validate(ref, []byte(`{"accepted": 1, "rejected": [{"index": 0, "errors": [{"field": "f", "reason": "r"}]}]}`)); err != nil {
		t.Errorf("a valid response failed: %v", err)
	}
	if err := bodies.validate(ref, []byte(`{"accepted": 1,`)); err == nil {
		t.Error("a body that is not JSON validated")
	}
}

// api holds the two real handlers behind the documented routes.
type api struct {
	ingest   *ingestapi.Handler
	users    *usersapi.Handler
	app      string // the app of devKey
	verifier *endusertest.Verifier
}

// The keys of the two apps: the sample app, which takes end-user tokens, and a copy of it
// that does not.
const (
	devKey   = "openapi-dev-key"
	plainKey = "openapi-plain-key"
)

func newAPI(t *testing.T, broken bool) *api {
	t.Helper()
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	plain := apps.Apps[0]
	plain.ID, plain.Auth.EndUser = "plain-shop", nil
	apps.Apps = append(apps.Apps, plain)
	apps.Apps[0].Auth.EndUser = &appconfig.EndUserAuth{Issuer: "https://id.example.com", Audiences: []string{"shop"}, JWKSURL: "https://id.example.com/jwks"}
	pseudo, _ := identity.NewPseudonymizer([]byte("openapi-test-pepper-0123456789"))
	rules, err := segments.ForConfig(apps)
	if err != nil {
		t.Fatal(err)
	}
	app := apps.Apps[0].ID
	dev := map[string]string{devKey: app, plainKey: plain.ID}
	s := memstream.New()
	if broken {
		s.SetCallFault(func(int) error { return errors.New("stream down") })
	}
	ingest, err := ingestapi.New(ingestapi.Config{Apps: apps, Parser: appevent.NewParser(pseudo), DevKeys: dev,
		Publisher: stream.NewPublisher(s, stream.Options{MaxAttempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }})})
	if err != nil {
		t.Fatal(err)
	}
	store := memstate.New()
	st := segments.State{FirstSeen: time.Now().Unix(), LastSeen: time.Now().Unix(), Consent: segments.Consent{At: time.Now().Unix()}}
	raw, _ := json.Marshal(&st)
	if err := store.PutUser(context.Background(), ports.UserRecord{App: app, UserKey: pseudo.UserKey(app, identity.KindAppUserID, "known"), State: raw, Version: 1}); err != nil {
		t.Fatal(err)
	}
	var users segmentStore = store
	if broken {
		users = brokenStore{store}
	}
	verifier := &endusertest.Verifier{}
	reports := func(_ context.Context, app, from, to string, _ time.Time) (measure.Report, error) {
		if broken {
			return measure.Report{}, errDown
		}
		return sampleReport(app, from, to), nil
	}
	h, err := usersapi.New(usersapi.Config{Apps: apps, Rules: rules, Store: users, Pseudo: pseudo, DevKeys: dev, Consents: users, Verifier: verifier,
		Reports: reports})
	if err != nil {
		t.Fatal(err)
	}
	return &api{ingest: ingest, users: h, app: app, verifier: verifier}
}

type segmentStore interface {
	ports.SegmentStore
	ports.ConsentStore
}

type brokenStore struct{ *memstate.Store }

var errDown = errors.New("table unavailable")

func (brokenStore) GetUser(context.Context, string, string) (ports.UserRecord, bool, error) {
	return ports.UserRecord{}, false, errDown
}
func (brokenStore) Consents(context.Context, string, []string) (map[string]ports.UserConsent, error) {
	return nil, errDown
}

func (a *api) call(t *testing.T, c apiCase) events.APIGatewayProxyResponse {
	t.Helper()
	req := events.APIGatewayProxyRequest{HTTPMethod: c.method, Resource: c.resource, Body: c.body,
		Path: strings.Replace(c.resource, "{app_user_id}", c.path, 1), Headers: map[string]string{}, QueryStringParameters: c.query}
	if c.path != "" {
		req.PathParameters = map[string]string{"app_user_id": c.path}
	}
	switch {
	case c.key && c.plainApp:
		req.Headers["x-api-key"] = plainKey
	case c.key:
		req.Headers["x-api-key"] = devKey
	}
	if c.iam {
		req.RequestContext.Identity.UserArn = "arn:aws:iam::123456789012:user/openapi-test"
	}
	switch c.token {
	case "":
	case endusertest.Invalid, endusertest.Unverifiable:
		req.Headers["Authorization"] = "Bearer " + c.token
	default:
		req.Headers["Authorization"] = "Bearer " + a.verifier.Token(a.app, c.token)
	}
	handle := a.ingest.Handle
	if _, ok := usersapi.Routes[c.resource]; ok {
		handle = a.users.Handle
	}
	resp, err := handle(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// openAPI is the part of an OpenAPI 3.1 document the test reads to find routes and responses.
type openAPI struct {
	OpenAPI    string                          `json:"openapi"`
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Responses map[string]response `json:"responses"`
	} `json:"components"`
}

type operation struct {
	Responses map[string]response `json:"responses"`
}

type response struct {
	Ref     string `json:"$ref"`
	Content map[string]struct {
		Schema json.RawMessage `json:"schema"`
	} `json:"content"`
}

var responseRef = regexp.MustCompile(`^#/components/responses/(\w+)$`)

// responseSchema returns the JSON pointer to the schema of a response's application/json
// body, "" if it has none; at is the pointer's tokens to the response itself.
func (d *openAPI) responseSchema(r response, at ...string) string {
	if m := responseRef.FindStringSubmatch(r.Ref); m != nil {
		r, at = d.Components.Responses[m[1]], []string{"components", "responses", m[1]}
	}
	if _, ok := r.Content["application/json"]; !ok {
		return ""
	}
	return pointer(append(at, "content", "application/json", "schema")...)
}

// pointer builds a JSON pointer from unescaped tokens.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

// openAPIFile is where the compiler files the document (the embedded copy of this file).
const openAPIFile = "openapi.json"

// bodyValidator checks response bodies against schemas of openapi.json. An OpenAPI 3.1
// document's schemas are JSON Schema 2020-12 (its default dialect only adds annotations such
// as discriminator and example), so a 2020-12 validator reads them as they are and resolves
// their "#/components/schemas/..." references within the document.
type bodyValidator struct {
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema
}

func newBodyValidator(t *testing.T) *bodyValidator {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(ingestapi.OpenAPI))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if d, ok := doc.(map[string]any)["jsonSchemaDialect"]; ok {
		t.Fatalf("openapi.json sets jsonSchemaDialect %v: validate with that dialect", d)
	}
	closeDocumentedObjects(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(openAPIFile, doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &bodyValidator{compiler: c, compiled: map[string]*jsonschema.Schema{}}
}

// validate checks a JSON body against the schema at ptr in openapi.json.
func (v *bodyValidator) validate(ptr string, body []byte) error {
	sch, ok := v.compiled[ptr]
	if !ok {
		var tokens []string
		for _, tok := range strings.Split(ptr, "/") {
			tokens = append(tokens, url.PathEscape(tok))
		}
		var err error
		if sch, err = v.compiler.Compile(openAPIFile + "#" + strings.Join(tokens, "/")); err != nil {
			return fmt.Errorf("schema %s: %w", ptr, err)
		}
		v.compiled[ptr] = sch
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	return sch.Validate(inst)
}

// closeDocumentedObjects makes every object schema that lists its properties reject the
// others, unless it says otherwise with additionalProperties. JSON Schema lets unlisted
// properties through, which keeps the published document open for clients; the test holds
// the handlers to it strictly, so a field they send but the document omits fails.
func closeDocumentedObjects(doc any) {
	root, _ := doc.(map[string]any)
	components, _ := root["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	for _, s := range schemas {
		closeSchema(s)
	}
	var responses []any
	collect := func(rs map[string]any) {
		for _, r := range rs {
			responses = append(responses, r)
		}
	}
	paths, _ := root["paths"].(map[string]any)
	for _, ops := range paths {
		ops, _ := ops.(map[string]any)
		for _, op := range ops {
			op, _ := op.(map[string]any)
			rs, _ := op["responses"].(map[string]any)
			collect(rs)
		}
	}
	rs, _ := components["responses"].(map[string]any)
	collect(rs)
	for _, r := range responses {
		r, _ := r.(map[string]any)
		content, _ := r["content"].(map[string]any)
		for _, media := range content {
			media, _ := media.(map[string]any)
			closeSchema(media["schema"])
		}
	}
}

// closeSchema applies closeDocumentedObjects to one schema and its subschemas.
func closeSchema(s any) {
	obj, ok := s.(map[string]any)
	if !ok {
		return
	}
	if props, ok := obj["properties"].(map[string]any); ok {
		if _, set := obj["additionalProperties"]; !set {
			obj["additionalProperties"] = false
		}
		for _, p := range props {
			closeSchema(p)
		}
	}
	closeSchema(obj["items"])
	closeSchema(obj["additionalProperties"])
	for _, kw := range []string{"oneOf", "anyOf", "allOf"} {
		alts, _ := obj[kw].([]any)
		for _, alt := range alts {
			closeSchema(alt)
		}
	}
}

// sampleReport is a report with every field set, one audience below the minimum sample (null
// KPIs and a note) and a group's spend: every documented field and both forms of the nullable
// ones reach the schema.
func sampleReport(app, from, to string) measure.Report {
	f := func(v float64) *float64 { return &v }
	arm := func(users, re int64) measure.ArmStats {
		return measure.ArmStats{Users: users, Reengaged1d: re / 2, Reengaged7d: re, Reengaged28d: re + 1, Purchasers28d: re / 4, Revenue28d: 12.5,
			Retention1d: f(0.1), Retention7d: f(0.2), Retention28d: f(0.3), ValuePerUser28d: f(1.25)}
	}
	lift := measure.Lift{Difference: f(0.1), CILow: f(0.02), CIHigh: f(0.18), PValue: f(0.01), Significant: true}
	short := measure.Lift{Note: "not enough data"}
	return measure.Report{App: app, From: from, To: to, GeneratedAt: "2026-03-10T12:00:00Z",
		Audiences: []measure.AudienceReport{
			{App: app, Segment: "cart_abandoner", AudienceID: "120000000001", HoldoutAudienceID: "120000000002", HoldoutFraction: 0.1,
				Treated: arm(900, 270), Holdout: arm(100, 20), HoldoutShare: f(0.1), Lift1d: lift, Lift7d: lift, Lift28d: lift,
				IncrementalReengaged7d: f(90), IncrementalRevenue28d: f(40), Spend: f(450), Currency: "USD",
				CostPerIncrementalReengagement: f(5), IncrementalROAS: f(0.09), Contaminated: true, ContaminatedDays: []string{from},
				WindowsOpen: true, Days: []measure.DayPoint{{Day: from, TreatedUsers: 900, HoldoutUsers: 100, TreatedReengaged7d: 270,
					HoldoutReengaged7d: 20, TreatedRate7d: f(0.3), HoldoutRate7d: f(0.2), Spend: 450}}, Notes: []string{"an active ad set did not exclude the holdout audience"}},
			{App: app, Segment: "lapsed", Treated: measure.ArmStats{Users: 9}, Holdout: measure.ArmStats{Users: 1}, Lift1d: short, Lift7d: short, Lift28d: short,
				Currency: "USD", Notes: []string{"not enough data"}},
		},
		Groups: []measure.GroupSpend{{Audiences: []string{"cart_abandoner", "lapsed"}, Spend: 80, Currency: "USD", AdSets: []string{"23850000000001"},
			Note: "spend of ad sets that include several managed audiences is not split"}}}
}

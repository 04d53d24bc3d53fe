package ingestapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
	"github.com/retarget-dev/retarget/shared/testkit/memstream"
)

// gatewayOnly are documented answers API Gateway gives itself, before any function runs.
var gatewayOnly = map[string]string{
	"POST /v1/events 429": "usage plan throttle",
}

// apiCase makes a request that must get one documented answer from the real handlers.
type apiCase struct {
	method, resource, path, body string
	key                          bool
	// broken makes the stores fail (503 answers).
	broken bool
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
		"GET /v1/health 200":                       {method: "GET", resource: ingestapi.RouteHealth},
		"GET /v1/openapi.json 200":                 {method: "GET", resource: ingestapi.RouteOpenAPI},
		"GET /v1/users/{app_user_id}/segments 200": {method: "GET", resource: usersapi.Route, path: "known", key: true},
		"GET /v1/users/{app_user_id}/segments 401": {method: "GET", resource: usersapi.Route, path: "known"},
		"GET /v1/users/{app_user_id}/segments 404": {method: "GET", resource: usersapi.Route, path: "nobody", key: true},
		"GET /v1/users/{app_user_id}/segments 503": {method: "GET", resource: usersapi.Route, path: "known", key: true, broken: true},
		"PUT /v1/users/{app_user_id}/consent 200":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{"ads_personalization": false, "ldu": true}`, key: true},
		"PUT /v1/users/{app_user_id}/consent 400":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{}`, key: true},
		"PUT /v1/users/{app_user_id}/consent 401":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{"ldu": true}`},
		"PUT /v1/users/{app_user_id}/consent 503":  {method: "PUT", resource: usersapi.RouteConsent, path: "known", body: `{"ldu": true}`, key: true, broken: true},
		"DELETE /v1/users/{app_user_id} 202":       {method: "DELETE", resource: usersapi.RouteUser, path: "known", key: true},
		"DELETE /v1/users/{app_user_id} 401":       {method: "DELETE", resource: usersapi.RouteUser, path: "known"},
		"DELETE /v1/users/{app_user_id} 503":       {method: "DELETE", resource: usersapi.RouteUser, path: "known", key: true, broken: true},
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
	// Every route the handlers serve is documented, with its method.
	served := map[string]string{ingestapi.RouteEvents: "post", ingestapi.RouteHealth: "get", ingestapi.RouteOpenAPI: "get"}
	for route, method := range usersapi.Routes {
		served[route] = strings.ToLower(method)
	}
	for route, method := range served {
		if _, ok := doc.Paths[route][method]; !ok {
			t.Errorf("%s %s is served but not documented", method, route)
		}
	}
	if len(doc.Paths) != len(served) {
		t.Errorf("%d documented paths, %d served", len(doc.Paths), len(served))
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
	ingest *ingestapi.Handler
	users  *usersapi.Handler
}

const devKey = "openapi-dev-key"

func newAPI(t *testing.T, broken bool) *api {
	t.Helper()
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	pseudo, _ := identity.NewPseudonymizer([]byte("openapi-test-pepper-0123456789"))
	rules, err := segments.ForConfig(apps)
	if err != nil {
		t.Fatal(err)
	}
	app := apps.Apps[0].ID
	dev := map[string]string{devKey: app}
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
	h, err := usersapi.New(usersapi.Config{Apps: apps, Rules: rules, Store: users, Pseudo: pseudo, DevKeys: dev, Consents: users})
	if err != nil {
		t.Fatal(err)
	}
	return &api{ingest: ingest, users: h}
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
		Path: strings.Replace(c.resource, "{app_user_id}", c.path, 1), Headers: map[string]string{}}
	if c.path != "" {
		req.PathParameters = map[string]string{"app_user_id": c.path}
	}
	if c.key {
		req.Headers["x-api-key"] = devKey
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

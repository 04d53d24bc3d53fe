package ingestapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

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
					schema := doc.resolveResponse(resp)
					if schema == nil {
						return // documented without a body
					}
					if ct := got.Headers["Content-Type"]; ct != "application/json" {
						t.Errorf("content type %q", ct)
					}
					var body any
					if err := json.Unmarshal([]byte(got.Body), &body); err != nil {
						t.Fatalf("body %q: %v", got.Body, err)
					}
					if err := doc.validate(schema, body, "body"); err != nil {
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

// The validator itself: a body missing a required field or with a wrong type fails.
func TestOpenAPIValidatorCatchesMismatches(t *testing.T) {
	var doc openAPI
	if err := json.Unmarshal(ingestapi.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	ref := map[string]any{"$ref": "#/components/schemas/EventsResponse"}
	for _, bad := range []string{`{"accepted": 1}`, `{"accepted": "1", "rejected": []}`, `{"accepted": 1, "rejected": [{"index": 0}]}`, `[]`} {
		var v any
		json.Unmarshal([]byte(bad), &v)
		if err := doc.validate(ref, v, "body"); err == nil {
			t.Errorf("%s validated against EventsResponse", bad)
		}
	}
	var ok any
	json.Unmarshal([]byte(`{"accepted": 1, "rejected": [{"index": 0, "errors": [{"field": "f", "reason": "r"}]}]}`), &ok)
	if err := doc.validate(ref, ok, "body"); err != nil {
		t.Errorf("a valid response failed: %v", err)
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

// openAPI is the part of an OpenAPI 3.1 document the test reads.
type openAPI struct {
	OpenAPI    string                          `json:"openapi"`
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas   map[string]map[string]any `json:"schemas"`
		Responses map[string]response       `json:"responses"`
	} `json:"components"`
}

type operation struct {
	Responses map[string]response `json:"responses"`
}

type response struct {
	Ref     string `json:"$ref"`
	Content map[string]struct {
		Schema map[string]any `json:"schema"`
	} `json:"content"`
}

var componentRef = regexp.MustCompile(`^#/components/(schemas|responses)/(\w+)$`)

// resolveResponse returns the JSON schema of a response's application/json body, nil if none.
func (d *openAPI) resolveResponse(r response) map[string]any {
	if m := componentRef.FindStringSubmatch(r.Ref); m != nil {
		r = d.Components.Responses[m[2]]
	}
	c, ok := r.Content["application/json"]
	if !ok {
		return nil
	}
	return c.Schema
}

// validate checks v against the subset of JSON Schema the document uses: $ref, type, required,
// properties (a property not listed is an error unless additionalProperties is true), items,
// oneOf, const, enum, minItems, minimum.
func (d *openAPI) validate(schema map[string]any, v any, at string) error {
	if ref, ok := schema["$ref"].(string); ok {
		m := componentRef.FindStringSubmatch(ref)
		if m == nil || m[1] != "schemas" {
			return fmt.Errorf("%s: unsupported $ref %s", at, ref)
		}
		s, ok := d.Components.Schemas[m[2]]
		if !ok {
			return fmt.Errorf("%s: unknown schema %s", at, ref)
		}
		return d.validate(s, v, at)
	}
	if alts, ok := schema["oneOf"].([]any); ok {
		var errs []error
		for _, alt := range alts {
			err := d.validate(alt.(map[string]any), v, at)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		return fmt.Errorf("%s matches no alternative: %w", at, errors.Join(errs...))
	}
	if c, ok := schema["const"]; ok && c != v {
		return fmt.Errorf("%s = %v, want %v", at, v, c)
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s = %v, not one of %v", at, v, enum)
	}
	switch schema["type"] {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s is %T, want an object", at, v)
		}
		for _, r := range asList(schema["required"]) {
			if _, ok := obj[r]; !ok {
				return fmt.Errorf("%s lacks the required %q", at, r)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, ok := props[k].(map[string]any)
			if !ok {
				if props != nil && schema["additionalProperties"] != true {
					return fmt.Errorf("%s.%s is not documented", at, k)
				}
				continue
			}
			if err := d.validate(p, obj[k], at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s is %T, want an array", at, v)
		}
		if n, ok := schema["minItems"].(float64); ok && float64(len(arr)) < n {
			return fmt.Errorf("%s has %d items, want at least %v", at, len(arr), n)
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range arr {
				if err := d.validate(items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s is %T, want a string", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s is %T, want a boolean", at, v)
		}
	case "integer", "number":
		n, ok := v.(float64)
		if !ok || (schema["type"] == "integer" && n != float64(int64(n))) {
			return fmt.Errorf("%s = %v, want a %s", at, v, schema["type"])
		}
		if m, ok := schema["minimum"].(float64); ok && n < m {
			return fmt.Errorf("%s = %v, below %v", at, n, m)
		}
	}
	return nil
}

func asList(v any) []string {
	var out []string
	for _, e := range asAny(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asAny(v any) []any {
	l, _ := v.([]any)
	return l
}

package usersapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

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

// The credentials a request may carry, as the authorisation matrix combines them.
type credentials struct {
	name      string
	key       string // x-api-key: "app", "other" (another app's) or none
	token     string // "valid" (the target user's), "other-user", endusertest.Invalid, endusertest.Unverifiable or none
	iamCaller bool
}

var matrixCredentials = []credentials{
	{name: "no credential"},
	{name: "another app's key", key: "other"},
	{name: "the app key", key: "app"},
	{name: "app key + valid token", key: "app", token: "valid"},
	{name: "app key + another user's token", key: "app", token: "other-user"},
	{name: "app key + invalid token", key: "app", token: endusertest.Invalid},
	{name: "app key + unverifiable token", key: "app", token: endusertest.Unverifiable},
	{name: "IAM caller + app key", key: "app", iamCaller: true},
	{name: "IAM caller without key", iamCaller: true},
}

// expected is the status each credential gets on a route of each credential kind, the route
// served successfully being ok (200 or 202).
func expected(route access.Route, c credentials, ok int) int {
	switch route.Credential {
	case access.Public:
		return ok
	case access.AppKey:
		if c.key == "" {
			return 401
		}
		return ok // another app's key is that app's: its own events
	case access.IAM:
		switch {
		case c.key == "":
			return 401
		case !c.iamCaller:
			return 403
		}
		return ok
	case access.EndUser:
		switch {
		case c.key == "":
			return 401
		case c.key == "other":
			return 404 // the other app takes no end-user tokens: it has no /v1/me routes
		case c.token == endusertest.Unverifiable:
			return 503
		case c.token == "valid":
			return ok
		case c.token == "other-user" && route.Method == "GET":
			return 404 // the other user's segments, and that user is unknown
		case c.token == "other-user":
			return ok // the other user's own consent or erasure, never the target's
		}
		return 401
	}
	panic("unknown credential")
}

// TestAuthorisationMatrix sends every route of the access table served by the ingest and
// users-api functions with every combination of credentials, and checks the status and that a
// refused request changed nothing.
func TestAuthorisationMatrix(t *testing.T) {
	for _, route := range access.Routes {
		for _, c := range matrixCredentials {
			t.Run(route.Method+" "+route.Path+"/"+c.name, func(t *testing.T) {
				m := newMatrix(t)
				resp := m.send(t, route, c)
				ok := 200
				if route.Method == "DELETE" || strings.HasSuffix(route.Path, "events") {
					ok = 202
				}
				want := expected(route, c, ok)
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, resp.Body)
				}
				if want == 401 && route.Credential == access.EndUser && c.key == "app" && resp.Headers["WWW-Authenticate"] == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if want == 503 && resp.Headers["Retry-After"] == "" {
					t.Error("503 without Retry-After")
				}
				// The target user is changed only by a request allowed to reach it.
				changed := m.targetChanged(t)
				mayChange := want == ok && route.Method != "GET" && route.Credential != access.AppKey &&
					(route.Credential == access.IAM || c.token == "valid") && !strings.HasSuffix(route.Path, "events")
				if changed != mayChange {
					t.Errorf("target user changed: %v, want %v", changed, mayChange)
				}
				if published := m.stream.Records(); (len(published) > 0) != (want == 202 && strings.HasSuffix(route.Path, "events")) {
					t.Errorf("%d records published", len(published))
				}
			})
		}
	}
}

const (
	appKey   = "matrix-app-key"
	otherKey = "matrix-other-key"
	target   = "u-target"
)

type matrix struct {
	ingest   *ingestapi.Handler
	users    *usersapi.Handler
	store    *memstate.Store
	stream   *memstream.Stream
	verifier *endusertest.Verifier
	app      string
	key      string // the target's pseudonymous key
	before   ports.UserRecord
}

func newMatrix(t *testing.T) *matrix {
	t.Helper()
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	other := apps.Apps[0]
	other.ID = "other-shop"
	other.Auth = appconfig.Auth{} // takes no end-user tokens: no /v1/me routes
	apps.Apps = append(apps.Apps, other)
	apps.Apps[0].Auth.EndUser = &appconfig.EndUserAuth{Issuer: "https://id.example.com", Audiences: []string{"shop"}, JWKSURL: "https://id.example.com/jwks"}
	rules, err := segments.ForConfig(apps)
	if err != nil {
		t.Fatal(err)
	}
	pseudo, _ := identity.NewPseudonymizer([]byte("matrix-test-pepper-0123456789abcdef"))
	m := &matrix{store: memstate.New(), stream: memstream.New(), verifier: &endusertest.Verifier{}, app: apps.Apps[0].ID}
	dev := map[string]string{appKey: m.app, otherKey: other.ID}
	m.ingest, err = ingestapi.New(ingestapi.Config{Apps: apps, Parser: appevent.NewParser(pseudo), DevKeys: dev,
		Publisher: stream.NewPublisher(m.stream, stream.Options{MaxAttempts: 1})})
	if err != nil {
		t.Fatal(err)
	}
	m.users, err = usersapi.New(usersapi.Config{Apps: apps, Rules: rules, Store: m.store, Consents: m.store, Pseudo: pseudo,
		DevKeys: dev, Verifier: m.verifier, Reports: func(_ context.Context, app, from, to string, _ time.Time) (measure.Report, error) {
			return measure.Report{App: app, From: from, To: to}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	m.key = pseudo.UserKey(m.app, identity.KindAppUserID, target)
	now := time.Now().Unix()
	st := segments.State{FirstSeen: now, LastSeen: now, Consent: segments.Consent{At: now}}
	raw, _ := json.Marshal(&st)
	if err := m.store.PutUser(context.Background(), ports.UserRecord{App: m.app, UserKey: m.key, State: raw, Version: 1}); err != nil {
		t.Fatal(err)
	}
	m.before, _, _ = m.store.GetUser(context.Background(), m.app, m.key)
	return m
}

func (m *matrix) send(t *testing.T, route access.Route, c credentials) events.APIGatewayProxyResponse {
	t.Helper()
	req := events.APIGatewayProxyRequest{HTTPMethod: route.Method, Resource: route.Path,
		Path: strings.Replace(route.Path, "{app_user_id}", target, 1), Headers: map[string]string{}}
	if strings.Contains(route.Path, "{app_user_id}") {
		req.PathParameters = map[string]string{"app_user_id": target}
	}
	switch {
	case strings.HasSuffix(route.Path, "events"):
		req.Body = ingesttest.RefreshEventTimes(t, ingesttest.FixtureBody(t, "valid-batch.json"), time.Now())
	case strings.HasSuffix(route.Path, "consent"):
		req.Body = `{"ads_personalization": false}`
	}
	switch c.key {
	case "app":
		req.Headers["x-api-key"] = appKey
	case "other":
		req.Headers["x-api-key"] = otherKey
	}
	switch c.token {
	case "":
	case "valid":
		req.Headers["Authorization"] = "Bearer " + m.verifier.Token(m.app, target)
	case "other-user":
		req.Headers["Authorization"] = "Bearer " + m.verifier.Token(m.app, "u-someone-else")
	default:
		req.Headers["Authorization"] = "Bearer " + c.token
	}
	if c.iamCaller {
		req.RequestContext.Identity.UserArn = "arn:aws:iam::123456789012:user/matrix"
		req.RequestContext.Identity.AccessKey = "AKIAMATRIXEXAMPLE"
	}
	handle := m.ingest.Handle
	switch route.Function {
	case access.FunctionUsersAPI:
		handle = m.users.Handle
	case access.FunctionIngest:
	default:
		t.Fatalf("route served by %s: extend the matrix", route.Function)
	}
	resp, err := handle(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// targetChanged reports whether the target user's state or consent changed.
func (m *matrix) targetChanged(t *testing.T) bool {
	t.Helper()
	ctx := context.Background()
	rec, _, err := m.store.GetUser(ctx, m.app, m.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.store.Consents(ctx, m.app, []string{m.key})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Version != m.before.Version || fmt.Sprint(rec.State) != fmt.Sprint(m.before.State) || len(c) > 0
}

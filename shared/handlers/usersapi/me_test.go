package usersapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/endusertest"
)

// The /v1/me routes serve the token's user through the same code as the IAM routes.
func TestMeRoutesServeTheTokensUser(t *testing.T) {
	u := newUsersHarness(t)
	segs := u.seed(t, "u-10")
	slices.Sort(segs)
	status, body := u.call(t, http.MethodGet, RouteMeSegments, "u-10", "")
	got, _ := body["segments"].([]any)
	if status != http.StatusOK || body["app_user_id"] != "u-10" || len(got) != len(segs) {
		t.Fatalf("GET /v1/me/segments = %d %v, want %v", status, body, segs)
	}
	// The path's app_user_id, if any, is not what names the user: the token is.
	req := events.APIGatewayProxyRequest{HTTPMethod: http.MethodGet, Resource: RouteMeSegments,
		Headers:        map[string]string{"x-api-key": devKey, "Authorization": "Bearer " + u.verif.Token(u.app, "u-other")},
		PathParameters: map[string]string{"app_user_id": "u-10"}}
	if status, body := u.do(t, req); status != http.StatusNotFound {
		t.Fatalf("another user's token = %d %v, want the other (unknown) user's 404", status, body)
	}

	if status, body = u.call(t, http.MethodPut, RouteMeConsent, "u-10", `{"ads_personalization": false}`); status != http.StatusOK || body["app_user_id"] != "u-10" {
		t.Fatalf("PUT /v1/me/consent = %d %v", status, body)
	}
	if rec, _, _ := u.store.GetUser(context.Background(), u.app, u.key("u-10")); len(rec.Segments) != 0 {
		t.Fatalf("withdrawn through /v1/me, still in %v", rec.Segments)
	}
	if status, body = u.call(t, http.MethodDelete, RouteMe, "u-10", ""); status != http.StatusAccepted || body["erasure_id"] == nil {
		t.Fatalf("DELETE /v1/me = %d %v", status, body)
	}
	if c, _ := u.store.Consents(context.Background(), u.app, []string{u.key("u-10")}); c[u.key("u-10")].ErasureID == "" {
		t.Fatal("DELETE /v1/me erased nothing")
	}
}

func TestMeRoutesRefuse(t *testing.T) {
	u := newUsersHarness(t)
	u.seed(t, "u-11")
	me := func(auth string) events.APIGatewayProxyRequest {
		r := events.APIGatewayProxyRequest{HTTPMethod: http.MethodGet, Resource: RouteMeSegments, Headers: map[string]string{"x-api-key": devKey}}
		if auth != "" {
			r.Headers["Authorization"] = auth
		}
		return r
	}
	for _, tt := range []struct {
		name, auth string
		status     int
		challenge  string
	}{
		{"no token", "", 401, "Bearer"},
		{"not bearer", "Basic dXNlcjpwYXNz", 401, "Bearer"},
		{"empty bearer", "Bearer ", 401, "Bearer"},
		{"invalid", "Bearer " + endusertest.Invalid, 401, `Bearer error="invalid_token"`},
		{"another app's", "Bearer " + u.verif.Token("other-app", "u-11"), 401, `Bearer error="invalid_token"`},
		{"unverifiable", "Bearer " + endusertest.Unverifiable, 503, ""},
		{"blank user", "Bearer " + u.verif.Token(u.app, "  "), 401, `Bearer error="invalid_token"`},
	} {
		resp, _ := u.h.Handle(context.Background(), me(tt.auth))
		if resp.StatusCode != tt.status || resp.Headers["WWW-Authenticate"] != tt.challenge {
			t.Errorf("%s: %d %q %s, want %d %q", tt.name, resp.StatusCode, resp.Headers["WWW-Authenticate"], resp.Body, tt.status, tt.challenge)
		}
		if tt.status == 503 && resp.Headers["Retry-After"] == "" {
			t.Errorf("%s: 503 without Retry-After", tt.name)
		}
	}

	// An app without auth.end_user has no /v1/me routes: the unknown user's 404, token or not.
	withToken := me("Bearer " + u.verif.Token(u.app, "u-11"))
	unknown, _ := u.h.Handle(context.Background(), events.APIGatewayProxyRequest{HTTPMethod: http.MethodGet, Resource: Route,
		Headers: map[string]string{"x-api-key": devKey}, PathParameters: map[string]string{"app_user_id": "nobody"},
		RequestContext: events.APIGatewayProxyRequestContext{Identity: events.APIGatewayRequestIdentity{AccessKey: "AKIAEXAMPLE"}}})
	app, _ := u.cfg.Apps.App(u.app)
	saved := app.Auth.EndUser
	app.Auth.EndUser = nil
	for _, req := range []events.APIGatewayProxyRequest{me(""), withToken} {
		resp, _ := u.h.Handle(context.Background(), req)
		if resp.StatusCode != http.StatusNotFound || resp.Body != unknown.Body || unknown.StatusCode != http.StatusNotFound {
			t.Errorf("app without end-user tokens: %d %s, want %d %s", resp.StatusCode, resp.Body, unknown.StatusCode, unknown.Body)
		}
	}
	app.Auth.EndUser = saved

	// Without a verifier the deployment cannot check tokens: 501, never an unchecked user.
	cfg := u.cfg
	cfg.Verifier = nil
	h, _ := New(cfg)
	if resp, _ := h.Handle(context.Background(), withToken); resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("no verifier: %d %s", resp.StatusCode, resp.Body)
	}
}

// In dev mode the tokens of an app that takes them are checked against the dev issuer.
func TestDevEndUserIssuer(t *testing.T) {
	u := newUsersHarness(t)
	u.seed(t, "u-12")
	cfg := u.cfg
	cfg.DevEndUser = &appconfig.EndUserAuth{Issuer: "http://127.0.0.1:3000/dev/issuer", Audiences: []string{"retarget-dev"}, JWKSURL: "http://127.0.0.1:3000/dev/jwks"}
	h, _ := New(cfg)
	u.h = h
	if status, body := u.call(t, http.MethodGet, RouteMeSegments, "u-12", ""); status != http.StatusOK {
		t.Fatalf("GET /v1/me/segments in dev = %d %v", status, body)
	}
	calls := u.verif.Calls()
	if len(calls) != 1 || calls[0].Issuer != cfg.DevEndUser.Issuer || calls[0].App != u.app {
		t.Fatalf("verifier calls %+v, want one against the dev issuer", calls)
	}
}

// Unknown, erased and never-seen users answer alike on every read route.
func TestNoExistenceOracle(t *testing.T) {
	u := newUsersHarness(t)
	u.seed(t, "known")
	u.seed(t, "erased")
	if status, _ := u.call(t, http.MethodDelete, RouteUser, "erased", ""); status != http.StatusAccepted {
		t.Fatal("erasure failed")
	}
	// never-seen: its only events came without consent, so its state holds a withdrawal only.
	var st segments.State
	st.Apply(&envelope.Event{ID: "e", Name: "AddToCart", Time: u.now.Unix(), Consent: envelope.Consent{AdsPersonalization: envelope.False}}, u.rules)
	if err := u.store.PutUser(context.Background(), ports.UserRecord{App: u.app, UserKey: u.key("unseen"), State: mustJSON(st), Version: 1}); err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{Route, RouteMeSegments} {
		status, body := u.call(t, http.MethodGet, route, "known", "")
		if status != http.StatusOK {
			t.Fatalf("%s known = %d %v", route, status, body)
		}
		_, want := u.call(t, http.MethodGet, route, "nobody", "")
		for _, user := range []string{"nobody", "erased", "unseen"} {
			status, body := u.call(t, http.MethodGet, route, user, "")
			if status != http.StatusNotFound || !jsonEq(body, mustString(want)) {
				t.Errorf("%s %s = %d %v, want 404 %v", route, user, status, body, want)
			}
		}
	}
}

func mustString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// An erased user comes back only through an explicit grant with a privileged credential: an
// IAM caller on /v1/users/{id}/consent, or the user's own token on /v1/me/consent. The app key
// alone reaches neither.
// TestGrantInTheSecondOfTheErasure: a grant made in the same second as the erasure it answers
// wins (the API's decisions come in order; a withdrawal only wins a tie between signals whose
// order is unknown): the user's state is consented again and their next events segment them.
func TestGrantInTheSecondOfTheErasure(t *testing.T) {
	u := newUsersHarness(t)
	u.seed(t, "u-14")
	ctx, key := context.Background(), u.key("u-14")
	u.call(t, http.MethodDelete, RouteUser, "u-14", "")
	if status, body := u.call(t, http.MethodPut, RouteConsent, "u-14", `{"ads_personalization": true}`); status != http.StatusOK {
		t.Fatalf("grant = %d %v", status, body)
	}
	rec, found, err := u.store.GetUser(ctx, u.app, key)
	if err != nil || !found {
		t.Fatalf("user after the grant: %v %v", found, err)
	}
	var st segments.State
	if err := json.Unmarshal(rec.State, &st); err != nil {
		t.Fatal(err)
	}
	if !st.Consented() {
		t.Errorf("consent after a grant in the erasure's second: %+v, want granted", st.Consent)
	}
}

func TestErasedUserComesBackOnlyThroughAGrant(t *testing.T) {
	for _, way := range []string{"iam", "token"} {
		t.Run(way, func(t *testing.T) {
			u := newUsersHarness(t)
			u.seed(t, "u-13")
			ctx, key := context.Background(), u.key("u-13")
			u.call(t, http.MethodDelete, RouteUser, "u-13", "")
			grant := `{"ads_personalization": true}`

			// The app key alone: refused on both routes, and the block stays.
			keyOnly := func(resource string) events.APIGatewayProxyRequest {
				return events.APIGatewayProxyRequest{HTTPMethod: http.MethodPut, Resource: resource, Body: grant,
					Headers: map[string]string{"x-api-key": devKey}, PathParameters: map[string]string{"app_user_id": "u-13"}}
			}
			if status, _ := u.do(t, keyOnly(RouteConsent)); status != http.StatusForbidden {
				t.Errorf("grant with the key alone on the IAM route = %d, want 403", status)
			}
			if status, _ := u.do(t, keyOnly(RouteMeConsent)); status != http.StatusUnauthorized {
				t.Errorf("grant with the key alone on /v1/me/consent = %d, want 401", status)
			}
			if c, _ := u.store.Consents(ctx, u.app, []string{key}); !c[key].Withdrawn() || c[key].ErasureID == "" {
				t.Fatalf("the key alone lifted the erasure: %+v", c[key])
			}

			u.now = u.now.Add(time.Minute)
			route := RouteConsent
			if way == "token" {
				route = RouteMeConsent
			}
			if status, body := u.call(t, http.MethodPut, route, "u-13", grant); status != http.StatusOK {
				t.Fatalf("grant = %d %v", status, body)
			}
			if c, _ := u.store.Consents(ctx, u.app, []string{key}); c[key].Withdrawn() || c[key].ErasureID != "" {
				t.Fatalf("after the grant: %+v", c[key])
			}
		})
	}
}

package usersapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/endusertest"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

const devKey = "dev-api-key"

type usersHarness struct {
	h     *Handler
	cfg   Config
	verif *endusertest.Verifier
	store *memstate.Store
	app   string
	rules *segments.AppRules
	now   time.Time
	pseud *identity.Pseudonymizer
}

func newUsersHarness(t *testing.T) *usersHarness {
	t.Helper()
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The sample app takes end-user tokens (the fake verifier checks them).
	cfg.Apps[0].Auth.EndUser = &appconfig.EndUserAuth{Issuer: "https://id.example.com", Audiences: []string{"shop"}, JWKSURL: "https://id.example.com/jwks"}
	rules, err := segments.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	aa, err := audiences.ForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pseudo, err := identity.NewPseudonymizer([]byte("users-test-pepper-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	u := &usersHarness{store: memstate.New(), app: cfg.Apps[0].ID, rules: rules[cfg.Apps[0].ID], now: time.Now().Truncate(time.Second), pseud: pseudo,
		verif: &endusertest.Verifier{}}
	u.cfg = Config{Apps: cfg, Rules: rules, Store: u.store, Pseudo: pseudo, DevKeys: map[string]string{devKey: u.app},
		Consents: u.store, Audiences: aa, Now: func() time.Time { return u.now }, Verifier: u.verif}
	u.h, err = New(u.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *usersHarness) key(userID string) string {
	return u.pseud.UserKey(u.app, identity.KindAppUserID, userID)
}

// seed stores a user who bought for 250 (vip) and left a cart 2 hours ago (cart_abandoner).
func (u *usersHarness) seed(t *testing.T, userID string) []string {
	t.Helper()
	var st segments.State
	ev := func(name string, ago time.Duration, value float64) *envelope.Event {
		e := &envelope.Event{ID: name + userID, Name: name, Time: u.now.Add(-ago).Unix(),
			Device:  envelope.Device{Platform: "ios", OSVersion: "18.1"},
			Consent: envelope.Consent{AdsPersonalization: envelope.True, AdvertiserTracking: envelope.True},
			User:    envelope.User{Email: identity.Hash(sha256.Sum256([]byte(userID + "@example.com")))}}
		if value > 0 {
			e.Custom.Value, e.Custom.Currency = envelope.Float(value), "USD"
		}
		return e
	}
	st.Apply(ev("Purchase", 3*time.Hour, 250), u.rules)
	st.Apply(ev("AddToCart", 2*time.Hour, 0), u.rules)
	segs, _ := u.rules.Evaluate(&st, u.now)
	raw, _ := json.Marshal(&st)
	if err := u.store.PutUser(context.Background(), ports.UserRecord{App: u.app, UserKey: u.key(userID), State: raw, Segments: segs, Version: 1}); err != nil {
		t.Fatal(err)
	}
	return segs
}

// call calls a route as its caller would: an IAM route with an IAM caller and the app key
// (userID in the path), a /v1/me route with the app key and a token of userID.
func (u *usersHarness) call(t *testing.T, method, resource, userID, body string) (int, map[string]any) {
	t.Helper()
	req := events.APIGatewayProxyRequest{
		HTTPMethod: method, Resource: resource, Path: strings.Replace(resource, "{app_user_id}", userID, 1), Body: body,
		Headers: map[string]string{"x-api-key": devKey},
	}
	if strings.HasPrefix(resource, "/v1/me") {
		req.Headers["Authorization"] = "Bearer " + u.verif.Token(u.app, userID)
	} else {
		req.PathParameters = map[string]string{"app_user_id": userID}
		req.RequestContext.Identity.UserArn = "arn:aws:iam::123456789012:user/ops"
	}
	return u.do(t, req)
}

func (u *usersHarness) do(t *testing.T, req events.APIGatewayProxyRequest) (int, map[string]any) {
	t.Helper()
	resp, err := u.h.Handle(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	return resp.StatusCode, doc
}

func (u *usersHarness) pending(t *testing.T, segment string) []ports.PendingChange {
	t.Helper()
	p, _, err := u.store.PendingChanges(context.Background(), u.app, segment, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestErasure(t *testing.T) {
	u := newUsersHarness(t)
	segs := u.seed(t, "u-1")
	if !slices.Contains(segs, "vip") || !slices.Contains(segs, "cart_abandoner") {
		t.Fatalf("seeded user in %v, want vip and cart_abandoner", segs)
	}
	status, body := u.call(t, http.MethodDelete, RouteUser, "u-1", "")
	id, _ := body["erasure_id"].(string)
	if status != http.StatusAccepted || !strings.HasPrefix(id, "er_") {
		t.Fatalf("DELETE = %d %v", status, body)
	}
	ctx, key := context.Background(), u.key("u-1")

	// State: a tombstone with the withdrawal and the hashes the removals need, expiring.
	rec, found, _ := u.store.GetUser(ctx, u.app, key)
	var st segments.State
	json.Unmarshal(rec.State, &st)
	if !found || len(rec.Segments) != 0 || !st.Consent.Withdrawn || st.Email.Hash.IsZero() || st.ValueMicros != 0 || st.FirstSeen != 0 ||
		rec.ExpiresAt != u.now.Add(DefaultTombstoneTTL).Unix() {
		t.Fatalf("after erasure: %+v state %s", rec, rec.State)
	}
	// A leave change per segment the user was in: the next sync removes the rows.
	for _, seg := range segs {
		p := u.pending(t, seg)
		if len(p) != 1 || p[0].Joined || p[0].UserKey != key || p[0].Reason != ports.ReasonErasure || p[0].AppUserID != "" {
			t.Errorf("pending changes of %s: %+v, want one leave for the erasure, without the app user id", seg, p)
		}
	}
	// The explicit withdrawal carries the erasure id.
	c, _ := u.store.Consents(ctx, u.app, []string{key})
	if d := c[key]; !d.Withdrawn() || d.ErasureID != id {
		t.Fatalf("consent after erasure %+v", d)
	}
	// The audit record: no personal data, the audiences that get a removal.
	audit, ok, _ := u.store.Erasure(ctx, u.app, id)
	wantAuds := slices.Clone(segs)
	slices.Sort(wantAuds)
	slices.Sort(audit.Audiences)
	if !ok || audit.UserKey != key || audit.RequestedAt != u.now.Unix() || audit.CompletedAt == 0 ||
		!slices.Equal(audit.Audiences, wantAuds) || audit.ExpiresAt != u.now.Add(DefaultAuditRetention).Unix() {
		t.Fatalf("audit %+v, want audiences %v", audit, wantAuds)
	}

	// Idempotent: the same id, nothing written again.
	u.now = u.now.Add(time.Minute)
	status, body = u.call(t, http.MethodDelete, RouteUser, "u-1", "")
	again, _, _ := u.store.GetUser(ctx, u.app, key)
	if status != http.StatusAccepted || body["erasure_id"] != id || again.Version != rec.Version {
		t.Fatalf("second DELETE = %d %v, version %d -> %d", status, body, rec.Version, again.Version)
	}
	// An unknown user gets the same answer, and is blocked all the same.
	status, body = u.call(t, http.MethodDelete, RouteUser, "nobody", "")
	if other, _ := body["erasure_id"].(string); status != http.StatusAccepted || other == "" || other == id {
		t.Fatalf("DELETE of an unknown user = %d %v", status, body)
	}
	if c, _ := u.store.Consents(ctx, u.app, []string{u.key("nobody")}); !c[u.key("nobody")].Withdrawn() {
		t.Fatal("unknown user not blocked")
	}
}

func TestConsentWithdrawAndGrant(t *testing.T) {
	u := newUsersHarness(t)
	segs := u.seed(t, "u-2")
	ctx, key := context.Background(), u.key("u-2")

	status, body := u.call(t, http.MethodPut, RouteConsent, "u-2", `{"ads_personalization": false, "ldu": true}`)
	if status != http.StatusOK || body["app_user_id"] != "u-2" || !jsonEq(body["consent"], `{"ads_personalization": false, "ldu": true}`) {
		t.Fatalf("PUT withdraw = %d %v", status, body)
	}
	rec, _, _ := u.store.GetUser(ctx, u.app, key)
	if len(rec.Segments) != 0 {
		t.Fatalf("withdrawn user still in %v", rec.Segments)
	}
	for _, seg := range segs {
		if p := u.pending(t, seg); len(p) != 1 || p[0].Joined || p[0].Reason != ports.ReasonConsent {
			t.Errorf("pending of %s after the withdrawal: %+v", seg, p)
		}
	}
	if c, _ := u.store.Consents(ctx, u.app, []string{key}); !c[key].Withdrawn() || c[key].LDU == nil || !*c[key].LDU {
		t.Fatalf("decision %+v", c[key])
	}

	// A flag alone keeps the decision on ads personalisation.
	u.now = u.now.Add(time.Minute)
	if status, body = u.call(t, http.MethodPut, RouteConsent, "u-2", `{"advertiser_tracking_enabled": false}`); status != http.StatusOK ||
		!jsonEq(body["consent"], `{"ads_personalization": false, "advertiser_tracking_enabled": false, "ldu": true}`) {
		t.Fatalf("PUT flag = %d %v", status, body)
	}

	// The grant lets the rules decide again: the user is back in their segments.
	u.now = u.now.Add(time.Minute)
	if status, _ = u.call(t, http.MethodPut, RouteConsent, "u-2", `{"ads_personalization": true}`); status != http.StatusOK {
		t.Fatalf("PUT grant = %d", status)
	}
	rec, _, _ = u.store.GetUser(ctx, u.app, key)
	slices.Sort(segs)
	if !slices.Equal(rec.Segments, segs) {
		t.Fatalf("after the grant in %v, want %v", rec.Segments, segs)
	}
	if c, _ := u.store.Consents(ctx, u.app, []string{key}); c[key].Withdrawn() {
		t.Fatal("still withdrawn after the grant")
	}

	// A grant ends an erasure's block too.
	u.call(t, http.MethodDelete, RouteUser, "u-2", "")
	u.call(t, http.MethodPut, RouteConsent, "u-2", `{"ads_personalization": true}`)
	if c, _ := u.store.Consents(ctx, u.app, []string{key}); c[key].Withdrawn() || c[key].ErasureID != "" {
		t.Fatalf("after erasure and grant: %+v", c[key])
	}
}

func TestUsersRoutesRefuseBadRequests(t *testing.T) {
	u := newUsersHarness(t)
	tests := []struct {
		method, resource, body string
		want                   int
		wantMsg                string
	}{
		{http.MethodPut, RouteConsent, `{}`, 400, "none given"},
		{http.MethodPut, RouteConsent, `{"ads_personalization": "no"}`, 400, "booleans"},
		{http.MethodPut, RouteConsent, `{"ads_personalisation": false}`, 400, "unknown field"},
		{http.MethodPut, RouteConsent, `not json`, 400, "JSON object"},
		{http.MethodPut, RouteConsent, `{"ldu": true} {}`, 400, "after the object"},
		{http.MethodGet, RouteConsent, ``, 405, "use PUT"},
		{http.MethodPost, RouteUser, ``, 405, "use DELETE"},
		{http.MethodDelete, Route, ``, 405, "use GET"},
	}
	for _, tt := range tests {
		status, body := u.call(t, tt.method, tt.resource, "u-3", tt.body)
		if msg, _ := body["error"].(string); status != tt.want || !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("%s %s %s = %d %v, want %d with %q", tt.method, tt.resource, tt.body, status, body, tt.want, tt.wantMsg)
		}
	}
	// Without the key: 401, and nothing stored.
	resp, _ := u.h.Handle(context.Background(), events.APIGatewayProxyRequest{HTTPMethod: http.MethodDelete, Resource: RouteUser,
		PathParameters: map[string]string{"app_user_id": "u-3"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("DELETE without a key = %d", resp.StatusCode)
	}
	if c, _ := u.store.Consents(context.Background(), u.app, []string{u.key("u-3")}); len(c) != 0 {
		t.Fatalf("refused requests stored %v", c)
	}
}

func jsonEq(got any, want string) bool {
	var w any
	json.Unmarshal([]byte(want), &w)
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(w)
	return string(a) == string(b)
}

// The path's app_user_id is keyed as ingest keys the event's: trimmed.
func TestUserIDTrimmedAsIngestDoes(t *testing.T) {
	u := newUsersHarness(t)
	u.seed(t, "u-4")
	if status, body := u.call(t, http.MethodGet, Route, " u-4 ", ""); status != http.StatusOK || body["app_user_id"] != "u-4" {
		t.Fatalf("GET with spaces around the id = %d %v", status, body)
	}
	if status, _ := u.call(t, http.MethodGet, Route, "  ", ""); status != http.StatusBadRequest {
		t.Fatalf("blank id = %d, want 400", status)
	}
}

package keyauthorizer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appkey"
)

const (
	shopKey = "pk_shop_0123456789abcdef"
	gameKey = "pk_game_fedcba9876543210"
)

func newHandler(t *testing.T) (*Handler, *bytes.Buffer) {
	t.Helper()
	var ring appkey.Ring
	if err := ring.AddKey("shop", shopKey); err != nil {
		t.Fatal(err)
	}
	if err := ring.AddKey("game", gameKey); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	h, err := New(&ring, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return h, &logs
}

// request is what API Gateway sends with payload format 2.0 and the identity source
// $request.header.x-api-key: the header's value in identitySource, and the headers.
func request(key string, present bool) events.APIGatewayV2CustomAuthorizerV2Request {
	req := events.APIGatewayV2CustomAuthorizerV2Request{Version: "2.0", Type: "REQUEST", RouteKey: "POST /v1/events",
		Headers: map[string]string{"content-type": "application/json"}}
	if present {
		req.IdentitySource = []string{key}
		req.Headers[Header] = key
	}
	return req
}

func TestHandle(t *testing.T) {
	h, logs := newHandler(t)
	for _, tt := range []struct {
		name    string
		req     events.APIGatewayV2CustomAuthorizerV2Request
		wantApp string
	}{
		{"shop's key", request(shopKey, true), "shop"},
		{"game's key", request(gameKey, true), "game"},
		{"header only (no identity source)", events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{Header: gameKey}}, "game"},
		{"unknown key", request("pk_shop_0123456789abcdeX", true), ""},
		{"key with a space", request(shopKey+" ", true), ""},
		{"two keys in one header", request(shopKey+","+gameKey, true), ""},
		{"two identity sources", events.APIGatewayV2CustomAuthorizerV2Request{IdentitySource: []string{shopKey, gameKey}}, ""},
		{"empty key", request("", true), ""},
		{"missing key", request("", false), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := h.Handle(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if resp.IsAuthorized != (tt.wantApp != "") {
				t.Errorf("IsAuthorized %v, want %v", resp.IsAuthorized, tt.wantApp != "")
			}
			if got, _ := resp.Context[ContextApp].(string); got != tt.wantApp {
				t.Errorf("context app %q, want %q", got, tt.wantApp)
			}
			if tt.wantApp == "" && resp.Context != nil {
				t.Errorf("a denial carries a context: %v", resp.Context)
			}
		})
	}
	for _, key := range []string{shopKey, gameKey, "pk_shop_0123456789abcdeX"} {
		if strings.Contains(logs.String(), key) || strings.Contains(logs.String(), key[:12]) {
			t.Errorf("the logs quote a key (or its start): %s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), `"app":"shop"`) || !strings.Contains(logs.String(), `"has_key":false`) {
		t.Errorf("the logs do not say what was decided: %s", logs.String())
	}
}

// The answer API Gateway reads: the simple response format, the app in the context.
func TestResponseJSON(t *testing.T) {
	h, _ := newHandler(t)
	for key, want := range map[string]string{
		shopKey:   `{"isAuthorized":true,"context":{"app":"shop"}}`,
		"unknown": `{"isAuthorized":false}`,
	} {
		resp, _ := h.Handle(context.Background(), request(key, true))
		got, _ := json.Marshal(resp)
		if string(got) != want {
			t.Errorf("response %s, want %s", got, want)
		}
	}
}

// The cache key is the key header alone: two requests with the same key share an answer, and a
// request's path, method or other headers cannot make a cached answer for one key serve another.
func TestCacheIdentity(t *testing.T) {
	if IdentitySource != "$request.header.x-api-key" {
		t.Errorf("IdentitySource %q", IdentitySource)
	}
	if CacheTTLSeconds != 300 {
		t.Errorf("CacheTTLSeconds %d, want 300", CacheTTLSeconds)
	}
	h, _ := newHandler(t)
	// The answer depends on the identity source only.
	a := request(shopKey, true)
	b := request(shopKey, true)
	b.RouteKey, b.RawPath, b.Headers["user-agent"] = "GET /v1/me/segments", "/dev/v1/me/segments", "other"
	ra, _ := h.Handle(context.Background(), a)
	rb, _ := h.Handle(context.Background(), b)
	ja, _ := json.Marshal(ra)
	jb, _ := json.Marshal(rb)
	if string(ja) != string(jb) {
		t.Errorf("same key, different answers: %s vs %s", ja, jb)
	}
}

func TestNewRefusesAnEmptyRing(t *testing.T) {
	if _, err := New(&appkey.Ring{}, nil); err == nil {
		t.Error("an authorizer accepting no key was built")
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("an authorizer without a ring was built")
	}
}

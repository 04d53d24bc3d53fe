package apigw

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appkey"
)

var twoApps = &appconfig.Config{Apps: []appconfig.App{{ID: "shop"}, {ID: "game"}}}

func withAuthorizer(a map[string]any) events.APIGatewayProxyRequest {
	return events.APIGatewayProxyRequest{RequestContext: events.APIGatewayProxyRequestContext{Authorizer: a}}
}

func TestAuthorizerApp(t *testing.T) {
	for name, tt := range map[string]struct {
		authorizer map[string]any
		want       string
	}{
		"payload 1.0":           {map[string]any{"app": "shop"}, "shop"},
		"payload 2.0":           {map[string]any{"lambda": map[string]any{"app": "game"}}, "game"},
		"none (REST door)":      {nil, ""},
		"JWT claims are not it": {map[string]any{"claims": map[string]any{"app": "shop"}}, ""},
		"not a string":          {map[string]any{"app": 7}, ""},
		"IAM caller is not it":  {map[string]any{"principalId": "shop"}, ""},
	} {
		if got := AuthorizerApp(withAuthorizer(tt.authorizer)); got != tt.want {
			t.Errorf("%s: %q, want %q", name, got, tt.want)
		}
	}
	// Authenticate takes it first, before key ids and dev keys.
	req := withAuthorizer(map[string]any{"app": "game"})
	req.RequestContext.Identity.APIKeyID = "k1"
	if app, ok := Authenticate(req, twoApps, map[string]string{"k1": "shop"}, nil); !ok || app.ID != "game" {
		t.Errorf("Authenticate = %v %v, want game", app, ok)
	}
	// An app the config does not know is no app.
	if _, ok := Authenticate(withAuthorizer(map[string]any{"app": "other"}), twoApps, nil, nil); ok {
		t.Error("an unknown app in the context was accepted")
	}
}

func TestKeyRingApp(t *testing.T) {
	var ring appkey.Ring
	if err := ring.AddKey("shop", "shop-key"); err != nil {
		t.Fatal(err)
	}
	if err := ring.AddKey("ghost", "ghost-key"); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"shop-key": "shop", "game-key": "", "": "", "ghost-key": ""} {
		req := events.APIGatewayProxyRequest{Headers: map[string]string{"X-Api-Key": key}}
		got := ""
		if app, ok := KeyRingApp(req, twoApps, &ring); ok {
			got = app.ID
		}
		if got != want {
			t.Errorf("key %q: app %q, want %q", key, got, want)
		}
	}
	if _, ok := KeyRingApp(events.APIGatewayProxyRequest{Headers: map[string]string{"x-api-key": "shop-key"}}, twoApps, nil); ok {
		t.Error("a nil ring accepted a key")
	}
}

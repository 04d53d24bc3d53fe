package ingestapi

import (
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/app/ratelimit"
	"github.com/retarget-dev/retarget/shared/domain/appkey"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// httpDoor is a request as the HTTP API sends it (integration payload 1.0): no API Gateway key
// id, no dev key mapping; the app comes from the key authorizer's context or, on the IAM route,
// from the key among the apps' accepted keys.
func httpDoor(t *testing.T, fixture string, edit func(*events.APIGatewayProxyRequest)) []byte {
	return withRequest(t, ingesttest.FixtureJSON(t, fixture), func(r *events.APIGatewayProxyRequest) {
		r.RequestContext.Identity.APIKeyID = ""
		if edit != nil {
			edit(r)
		}
	})
}

func TestHTTPDoorAppFromTheAuthorizer(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DevKeys = nil })
	resp := h.invoke(t, httpDoor(t, "valid-batch.json", func(r *events.APIGatewayProxyRequest) {
		r.RequestContext.Authorizer = map[string]any{"app": "sample-shop"}
	}))
	if resp.StatusCode != 202 {
		t.Fatalf("with the authorizer's app: %d %s", resp.StatusCode, resp.Body)
	}
	if resp := h.invoke(t, httpDoor(t, "valid-batch.json", nil)); resp.StatusCode != 401 {
		t.Errorf("without the authorizer's app: %d %s, want 401", resp.StatusCode, resp.Body)
	}
}

func TestHTTPDoorServerEventsKeyFromTheRing(t *testing.T) {
	var ring appkey.Ring
	if err := ring.AddKey("sample-shop", "dev-api-key"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.DevKeys, c.Keys = nil, &ring })
	if resp := h.invoke(t, httpDoor(t, "server-events.json", nil)); resp.StatusCode != 202 {
		t.Fatalf("IAM route with an accepted key: %d %s", resp.StatusCode, resp.Body)
	}
	resp := h.invoke(t, httpDoor(t, "server-events.json", func(r *events.APIGatewayProxyRequest) {
		r.Headers["x-api-key"], r.MultiValueHeaders["x-api-key"] = "other-key", []string{"other-key"}
	}))
	if resp.StatusCode != 401 {
		t.Errorf("IAM route with an unknown key: %d %s, want 401", resp.StatusCode, resp.Body)
	}
}

func TestHTTPDoorRateLimit(t *testing.T) {
	now := fixtureNow
	limiter := ratelimit.New(ratelimit.Options{
		Limits: func(string) (ratelimit.Limit, bool) { return ratelimit.Limit{Rate: 0.5, Burst: 2}, true },
		Now:    func() time.Time { return now },
	})
	h := newHarness(t, func(c *Config) { c.Limiter = limiter })
	for i := range 2 {
		if resp := h.invoke(t, ingesttest.FixtureJSON(t, "valid-batch.json")); resp.StatusCode != 202 {
			t.Fatalf("request %d within the burst: %d %s", i+1, resp.StatusCode, resp.Body)
		}
	}
	before := len(h.stream.Records())
	resp := h.invoke(t, ingesttest.FixtureJSON(t, "valid-batch.json"))
	if resp.StatusCode != 429 || resp.Headers["Retry-After"] != "2" {
		t.Fatalf("over the limit: %d Retry-After %q %s, want 429 after 2 s", resp.StatusCode, resp.Headers["Retry-After"], resp.Body)
	}
	if r := decode(t, resp); r.Error == "" {
		t.Errorf("429 without an error message: %s", resp.Body)
	}
	if got := len(h.stream.Records()); got != before {
		t.Errorf("a throttled request wrote %d records", got-before)
	}
	now = now.Add(2 * time.Second)
	if resp := h.invoke(t, ingesttest.FixtureJSON(t, "valid-batch.json")); resp.StatusCode != 202 {
		t.Errorf("after Retry-After: %d %s", resp.StatusCode, resp.Body)
	}
}

package devstack

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/ratecounter"
	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestHTTPFrontDoor runs the dev stack with API=http (the HTTP API front door,
// infra/docs/front-door.md) and talks to it as an app, a backend and an end user do: the key
// authorizer lets the app's key in (401 without one, 403 for an unknown one) and the events
// reach the Meta sandbox; an app over its api_key limits gets the ingest function's 429 with
// Retry-After, counted in the rate table in dynalite; the IAM routes take SigV4 only; /v1/me
// takes a dev token through the JWT authorizer.
func TestHTTPFrontDoor(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	config := frontDoorConfig(t, root)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false", "-config="+config,
		devenv.EnvFrontDoor+"="+devenv.FrontDoorHTTP)
	ds.ready(t)
	defer ds.stop(t, syscall.SIGTERM, 30*time.Second)
	e, err := devenv.ReadEndpoints(ds.devDir)
	if err != nil {
		t.Fatal(err)
	}
	if e.FrontDoor != devenv.FrontDoorHTTP || e.RateTable == "" || e.MetaSandboxURL == "" {
		t.Fatalf("endpoints file: front door %q, rate table %q, sandbox %q", e.FrontDoor, e.RateTable, e.MetaSandboxURL)
	}
	c := &matrixClient{t: t, http: &http.Client{Timeout: 15 * time.Second}, e: e}

	const user = "fd-alice"
	t.Run("the app key opens POST /v1/events and the events reach Meta", func(t *testing.T) {
		c.t = t
		body := c.eventsBody(user, "fd-bob")
		status, _, raw := c.do("POST", access.PathEvents, body, matrixCase{key: keyApp})
		if status != 202 {
			t.Fatalf("POST /v1/events: %d %s, want 202", status, raw)
		}
		waitSandboxEvents(t, c.http, e.MetaSandboxURL, eventIDs(t, body))
	})
	t.Run("no key is API Gateway's 401", func(t *testing.T) {
		status, raw := postWithKey(t, c, "", c.eventsBody(user))
		if status != 401 || gatewayMessage(raw) != "Unauthorized" {
			t.Fatalf("got %d %s, want 401 Unauthorized", status, raw)
		}
	})
	t.Run("an unknown key is the authorizer's 403", func(t *testing.T) {
		status, raw := postWithKey(t, c, "fd-not-a-key", c.eventsBody(user))
		if status != 403 || gatewayMessage(raw) != "Forbidden" {
			t.Fatalf("got %d %s, want 403 Forbidden", status, raw)
		}
	})
	t.Run("an app over its limit gets 429 with Retry-After", func(t *testing.T) {
		c.t = t
		// The other app: rate_limit 1/s, burst_limit 2 (frontDoorConfig).
		var statuses []int
		var throttled *http.Response
		var throttledBody []byte
		for range 6 {
			req, err := http.NewRequest("POST", e.APIURL+access.PathEvents, strings.NewReader(c.eventsBody("fd-throttled")))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("x-api-key", otherAppKey)
			resp, err := c.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses = append(statuses, resp.StatusCode)
			if resp.StatusCode == 429 {
				throttled, throttledBody = resp, raw
				break
			}
		}
		if len(statuses) < 3 || statuses[0] != 202 || statuses[1] != 202 || throttled == nil {
			t.Fatalf("statuses %v: want 202, 202 (the burst of 2), then 429", statuses)
		}
		retry, err := strconv.Atoi(throttled.Header.Get("Retry-After"))
		if err != nil || retry < 1 || retry > 10 {
			t.Fatalf("Retry-After %q, want 1..10 seconds", throttled.Header.Get("Retry-After"))
		}
		if !strings.Contains(string(throttledBody), "too many requests for app "+otherApp) {
			t.Errorf("429 body %s", throttledBody)
		}
		// The shared count: the app's window in the rate table.
		if n := rateCount(t, e, otherApp); n < 1 {
			t.Errorf("rate table: count %d for %s, want at least 1", n, otherApp)
		}
		// The sample app has its own (default) limit.
		if status, raw := postWithKey(t, c, e.APIKey, c.eventsBody(user)); status != 202 {
			t.Errorf("the sample app while the other is throttled: %d %s", status, raw)
		}
		time.Sleep(time.Duration(retry) * time.Second)
		if status, raw := postWithKey(t, c, otherAppKey, c.eventsBody("fd-throttled")); status != 202 {
			t.Errorf("after Retry-After: %d %s, want 202", status, raw)
		}
	})
	t.Run("IAM routes take SigV4", func(t *testing.T) {
		c.t = t
		c.waitSegments(user) // GET /v1/users/{id}/segments, signed, 200 with segments
		status, _, raw := c.do("GET", "/v1/users/"+user+"/segments", "", matrixCase{key: keyApp})
		if status != 403 || gatewayMessage(raw) != gwMissingToken {
			t.Fatalf("unsigned: %d %s, want 403 %q", status, raw, gwMissingToken)
		}
		status, _, raw = c.do("GET", "/v1/users/"+user+"/segments", "", matrixCase{key: keyApp, sig: sigWrongSecret})
		if status != 403 {
			t.Fatalf("wrong secret: %d %s, want 403", status, raw)
		}
	})
	t.Run("/v1/me takes a dev token", func(t *testing.T) {
		c.t = t
		c.waitSegments(user)
		token := c.mint(e.App, user)
		status, _, raw := c.do("GET", access.PathMeSegments, "", matrixCase{key: keyApp, bearer: bearerValid, token: token})
		var doc struct{ Segments []string }
		if status != 200 || json.Unmarshal(raw, &doc) != nil || len(doc.Segments) == 0 {
			t.Fatalf("with a token: %d %s, want 200 and the user's segments", status, raw)
		}
		status, _, raw = c.do("GET", access.PathMeSegments, "", matrixCase{key: keyApp})
		if status != 401 || gatewayMessage(raw) != "Unauthorized" {
			t.Fatalf("without a token: %d %s, want the JWT authorizer's 401", status, raw)
		}
		status, _, raw = c.do("GET", access.PathMeSegments, "", matrixCase{key: keyApp, bearer: bearerValid, token: c.mint(otherApp, user)})
		if status != 401 || gatewayMessage(raw) != "Unauthorized" {
			t.Fatalf("a token for an app without end-user tokens: %d %s, want the JWT authorizer's 401", status, raw)
		}
	})
	if !slices.ContainsFunc(ds.lines(), func(l string) bool { return strings.HasPrefix(l, "  door      HTTP API") }) {
		t.Errorf("the summary does not say which door runs:\n%s", strings.Join(ds.lines(), "\n"))
	}
}

// frontDoorConfig writes the dev config with a second app (otherApp, key otherAppKey, no
// end-user tokens) limited to 1 request/s with bursts of 2.
func frontDoorConfig(t *testing.T, root string) string {
	t.Helper()
	return withOtherApp(t, filepath.Join(root, "infra", "config", "apps.dev.json"), "Front door test: a throttled app",
		map[string]any{"name": otherApp, "dev_value": otherAppKey, "rate_limit": 1, "burst_limit": 2}, nil)
}

// postWithKey posts body to POST /v1/events with x-api-key key (none when empty).
func postWithKey(t *testing.T, c *matrixClient, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", c.e.APIURL+access.PathEvents, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// waitSandboxEvents waits (20 s at most) until the Meta sandbox has accepted every event of ids.
func waitSandboxEvents(t *testing.T, client *http.Client, sandbox string, ids []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var accepted []struct {
			EventID string `json:"event_id"`
		}
		getJSON(t, client, sandbox+"/_sandbox/events", &accepted)
		seen := map[string]bool{}
		for _, a := range accepted {
			seen[a.EventID] = true
		}
		missing := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return seen[id] })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Meta sandbox has not received %q", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rateCount is the largest count of app's windows in the dev stack's rate table.
func rateCount(t *testing.T, e *devenv.Endpoints, app string) int {
	t.Helper()
	cfg, err := emulators.AWSConfig(context.Background(), e.DynamoDB.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	out, err := dynamodb.NewFromConfig(cfg).Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.RateTable)})
	if err != nil {
		t.Fatalf("scan %s: %v", e.RateTable, err)
	}
	most := 0
	for _, item := range out.Items {
		pk, _ := item[ratecounter.KeyAttribute].(*types.AttributeValueMemberS)
		n, _ := item[ratecounter.CountAttribute].(*types.AttributeValueMemberN)
		if pk == nil || n == nil || !strings.HasPrefix(pk.Value, "rate#"+app+"#") {
			continue
		}
		if v, err := strconv.Atoi(n.Value); err == nil && v > most {
			most = v
		}
	}
	return most
}

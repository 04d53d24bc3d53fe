//go:build unix

package devstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestAutomationEndToEnd is the automation's walk through `make dev`: the sample config's rule
// "pause-small" (pause the ad sets of cart_abandoner while its audience has fewer than 1,000
// members, in propose mode) and a handful of cart abandoners give a proposed pause of the
// sandbox's ad set for the audience; an operator's apply pauses it at the sandbox, and undo makes
// it active again, each step audited.
func TestAutomationEndToEnd(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false",
		"AUDIENCE_SYNC_INTERVAL=300ms", "SEGMENT_SWEEP_INTERVAL=300ms", "INSIGHTS_INTERVAL=1h")
	api := ds.ready(t)
	sandbox := ds.match(t, metaLine)[1]
	defer ds.stop(t, syscall.SIGTERM, 30*time.Second)
	client := &http.Client{Timeout: 30 * time.Second}

	// Five cart abandoners: an add-to-cart two hours ago, no purchase.
	var events []map[string]any
	for i := range 5 {
		u := fmt.Sprintf("auto-%d", i)
		events = append(events, map[string]any{
			"event_id": "cart-" + u, "event_name": "fb_mobile_add_to_cart", "event_time": time.Now().Add(-2 * time.Hour).Unix(),
			"user":    map[string]any{"app_user_id": u, "email": u + "@example.com"},
			"device":  map[string]any{"platform": "android", "os_version": "14"},
			"consent": map[string]any{"ads_personalization": true},
		})
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	req, _ := http.NewRequest(http.MethodPost, api+"/v1/events", bytes.NewReader(body))
	req.Header.Set("x-api-key", "dev-api-key")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %v %v", resp, err)
	}
	resp.Body.Close()
	waitUntil(t, "the cart abandoners are uploaded", 60*time.Second, func() (bool, string) {
		sizes, _ := bothArms(sandboxAudiences(t, client, sandbox))
		return sizes["Cart abandoners"] == 5, fmt.Sprintf("sizes %v", sizes)
	})
	cart := cartAdSet(t, client, sandbox)
	if cart.Status != "ACTIVE" {
		t.Fatalf("the sandbox's ad set for Cart abandoners is %s before any automation", cart.Status)
	}

	cli := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(retargetBinary(t), append([]string{"--dev-dir", ds.devDir}, args...)...)
		cmd.Dir = root
		cmd.Env = cliEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("retarget %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
		}
		return stdout.Bytes()
	}
	type action struct {
		ID, Rule, Action, Status string
		AdSetID                  string `json:"adset_id"`
	}
	list := func() []action {
		t.Helper()
		var out []action
		if err := json.Unmarshal(cli("automation", "list", "--json"), &out); err != nil {
			t.Fatalf("automation list --json: %v", err)
		}
		return out
	}
	find := func(as []action) action {
		t.Helper()
		var found []action
		for _, a := range as {
			if a.Rule == "pause-small" && a.AdSetID == cart.ID {
				found = append(found, a)
			}
		}
		if len(found) != 1 {
			t.Fatalf("actions %+v: want exactly one of rule pause-small on ad set %s", as, cart.ID)
		}
		return found[0]
	}

	cli("automation", "run")
	proposed := find(list())
	if proposed.Action != "pause" || proposed.Status != "proposed" {
		t.Fatalf("after automation run: %+v, want a proposed pause", proposed)
	}
	if s := cartAdSet(t, client, sandbox).Status; s != "ACTIVE" {
		t.Errorf("a proposal changed the ad set: %s", s)
	}
	cli("automation", "run") // again: the same proposal, not a second one
	if again := find(list()); again.ID != proposed.ID || again.Status != "proposed" {
		t.Errorf("a second run: %+v, want the proposal %s unchanged", again, proposed.ID)
	}

	cli("automation", "apply", proposed.ID)
	if a := find(list()); a.Status != "applied" {
		t.Errorf("after apply: %+v, want applied", a)
	}
	if s := cartAdSet(t, client, sandbox).Status; s != "PAUSED" {
		t.Errorf("after apply the ad set is %s, want PAUSED", s)
	}

	cli("automation", "undo", proposed.ID)
	if a := find(list()); a.Status != "undone" {
		t.Errorf("after undo: %+v, want undone", a)
	}
	if s := cartAdSet(t, client, sandbox).Status; s != "ACTIVE" {
		t.Errorf("after undo the ad set is %s, want ACTIVE again", s)
	}
}

// sandboxAdSet is an ad set as the sandbox's /_sandbox/adsets lists it.
type sandboxAdSet struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	Included []string `json:"included"`
}

// cartAdSet returns the sandbox's ad set for the Cart abandoners audience (make dev gives each
// treated audience one).
func cartAdSet(t *testing.T, client *http.Client, sandbox string) sandboxAdSet {
	t.Helper()
	var sets []sandboxAdSet
	getJSON(t, client, sandbox+"/_sandbox/adsets", &sets)
	for _, s := range sets {
		if s.Name == "Remarketing: Cart abandoners" {
			return s
		}
	}
	t.Fatalf("no ad set for Cart abandoners in %+v", sets)
	return sandboxAdSet{}
}

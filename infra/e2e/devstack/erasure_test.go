//go:build unix

package devstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestErasureEndToEnd: a user in two audiences is erased through the API. Both audiences in the
// sandbox lose the user's row, the state is gone, the audit record is there, and the user's
// later events are neither forwarded nor segmented until an explicit consent grant.
func TestErasureEndToEnd(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "AUDIENCE_SYNC_INTERVAL=300ms", "SEGMENT_SWEEP_INTERVAL=300ms")
	api := readyLine.FindStringSubmatch(ds.waitFor(t, readyLine, readyTimeout))[1]
	dynamoEndpoint, dynamoPID := ds.endpoint(t, dynamoLine)
	_, kinesisPID := ds.endpoint(t, kinesisLine)
	ds.emulatorPIDs = []int{kinesisPID, dynamoPID}
	sandbox := ds.match(t, metaLine)[1]
	defer ds.stop(t, syscall.SIGTERM, 30*time.Second)

	client := &http.Client{Timeout: 15 * time.Second}
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		req.Header.Set("x-api-key", "dev-api-key")
		req.Header.Set("Content-Type", "application/json")
		if strings.HasPrefix(path, "/v1/users/") { // the IAM routes
			signAsDevAdmin(t, req, []byte(body))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var doc map[string]any
		json.Unmarshal(raw, &doc)
		return resp.StatusCode, doc
	}
	event := func(id, user, name string, at time.Time, value float64) map[string]any {
		e := map[string]any{"event_id": id, "event_name": name, "event_time": at.Unix(),
			"user":    map[string]any{"app_user_id": user, "email": user + "@example.com"},
			"device":  map[string]any{"platform": "android", "os_version": "14"},
			"consent": map[string]any{"ads_personalization": true}}
		if value > 0 {
			e["custom_data"] = map[string]any{"value": value, "currency": "USD"}
		}
		return e
	}
	post := func(evs ...map[string]any) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"events": evs})
		if status, doc := call("POST", "/v1/events", string(body)); status != 202 {
			t.Fatalf("POST events: %d %v", status, doc)
		}
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Audience membership by e-mail digest, the way Meta would match the rows.
	emailHash := func(user string) string {
		sum := sha256.Sum256([]byte(user + "@example.com"))
		return hex.EncodeToString(sum[:])
	}
	members := func() map[string]map[string]bool { // audience name -> email digests
		var list []struct{ ID, Name string }
		getJSON(t, client, sandbox+"/_sandbox/audiences", &list)
		out := map[string]map[string]bool{}
		for _, a := range list {
			var detail struct {
				Members map[string]struct {
					Row map[string]string `json:"row"`
				} `json:"members"`
			}
			getJSON(t, client, sandbox+"/_sandbox/audiences/"+a.ID, &detail)
			// The segment's audience, whichever arm (treated or holdout) the user is in.
			name := strings.TrimSuffix(a.Name, appconfig.HoldoutNameSuffix)
			if out[name] == nil {
				out[name] = map[string]bool{}
			}
			for _, m := range detail.Members {
				out[name][m.Row["EMAIL"]] = true
			}
		}
		return out
	}
	forwarded := func(eventID string) bool {
		var acc []struct {
			EventID string `json:"event_id"`
		}
		getJSON(t, client, sandbox+"/_sandbox/events", &acc)
		for _, a := range acc {
			if a.EventID == eventID {
				return true
			}
		}
		return false
	}

	// Fay and Gus spend 250 on their first day: both are new installers and top spenders.
	now := time.Now()
	post(event("fay-buy", "fay", "fb_mobile_purchase", now.Add(-time.Minute), 250), event("gus-buy", "gus", "fb_mobile_purchase", now.Add(-time.Minute), 250))
	fay := emailHash("fay")
	eventually("fay in two audiences", func() bool {
		m := members()
		return m["Top spenders"][fay] && m["New installers"][fay] && m["Top spenders"][emailHash("gus")]
	})

	status, doc := call("DELETE", "/v1/users/fay", "")
	erasureID, _ := doc["erasure_id"].(string)
	if status != 202 || erasureID == "" {
		t.Fatalf("DELETE /v1/users/fay = %d %v", status, doc)
	}
	eventually("fay removed from both audiences", func() bool {
		m := members()
		return !m["Top spenders"][fay] && !m["New installers"][fay] && m["Top spenders"][emailHash("gus")]
	})
	var removals []string
	var requests []struct {
		Method     string `json:"method"`
		AudienceID string `json:"audience_id"`
		Rows       int    `json:"rows"`
		Status     int    `json:"status"`
	}
	getJSON(t, client, sandbox+"/_sandbox/requests", &requests)
	for _, r := range requests {
		if r.Method == "DELETE" && r.Status == 200 && r.Rows > 0 {
			removals = append(removals, r.AudienceID)
		}
	}
	if len(removals) < 2 {
		t.Errorf("removal requests to %v, want one per audience", removals)
	}

	// The state is gone (a tombstone without segments), the audit record is there, and the API
	// answers for fay exactly as for a user it never saw (no existence oracle).
	erasedStatus, erasedDoc := call("GET", "/v1/users/fay/segments", "")
	unknownStatus, unknownDoc := call("GET", "/v1/users/never-seen-user/segments", "")
	if erasedStatus != 404 || unknownStatus != 404 || fmt.Sprint(erasedDoc) != fmt.Sprint(unknownDoc) {
		t.Errorf("segments of fay after erasure: %d %v; of an unknown user: %d %v; want the same 404", erasedStatus, erasedDoc, unknownStatus, unknownDoc)
	}
	cfg, err := emulators.AWSConfig(context.Background(), dynamoEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	store := dynamostate.New(dynamodb.NewFromConfig(cfg), devenv.StateTable, dynamostate.Options{})
	pseudo, _ := identity.NewPseudonymizer([]byte(devenv.Pepper))
	key := pseudo.UserKey("sample-shop", identity.KindAppUserID, "fay")
	rec, found, err := store.GetUser(context.Background(), "sample-shop", key)
	if err != nil || !found || len(rec.Segments) != 0 || strings.Contains(string(rec.State), `"ltv"`) {
		t.Errorf("fay's item after erasure: %+v %v %v", rec, found, err)
	}
	audit, ok, err := store.Erasure(context.Background(), "sample-shop", erasureID)
	if err != nil || !ok || audit.UserKey != key || len(audit.Audiences) != 2 {
		t.Errorf("audit record %+v %v %v, want two audiences", audit, ok, err)
	}

	// Later events: not forwarded, not segmented (gus's, in the same request, are).
	post(event("fay-later", "fay", "fb_mobile_purchase", time.Now(), 500), event("gus-later", "gus", "fb_mobile_activate_app", time.Now(), 0))
	eventually("gus's event forwarded", func() bool { return forwarded("gus-later") })
	time.Sleep(time.Second) // the updater's batch of the same records
	if forwarded("fay-later") {
		t.Error("an event of the erased user was forwarded")
	}
	if status, doc := call("GET", "/v1/users/fay/segments", ""); status != 404 {
		t.Errorf("erased user answered: %d %v, want 404", status, doc)
	}
	if rec, _, err := store.GetUser(context.Background(), "sample-shop", key); err != nil || len(rec.Segments) != 0 {
		t.Errorf("erased user segmented again: %+v %v", rec, err)
	}

	// An explicit grant resumes both.
	if status, doc := call("PUT", "/v1/users/fay/consent", `{"ads_personalization": true}`); status != 200 {
		t.Fatalf("PUT consent: %d %v", status, doc)
	}
	post(event("fay-back", "fay", "fb_mobile_purchase", time.Now(), 300))
	eventually("fay's event after the grant forwarded", func() bool { return forwarded("fay-back") })
	eventually("fay segmented again", func() bool {
		_, doc := call("GET", "/v1/users/fay/segments", "")
		return strings.Contains(fmt.Sprint(doc["segments"]), "vip")
	})
}

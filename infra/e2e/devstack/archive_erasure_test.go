//go:build unix

package devstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestErasureReachesTheArchive runs make dev with a 1 s archive purge, archives the events of
// two users, erases one through DELETE /v1/users/{id} and waits one settle time plus one purge
// interval: none of the erased user's event ids is left in any archive file (each file read
// whole, without the readers' deduplication), and every event of the other user is still there.
func TestErasureReachesTheArchive(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	const settle, interval = 3 * time.Second, time.Second
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0",
		"ARCHIVE_PURGE_INTERVAL="+interval.String(), "ARCHIVE_PURGE_SETTLE="+settle.String())
	api := ds.ready(t)
	defer ds.stop(t, syscall.SIGTERM, 30*time.Second)
	archiveDir := devenv.ArchivePath(ds.devDir)

	client := &http.Client{Timeout: 15 * time.Second}
	call := func(method, path, body string) (int, string) {
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
		return resp.StatusCode, string(raw)
	}

	// Three batches, so each user's rows are spread over several files, some shared.
	now := time.Now()
	ids := map[string][]string{}
	for batch := range 3 {
		var evs []map[string]any
		for _, user := range []string{"ana", "bob"} {
			for i := range 2 {
				id := fmt.Sprintf("%s-%d-%d-%d", user, now.UnixNano(), batch, i)
				ids[user] = append(ids[user], id)
				evs = append(evs, map[string]any{"event_id": id, "event_name": "fb_mobile_add_to_cart", "event_time": now.Add(-time.Minute).Unix(),
					"user":    map[string]any{"app_user_id": user, "email": user + "@example.com"},
					"device":  map[string]any{"platform": "android", "os_version": "14"},
					"consent": map[string]any{"ads_personalization": true}})
			}
		}
		body, _ := json.Marshal(map[string]any{"events": evs})
		if status, resp := call("POST", "/v1/events", string(body)); status != 202 {
			t.Fatalf("POST events: %d %s", status, resp)
		}
		time.Sleep(2500 * time.Millisecond) // past the archiver's 2 s window: another file
	}

	// fileIDs reads every archive file whole: event id -> number of copies.
	fileIDs := func() map[string]int {
		t.Helper()
		out := map[string]int{}
		err := filepath.WalkDir(archiveDir, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(archiveDir, path)
			p, ok := archivefiles.ParseName(filepath.ToSlash(rel))
			if !ok {
				return nil // a write under way
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rows, err := archivefiles.Decode(p, data)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			for _, r := range rows {
				out[r.EventID]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := slices.Concat(ids["ana"], ids["bob"])
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := fileIDs()
		missing := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return got[id] > 0 })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events never archived: %v", missing)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The erasure's time is the server's, somewhere between sending the request and its answer:
	// the settle time counts from before the request, the deadline from after the answer.
	requested := time.Now()
	if status, resp := call("DELETE", "/v1/users/ana", ""); status != 202 {
		t.Fatalf("DELETE /v1/users/ana = %d %s", status, resp)
	}
	erased := time.Now()
	// Within the documented time: the settle time plus one interval, plus the run itself.
	deadline = erased.Add(settle + interval + 10*time.Second)
	for {
		got := fileIDs()
		left := slices.DeleteFunc(slices.Clone(ids["ana"]), func(id string) bool { return got[id] == 0 })
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after the erasure the archive still holds ana's events %v", time.Since(erased).Round(time.Second), left)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The erasure's request time is kept in whole seconds: the purge may start up to a second
	// before settle has passed since the request was sent.
	if took := time.Since(requested); took < settle-time.Second {
		t.Errorf("ana's rows went after %s, before the settle time %s", took, settle)
	}
	got := fileIDs()
	for _, id := range ids["bob"] {
		if got[id] == 0 {
			t.Errorf("bob's event %s is gone from the archive", id)
		}
	}
	// The export agrees, and the console said what the purge did.
	day := time.Now().UTC().Format("2006-01-02")
	out := exportArchive(t, archiveDir, time.Now().UTC().Add(-time.Hour).Format("2006-01-02"), day)
	if bytes.Contains(out, []byte(`"ana-`)) || !bytes.Contains(out, []byte(ids["bob"][0])) {
		t.Errorf("export after the purge:\n%s", out)
	}
	ds.waitFor(t, regexp.MustCompile(`^archive purge: erasures done 1, rows removed [1-9]`), 10*time.Second)
}

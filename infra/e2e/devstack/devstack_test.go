//go:build unix

package devstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// These tests build the real binary and run it as `make dev` does, on free loopback ports.

const readyTimeout = 60 * time.Second

var (
	readyLine   = regexp.MustCompile(`^retarget dev stack ready on (http://127\.0\.0\.1:\d+)$`)
	kinesisLine = regexp.MustCompile(`^  kinesis +(http://127\.0\.0\.1:\d+) +\(kinesalite, pid (\d+)\)`)
	dynamoLine  = regexp.MustCompile(`^  dynamodb +(http://127\.0\.0\.1:\d+) +\(dynalite, pid (\d+)\)`)
	curlDataArg = regexp.MustCompile(`^  curl .* -d '([^']*)'$`)
	metaLine    = regexp.MustCompile(`^  meta +(http://127\.0\.0\.1:\d+) +\(Meta Graph sandbox`)
	// A tail line: a record of one event names it, one of several (version 2) counts them and
	// names the first.
	tailLineExpr = regexp.MustCompile(`^tail shard=shardId-\d+ seq=(\d+) v=(\d+) app=(\S+) user=\S{43} (?:event=\S+|events=(\d+) first=\S+) id=(\S+) bytes=\d+$`)
)

func TestDevstack(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "AUDIENCE_SYNC_INTERVAL=300ms", "SEGMENT_SWEEP_INTERVAL=300ms")
	ready := ds.waitFor(t, readyLine, readyTimeout)
	api := readyLine.FindStringSubmatch(ready)[1]
	kinesisEndpoint, kinesisPID := ds.endpoint(t, kinesisLine)
	dynamoEndpoint, dynamoPID := ds.endpoint(t, dynamoLine)
	ds.emulatorPIDs = []int{kinesisPID, dynamoPID}
	curlBody := ds.match(t, curlDataArg)[1]
	sandbox := ds.match(t, metaLine)[1]

	now := time.Now()
	validBatch := ingesttest.RefreshEventTimes(t, ingesttest.FixtureBody(t, "valid-batch.json"), now)
	partlyInvalid := ingesttest.RefreshEventTimes(t, ingesttest.FixtureBody(t, "partly-invalid-batch.json"), now)
	example := ingesttest.RefreshEventTimes(t, curlBody, now)

	const key = "dev-api-key"
	tests := []struct {
		name         string
		method, path string
		key          string
		body         string
		wantStatus   int
		check        func(t *testing.T, a gatewayAnswer)
	}{
		{name: "health", method: "GET", path: "/v1/health", wantStatus: 200, check: func(t *testing.T, a gatewayAnswer) {
			if a.Status != "ok" {
				t.Errorf("status %q, want ok", a.Status)
			}
		}},
		{name: "curl example", method: "POST", path: "/v1/events", key: key, body: example, wantStatus: 202, check: wantAccepted(1)},
		{name: "valid batch", method: "POST", path: "/v1/events", key: key, body: validBatch, wantStatus: 202, check: wantAccepted(4)},
		{name: "broken events", method: "POST", path: "/v1/events", key: key, body: partlyInvalid, wantStatus: 202, check: wantAccepted(2, 1, 2)},
		// API Gateway's own answer to a missing or unknown key on a keyed method.
		{name: "no key", method: "POST", path: "/v1/events", body: validBatch, wantStatus: 403, check: wantMessage("Forbidden")},
		{name: "unknown key", method: "POST", path: "/v1/events", key: "not-a-key", body: validBatch, wantStatus: 403, check: wantMessage("Forbidden")},
		{name: "server events unsigned", method: "POST", path: "/v1/server/events", key: key, body: validBatch, wantStatus: 403, check: wantMessage("Missing Authentication Token")},
		{name: "501 events", method: "POST", path: "/v1/events", key: key, body: ingesttest.FixtureBody(t, "oversized-batch.json"), wantStatus: 413},
		{name: "body over 1 MiB", method: "POST", path: "/v1/events", key: key, body: `{"events":[` + strings.Repeat(" ", 3<<19) + `]}`, wantStatus: 413},
		{name: "non-UTF-8 body", method: "POST", path: "/v1/events", key: key, body: "\xff\xfe{", wantStatus: 400},
		// API Gateway's request model answers this one, as deployed, without the function.
		{name: "events not an array", method: "POST", path: "/v1/events", key: key, body: `{"events": {"event_id": "x"}}`, wantStatus: 400,
			check: func(t *testing.T, a gatewayAnswer) {
				if a.Error != appevent.BodyShapeMessage {
					t.Errorf("error %q, want the gateway's %q", a.Error, appevent.BodyShapeMessage)
				}
			}},
		{name: "wrong method", method: "GET", path: "/v1/events", key: key, wantStatus: 405},
		{name: "unknown route", method: "GET", path: "/v1/nothing", wantStatus: 404},
	}
	client := &http.Client{Timeout: 15 * time.Second}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, api+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.key != "" {
				req.Header.Set("x-api-key", tc.key)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantStatus, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var a gatewayAnswer
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatalf("body %s: %v", raw, err)
			}
			if tc.wantStatus >= 400 && a.Error == "" && a.Rejected == nil && a.Message == "" {
				t.Errorf("error response without a message: %s", raw)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
	if t.Failed() {
		return
	}

	// 1 (example) + 4 (valid batch) + 2 (the valid events of the broken batch).
	wantIDs := append(append(eventIDs(t, example), eventIDs(t, validBatch)...), "2b0a7c2e-7f0e-4b8e-9d51-000000000001", "2b0a7c2e-7f0e-4b8e-9d51-000000000003")
	// What each record holds, by sequence number, as the tail should print it: its version, its
	// first event id and, for a record of several events, their count.
	tailWant := map[string]string{}
	t.Run("stream", func(t *testing.T) {
		records := readStream(t, kinesisEndpoint, len(wantIDs))
		var gotIDs []string
		personal := ingesttest.PersonalValues(t, example, validBatch, partlyInvalid)
		for _, r := range records {
			recs, err := envelope.Decode(r.Data) // one event per record, or several of one user
			if err != nil {
				t.Fatalf("record %s: %v", r.SequenceNumber, err)
			}
			n := ""
			if len(recs) > 1 {
				n = strconv.Itoa(len(recs))
			}
			tailWant[r.SequenceNumber] = fmt.Sprintf("v=%d id=%s events=%s", recs[0].V, recs[0].Event.ID, n)
			ingesttest.AssertNoPersonalData(t, r.Data, personal)
			for _, rec := range recs {
				if rec.App != "sample-shop" || len(rec.UserKey) != 43 || r.PartitionKey != rec.UserKey {
					t.Errorf("record %s: app %q, user key %q, partition key %q", r.SequenceNumber, rec.App, rec.UserKey, r.PartitionKey)
				}
				gotIDs = append(gotIDs, rec.Event.ID)
				if rec.Event.ID == "2b0a7c2e-7f0e-4b8e-9d51-000000000001" {
					if want := sha256.Sum256([]byte("mary.major@example.com")); rec.Event.User.Email != want {
						t.Errorf("em = %s, want the SHA-256 of the normalised address", rec.Event.User.Email)
					}
				}
			}
		}
		sort.Strings(gotIDs)
		sort.Strings(wantIDs)
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("event ids on the stream:\n%q\nwant\n%q", gotIDs, wantIDs)
		}
	})

	t.Run("tail", func(t *testing.T) {
		if len(tailWant) == 0 {
			t.Skip("the stream was not read")
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := map[string]string{}
			for _, l := range ds.lines() {
				if m := tailLineExpr.FindStringSubmatch(l); m != nil {
					got[m[1]] = fmt.Sprintf("v=%s id=%s events=%s", m[2], m[5], m[4])
				}
			}
			if maps.Equal(got, tailWant) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tail lines by sequence number %q, want %q", got, tailWant)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	// The forwarder polls the stream and sends every consented event to the Meta sandbox, once
	// in effect: all but the fixture's event without consent (..04).
	t.Run("meta sandbox", func(t *testing.T) {
		var want []string // by event id: the API accepted ..01 and ..03 twice, Meta dedups them
		for _, id := range slices.Compact(slices.Sorted(slices.Values(wantIDs))) {
			if id != "2b0a7c2e-7f0e-4b8e-9d51-000000000004" {
				want = append(want, id)
			}
		}
		personal := ingesttest.PersonalValues(t, example, validBatch, partlyInvalid)
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := client.Get(sandbox + "/_sandbox/events")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var accepted []struct {
				EventID string          `json:"event_id"`
				Event   json.RawMessage `json:"event"`
			}
			if err := json.Unmarshal(raw, &accepted); err != nil {
				t.Fatalf("sandbox events: %v: %s", err, raw)
			}
			ids := map[string]bool{}
			for _, a := range accepted {
				ids[a.EventID] = true
				ingesttest.AssertNoPersonalData(t, a.Event, personal)
			}
			got := slices.Sorted(maps.Keys(ids))
			if slices.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Meta sandbox accepted %q, want %q", got, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// The segment updater folds the same events into DynamoDB; the read route answers from it.
	t.Run("segments read API", func(t *testing.T) {
		// An IAM route: signed as the dev admin (unless unsigned), with the app key (unless "").
		getAs := func(path, key string, signed bool) (int, string) {
			req, _ := http.NewRequest("GET", api+path, nil)
			if key != "" {
				req.Header.Set("x-api-key", key)
			}
			if signed {
				signAsDevAdmin(t, req, nil)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(raw)
		}
		get := func(path, key string) (int, string) { return getAs(path, key, true) }
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, body := get("/v1/users/u-123/segments", key)
			if status == 200 && strings.Contains(body, `"new_installer"`) && strings.Contains(body, `"app_user_id":"u-123"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET segments of u-123: %d %s", status, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The scenario: an add-to-cart two hours ago, then a 250 USD purchase (sent twice).
		post := func(evs ...map[string]any) {
			body, _ := json.Marshal(map[string]any{"events": evs})
			req, _ := http.NewRequest("POST", api+"/v1/events", strings.NewReader(string(body)))
			req.Header.Set("x-api-key", key)
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != 202 {
				t.Fatalf("post: %v %v", resp, err)
			}
			resp.Body.Close()
		}
		ev := func(id, name string, at time.Time, custom map[string]any) map[string]any {
			e := map[string]any{"event_id": id, "event_name": name, "event_time": at.Unix(), "user": map[string]any{"app_user_id": "dana", "email": "dana@example.com"},
				"device": map[string]any{"platform": "android", "os_version": "14"}, "consent": map[string]any{"ads_personalization": true}}
			if custom != nil {
				e["custom_data"] = custom
			}
			return e
		}
		waitSegments := func(want, notWant string) {
			deadline := time.Now().Add(20 * time.Second)
			for {
				status, body := get("/v1/users/dana/segments", key)
				if status == 200 && strings.Contains(body, `"`+want+`"`) && (notWant == "" || !strings.Contains(body, `"`+notWant+`"`)) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("segments of dana: %d %s; want %s without %q", status, body, want, notWant)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		erin := ev("erin-cart", "fb_mobile_add_to_cart", time.Now().Add(-3*time.Hour), nil)
		erin["user"] = map[string]any{"app_user_id": "erin", "email": "erin@example.com"}
		post(erin) // a second abandoner: Meta refuses to empty an audience
		post(ev("dana-cart", "fb_mobile_add_to_cart", time.Now().Add(-2*time.Hour), nil))
		waitSegments("cart_abandoner", "")
		buy := ev("dana-buy", "fb_mobile_purchase", time.Now().Add(-time.Minute), map[string]any{"value": 250, "currency": "USD"})
		post(buy)
		post(buy)
		waitSegments("vip", "cart_abandoner")

		// Audience sync mirrors that into the sandbox's Custom Audiences: dana left the cart
		// abandoners (erin stays) and is in the top spenders with her lifetime value.
		deadline = time.Now().Add(20 * time.Second)
		for {
			sizes, values := bothArms(sandboxAudiences(t, client, sandbox))
			if sizes["Cart abandoners"] == 1 && sizes["Top spenders"] == 1 && values["Top spenders"] == "250" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandbox audiences: sizes %v, values %v", sizes, values)
			}
			time.Sleep(200 * time.Millisecond)
		}

		if status, _ := get("/v1/users/nobody/segments", key); status != 404 {
			t.Errorf("unknown user: %d, want 404", status)
		}
		// API Gateway's answers: signed without the app key, and the key without a signature.
		if status, body := get("/v1/users/u-123/segments", ""); status != 403 || body != `{"message":"Forbidden"}` {
			t.Errorf("no key: %d %s, want 403 Forbidden", status, body)
		}
		if status, body := getAs("/v1/users/u-123/segments", key, false); status != 403 || body != `{"message":"Missing Authentication Token"}` {
			t.Errorf("no signature: %d %s, want 403 Missing Authentication Token", status, body)
		}
	})

	t.Run("SIGTERM stops everything", func(t *testing.T) {
		code := ds.stop(t, syscall.SIGTERM, 30*time.Second)
		if code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		if !slices.Contains(ds.lines(), "stopped") {
			t.Errorf("no \"stopped\" line")
		}
		for _, pid := range ds.emulatorPIDs {
			if ingesttest.Alive(pid) {
				t.Errorf("emulator pid %d still runs after the dev stack exited", pid)
			}
		}
		for _, ep := range []string{kinesisEndpoint, dynamoEndpoint, api} {
			if c, err := net.DialTimeout("tcp", strings.TrimPrefix(ep, "http://"), time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections", ep)
			}
		}
	})
}

// TestDevstackSIGKILLLeavesNoEmulators checks the promise of package emulators for the dev
// stack: the emulators exit when their parent dies, even when it cannot clean up.
func TestDevstackSIGKILLLeavesNoEmulators(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false")
	ds.ready(t)

	ds.stop(t, syscall.SIGKILL, 10*time.Second)
	// A killed dev stack cannot remove its endpoints file: readers must call it stale.
	if _, err := devenv.ReadEndpoints(ds.devDir); !errors.Is(err, devenv.ErrStale) {
		t.Errorf("endpoints file of the killed dev stack: %v, want it stale", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range ds.emulatorPIDs {
		for ingesttest.Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("emulator pid %d still runs 10s after the dev stack was killed", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestDevstackRefusesNonLoopbackAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:3000", ":3000", "10.1.2.3:3000"} {
		t.Run(addr, func(t *testing.T) {
			cmd := exec.Command(devstackBinary(t), "-dev-dir", t.TempDir())
			cmd.Dir = ingesttest.RepoRoot(t)
			cmd.Env = append(cleanEnv(), "DEV_API_ADDR="+addr)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit %v, want code 1; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), "loopback only") || strings.Contains(string(out), "ready on") {
				t.Fatalf("output does not refuse the address clearly:\n%s", out)
			}
		})
	}
}

// devstack is a running dev stack binary.
type devstack struct {
	cmd          *exec.Cmd
	out          *ingesttest.LineBuffer
	stderr       *ingesttest.LineBuffer
	exited       chan struct{}
	waitErr      error
	emulatorPIDs []int  // once known, checked (and killed as a last resort) at cleanup
	devDir       string // -dev-dir: where the endpoints file is
	logDir       string // -log-dir: the functions' logs, printed (their tails) when a test fails
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// devstackBinary builds the dev stack once per test binary.
func devstackBinary(t *testing.T) string {
	t.Helper()
	root := ingesttest.RepoRoot(t)
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "devstack-test-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "devstack"), "./infra/cmd/devstack")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./infra/cmd/devstack: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "devstack")
}

// startDevstack runs the dev stack with the dev config (as make dev does); args are extra VAR=value settings
// and -flags. Cleanup kills it if it still runs and checks that no emulator survived.
func startDevstack(t *testing.T, root string, args ...string) *devstack {
	t.Helper()
	bin := devstackBinary(t)
	// Never the repository's .dev: a developer's make dev may be using it.
	devDir, logDir := t.TempDir(), t.TempDir()
	flags := []string{"-config", filepath.Join(root, "infra", "config", "apps.dev.json"), "-dev-dir", devDir, "-log-dir", logDir}
	environ := cleanEnv()
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
		} else {
			environ = append(environ, a)
		}
	}
	ds := &devstack{out: &ingesttest.LineBuffer{}, stderr: &ingesttest.LineBuffer{}, exited: make(chan struct{}), devDir: devDir, logDir: logDir}
	ds.cmd = exec.Command(bin, flags...)
	ds.cmd.Dir = root // the emulators are found under <root>/.devtools
	ds.cmd.Env = environ
	ds.cmd.Stdout = ds.out
	ds.cmd.Stderr = ds.stderr
	ds.cmd.SysProcAttr = childProcAttr()
	if err := ds.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		ds.waitErr = ds.cmd.Wait()
		close(ds.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-ds.exited:
		default:
			ds.cmd.Process.Kill()
			<-ds.exited
		}
		for _, pid := range ds.emulatorPIDs {
			killStrayEmulator(t, pid)
		}
		if t.Failed() {
			t.Logf("dev stack stdout:\n%s\nstderr:\n%s", ds.out, ds.stderr)
			ds.logTails(t)
		}
	})
	return ds
}

// logTails prints the last lines of each function log of the dev stack (the updater's, the
// forwarder's...): what a failed end-to-end test needs to say where the pipeline stopped.
func (ds *devstack) logTails(t *testing.T) {
	const tail = 40
	files, _ := filepath.Glob(filepath.Join(ds.logDir, "*.log"))
	for _, f := range files {
		if b := filepath.Base(f); b == "kinesalite.log" || b == "dynalite.log" || b == "metrics.log" {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil || len(raw) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
		t.Logf("%s, last %d of %d lines:\n%s", filepath.Base(f), min(tail, len(lines)), len(lines), strings.Join(lines[max(0, len(lines)-tail):], "\n"))
	}
}

// ready waits for the ready line, records the emulators' pids (checked, and killed as a last
// resort, at cleanup) and returns the API's base URL.
func (ds *devstack) ready(t *testing.T) string {
	t.Helper()
	api := readyLine.FindStringSubmatch(ds.waitFor(t, readyLine, readyTimeout))[1]
	_, kinesisPID := ds.endpoint(t, kinesisLine)
	_, dynamoPID := ds.endpoint(t, dynamoLine)
	ds.emulatorPIDs = []int{kinesisPID, dynamoPID}
	return api
}

// waitFor waits until a stdout line matches re and returns it; it fails the test if the process
// exits first or the timeout passes.
func (ds *devstack) waitFor(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, l := range ds.lines() {
			if re.MatchString(l) {
				return l
			}
		}
		select {
		case <-ds.exited:
			t.Fatalf("dev stack exited (%v) before printing a line matching %s", ds.waitErr, re)
		case <-deadline:
			t.Fatalf("no line matching %s after %s", re, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (ds *devstack) lines() []string { return ds.out.Lines() }

// match returns the submatches of the first stdout line matching re.
func (ds *devstack) match(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	for _, l := range ds.lines() {
		if m := re.FindStringSubmatch(l); m != nil {
			return m
		}
	}
	t.Fatalf("no stdout line matches %s", re)
	return nil
}

// endpoint parses an emulator line: its URL and pid.
func (ds *devstack) endpoint(t *testing.T, re *regexp.Regexp) (string, int) {
	t.Helper()
	m := ds.match(t, re)
	pid, err := strconv.Atoi(m[2])
	if err != nil {
		t.Fatal(err)
	}
	return m[1], pid
}

// stop sends sig and waits for the exit; it returns the exit code (-1 if killed by a signal).
func (ds *devstack) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := ds.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ds.exited:
	case <-time.After(timeout):
		t.Fatalf("dev stack still runs %s after %v", timeout, sig)
	}
	return ds.cmd.ProcessState.ExitCode()
}

// readStream reads the whole stream until its records hold want events (10 s at most); a
// record that does not decode counts as one.
func readStream(t *testing.T, endpoint string, want int) []kinesisstream.TailedRecord {
	t.Helper()
	cfg, err := emulators.AWSConfig(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tailer := kinesisstream.NewTailer(kinesis.NewFromConfig(cfg), devenv.Stream, kinesisstream.TrimHorizon)
	var all []kinesisstream.TailedRecord
	events := 0
	for events < want {
		recs, err := tailer.Drain(ctx)
		all = append(all, recs...)
		for _, r := range recs {
			evs, _ := envelope.Decode(r.Data)
			events += max(1, len(evs))
		}
		if err != nil {
			t.Fatalf("read stream (%d of %d events): %v", events, want, err)
		}
		if events < want {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if events != want {
		t.Errorf("%d events on the stream, want %d", events, want)
	}
	return all
}

// eventIDs returns the event ids of a request body.
func eventIDs(t *testing.T, body string) []string {
	t.Helper()
	var req struct {
		Events []struct {
			ID string `json:"event_id"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range req.Events {
		ids = append(ids, e.ID)
	}
	return ids
}

// cleanEnv is the test's environment without the variables the dev stack reads and without
// AWS settings, so the developer's shell cannot change what the test runs.
func cleanEnv() []string {
	var environ []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AWS_"), name == devenv.EnvAPIAddr, name == env.DevAPIKey, name == env.Pepper,
			name == env.StreamName, name == env.LogLevel, name == devenv.EnvAdminAccessKeyID, name == devenv.EnvAdminSecretAccessKey, name == devenv.EnvFrontDoor, name == env.StreamFormat:
			continue
		}
		environ = append(environ, kv)
	}
	return environ
}

// killStrayEmulator kills pid if it still runs and is one of our emulators (a last resort:
// the emulators must have exited by themselves), and fails the test in that case.
func killStrayEmulator(t *testing.T, pid int) {
	if !ingesttest.Alive(pid) {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && !bytes.Contains(cmdline, []byte("emulator.js")) {
		return // the pid was reused by something else
	}
	t.Errorf("emulator pid %d outlived the dev stack; killing it", pid)
	syscall.Kill(pid, syscall.SIGKILL)
}

// sandboxAudiences reads the Meta sandbox's audiences: size by name, and the LOOKALIKE_VALUE of
// the last member of each value-based audience.
func sandboxAudiences(t *testing.T, client *http.Client, sandbox string) (map[string]int, map[string]string) {
	t.Helper()
	var list []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	getJSON(t, client, sandbox+"/_sandbox/audiences", &list)
	sizes, values := map[string]int{}, map[string]string{}
	for _, a := range list {
		sizes[a.Name] = a.Size
		var detail struct {
			Members map[string]struct {
				Row map[string]string `json:"row"`
			} `json:"members"`
		}
		getJSON(t, client, sandbox+"/_sandbox/audiences/"+a.ID, &detail)
		for _, m := range detail.Members {
			if v, ok := m.Row["LOOKALIKE_VALUE"]; ok {
				values[a.Name] = v
			}
		}
	}
	return sizes, values
}

// bothArms folds each holdout audience ("<name> (holdout)") into its treated audience's name:
// sizes and values of a segment's audience whichever arm its users were assigned to (the
// holdout assignment is tested on its own, here only the segment's membership matters).
func bothArms(sizes map[string]int, values map[string]string) (map[string]int, map[string]string) {
	s, v := map[string]int{}, map[string]string{}
	for name, n := range sizes {
		s[strings.TrimSuffix(name, appconfig.HoldoutNameSuffix)] += n
	}
	for name, x := range values {
		v[strings.TrimSuffix(name, appconfig.HoldoutNameSuffix)] = x
	}
	return s, v
}

// gatewayAnswer is an answer of the API: the function's (ingesttest.Answer) or API Gateway's own
// ({"message": ...}).
type gatewayAnswer struct {
	ingesttest.Answer
	Message string `json:"message"`
}

func wantAccepted(n int, rejected ...int) func(*testing.T, gatewayAnswer) {
	check := ingesttest.WantAccepted(n, rejected...)
	return func(t *testing.T, a gatewayAnswer) { check(t, a.Answer) }
}

func wantMessage(msg string) func(*testing.T, gatewayAnswer) {
	return func(t *testing.T, a gatewayAnswer) {
		if a.Message != msg {
			t.Errorf("message %q, want %q", a.Message, msg)
		}
	}
}

// signAsDevAdmin signs req (whose body is body) with SigV4 and the dev stack's default dev admin
// credentials, as the IAM routes require (the test environment sets no DEV_ADMIN_*).
func signAsDevAdmin(t *testing.T, req *http.Request, body []byte) {
	t.Helper()
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: devenv.AdminAccessKeyID, SecretAccessKey: devenv.AdminSecretAccessKey}
	if err := v4.NewSigner().SignHTTP(req.Context(), creds, req, hex.EncodeToString(sum[:]), "execute-api", devenv.APIRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, client *http.Client, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v: %s", url, err, raw)
	}
}

//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/emulators"
	"github.com/retarget-dev/retarget/shared/envelope"
)

// These tests build the real binary and run it as `make dev` does, on free loopback ports.

const readyTimeout = 60 * time.Second

var (
	readyLine    = regexp.MustCompile(`^retarget dev stack ready on (http://127\.0\.0\.1:\d+)$`)
	kinesisLine  = regexp.MustCompile(`^  kinesis +(http://127\.0\.0\.1:\d+) +\(kinesalite, pid (\d+)\)`)
	dynamoLine   = regexp.MustCompile(`^  dynamodb +(http://127\.0\.0\.1:\d+) +\(dynalite, pid (\d+)\)`)
	curlDataArg  = regexp.MustCompile(`^  curl .* -d '([^']*)'$`)
	tailLineExpr = regexp.MustCompile(`^tail shard=shardId-\d+ seq=\d+ app=(\S+) user=\S{43} event=(\S+) id=(\S+) bytes=\d+$`)
)

func TestDevstack(t *testing.T) {
	root := repoRoot(t)
	requireEmulatorTools(t, root)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0")
	ready := ds.waitFor(t, readyLine, readyTimeout)
	api := readyLine.FindStringSubmatch(ready)[1]
	kinesisEndpoint, kinesisPID := ds.endpoint(t, kinesisLine)
	dynamoEndpoint, dynamoPID := ds.endpoint(t, dynamoLine)
	ds.emulatorPIDs = []int{kinesisPID, dynamoPID}
	curlBody := ds.match(t, curlDataArg)[1]

	now := time.Now()
	validBatch := refreshEventTimes(t, fixtureBody(t, root, "valid-batch.json"), now)
	partlyInvalid := refreshEventTimes(t, fixtureBody(t, root, "partly-invalid-batch.json"), now)
	example := refreshEventTimes(t, curlBody, now)

	const key = "dev-api-key"
	tests := []struct {
		name         string
		method, path string
		key          string
		body         string
		wantStatus   int
		check        func(t *testing.T, a apiAnswer)
	}{
		{name: "health", method: "GET", path: "/v1/health", wantStatus: 200, check: func(t *testing.T, a apiAnswer) {
			if a.Status != "ok" {
				t.Errorf("status %q, want ok", a.Status)
			}
		}},
		{name: "curl example", method: "POST", path: "/v1/events", key: key, body: example, wantStatus: 202, check: wantAccepted(1, nil)},
		{name: "valid batch", method: "POST", path: "/v1/events", key: key, body: validBatch, wantStatus: 202, check: wantAccepted(4, nil)},
		{name: "broken events", method: "POST", path: "/v1/events", key: key, body: partlyInvalid, wantStatus: 202, check: func(t *testing.T, a apiAnswer) {
			wantAccepted(2, []int{1, 2})(t, a)
			for _, r := range a.Rejected {
				if len(r.Errors) == 0 {
					t.Errorf("rejection of event %d has no errors", r.Index)
				}
				prefix := fmt.Sprintf("events[%d]", r.Index)
				for _, e := range r.Errors {
					if !strings.HasPrefix(e.Field, prefix) || e.Reason == "" {
						t.Errorf("event %d: error %+v, want a field under %s and a reason", r.Index, e, prefix)
					}
				}
			}
		}},
		{name: "no key", method: "POST", path: "/v1/events", body: validBatch, wantStatus: 401},
		{name: "unknown key", method: "POST", path: "/v1/events", key: "not-a-key", body: validBatch, wantStatus: 401},
		{name: "501 events", method: "POST", path: "/v1/events", key: key, body: fixtureBody(t, root, "oversized-batch.json"), wantStatus: 413},
		{name: "body over 1 MiB", method: "POST", path: "/v1/events", key: key, body: `{"events":[` + strings.Repeat(" ", 3<<19) + `]}`, wantStatus: 413},
		{name: "non-UTF-8 body", method: "POST", path: "/v1/events", key: key, body: "\xff\xfe{", wantStatus: 400},
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
			var a apiAnswer
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatalf("body %s: %v", raw, err)
			}
			if tc.wantStatus >= 400 && a.Error == "" && a.Rejected == nil {
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
	t.Run("stream", func(t *testing.T) {
		records := readStream(t, kinesisEndpoint, len(wantIDs))
		var gotIDs []string
		pii := piiNeedles(t, example, validBatch, partlyInvalid)
		for _, r := range records {
			rec, err := envelope.Decode(r.Data)
			if err != nil {
				t.Fatalf("record %s: %v", r.SequenceNumber, err)
			}
			if rec.App != "sample-shop" || len(rec.UserKey) != 43 || r.PartitionKey != rec.UserKey {
				t.Errorf("record %s: app %q, user key %q, partition key %q", r.SequenceNumber, rec.App, rec.UserKey, r.PartitionKey)
			}
			gotIDs = append(gotIDs, rec.Event.ID)
			assertNoPII(t, r.Data, pii)
			if rec.Event.ID == "2b0a7c2e-7f0e-4b8e-9d51-000000000001" {
				if want := sha256.Sum256([]byte("mary.major@example.com")); rec.Event.User.Email != want {
					t.Errorf("em = %s, want the SHA-256 of the normalised address", rec.Event.User.Email)
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
		deadline := time.Now().Add(10 * time.Second)
		for {
			var ids []string
			for _, l := range ds.lines() {
				if m := tailLineExpr.FindStringSubmatch(l); m != nil {
					ids = append(ids, m[3])
				}
			}
			sort.Strings(ids)
			if slices.Equal(ids, wantIDs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tail lines for ids %q, want %q", ids, wantIDs)
			}
			time.Sleep(100 * time.Millisecond)
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
			if alive(pid) {
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
	root := repoRoot(t)
	requireEmulatorTools(t, root)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false")
	ds.waitFor(t, readyLine, readyTimeout)
	_, kinesisPID := ds.endpoint(t, kinesisLine)
	_, dynamoPID := ds.endpoint(t, dynamoLine)
	ds.emulatorPIDs = []int{kinesisPID, dynamoPID}

	ds.stop(t, syscall.SIGKILL, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range ds.emulatorPIDs {
		for alive(pid) {
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
			cmd := exec.Command(devstackBinary(t), "-log-dir", t.TempDir())
			cmd.Dir = repoRoot(t)
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

// apiAnswer is any API v1 response body.
type apiAnswer struct {
	Status   string `json:"status"`
	Accepted *int   `json:"accepted"`
	Rejected []struct {
		Index  int `json:"index"`
		Errors []struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"errors"`
	} `json:"rejected"`
	Error string `json:"error"`
}

// wantAccepted checks a 202 body: the accepted count and the indexes of the rejected events.
func wantAccepted(n int, rejectedIdx []int) func(*testing.T, apiAnswer) {
	return func(t *testing.T, a apiAnswer) {
		t.Helper()
		if a.Accepted == nil || *a.Accepted != n {
			t.Errorf("accepted %v, want %d", a.Accepted, n)
		}
		var idx []int
		for _, r := range a.Rejected {
			idx = append(idx, r.Index)
		}
		if !slices.Equal(idx, rejectedIdx) {
			t.Errorf("rejected indexes %v, want %v (%+v)", idx, rejectedIdx, a.Rejected)
		}
	}
}

// devstack is a running dev stack binary.
type devstack struct {
	cmd          *exec.Cmd
	out          *lineBuffer
	stderr       *lineBuffer
	exited       chan struct{}
	waitErr      error
	emulatorPIDs []int // once known, checked (and killed as a last resort) at cleanup
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
	root := repoRoot(t)
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "devstack-test-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "devstack"), "./infra/devstack")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./infra/devstack: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "devstack")
}

// startDevstack runs the dev stack with the sample config; args are extra VAR=value settings
// and -flags. Cleanup kills it if it still runs and checks that no emulator survived.
func startDevstack(t *testing.T, root string, args ...string) *devstack {
	t.Helper()
	bin := devstackBinary(t)
	flags := []string{"-config", filepath.Join(root, "infra", "config", "apps.json"), "-log-dir", t.TempDir()}
	env := cleanEnv()
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
		} else {
			env = append(env, a)
		}
	}
	ds := &devstack{out: &lineBuffer{}, stderr: &lineBuffer{}, exited: make(chan struct{})}
	ds.cmd = exec.Command(bin, flags...)
	ds.cmd.Dir = root // the emulators are found under <root>/.tools
	ds.cmd.Env = env
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
		}
	})
	return ds
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

func (ds *devstack) lines() []string { return ds.out.lines() }

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

// readStream reads the whole stream until it holds want records (10 s at most).
func readStream(t *testing.T, endpoint string, want int) []kinesisstream.TailedRecord {
	t.Helper()
	cfg, err := emulators.AWSConfig(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tailer := kinesisstream.NewTailer(kinesis.NewFromConfig(cfg), defaultStream, kinesisstream.TrimHorizon)
	var all []kinesisstream.TailedRecord
	for len(all) < want {
		recs, err := tailer.Drain(ctx)
		all = append(all, recs...)
		if err != nil {
			t.Fatalf("read stream (%d of %d records): %v", len(all), want, err)
		}
		if len(all) < want {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(all) != want {
		t.Errorf("%d records on the stream, want %d", len(all), want)
	}
	return all
}

// piiFields are the user fields that must reach the stream only as hashes.
var piiFields = []string{"email", "phone", "first_name", "last_name", "city", "zip", "date_of_birth"}

// piiNeedles lists, from request bodies, the raw personal values and their obvious normalised
// forms (lower case, without spaces, digits only).
func piiNeedles(t *testing.T, bodies ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		s = strings.ToLower(s)
		if len(s) >= 4 && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	digits := regexp.MustCompile(`\D`)
	for _, b := range bodies {
		var req struct {
			Events []struct {
				User map[string]any `json:"user"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(b), &req); err != nil {
			t.Fatal(err)
		}
		for _, e := range req.Events {
			for _, f := range piiFields {
				v, _ := e.User[f].(string)
				if v == "" {
					continue
				}
				add(v)
				add(strings.ReplaceAll(v, " ", ""))
				if d := digits.ReplaceAllString(v, ""); len(d) >= 5 {
					add(d)
				}
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d PII values in the requests; the check would prove little", len(out))
	}
	return out
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// assertNoPII checks every string in a record's JSON: none may contain a needle. Digests are
// skipped (digits of a zip code may occur in hex by chance), as is the user key.
func assertNoPII(t *testing.T, data []byte, needles []string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case string:
			if path == ".uk" || hexDigest.MatchString(v) {
				return
			}
			for _, n := range needles {
				if strings.Contains(strings.ToLower(v), n) {
					t.Errorf("record field %s = %q contains personal data %q", path, v, n)
				}
			}
		}
	}
	walk("", doc)
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

// fixtureBody returns the body of an API Gateway fixture in events/ingest.
func fixtureBody(t *testing.T, root, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "events", "ingest", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev.Body
}

// refreshEventTimes moves the valid event times of a request body so that the latest is a
// minute before now, keeping their spacing and form (unix seconds or RFC 3339): the fixtures'
// times go stale after 7 days. Times that are invalid on purpose (not plausible unix seconds
// or RFC 3339) stay as they are.
func refreshEventTimes(t *testing.T, body string, now time.Time) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("request body: %v", err)
	}
	evs, _ := doc["events"].([]any)
	parse := func(v any) (time.Time, bool) {
		switch v := v.(type) {
		case json.Number:
			n, err := v.Int64()
			if err != nil || n < 1e9 || n >= 1e11 {
				return time.Time{}, false
			}
			return time.Unix(n, 0), true
		case string:
			ts, err := time.Parse(time.RFC3339, v)
			return ts, err == nil
		}
		return time.Time{}, false
	}
	var latest time.Time
	for _, e := range evs {
		if ts, ok := parse(e.(map[string]any)["event_time"]); ok && ts.After(latest) {
			latest = ts
		}
	}
	if latest.IsZero() {
		return body
	}
	shift := now.Add(-time.Minute).Sub(latest).Truncate(time.Second)
	for _, e := range evs {
		ev := e.(map[string]any)
		ts, ok := parse(ev["event_time"])
		if !ok {
			continue
		}
		if _, isNum := ev["event_time"].(json.Number); isNum {
			ev["event_time"] = json.Number(strconv.FormatInt(ts.Add(shift).Unix(), 10))
		} else {
			ev["event_time"] = ts.Add(shift).UTC().Format(time.RFC3339)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// requireEmulatorTools skips the test when node or the npm emulators are missing, or fails it
// when EMULATORS_REQUIRED=1 (the convention of emulators.StartForTest).
func requireEmulatorTools(t *testing.T, root string) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (on PATH)")
	}
	for _, p := range []string{"emulator.js", "node_modules/kinesalite/package.json", "node_modules/dynalite/package.json"} {
		if _, err := os.Stat(filepath.Join(root, ".tools", p)); err != nil {
			missing = append(missing, ".tools/"+p)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("emulator tools missing: %s", strings.Join(missing, ", "))
	if os.Getenv(emulators.RequiredEnv) == "1" {
		t.Fatalf("%s (%s=1 is set: the emulators are required)", msg, emulators.RequiredEnv)
	}
	t.Skipf("skipping: %s (run `make tools`; set %s=1 to fail instead of skipping)", msg, emulators.RequiredEnv)
}

// cleanEnv is the test's environment without the variables the dev stack reads and without
// AWS settings, so the developer's shell cannot change what the test runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AWS_"), name == EnvAPIAddr, name == EnvAPIKey, name == EnvPepper,
			name == EnvStreamName, name == EnvLogLevel:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// killStrayEmulator kills pid if it still runs and is one of our emulators (a last resort:
// the emulators must have exited by themselves), and fails the test in that case.
func killStrayEmulator(t *testing.T, pid int) {
	if !alive(pid) {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && !bytes.Contains(cmdline, []byte("emulator.js")) {
		return // the pid was reused by something else
	}
	t.Errorf("emulator pid %d outlived the dev stack; killing it", pid)
	syscall.Kill(pid, syscall.SIGKILL)
}

// alive reports whether pid runs; a zombie (exited, not yet reaped) counts as gone.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err) // no /proc (macOS): trust kill(0)
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// lineBuffer collects a process's output and splits it into lines.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the complete lines so far.
func (b *lineBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/emulators"
	"github.com/retarget-dev/retarget/shared/envelope"
)

// TestBootstrapUnderRIE runs the real bootstrap (host architecture) under the Lambda Runtime
// Interface Emulator, the way `sam local invoke` runs it in its container, and feeds it the
// API Gateway fixtures of events/ingest against a local Kinesis.
//
// Inputs: RIE_BIN (default .tools/bin/aws-lambda-rie, installed by `make tools`) and
// HOST_BUILD_DIR (a prebuilt <dir>/ingest/bootstrap, from `make build-host`; without it the test
// builds one). A missing RIE or emulator skips the test, or fails it when EMULATORS_REQUIRED=1.
func TestBootstrapUnderRIE(t *testing.T) {
	root := repoRoot(t)
	rie := rieBinary(t, root)
	kinesalite := emulators.StartForTest(t, emulators.Kinesis)
	bootstrap := bootstrapBinary(t)

	const stream = "rie-events"
	awsCfg, err := emulators.AWSConfig(context.Background(), kinesalite.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client := kinesis.NewFromConfig(awsCfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kinesisstream.EnsureStream(ctx, client, stream, 2); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	invokeURL := startRIE(t, rie, bootstrap, []string{
		"EVENT_STREAM_NAME=" + stream,
		"APP_CONFIG_FILE=" + filepath.Join(root, "infra", "config", "apps.json"),
		"PSEUDONYM_PEPPER=rie-test-pepper-0123456789",
		"DEV_AUTH=true",
		"AWS_ENDPOINT_URL_KINESIS=" + kinesalite.Endpoint,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=local",
		"AWS_SECRET_ACCESS_KEY=local",
		// Nothing of the developer's AWS setup may reach the function.
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	})

	type body struct {
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
	wantAccepted := func(n int, rejected ...int) func(*testing.T, body) {
		return func(t *testing.T, b body) {
			if b.Accepted == nil || *b.Accepted != n {
				t.Errorf("accepted %v, want %d", b.Accepted, n)
			}
			var idx []int
			for _, r := range b.Rejected {
				idx = append(idx, r.Index)
				for _, e := range r.Errors {
					if !strings.HasPrefix(e.Field, fmt.Sprintf("events[%d]", r.Index)) || e.Reason == "" {
						t.Errorf("event %d: error %+v", r.Index, e)
					}
				}
			}
			if !slices.Equal(idx, rejected) {
				t.Errorf("rejected indexes %v, want %v", idx, rejected)
			}
		}
	}
	now := time.Now()
	tests := []struct {
		fixture    string
		wantStatus int
		check      func(*testing.T, body)
	}{
		{"valid-batch.json", 202, wantAccepted(4)},
		{"missing-key.json", 401, nil},
		{"health.json", 200, func(t *testing.T, b body) {
			if b.Status != "ok" {
				t.Errorf("status %q, want ok", b.Status)
			}
		}},
		{"partly-invalid-batch.json", 202, wantAccepted(2, 1, 2)},
	}
	var sent []string // request bodies, for the PII check
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			event := refreshedFixture(t, root, tc.fixture, now)
			sent = append(sent, event.Body)
			resp := invoke(t, invokeURL, event)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("statusCode %d, want %d; body %s", resp.StatusCode, tc.wantStatus, resp.Body)
			}
			if ct := resp.Headers["Content-Type"]; ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var b body
			if err := json.Unmarshal([]byte(resp.Body), &b); err != nil {
				t.Fatalf("body %q: %v", resp.Body, err)
			}
			if tc.wantStatus >= 400 && b.Error == "" {
				t.Errorf("error response without a message: %s", resp.Body)
			}
			if tc.check != nil {
				tc.check(t, b)
			}
		})
	}
	if t.Failed() {
		return
	}

	// valid-batch: events 1-4; partly-invalid: its valid events 0 and 3 (ids ...01 and ...03).
	wantIDs := []string{"01", "01", "02", "03", "03", "04"}
	records, err := kinesisstream.NewTailer(client, stream, kinesisstream.TrimHorizon).Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	needles := piiValues(t, sent...)
	var gotIDs []string
	for _, r := range records {
		rec, err := envelope.Decode(r.Data)
		if err != nil {
			t.Fatalf("record %s: %v", r.SequenceNumber, err)
		}
		if rec.App != "sample-shop" || r.PartitionKey != rec.UserKey {
			t.Errorf("record %s: app %q, partition key %q, user key %q", r.SequenceNumber, rec.App, r.PartitionKey, rec.UserKey)
		}
		gotIDs = append(gotIDs, strings.TrimPrefix(rec.Event.ID, "2b0a7c2e-7f0e-4b8e-9d51-0000000000"))
		assertNoPII(t, r.Data, needles)
	}
	sort.Strings(gotIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("event ids on the stream (suffixes) %q, want %q", gotIDs, wantIDs)
	}
}

// rieBinary finds the emulator: RIE_BIN or .tools/bin/aws-lambda-rie.
func rieBinary(t *testing.T, root string) string {
	t.Helper()
	bin := os.Getenv("RIE_BIN")
	if bin == "" {
		bin = filepath.Join(root, ".tools", "bin", "aws-lambda-rie")
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("Lambda Runtime Interface Emulator not found at %s", bin)
		if os.Getenv(emulators.RequiredEnv) == "1" {
			t.Fatalf("%s (%s=1 is set: it is required; `make tools` installs it)", msg, emulators.RequiredEnv)
		}
		t.Skipf("skipping: %s (run `make tools` or set RIE_BIN; set %s=1 to fail instead of skipping)", msg, emulators.RequiredEnv)
	}
	return bin
}

// bootstrapBinary returns $HOST_BUILD_DIR/ingest/bootstrap, or builds this function for the
// host as `make build-host` does.
func bootstrapBinary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("HOST_BUILD_DIR"); dir != "" {
		bin := filepath.Join(dir, "ingest", "bootstrap")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("HOST_BUILD_DIR is set but %v (run `make build-host`)", err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build bootstrap: %v\n%s", err, out)
	}
	return bin
}

// startRIE runs the emulator with bootstrap on two free loopback ports and env as its whole
// environment, waits until it accepts connections, and returns the invoke URL. Cleanup stops
// it and the runtime process it started.
func startRIE(t *testing.T, rie, bootstrap string, env []string) string {
	t.Helper()
	apiAddr, runtimeAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	var out syncBuffer
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", apiAddr, "--runtime-api-address", runtimeAddr, bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &out, &out
	// If the test binary dies (timeout panic), the kernel kills the emulator; the runtime then
	// loses its Runtime API and exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// The runtime runs in its own process group (RIE sets Setpgid), so note it before RIE goes.
		children := childPIDs(cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		for _, pid := range children {
			if alive(pid) {
				syscall.Kill(-pid, syscall.SIGKILL) // its group: the runtime and anything it started
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("aws-lambda-rie output:\n%s", out.String())
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", apiAddr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("aws-lambda-rie exited: %s\n%s", cmd.ProcessState, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("aws-lambda-rie not listening on %s after 15s:\n%s", apiAddr, out.String())
		}
	}
	return "http://" + apiAddr + "/2015-03-31/functions/function/invocations"
}

// invoke sends one event through the emulator and returns the function's proxy response.
func invoke(t *testing.T, url string, event events.APIGatewayProxyRequest) events.APIGatewayProxyResponse {
	t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(url, "application/json", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: HTTP %d: %s", resp.StatusCode, raw)
	}
	var out events.APIGatewayProxyResponse
	if err := json.Unmarshal(raw, &out); err != nil || out.StatusCode == 0 {
		t.Fatalf("invoke: not a proxy response (function error?): %s", raw)
	}
	return out
}

// refreshedFixture loads events/ingest/<name> with its event times moved to just before now.
func refreshedFixture(t *testing.T, root, name string, now time.Time) events.APIGatewayProxyRequest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "events", "ingest", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayProxyRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if ev.Body != "" {
		ev.Body = refreshEventTimes(t, ev.Body, now)
	}
	return ev
}

// refreshEventTimes moves the valid event times of a request body so that the latest is a
// minute before now, keeping their spacing and form (unix seconds or RFC 3339): the fixtures'
// times go stale after 7 days. Times invalid on purpose (not plausible unix seconds, not
// RFC 3339) stay as they are.
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
			return time.Unix(n, 0), err == nil && n >= 1e9 && n < 1e11
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
		switch {
		case !ok:
		case isNumber(ev["event_time"]):
			ev["event_time"] = json.Number(strconv.FormatInt(ts.Add(shift).Unix(), 10))
		default:
			ev["event_time"] = ts.Add(shift).UTC().Format(time.RFC3339)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func isNumber(v any) bool { _, ok := v.(json.Number); return ok }

// piiValues lists the raw personal values of request bodies and their obvious normalised forms.
func piiValues(t *testing.T, bodies ...string) []string {
	t.Helper()
	nonDigits := regexp.MustCompile(`\D`)
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s = strings.ToLower(s); len(s) >= 4 && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, b := range bodies {
		var req struct {
			Events []struct {
				User map[string]any `json:"user"`
			} `json:"events"`
		}
		if b == "" {
			continue
		}
		if err := json.Unmarshal([]byte(b), &req); err != nil {
			t.Fatal(err)
		}
		for _, e := range req.Events {
			for _, f := range []string{"email", "phone", "first_name", "last_name", "city", "zip", "date_of_birth"} {
				if v, _ := e.User[f].(string); v != "" {
					add(v)
					add(strings.ReplaceAll(v, " ", ""))
					if d := nonDigits.ReplaceAllString(v, ""); len(d) >= 5 {
						add(d)
					}
				}
			}
		}
	}
	return out
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// assertNoPII checks every string of a record's JSON, except digests and the user key (where
// digits of a zip code may occur by chance), for the values in needles.
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

// freeLoopbackAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Format: pid (comm) state ppid ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// alive reports whether pid runs; a zombie counts as gone.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
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

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a child's stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

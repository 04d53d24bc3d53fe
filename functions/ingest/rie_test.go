//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/emulators"
	"github.com/retarget-dev/retarget/shared/envelope"
	"github.com/retarget-dev/retarget/shared/ingestapi/ingesttest"
)

// TestBootstrapUnderRIE runs the real bootstrap (host architecture) under the Lambda Runtime
// Interface Emulator, the way `sam local invoke` runs it in its container, and feeds it the
// API Gateway fixtures of events/ingest against a local Kinesis.
//
// Inputs: RIE_BIN (default .devtools/bin/aws-lambda-rie, installed by `make tools`) and
// HOST_BUILD_DIR (a prebuilt <dir>/ingest/bootstrap, from `make build-host`; without it the test
// builds one). A missing RIE or emulator skips the test, or fails it when EMULATORS_REQUIRED=1.
func TestBootstrapUnderRIE(t *testing.T) {
	root := ingesttest.RepoRoot(t)
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

	now := time.Now()
	tests := []struct {
		fixture    string
		wantStatus int
		check      func(*testing.T, ingesttest.Answer)
	}{
		{"valid-batch.json", 202, ingesttest.WantAccepted(4)},
		{"missing-key.json", 401, nil},
		{"health.json", 200, func(t *testing.T, a ingesttest.Answer) {
			if a.Status != "ok" {
				t.Errorf("status %q, want ok", a.Status)
			}
		}},
		{"partly-invalid-batch.json", 202, ingesttest.WantAccepted(2, 1, 2)},
	}
	var sent []string // request bodies, for the personal data check
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			event := ingesttest.FixtureRequest(t, tc.fixture)
			event.Body = ingesttest.RefreshEventTimes(t, event.Body, now)
			sent = append(sent, event.Body)
			resp := invoke(t, invokeURL, event)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("statusCode %d, want %d; body %s", resp.StatusCode, tc.wantStatus, resp.Body)
			}
			if ct := resp.Headers["Content-Type"]; ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var a ingesttest.Answer
			if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
				t.Fatalf("body %q: %v", resp.Body, err)
			}
			if tc.wantStatus >= 400 && a.Error == "" {
				t.Errorf("error response without a message: %s", resp.Body)
			}
			if tc.check != nil {
				tc.check(t, a)
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
	personal := ingesttest.PersonalValues(t, sent...)
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
		ingesttest.AssertNoPersonalData(t, r.Data, personal)
	}
	sort.Strings(gotIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("event ids on the stream (suffixes) %q, want %q", gotIDs, wantIDs)
	}
}

// rieBinary finds the emulator: RIE_BIN or .devtools/bin/aws-lambda-rie.
func rieBinary(t *testing.T, root string) string {
	t.Helper()
	bin := os.Getenv("RIE_BIN")
	if bin == "" {
		bin = filepath.Join(root, ".devtools", "bin", "aws-lambda-rie")
	}
	if _, err := os.Stat(bin); err != nil {
		ingesttest.MissingTool(t, "Lambda Runtime Interface Emulator not found at "+bin, "run `make tools` or set RIE_BIN")
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
	var out ingesttest.LineBuffer
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
			if ingesttest.Alive(pid) {
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

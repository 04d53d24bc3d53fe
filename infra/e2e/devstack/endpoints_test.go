//go:build unix

package devstack

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestDevstackEndpointsFile runs the dev stack with its state folder in a module of its own
// (never the repository's .dev), checks the endpoints file against what the stack printed,
// runs the CLI binary against it with no AWS_* or RETARGET_* variable, and checks that a
// clean stop removes the file.
func TestDevstackEndpointsFile(t *testing.T) {
	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	module := t.TempDir()
	if err := os.WriteFile(filepath.Join(module, "go.mod"), []byte("module example.com/app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	devDir := filepath.Join(module, devenv.Dir)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0", "-tail=false", "-dev-dir="+devDir) // the last -dev-dir wins
	ready := ds.waitFor(t, readyLine, readyTimeout)
	kinesisEndpoint, kinesisPID := ds.endpoint(t, kinesisLine)
	dynamoEndpoint, dynamoPID := ds.endpoint(t, dynamoLine)
	ds.emulatorPIDs = []int{kinesisPID, dynamoPID}

	// The file is there when the ready line is, and says what the summary says.
	e, err := devenv.ReadEndpoints(devDir)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"version", e.Version, devenv.EndpointsVersion},
		{"pid", e.PID, ds.cmd.Process.Pid},
		{"api url", e.APIURL, readyLine.FindStringSubmatch(ready)[1]},
		{"app", e.App, "sample-shop"},
		{"api key", e.APIKey, "dev-api-key"},
		{"meta sandbox", e.MetaSandboxURL, ds.match(t, metaLine)[1]},
		{"config", e.ConfigFile, filepath.Join(root, "infra", "config", "apps.dev.json")},
		{"region", e.Region, emulators.Region},
		{"kinesis", e.Kinesis, devenv.Service{Endpoint: kinesisEndpoint, PID: kinesisPID}},
		{"dynamodb", e.DynamoDB, devenv.Service{Endpoint: dynamoEndpoint, PID: dynamoPID}},
		{"stream", e.Stream, devenv.Stream},
		{"table", e.Table, devenv.StateTable},
		{"dead letters", e.DeadLetters, filepath.Join(e.LogDir, devenv.DeadLettersFile)},
		{"pepper", e.Credentials.Pepper, devenv.Pepper},
		{"meta token", e.Credentials.MetaAccessToken, devenv.MetaAccessToken},
		{"meta secret", e.Credentials.MetaAppSecret, devenv.MetaAppSecret},
		{"aws key", e.Credentials.AWSAccessKeyID != "" && e.Credentials.AWSSecretAccessKey != "", true},
		{"dev admin key", e.Credentials.AdminAccessKeyID, devenv.AdminAccessKeyID},
		{"dev admin secret", e.Credentials.AdminSecretAccessKey, devenv.AdminSecretAccessKey},
		{"api region", e.Credentials.APIRegion, devenv.APIRegion},
		{"log files", len(e.Logs), 7},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	for name, path := range e.Logs {
		if filepath.Dir(path) != e.LogDir {
			t.Errorf("log %s at %s, outside the log folder %s", name, path, e.LogDir)
		} else if _, err := os.Stat(path); err != nil {
			t.Errorf("log %s: %v", name, err)
		}
	}
	if resp, err := http.Get(e.APIURL + "/v1/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("health at the file's API URL: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The CLI with nothing but the file: found from a folder below the module root, or named
	// with --dev-dir from inside the dev stack's repository.
	cli := retargetBinary(t)
	for _, run := range []struct {
		name string
		dir  string
		args []string
	}{
		{"found from the working directory", filepath.Join(module, "services", "api"), nil},
		{"--dev-dir", filepath.Join(root, "infra", "cmd"), []string{"--dev-dir", devDir}},
	} {
		t.Run("retarget audiences status, "+run.name, func(t *testing.T) {
			if err := os.MkdirAll(run.dir, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(cli, append([]string{"audiences", "status"}, run.args...)...)
			cmd.Dir = run.dir
			cmd.Env = cliEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("retarget audiences status: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{"APP", "SEGMENT", "AUDIENCE ID", "PENDING", "LAST SYNC", "sample-shop"} {
				if !strings.Contains(out, want) {
					t.Errorf("status table without %q:\n%s", want, out)
				}
			}
		})
	}

	t.Run("removed on SIGTERM", func(t *testing.T) {
		if code := ds.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		if _, err := os.Stat(devenv.EndpointsPath(devDir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("endpoints file after a clean stop: %v", err)
		}
		if _, err := devenv.ReadEndpoints(devDir); !errors.Is(err, devenv.ErrNoDevStack) || !strings.Contains(err.Error(), "is make dev running?") {
			t.Errorf("reading after the stop: %v", err)
		}
	})
}

var (
	retargetOnce sync.Once
	retargetBin  string
	retargetErr  error
)

// retargetBinary builds the operator CLI once per test binary, next to the dev stack's build.
func retargetBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(devstackBinary(t)) // removed by TestMain
	retargetOnce.Do(func() {
		retargetBin = filepath.Join(dir, "retarget")
		cmd := exec.Command("go", "build", "-o", retargetBin, "./infra/cmd/retarget")
		cmd.Dir = ingesttest.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			retargetErr = fmt.Errorf("go build ./infra/cmd/retarget: %v\n%s", err, out)
		}
	})
	if retargetErr != nil {
		t.Fatal(retargetErr)
	}
	return retargetBin
}

// cliEnv is the test's environment without anything that could point the CLI somewhere: no
// AWS_* or RETARGET_* variable, none of the functions' settings that the CLI reads.
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AWS_"), strings.HasPrefix(name, "RETARGET_"), strings.HasPrefix(name, "META_"),
			strings.HasPrefix(name, "DEV_"), strings.HasPrefix(name, "DEAD_LETTER_"),
			name == "STATE_TABLE_NAME", name == "EVENT_STREAM_NAME", name == "APP_CONFIG_FILE",
			name == "PEPPER_SECRET_ID", name == "PSEUDONYM_PEPPER":
			continue
		}
		env = append(env, kv)
	}
	return env
}

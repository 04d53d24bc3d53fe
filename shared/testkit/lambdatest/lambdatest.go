// Package lambdatest is test support: runs function bootstraps under the Lambda Runtime
// Interface Emulator, as sam local invoke does. It finds the emulator (RIEBinary), builds or
// finds a function's host bootstrap (Bootstrap), runs the emulator with it (Start, Linux only)
// and sends it events (Invoke). Only tests import it.
package lambdatest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// RIEBinary finds the emulator: RIE_BIN, or .devtools/bin/aws-lambda-rie (installed by `make
// tools`). Without it the test skips, or fails when EMULATORS_REQUIRED=1 (ingesttest.MissingTool).
func RIEBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("RIE_BIN")
	if bin == "" {
		bin = filepath.Join(ingesttest.RepoRoot(t), ".devtools", "bin", "aws-lambda-rie")
	}
	if _, err := os.Stat(bin); err != nil {
		ingesttest.MissingTool(t, "Lambda Runtime Interface Emulator not found at "+bin, "run `make tools` or set RIE_BIN")
	}
	return bin
}

// Bootstrap returns $HOST_BUILD_DIR/<function>/bootstrap (from `make build-host`) when
// HOST_BUILD_DIR is set, or builds functions/<function> for the host as `make build-host` does,
// into a temporary folder.
func Bootstrap(t testing.TB, function string) string {
	t.Helper()
	if dir := os.Getenv("HOST_BUILD_DIR"); dir != "" {
		bin := filepath.Join(dir, function, "bootstrap")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("HOST_BUILD_DIR is set but %v (run `make build-host`)", err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, "./functions/"+function)
	cmd.Dir = ingesttest.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s bootstrap: %v\n%s", function, err, out)
	}
	return bin
}

// Invoke sends event, encoded as JSON, through the emulator at url (from Start) and returns the
// function's response as it is. An answer other than HTTP 200 (the runtime failed to start or
// exited) fails the test. A function error comes back with HTTP 200 as
// {"errorMessage": ..., "errorType": ...}: callers check the response's shape.
func Invoke(t testing.TB, url string, event any) []byte {
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
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("invoke: read the response: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: HTTP %d: %s", resp.StatusCode, raw)
	}
	return raw
}

// AWSEnv returns the environment the AWS SDK of a function needs under the emulator, with
// nothing of the developer's AWS setup: region us-east-1, dummy credentials, an empty HOME, no
// shared config or credentials file, no instance metadata. Endpoints of local emulators are the
// caller's to add.
func AWSEnv(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	return []string{
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=local",
		"AWS_SECRET_ACCESS_KEY=local",
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

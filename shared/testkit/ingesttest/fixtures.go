// Package ingesttest is test support for the ingest function's tests: the handler's unit tests,
// the bootstrap under the Lambda Runtime Interface Emulator and the dev stack. It loads the API
// Gateway fixtures of events/ingest, keeps their event times fresh, checks the API's answers,
// checks that no personal value of a request reaches a stream record, and holds the small helpers
// those tests share for the processes they start. Only tests import it.
package ingesttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// RepoRoot walks up from the working directory (a test runs in its package folder) to the folder
// holding go.mod.
func RepoRoot(t testing.TB) string {
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

// FixtureJSON returns the file events/ingest/<name> as it is: an API Gateway REST proxy event,
// the payload the Lambda runtime hands the function.
func FixtureJSON(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), "events", "ingest", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// FixtureRequest returns the proxy event of events/ingest/<name>, event times unchanged (see
// RefreshEventTimes).
func FixtureRequest(t testing.TB, name string) events.APIGatewayProxyRequest {
	t.Helper()
	var req events.APIGatewayProxyRequest
	if err := json.Unmarshal(FixtureJSON(t, name), &req); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return req
}

// FixtureBody returns the request body of events/ingest/<name>, event times unchanged.
func FixtureBody(t testing.TB, name string) string {
	t.Helper()
	return FixtureRequest(t, name).Body
}

// MissingTool reports a tool the test cannot run without: it skips the test, or fails it when
// EMULATORS_REQUIRED=1 (the convention of emulators.StartForTest, so CI cannot pass by
// skipping). remedy says how to get the tool, e.g. "run `make tools`".
func MissingTool(t testing.TB, msg, remedy string) {
	t.Helper()
	if os.Getenv(emulators.RequiredEnv) == "1" {
		t.Fatalf("%s (%s=1 is set, so the test may not skip; %s)", msg, emulators.RequiredEnv, remedy)
	}
	t.Skipf("skipping: %s (%s; set %s=1 to fail instead of skipping)", msg, remedy, emulators.RequiredEnv)
}

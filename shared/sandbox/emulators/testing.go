package emulators

import (
	"context"
	"errors"
	"os"
	"testing"
)

// RequiredEnv is the environment variable that turns a missing emulator into a test failure
// instead of a skip (`make test` sets it, so CI cannot pass by skipping).
const RequiredEnv = "EMULATORS_REQUIRED"

// StartForTest starts an emulator for the test and stops it in t.Cleanup. When the tools are
// not installed it skips the test, or fails it if EMULATORS_REQUIRED=1. The emulator's stderr
// is logged if the test fails.
func StartForTest(t testing.TB, kind Kind) *Process {
	t.Helper()
	stderr := &tailBuffer{max: 16 << 10}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := Start(ctx, kind, Options{Stderr: stderr})
	switch {
	case errors.Is(err, ErrToolsMissing) && os.Getenv(RequiredEnv) == "1":
		t.Fatalf("%v (%s=1 is set: the emulators are required)", err, RequiredEnv)
	case errors.Is(err, ErrToolsMissing):
		t.Skipf("skipping: %v (run `make tools`; set %s=1 to fail instead of skipping)", err, RequiredEnv)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			if s := stderr.String(); s != "" {
				t.Logf("%s stderr:\n%s", kind, s)
			}
		}
	})
	return p
}

// RequireTools checks that both emulators could start (node, the wrapper script, kinesalite
// and dynalite under .devtools): tests that start them indirectly (the dev stack binary) call
// it first. It skips the test when something is missing, or fails it if EMULATORS_REQUIRED=1.
func RequireTools(t testing.TB) {
	t.Helper()
	dir, err := ToolsDir()
	if err == nil {
		for _, kind := range []Kind{Kinesis, DynamoDB} {
			if _, _, err = checkTools(dir, kind); err != nil {
				break
			}
		}
	}
	switch {
	case err == nil:
	case os.Getenv(RequiredEnv) == "1":
		t.Fatalf("%v (%s=1 is set: the emulators are required)", err, RequiredEnv)
	default:
		t.Skipf("skipping: %v (run `make tools`; set %s=1 to fail instead of skipping)", err, RequiredEnv)
	}
}

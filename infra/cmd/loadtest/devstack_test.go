//go:build unix

package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
)

// runningStack is the endpoints file of a dev stack (infra/cmd/devstack writes it), with this
// test process standing in for the dev stack's pid.
func runningStack() *devenv.Endpoints {
	return &devenv.Endpoints{
		PID: os.Getpid(), APIURL: "http://127.0.0.1:35075", App: "sample-shop", APIKey: "dev-api-key",
		MetaSandboxURL: "http://127.0.0.1:35769", Region: "us-east-1",
		Kinesis:  devenv.Service{Endpoint: "http://127.0.0.1:39969", PID: 21248},
		DynamoDB: devenv.Service{Endpoint: "http://127.0.0.1:33261", PID: 21260},
		Stream:   "events-under-test", Table: "state-under-test", LogDir: "/tmp/dev/logs",
	}
}

func TestEndpointsOf(t *testing.T) {
	got := endpointsOf(runningStack())
	want := Endpoints{API: "http://127.0.0.1:35075", APIKey: "dev-api-key", App: "sample-shop", Sandbox: "http://127.0.0.1:35769",
		Kinesis: "http://127.0.0.1:39969", DynamoDB: "http://127.0.0.1:33261", KinesisPID: 21248, DynamoPID: 21260}
	if got != want {
		t.Errorf("endpointsOf = %+v\nwant %+v", got, want)
	}
}

func TestWaitEndpoints(t *testing.T) {
	t.Run("waits for the file of its stack", func(t *testing.T) {
		dir := t.TempDir()
		earlier := runningStack()
		earlier.PID = exitedPID(t) // a file left by a killed stack does not count
		if err := devenv.WriteEndpoints(dir, earlier); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			devenv.WriteEndpoints(dir, runningStack())
		}()
		e, err := waitEndpoints(dir, os.Getpid(), nil, 10*time.Second)
		if err != nil || e.APIURL != "http://127.0.0.1:35075" {
			t.Fatalf("waitEndpoints = %+v, %v", e, err)
		}
	})
	t.Run("the stack exits first", func(t *testing.T) {
		exited := make(chan struct{})
		close(exited)
		if _, err := waitEndpoints(t.TempDir(), os.Getpid(), exited, 10*time.Second); !errors.Is(err, errStackExited) {
			t.Errorf("error %v, want %v", err, errStackExited)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		if _, err := waitEndpoints(t.TempDir(), os.Getpid(), nil, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "endpoints.json") {
			t.Errorf("error %v, want one naming the file", err)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(devenv.EndpointsPath(dir), []byte(`{"version": 9, "pid": 1}`), 0o644)
		if _, err := waitEndpoints(dir, os.Getpid(), nil, 10*time.Second); !errors.Is(err, devenv.ErrVersion) {
			t.Errorf("error %v, want %v at once", err, devenv.ErrVersion)
		}
	})
}

func TestRunningDevStackOptions(t *testing.T) {
	dir := t.TempDir()
	if err := devenv.WriteEndpoints(dir, runningStack()); err != nil {
		t.Fatal(err)
	}
	o, err := parseOptions([]string{"--dev-dir", dir, "--dynamodb-endpoint", "http://127.0.0.1:9999"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.PrefillUsers != 0 {
		t.Errorf("prefill %d: a running stack gets none unless asked", o.PrefillUsers)
	}
	if err := o.useRunningDevStack(); err != nil {
		t.Fatal(err)
	}
	got := []string{o.URL, o.APIKey, o.SandboxURL, o.KinesisURL, o.DynamoURL, o.LogDir, o.Stream, o.Table}
	want := []string{"http://127.0.0.1:35075", "dev-api-key", "http://127.0.0.1:35769", "http://127.0.0.1:39969",
		"http://127.0.0.1:9999" /* the flag wins */, "/tmp/dev/logs", "events-under-test", "state-under-test"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("options from the file\n%q\nwant\n%q", got, want)
	}

	t.Run("no dev stack", func(t *testing.T) {
		o := options{DevDir: t.TempDir()}
		if err := o.useRunningDevStack(); !errors.Is(err, devenv.ErrNoDevStack) || !strings.Contains(err.Error(), "is make dev running?") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("stale", func(t *testing.T) {
		dir := t.TempDir()
		dead := runningStack()
		dead.PID = exitedPID(t)
		devenv.WriteEndpoints(dir, dead)
		o := options{DevDir: dir}
		if err := o.useRunningDevStack(); !errors.Is(err, devenv.ErrStale) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("no sandbox", func(t *testing.T) {
		dir := t.TempDir()
		e := runningStack()
		e.MetaSandboxURL = ""
		devenv.WriteEndpoints(dir, e)
		o := options{DevDir: dir}
		if err := o.useRunningDevStack(); err == nil || !strings.Contains(err.Error(), "--sandbox-url") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("without a dev stack the defaults", func(t *testing.T) {
		o := options{}
		if err := o.useRunningDevStack(); err != nil || o.Stream != devenv.Stream || o.Table != devenv.StateTable || o.URL != "" {
			t.Errorf("%+v, %v", o, err)
		}
	})
}

// exitedPID returns the pid of a process that has exited and been reaped.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Endpoints are where a running pipeline answers.
type Endpoints struct {
	API        string `json:"api"`
	APIKey     string `json:"-"`
	App        string `json:"app,omitempty"`
	Sandbox    string `json:"meta_sandbox,omitempty"`
	Kinesis    string `json:"kinesis,omitempty"`
	DynamoDB   string `json:"dynamodb,omitempty"`
	KinesisPID int    `json:"-"`
	DynamoPID  int    `json:"-"`
}

// endpointsOf reads a dev stack's endpoints file (infra/cmd/devstack writes it once it is up).
func endpointsOf(e *devenv.Endpoints) Endpoints {
	return Endpoints{API: e.APIURL, APIKey: e.APIKey, App: e.App, Sandbox: e.MetaSandboxURL,
		Kinesis: e.Kinesis.Endpoint, DynamoDB: e.DynamoDB.Endpoint, KinesisPID: e.Kinesis.PID, DynamoPID: e.DynamoDB.PID}
}

// waitEndpoints waits until the dev stack pid has written its endpoints file in dir (a file
// of an earlier stack in the folder does not count), or exited closes, or timeout passes.
func waitEndpoints(dir string, pid int, exited <-chan struct{}, timeout time.Duration) (*devenv.Endpoints, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		e, err := devenv.ReadEndpoints(dir)
		if err == nil && e.PID == pid {
			return e, nil
		}
		if err != nil && !errors.Is(err, devenv.ErrNoDevStack) && !errors.Is(err, devenv.ErrStale) {
			return nil, err
		}
		select {
		case <-exited:
			return nil, errStackExited
		case <-deadline.C:
			return nil, fmt.Errorf("no %s from the dev stack after %s", devenv.EndpointsPath(dir), timeout)
		case <-tick.C:
		}
	}
}

// errStackExited: the dev stack ended before it was up.
var errStackExited = errors.New("dev stack exited before it was ready")

// StackOptions say how to run the dev stack.
type StackOptions struct {
	Root          string // module root: the emulators are found under <Root>/.devtools
	Binary        string // the built dev stack
	ConfigFile    string
	DevDir        string // its state folder: the endpoints file is read from there
	LogDir        string
	SyncInterval  time.Duration // AUDIENCE_SYNC_INTERVAL
	SweepInterval time.Duration // SEGMENT_SWEEP_INTERVAL
	// Stderr receives the dev stack's stderr (its warnings and errors).
	Stderr io.Writer
}

// Stack is a dev stack the load test started.
type Stack struct {
	Endpoints
	PID int

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	mu    sync.Mutex
	lines []string // the last lines of stdout, for errors
}

// BuildDevstack builds the dev stack binary into dir, as `make dev` and its tests do.
func BuildDevstack(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "devstack")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./infra/cmd/devstack")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./infra/cmd/devstack: %v\n%s", err, out)
	}
	return bin, nil
}

// StartStack runs the dev stack on free loopback ports and waits until it is ready, that is
// until it has written its endpoints file in o.DevDir (60 s at most). The caller must Stop it.
func StartStack(ctx context.Context, o StackOptions) (*Stack, error) {
	s := &Stack{exited: make(chan struct{})}
	s.cmd = exec.Command(o.Binary, "-config", o.ConfigFile, "-dev-dir", o.DevDir, "-log-dir", o.LogDir, "-tail=false")
	s.cmd.Dir = o.Root
	s.cmd.Env = append(stackEnv(os.Environ()),
		"DEV_API_ADDR=127.0.0.1:0",
		"AUDIENCE_SYNC_INTERVAL="+o.SyncInterval.String(),
		"SEGMENT_SWEEP_INTERVAL="+o.SweepInterval.String())
	s.cmd.SysProcAttr = childProcAttr()
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = o.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dev stack: %w", err)
	}
	s.PID = s.cmd.Process.Pid
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	go s.readStdout(stdout)

	// The context ends the wait too: the stack is then stopped, and its error wins.
	exited := make(chan struct{})
	go func() {
		select {
		case <-s.exited:
		case <-ctx.Done():
		}
		close(exited)
	}()
	e, err := waitEndpoints(o.DevDir, s.PID, exited, 60*time.Second)
	switch {
	case err == nil:
		s.Endpoints = endpointsOf(e)
		return s, nil
	case ctx.Err() != nil:
		s.Stop(10 * time.Second)
		return nil, ctx.Err()
	case errors.Is(err, errStackExited):
		<-s.exited
		return nil, fmt.Errorf("%w (%v):\n%s", err, s.waitErr, s.output())
	default:
		s.Stop(10 * time.Second)
		return nil, fmt.Errorf("dev stack not ready: %w:\n%s", err, s.output())
	}
}

// readStdout keeps reading the dev stack's stdout (one access log line per API request) so
// that it never blocks on a full pipe, keeping only the last lines for error messages.
func (s *Stack) readStdout(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		if len(s.lines) > 200 {
			s.lines = append(s.lines[:0], s.lines[len(s.lines)-100:]...)
		}
		s.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

func (s *Stack) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// Stop sends SIGTERM (the dev stack stops its API, functions and emulators and exits), waits
// up to timeout, then kills it. It then checks that the emulators are gone, killing a
// survivor as a last resort and saying so in the error.
func (s *Stack) Stop(timeout time.Duration) error {
	var errs []error
	select {
	case <-s.exited:
	default:
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("SIGTERM dev stack: %w", err))
		}
		select {
		case <-s.exited:
		case <-time.After(timeout):
			s.cmd.Process.Kill()
			<-s.exited
			errs = append(errs, fmt.Errorf("dev stack still ran %s after SIGTERM: killed", timeout))
		}
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("dev stack exited with code %d", code))
	}
	// The emulators exit when the dev stack closes their stdin, even if it was killed.
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range []int{s.KinesisPID, s.DynamoPID} {
		if pid <= 0 {
			continue
		}
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) && isEmulator(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			errs = append(errs, fmt.Errorf("emulator pid %d outlived the dev stack: killed", pid))
		}
	}
	return errors.Join(errs...)
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// isEmulator reports whether pid is one of our emulators (not a reused pid).
func isEmulator(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte("emulator.js"))
}

// stackEnv is environ without what would change the dev stack the load test measures: AWS
// settings, the dev stack's own variables and a real Meta Graph URL.
func stackEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AWS_"), strings.HasPrefix(name, "DEV_"), strings.HasPrefix(name, "META_"),
			name == env.Pepper, name == env.StreamName, name == env.LogLevel,
			name == devenv.EnvSync, name == devenv.EnvSweep:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// moduleRoot returns the folder holding go.mod, from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run the load test from the repository")
		}
		dir = parent
	}
}

//go:build linux

package lambdatest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// Start runs the emulator rie with bootstrap on two free loopback ports and env as its whole
// environment, waits until it accepts connections, and returns the invoke URL. Cleanup stops
// it and the runtime process it started; the emulator's output is logged if the test failed.
//
// The ports are free when chosen but another process (a parallel test package) can take one
// before the emulator binds it: an emulator that exits with "address already in use" is
// started again on new ports, up to three times.
func Start(t testing.TB, rie, bootstrap string, env []string) (invokeURL string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		url, busy := start(t, rie, bootstrap, env, attempt == portAttempts)
		if !busy {
			return url
		}
		t.Logf("aws-lambda-rie: a port was taken before it could bind it; starting it again (attempt %d)", attempt+1)
	}
}

// portAttempts bounds the emulator starts that lose a port race.
const portAttempts = 3

// start runs the emulator once; busy is true (and the test goes on) when it exited because a
// port was taken meanwhile and last is false.
func start(t testing.TB, rie, bootstrap string, env []string, last bool) (invokeURL string, busy bool) {
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
			if !last && strings.Contains(out.String(), "address already in use") {
				return "", true
			}
			t.Fatalf("aws-lambda-rie exited: %s\n%s", cmd.ProcessState, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("aws-lambda-rie not listening on %s after 15s:\n%s", apiAddr, out.String())
		}
	}
	return "http://" + apiAddr + "/2015-03-31/functions/function/invocations", false
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeLoopbackAddr(t testing.TB) string {
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

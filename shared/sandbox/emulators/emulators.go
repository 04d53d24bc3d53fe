// Package emulators starts the local AWS emulators (kinesalite for Kinesis, dynalite for
// DynamoDB) as child processes, for tests and for the dev stack.
//
// Each emulator runs through .devtools/emulator.js, which keeps its data in memory, listens on
// 127.0.0.1 on a free port and exits when its stdin closes. The Process holds the write end of
// that pipe, so an emulator never outlives the Go process that started it, even when that
// process is killed with SIGKILL.
package emulators

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kind names an emulator; the value is its npm package name.
type Kind string

// The emulators this package can start.
const (
	Kinesis  Kind = "kinesalite"
	DynamoDB Kind = "dynalite"
)

// ErrToolsMissing means node, .devtools/emulator.js or the emulator's npm package is not installed
// (run `make tools`).
var ErrToolsMissing = errors.New("emulator tools missing")

const (
	// startTimeout bounds the wait for the "listening" line.
	startTimeout = 20 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
	stopGrace = 3 * time.Second
	// scriptName is the wrapper script inside the tools folder.
	scriptName = "emulator.js"
)

// Options tunes Start. The zero value is ready to use.
type Options struct {
	// ToolsDir holds emulator.js and node_modules. Default: ToolsDir().
	ToolsDir string
	// Stderr receives the emulator's stderr (and any stdout after the listening line).
	// Default: discarded, though the last lines are quoted in startup errors.
	Stderr io.Writer
}

// Process is a running emulator.
type Process struct {
	// Kind is the emulator that runs.
	Kind Kind
	// Endpoint is its base URL, http://127.0.0.1:PORT.
	Endpoint string

	cmd      *exec.Cmd
	stdin    io.WriteCloser
	exited   chan struct{} // closed once cmd.Wait has returned
	waitErr  error         // valid after exited is closed
	stopOnce sync.Once
	stopErr  error
}

// Start launches an emulator and waits until it accepts connections (at most ~20s, less if ctx
// ends first). ctx bounds only the startup: the emulator runs until Stop, or until this Go
// process exits. It returns an error wrapping ErrToolsMissing when the tools are not installed.
func Start(ctx context.Context, kind Kind, opts Options) (*Process, error) {
	if kind != Kinesis && kind != DynamoDB {
		return nil, fmt.Errorf("start emulator: unknown kind %q", kind)
	}
	dir := opts.ToolsDir
	if dir == "" {
		d, err := ToolsDir()
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", kind, err)
		}
		dir = d
	}
	node, script, err := checkTools(dir, kind)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}

	tail := &tailBuffer{max: 4 << 10}
	var errOut io.Writer = tail
	if opts.Stderr != nil {
		errOut = io.MultiWriter(tail, opts.Stderr)
	}
	outR, outW := io.Pipe()
	cmd := exec.Command(node, script, string(kind))
	cmd.Dir = dir
	cmd.Stdout = outW
	cmd.Stderr = errOut
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: stdin pipe: %w", kind, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	p := &Process{Kind: kind, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		outW.Close()
		close(p.exited)
	}()

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if !found {
				if a, ok := strings.CutPrefix(line, "listening "); ok {
					found = true
					addr <- a
					continue
				}
			}
			fmt.Fprintln(errOut, line)
		}
		// Keep draining so the emulator never blocks on a full stdout pipe.
		io.Copy(io.Discard, outR)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case a := <-addr:
		host, _, err := net.SplitHostPort(a)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			p.Stop()
			return nil, fmt.Errorf("start %s: unexpected listen address %q", kind, a)
		}
		p.Endpoint = "http://" + a
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("start %s: exited before listening (%v): %s", kind, p.waitErr, tail.String())
	case <-ctx.Done():
		p.Stop()
		return nil, fmt.Errorf("start %s: %w", kind, ctx.Err())
	case <-timer.C:
		p.Stop()
		return nil, fmt.Errorf("start %s: not listening after %s: %s", kind, startTimeout, tail.String())
	}
}

// Stop ends the emulator: it closes its stdin and sends SIGTERM, then SIGKILL if the process is
// still there after 3s, and waits until it has exited. Calling Stop again returns the first
// result.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		p.stdin.Close()
		select {
		case <-p.exited:
			return // it had already exited
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.cmd.Process.Kill()
		}
		timer := time.NewTimer(stopGrace)
		defer timer.Stop()
		select {
		case <-p.exited:
			return
		case <-timer.C:
		}
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("stop %s (pid %d): %w", p.Kind, p.cmd.Process.Pid, err)
		}
		<-p.exited
	})
	return p.stopErr
}

// Pid returns the emulator's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// ToolsDir returns the .devtools folder of this module: it walks up from the working directory to
// the folder holding go.mod (tests run in their package folder).
func ToolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("tools dir: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".devtools"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("tools dir: no go.mod above the working directory: %w", ErrToolsMissing)
		}
		dir = parent
	}
}

// checkTools returns the node binary and the wrapper script, or an error wrapping
// ErrToolsMissing that says what to install.
func checkTools(dir string, kind Kind) (node, script string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("node not found on PATH: %w", ErrToolsMissing)
	}
	script = filepath.Join(dir, scriptName)
	if _, err := os.Stat(script); err != nil {
		return "", "", fmt.Errorf("%s not found: %w", script, ErrToolsMissing)
	}
	pkg := filepath.Join(dir, "node_modules", string(kind), "package.json")
	if _, err := os.Stat(pkg); err != nil {
		return "", "", fmt.Errorf("%s not installed in %s (run `make tools`): %w", kind, dir, ErrToolsMissing)
	}
	return node, script, nil
}

// tailBuffer keeps the last max bytes written to it, to quote in error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}

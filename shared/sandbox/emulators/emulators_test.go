package emulators

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

func TestStartStop(t *testing.T) {
	for _, kind := range []Kind{Kinesis, DynamoDB} {
		t.Run(string(kind), func(t *testing.T) {
			p := StartForTest(t, kind)
			if !strings.HasPrefix(p.Endpoint, "http://127.0.0.1:") {
				t.Fatalf("Endpoint = %q, want http://127.0.0.1:PORT", p.Endpoint)
			}
			resp, err := http.Post(p.Endpoint, "application/x-amz-json-1.0", strings.NewReader("{}"))
			if err != nil {
				t.Fatalf("emulator does not answer: %v", err)
			}
			resp.Body.Close()

			pid := p.Pid()
			if err := p.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if err := p.Stop(); err != nil {
				t.Fatalf("second Stop: %v", err)
			}
			if alive(pid) {
				t.Errorf("pid %d still alive after Stop", pid)
			}
			if c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.Endpoint, "http://"), time.Second); err == nil {
				c.Close()
				t.Errorf("port still accepts connections after Stop")
			}
		})
	}
}

// The emulator must exit when its stdin closes: that is what happens when the parent dies.
func TestEmulatorExitsWhenStdinCloses(t *testing.T) {
	p := StartForTest(t, Kinesis)
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("emulator still running 10s after its stdin closed")
	}
}

// A parent killed with SIGKILL cannot run cleanups; its emulator must still go away.
func TestNoOrphanWhenParentIsKilled(t *testing.T) {
	if os.Getenv("EMULATORS_TEST_PARENT") == "1" {
		t.Skip("this is the helper process")
	}
	requireTools(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperParent$", "-test.v")
	cmd.Env = append(os.Environ(), "EMULATORS_TEST_PARENT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	pid := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "emulator pid "); ok {
			pid, _ = strconv.Atoi(s)
			break
		}
	}
	if pid == 0 {
		t.Fatalf("helper did not report an emulator pid")
	}
	// Kill the parent abruptly; the emulator sees EOF on stdin and must exit.
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscallKill(pid)
			t.Fatalf("emulator pid %d survived its killed parent", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHelperParent is the parent process of TestNoOrphanWhenParentIsKilled.
func TestHelperParent(t *testing.T) {
	if os.Getenv("EMULATORS_TEST_PARENT") != "1" {
		t.Skip("helper process for TestNoOrphanWhenParentIsKilled")
	}
	p, err := Start(context.Background(), Kinesis, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("emulator pid %d\n", p.Pid())
	time.Sleep(time.Minute) // killed by the test long before
}

func TestStartErrors(t *testing.T) {
	empty := t.TempDir()
	noPkg := t.TempDir()
	if err := os.WriteFile(filepath.Join(noPkg, scriptName), []byte("//"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		kind        Kind
		dir         string
		wantMissing bool
	}{
		{"unknown kind", Kind("localstack"), empty, false},
		{"no script", Kinesis, empty, true},
		{"no npm package", DynamoDB, noPkg, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(context.Background(), tt.kind, Options{ToolsDir: tt.dir})
			if err == nil {
				p.Stop()
				t.Fatal("Start succeeded, want an error")
			}
			if got := errors.Is(err, ErrToolsMissing); got != tt.wantMissing {
				t.Errorf("errors.Is(%v, ErrToolsMissing) = %v, want %v", err, got, tt.wantMissing)
			}
		})
	}
}

func TestToolsDir(t *testing.T) {
	dir, err := ToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != ".devtools" {
		t.Errorf("ToolsDir() = %q, want a .devtools folder", dir)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "go.mod")); err != nil {
		t.Errorf("ToolsDir() = %q is not next to go.mod: %v", dir, err)
	}
}

func TestAWSConfig(t *testing.T) {
	tests := []struct {
		endpoint string
		wantErr  bool
	}{
		{"http://127.0.0.1:4567", false},
		{"http://localhost:4567", false},
		{"http://[::1]:4567", false},
		{"http://10.0.0.1:4567", true},
		{"https://kinesis.us-east-1.amazonaws.com", true},
		{"127.0.0.1:4567", true},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			cfg, err := AWSConfig(context.Background(), tt.endpoint)
			if (err != nil) != tt.wantErr {
				t.Fatalf("AWSConfig(%q) error = %v, wantErr %v", tt.endpoint, err, tt.wantErr)
			}
			if err == nil && (cfg.Region != Region || *cfg.BaseEndpoint != tt.endpoint || cfg.Credentials == nil) {
				t.Errorf("AWSConfig(%q) = region %q, endpoint %q", tt.endpoint, cfg.Region, *cfg.BaseEndpoint)
			}
		})
	}
}

// The config must reach kinesalite even when the shell points the SDK elsewhere.
func TestAWSConfigTalksToKinesalite(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:1")
	t.Setenv("AWS_PROFILE", "does-not-exist")
	p := StartForTest(t, Kinesis)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := AWSConfig(ctx, p.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client := kinesis.NewFromConfig(cfg)
	if _, err := client.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("ListStreams: %v", err)
	}
}

// requireTools skips or fails like StartForTest when the tools are missing.
func requireTools(t *testing.T) {
	t.Helper()
	dir, err := ToolsDir()
	if err == nil {
		_, _, err = checkTools(dir, Kinesis)
	}
	if err != nil {
		if os.Getenv(RequiredEnv) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

//go:build unix

package devenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sample(pid int) *Endpoints {
	return &Endpoints{
		PID: pid, StartedAt: time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC), ConfigFile: "/repo/infra/config/apps.json",
		APIURL: "http://127.0.0.1:3000", App: "sample-shop", APIKey: "dev-api-key", MetaSandboxURL: "http://127.0.0.1:4000",
		Region: "us-east-1", Kinesis: Service{Endpoint: "http://127.0.0.1:4567", PID: 11}, DynamoDB: Service{Endpoint: "http://127.0.0.1:4568", PID: 12},
		Stream: Stream, Table: StateTable, DeadLetters: "/repo/.dev/logs/" + DeadLettersFile,
		Credentials: Credentials{AWSAccessKeyID: "local", AWSSecretAccessKey: "local", Pepper: Pepper, MetaAccessToken: MetaAccessToken, MetaAppSecret: MetaAppSecret,
			AdminAccessKeyID: AdminAccessKeyID, AdminSecretAccessKey: AdminSecretAccessKey, APIRegion: APIRegion},
		LogDir: "/repo/.dev/logs", Logs: map[string]string{"ingest": "/repo/.dev/logs/ingest.log"},
	}
}

func TestEndpointsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".dev") // created by the write
	want := sample(os.Getpid())
	if err := WriteEndpoints(dir, want); err != nil {
		t.Fatal(err)
	}
	if want.Version != EndpointsVersion {
		t.Errorf("version %d after the write, want %d", want.Version, EndpointsVersion)
	}
	got, err := ReadEndpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
	raw, _ := os.ReadFile(EndpointsPath(dir))
	if !strings.Contains(string(raw), `"version": 1`) {
		t.Errorf("the document does not say its version:\n%s", raw)
	}
	// The write leaves no temporary file behind, and a second write replaces the first.
	want.APIURL = "http://127.0.0.1:3001"
	if err := WriteEndpoints(dir, want); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != EndpointsFile {
		t.Errorf("state folder holds %v, want only %s", entries, EndpointsFile)
	}
	if got, _ := ReadEndpoints(dir); got == nil || got.APIURL != "http://127.0.0.1:3001" {
		t.Errorf("after the rewrite: %+v", got)
	}
}

func TestReadEndpointsErrors(t *testing.T) {
	write := func(t *testing.T, doc string) string {
		dir := t.TempDir()
		if err := os.WriteFile(EndpointsPath(dir), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name    string
		dir     func(t *testing.T) string
		wantErr error
		wantMsg []string
	}{
		{"missing", func(t *testing.T) string { return t.TempDir() }, ErrNoDevStack, []string{"does not exist", "is make dev running?"}},
		{"stale", func(t *testing.T) string {
			dir := t.TempDir()
			if err := WriteEndpoints(dir, sample(deadPID(t))); err != nil {
				t.Fatal(err)
			}
			return dir
		}, ErrStale, []string{"no longer runs", "start make dev again"}},
		{"unknown version", func(t *testing.T) string {
			return write(t, `{"version": 2, "pid": 1, "api": {"url": "http://127.0.0.1:3000"}}`)
		}, ErrVersion, []string{"version 2", "reads version 1"}},
		{"no version", func(t *testing.T) string { return write(t, `{"pid": 1}`) }, ErrVersion, []string{"version 0"}},
		{"not JSON", func(t *testing.T) string { return write(t, `api_url=http://127.0.0.1:3000`) }, nil, []string{"not a JSON document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ReadEndpoints(tc.dir(t))
			if err == nil {
				t.Fatalf("read %+v, want an error", e)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
		})
	}
}

func TestFindEndpoints(t *testing.T) {
	repo := t.TempDir()
	nested := filepath.Join(repo, "infra", "cmd")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FindEndpoints(nested); !errors.Is(err, ErrNoDevStack) || !strings.Contains(err.Error(), "is make dev running?") {
		t.Fatalf("no file: error %v", err)
	}
	// Above the module root does not count: that is another project's dev stack. (The parent
	// of t.TempDir() is this test's own folder.)
	if err := WriteEndpoints(filepath.Join(filepath.Dir(repo), Dir), sample(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if _, err := FindEndpoints(nested); !errors.Is(err, ErrNoDevStack) {
		t.Errorf("found a file above the module root: %v", err)
	}
	if err := WriteEndpoints(filepath.Join(repo, Dir), sample(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	for _, start := range []string{repo, nested} {
		e, err := FindEndpoints(start)
		if err != nil || e.APIURL != "http://127.0.0.1:3000" {
			t.Errorf("from %s: %+v, %v", start, e, err)
		}
	}
	// A stale file is reported, not skipped: the user should learn that make dev died.
	if err := WriteEndpoints(filepath.Join(repo, Dir), sample(deadPID(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := FindEndpoints(nested); !errors.Is(err, ErrStale) {
		t.Errorf("stale file: %v", err)
	}
}

func TestRemoveEndpointsOnlyItsOwn(t *testing.T) {
	dir := t.TempDir()
	if err := WriteEndpoints(dir, sample(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEndpoints(dir, os.Getpid()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(EndpointsPath(dir)); err != nil {
		t.Fatalf("another process's file was removed: %v", err)
	}
	if err := RemoveEndpoints(dir, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(EndpointsPath(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("own file still there: %v", err)
	}
	if err := RemoveEndpoints(dir, os.Getpid()); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

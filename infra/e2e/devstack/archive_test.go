//go:build unix

package devstack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestArchiveHoldsExactlyTheAcceptedEvents runs make dev, sends the PII canary users' events
// (one batch twice, as an app retrying a request it thinks was lost), and reads the local
// archive back with `retarget archive export`: exactly the accepted event ids, each once; and
// no raw personal value in any archive file, neither in its bytes nor in any decoded column
// (the sample app does not opt in to archive_raw_fields, so the client IP, user agent,
// advertising id and install id, which the stream carries for Meta, must be gone too).
func TestArchiveHoldsExactlyTheAcceptedEvents(t *testing.T) {
	users := piiCanaryUsers()
	needles, _ := piiNeedles(t, users)
	// The scan sees what it looks for in a decoded archive file: a row that kept a raw value.
	planted := archive.Row{App: "sample-shop", Day: "2026-12-06", EventID: "planted", EventName: "x", UserKey: "uk",
		ClientIP: users[0].user["client_ip_address"], ClientUserAgent: users[0].user["client_user_agent"], MADID: users[0].user["madid"], AnonID: users[0].user["anon_id"]}
	plantedScan := newPIIScanner(needles, nil)
	scanArchiveFile(t, plantedScan, "planted", planted.Partition(), encodeRows(t, planted))
	if len(plantedScan.findings) < 4 {
		t.Fatalf("the scan found %d of the 4 raw values planted in an archive file: %v", len(plantedScan.findings), plantedScan.findings)
	}

	root := ingesttest.RepoRoot(t)
	emulators.RequireTools(t)
	ds := startDevstack(t, root, "DEV_API_ADDR=127.0.0.1:0")
	api := ds.ready(t)
	archiveDir := devenv.ArchivePath(ds.devDir)
	if !strings.Contains(ds.out.String(), "archive   "+archiveDir) {
		t.Errorf("the summary does not say where the archive is (%s):\n%s", archiveDir, ds.out)
	}

	client := &http.Client{Timeout: 15 * time.Second}
	batches := piiEvents(users, time.Now())
	var want []string
	for _, b := range batches {
		postPIIBatch(t, client, api, b)
		for i, e := range b.events {
			if !slices.Contains(b.rejected, i) {
				want = append(want, e["event_id"].(string))
			}
		}
	}
	postPIIBatch(t, client, api, batches[0]) // the same events again: on the stream twice
	slices.Sort(want)

	// The archiver writes every 2 s: wait until every accepted event is in the export.
	day := time.Now().UTC().Format(archive.DayLayout)
	from := time.Now().UTC().Add(-time.Hour).Format(archive.DayLayout) // a run across midnight
	var got []string
	var out []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		out = exportArchive(t, archiveDir, from, day)
		got = exportedIDs(t, out)
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // one more window: a duplicate written late would show now
	out = exportArchive(t, archiveDir, from, day)
	got = exportedIDs(t, out)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("exported event ids:\n got %q\nwant %q", got, want)
	}

	if code := ds.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}

	// The resent batch is in the files twice (at least once), and once in the export.
	rows := 0
	s := newPIIScanner(needles, nil)
	err := filepath.WalkDir(archiveDir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(archiveDir, path)
		p, ok := archivefiles.ParseName(filepath.ToSlash(rel))
		if !ok {
			t.Errorf("a stray file in the archive: %s", rel)
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rows += scanArchiveFile(t, s, "archive file "+rel, p, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if wantRows := len(want) + len(batches[0].events); rows != wantRows {
		t.Errorf("%d rows in the archive files, want %d (the resent batch twice)", rows, wantRows)
	}
	s.scanDocument("archive-export", "retarget archive export", out)
	for _, f := range s.findings {
		t.Errorf("raw personal data in the archive: %s", f)
	}
}

// scanArchiveFile scans an archive file's bytes and each decoded row, and checks the fields
// only Meta needs raw are absent; it returns the number of rows.
func scanArchiveFile(t *testing.T, s *piiScanner, where string, p archive.Partition, data []byte) int {
	t.Helper()
	// The bytes: what a file copied off the archive holds (Snappy keeps short unique strings
	// literal, but may not: hence also the decoded rows below).
	s.leaf("archive", where+" (bytes)", "", string(bytes.ToValidUTF8(data, []byte(" "))), 0)
	rows, err := archivefiles.Decode(p, data)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	for _, r := range rows {
		b, _ := json.Marshal(r)
		s.scanDocument("archive", fmt.Sprintf("%s event %s", where, r.EventID), b)
		if r.EventID != "planted" && (r.ClientIP != "" || r.ClientUserAgent != "" || r.MADID != "" || r.AnonID != "") {
			t.Errorf("%s event %s: raw fields kept for an app that did not opt in", where, r.EventID)
		}
	}
	return len(rows)
}

func encodeRows(t *testing.T, rows ...archive.Row) []byte {
	t.Helper()
	b, err := archivefiles.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exportArchive runs `retarget archive export` on the archive folder.
func exportArchive(t *testing.T, dir, from, to string) []byte {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), retargetBinary(t), "archive", "export", "--dir", dir, "--from", from, "--to", to, "--format", "jsonl")
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && !strings.Contains(stderr.String(), "no such file") {
		t.Fatalf("retarget archive export: %v\n%s", err, stderr.String())
	}
	return out
}

func exportedIDs(t *testing.T, out []byte) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r archive.Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if r.App != "sample-shop" {
			t.Errorf("event %s of app %q", r.EventID, r.App)
		}
		ids = append(ids, r.EventID)
	}
	return ids
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	archivefiles "github.com/retarget-dev/retarget/shared/adapters/archive"
	"github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/testkit/mototest"
)

// TestArchiveCommandsReadTheBucket: with --bucket, $ARCHIVE_BUCKET_NAME or a stack's
// ArchiveBucketName output, archive export and archive replay read the archive in S3 (moto,
// through AWS_ENDPOINT_URL_S3) as they read a folder: each unique row once, in the files the
// adapter writes and in those Firehose names its own way.
func TestArchiveCommandsReadTheBucket(t *testing.T) {
	srv := mototest.StartS3(t, "retarget-prod-archive")
	d1 := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	d2 := d1.Add(24 * time.Hour)
	bucket := archivefiles.S3{Client: srv.Client, Bucket: srv.Bucket}
	write := func(rows ...archive.Row) {
		t.Helper()
		batch := make([]archivefiles.SequencedRow, len(rows))
		for i, r := range rows {
			batch[i] = archivefiles.SequencedRow{Seq: strings.Repeat("0", 20) + string(rune('1'+i)), Row: r}
		}
		if _, err := archivefiles.Write(t.Context(), bucket, batch); err != nil {
			t.Fatal(err)
		}
	}
	write(replayRow(t, "shop", "a", "uk-1", d1), replayRow(t, "shop", "b", "uk-2", d2), replayRow(t, "game", "c", "uk-3", d2))
	write(replayRow(t, "shop", "b", "uk-2", d2)) // the same event twice, in another file
	// A file as the stack's Firehose names it.
	data, err := archivefiles.Encode([]archive.Row{replayRow(t, "game", "d", "uk-4", d2)})
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.WriteFile(t.Context(), "app=game/day=2026-03-09/retarget-prod-archive-1-2026-03-09-12-15-01-0b1e2c4a-7f0e-4a5b-9c1d-3e2f1a0b9c8d.parquet", data); err != nil {
		t.Fatal(err)
	}

	api := startEventsSink(t)
	withBucket := fullOutputs(api.url)
	withBucket["ArchiveBucketName"] = srv.Bucket
	cfn := startCloudFormation(t, map[string]map[string]string{"Retarget-prod": withBucket, "Retarget-lean": fullOutputs(api.url)})
	newH := func(t *testing.T) *harness {
		h := newHarness(t)
		h.env["AWS_ENDPOINT_URL_S3"] = srv.Endpoint
		h.env["AWS_ENDPOINT_URL_CLOUDFORMATION"] = cfn.url
		return h
	}
	days := []string{"--from", "2026-03-08", "--to", "2026-03-09"}

	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"--bucket", []string{"archive", "export", "--bucket", srv.Bucket}, nil},
		{"$ARCHIVE_BUCKET_NAME", []string{"archive", "export"}, map[string]string{"ARCHIVE_BUCKET_NAME": srv.Bucket}},
		{"--stack", []string{"--stack", "Retarget-prod", "archive", "export"}, nil},
	} {
		t.Run("export "+tc.name, func(t *testing.T) {
			h := newH(t)
			for k, v := range tc.env {
				h.env[k] = v
			}
			out := h.mustRun(exitOK, append(tc.args, days...)...)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var r archive.Row
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				got = append(got, r.App+"/"+r.Day+"/"+r.EventID)
			}
			if want := "shop/2026-03-08/a game/2026-03-09/c game/2026-03-09/d shop/2026-03-09/b"; strings.Join(got, " ") != want {
				t.Errorf("exported %v, want %s (each unique row once, in arrival order)", got, want)
			}
			wantContains(t, h.stderr.String(), "4 events from s3://"+srv.Bucket)
		})
	}

	t.Run("replay --dry-run", func(t *testing.T) {
		h := newH(t)
		out := h.mustRun(exitOK, append([]string{"archive", "replay", "--bucket", srv.Bucket, "--dry-run"}, days...)...)
		if got := [4]string{fieldValue(t, out, "read"), fieldValue(t, out, "unique"), fieldValue(t, out, "put"), fieldValue(t, out, "failed")}; got != [4]string{"5", "4", "0", "0"} {
			t.Errorf("dry run counts read, unique, put, failed = %v, want 5 4 0 0\n%s", got, out)
		}
		wantContains(t, out, "s3://"+srv.Bucket)
		h.mustRun(exitOK, append([]string{"--stack", "Retarget-prod", "archive", "replay", "--app", "game", "--dry-run", "--json"}, days...)...)
		var res archiveReplayResult
		h.decodeJSON(&res)
		if res.Dir != "s3://"+srv.Bucket || res.Read != 2 || res.Unique != 2 || res.Put != 0 {
			t.Errorf("--stack --app game dry run: %+v", res)
		}
	})

	t.Run("no archive known", func(t *testing.T) {
		h := newH(t)
		h.mustRun(exitUsage, append([]string{"archive", "export", "--bucket", srv.Bucket, "--dir", t.TempDir()}, days...)...)
		wantContains(t, h.stderr.String(), "--dir and --bucket")
		h.mustRun(exitFailure, append([]string{"--stack", "Retarget-lean", "archive", "replay", "--dry-run"}, days...)...)
		wantContains(t, h.stderr.String(), "stack Retarget-lean has no output ArchiveBucketName")
		h.stderr.Reset()
		h.mustRun(exitFailure, append([]string{"archive", "export"}, days...)...) // no make dev archive here
		wantContains(t, h.stderr.String(), "pass --dir FOLDER, --bucket NAME (or set ARCHIVE_BUCKET_NAME) or --stack NAME")
	})
}

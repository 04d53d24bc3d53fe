package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	domain "github.com/retarget-dev/retarget/shared/domain/archive"
)

// motoS3 starts moto's server (python3 -m moto.server) on a loopback port for the test, stops
// it at cleanup, and returns a client with a fresh bucket. Without moto the test is skipped, or
// fails under EMULATORS_REQUIRED=1 as the other emulator tests do (shared/sandbox/emulators).
func motoS3(t *testing.T) (*s3.Client, string) {
	t.Helper()
	absent := func(why string, err error) {
		t.Helper()
		if os.Getenv("EMULATORS_REQUIRED") == "1" {
			t.Fatalf("moto's S3 is required (EMULATORS_REQUIRED=1): %s: %v", why, err)
		}
		t.Skipf("moto's S3 not available (%s: %v): pip install 'moto[server]'", why, err)
	}
	if err := exec.Command("python3", "-c", "import moto.server").Run(); err != nil {
		absent("python3 -c 'import moto.server'", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		absent("start moto.server", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			absent("moto.server not answering", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	const bucket = "retarget-archive-test"
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return client, bucket
}

// TestS3FS: the archive and the erasure rewrite work the same on S3 (moto) as on a directory:
// files under the key prefix, List across pages and by prefix, a missing file is
// fs.ErrNotExist, and RemoveUsers rewrites and deletes objects.
func TestS3FS(t *testing.T) {
	client, bucket := motoS3(t)
	ctx := context.Background()
	b := S3{Client: client, Bucket: bucket, Prefix: "events/", PageSize: 2}
	const day = "2026-12-06"
	var batches [][]SequencedRow
	for i, users := range [][]string{{"gone", "kept"}, {"gone"}, {"kept"}} {
		var batch []SequencedRow
		for j, u := range users {
			batch = append(batch, SequencedRow{Seq: fmt.Sprint(100*i + j + 100), Row: userRow("shop", day, fmt.Sprintf("%s-%d", u, i), u)})
		}
		batches = append(batches, batch)
	}
	batches = append(batches, []SequencedRow{{Seq: "900", Row: userRow("shop", "2026-12-07", "gone-9", "gone")}})
	var names []string
	for _, batch := range batches {
		n, err := Write(ctx, b, batch)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, n...)
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("elsewhere/app=shop/day=2026-12-06/part-1-1.parquet")}); err != nil {
		t.Fatal(err)
	}
	all, err := b.List(ctx, "")
	slices.Sort(all)
	slices.Sort(names)
	if err != nil || !slices.Equal(all, names) {
		t.Fatalf("List = %v, %v; want %v (4 objects over pages of 2, none outside the prefix)", all, err, names)
	}
	files, err := PartitionFiles(ctx, b, domainPartition("shop", day))
	if err != nil || len(files) != 3 {
		t.Fatalf("partition files = %v, %v; want the 3 of %s", files, err, day)
	}
	if _, err := b.ReadFile(ctx, "app=shop/day=2026-12-06/part-1-1.parquet"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing object: %v, want fs.ErrNotExist", err)
	}
	removed := 0
	for _, f := range files {
		n, err := Rewriter{FS: b}.RemoveUsers(ctx, f, map[string]bool{"gone": true})
		if err != nil {
			t.Fatal(err)
		}
		removed += n
	}
	if removed != 2 {
		t.Fatalf("removed %d rows, want 2", removed)
	}
	rows, err := Read(ctx, b, Query{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.EventID)
	}
	slices.Sort(ids)
	if want := []string{"gone-9", "kept-0", "kept-2"}; !slices.Equal(ids, want) {
		t.Fatalf("rows = %v, want %v (gone-9 is another day's)", ids, want)
	}
	if left, _ := b.List(ctx, "app=shop/day="+day+"/"); len(left) != 2 {
		t.Fatalf("objects of %s = %v, want 2 (the file of gone alone deleted)", day, left)
	}
	if err := b.Remove(ctx, "app=shop/day=2026-12-06/part-1-1.parquet"); err != nil {
		t.Fatalf("removing a missing object: %v", err)
	}
}

func domainPartition(app, day string) domain.Partition { return domain.Partition{App: app, Day: day} }

package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	domain "github.com/retarget-dev/retarget/shared/domain/archive"
	"github.com/retarget-dev/retarget/shared/testkit/mototest"
)

// motoS3 starts moto's S3 with a fresh bucket (skipped without moto, failed under
// EMULATORS_REQUIRED=1).
func motoS3(t *testing.T) (*s3.Client, string) {
	t.Helper()
	srv := mototest.StartS3(t, "retarget-archive-test")
	return srv.Client, srv.Bucket
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

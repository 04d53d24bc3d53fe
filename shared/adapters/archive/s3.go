package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3API is the part of the S3 client the archive uses.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// S3 is an FS on an S3 bucket: a file name is an object key under Prefix. S3 replaces an
// object in one step (a reader gets the old object or the new one), which is what WriteFile
// promises; the bucket's default encryption applies to every object.
type S3 struct {
	Client S3API
	Bucket string
	// Prefix is prepended to every name ("" or ending in "/", e.g. "events/").
	Prefix string
	// PageSize is the most keys one ListObjectsV2 call returns (0: S3's 1000).
	PageSize int32
}

var _ RemoveFS = S3{}

// WriteFile puts the object.
func (b S3) WriteFile(ctx context.Context, name string, data []byte) error {
	_, err := b.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(b.Prefix + name),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	if err != nil {
		return fmt.Errorf("archive object %s: %w", name, err)
	}
	return nil
}

// ReadFile gets the object; a missing one is an error matching fs.ErrNotExist.
func (b S3) ReadFile(ctx context.Context, name string) ([]byte, error) {
	out, err := b.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(b.Prefix + name)})
	var missing *types.NoSuchKey
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("archive object %s: %w", name, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("archive object %s: %w", name, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("archive object %s: %w", name, err)
	}
	return data, nil
}

// List lists the keys under Prefix+prefix, every page, and returns them without Prefix.
func (b S3) List(ctx context.Context, prefix string) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(b.Bucket), Prefix: aws.String(b.Prefix + prefix)}
	if b.PageSize > 0 {
		in.MaxKeys = aws.Int32(b.PageSize)
	}
	var names []string
	for p := s3.NewListObjectsV2Paginator(b.Client, in); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list archive s3://%s/%s: %w", b.Bucket, b.Prefix+prefix, err)
		}
		for _, o := range page.Contents {
			names = append(names, strings.TrimPrefix(aws.ToString(o.Key), b.Prefix))
		}
	}
	return names, nil
}

// Remove deletes the object (S3 answers a delete of a missing key with success).
func (b S3) Remove(ctx context.Context, name string) error {
	if _, err := b.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(b.Prefix + name)}); err != nil {
		return fmt.Errorf("remove archive object %s: %w", name, err)
	}
	return nil
}

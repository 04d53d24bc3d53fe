// Package mototest runs moto's S3 (python3 -m moto.server) for tests that need a real S3 API
// on loopback: the archive's S3 file system and the CLI commands that read the stack's archive.
package mototest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a running moto server with one empty bucket.
type S3Server struct {
	// Endpoint is the server's base URL (http://127.0.0.1:PORT), for AWS_ENDPOINT_URL_S3.
	Endpoint string
	// Client is an S3 client for Endpoint (path-style, dummy credentials).
	Client *s3.Client
	// Bucket is the bucket the server was started with.
	Bucket string
}

// StartS3 starts moto's server on a loopback port for the test, stops it at cleanup, and
// creates bucket. Without moto the test is skipped, or fails under EMULATORS_REQUIRED=1 as the
// other emulator tests do (shared/sandbox/emulators).
func StartS3(t testing.TB, bucket string) S3Server {
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
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return S3Server{Endpoint: endpoint, Client: client, Bucket: bucket}
}

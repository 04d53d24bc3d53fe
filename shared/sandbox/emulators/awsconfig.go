package emulators

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region the emulators are addressed in.
const Region = "us-east-1"

// AWSConfig returns an SDK config for a local emulator (or a fault proxy in front of one) at
// endpoint: region us-east-1, static dummy credentials (the emulators do not verify
// signatures) and BaseEndpoint set, so every client made from it talks to endpoint:
//
//	client := kinesis.NewFromConfig(cfg)
//
// The config is built from scratch, not by config.LoadDefaultConfig, so shared config files and
// AWS_* variables of the developer's shell (profiles, AWS_ENDPOINT_URL_KINESIS, ...) cannot
// send test traffic elsewhere. The endpoint must be a loopback http(s) URL. ctx is unused today
// and kept for credential sources that need one.
func AWSConfig(ctx context.Context, endpoint string) (aws.Config, error) {
	_ = ctx
	u, err := url.Parse(endpoint)
	if err != nil {
		return aws.Config{}, fmt.Errorf("emulator aws config: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return aws.Config{}, fmt.Errorf("emulator aws config: endpoint %q: want an http(s) URL", endpoint)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return aws.Config{}, fmt.Errorf("emulator aws config: endpoint %q is not on loopback", endpoint)
	}
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(endpoint),
	}, nil
}

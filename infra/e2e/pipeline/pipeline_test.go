package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/app/forward"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/handlers/capiforwarder"
	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// pipeline is the whole path on loopback: the ingest handler writes to kinesalite, the local
// event source mapping feeds the forwarder, which sends to the Meta sandbox.
type pipeline struct {
	ingest  *ingestapi.Handler
	client  *kinesis.Client
	stream  string
	sandbox *metasandbox.Sandbox
	dlq     *deadletters.Memory
	fwd     *capiforwarder.Handler
}

func newPipeline(t *testing.T, kinesalite *emulators.Process, shards int32, faults metasandbox.Faults) *pipeline {
	t.Helper()
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	awsCfg, err := emulators.AWSConfig(context.Background(), kinesalite.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{client: kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }),
		stream: fmt.Sprintf("e2e-%d", time.Now().UnixNano()), dlq: &deadletters.Memory{}}
	if err := kinesisstream.EnsureStream(context.Background(), p.client, p.stream, shards); err != nil {
		t.Fatal(err)
	}
	pseudo, _ := identity.NewPseudonymizer([]byte("e2e-pepper-0123456789"))
	p.ingest, err = ingestapi.New(ingestapi.Config{Apps: apps, Parser: appevent.NewParser(pseudo),
		Publisher: stream.NewPublisher(kinesisstream.NewWriter(p.client, p.stream, ""), stream.Options{}),
		DevKeys:   ingestapi.DevKeys(apps, "")})
	if err != nil {
		t.Fatal(err)
	}
	const token, secret = "e2e-token", "e2e-secret"
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: token, AppSecret: secret,
		Datasets: []string{apps.Apps[0].Meta.DatasetID}, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	p.sandbox = sb
	sender := metagraph.New(metagraph.Config{BaseURL: url, AccessToken: token, AppSecret: secret})
	p.fwd, err = capiforwarder.New(capiforwarder.Config{Apps: apps, DLQ: p.dlq,
		Forwarder: forward.New(sender, p.dlq, forward.Options{Consumer: capiforwarder.Consumer,
			BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond})})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// send posts events in requests of 20 (the shape mobile SDKs send) and returns the ids the API
// accepted.
func (p *pipeline) send(t *testing.T, n int) []string {
	t.Helper()
	var accepted []string
	now := time.Now()
	for start := 0; start < n; start += 20 {
		var evs []any
		user := fmt.Sprintf("user-%d", start/20)
		for i := start; i < min(start+20, n); i++ {
			evs = append(evs, map[string]any{
				"event_id": fmt.Sprintf("e2e-%05d", i), "event_name": "fb_mobile_content_view", "event_time": now.Add(-time.Minute).Unix(),
				"user":    map[string]any{"app_user_id": user, "email": user + "@example.com", "country": "us"},
				"device":  map[string]any{"platform": "android", "os_version": "14", "app_package": "com.example.shop"},
				"consent": map[string]any{"ads_personalization": true},
			})
		}
		body, _ := json.Marshal(map[string]any{"events": evs})
		resp, err := p.ingest.Handle(context.Background(), events.APIGatewayProxyRequest{
			Resource: "/v1/events", Path: "/v1/events", HTTPMethod: "POST",
			Headers: map[string]string{"x-api-key": "dev-api-key"}, Body: string(body)})
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("ingest: %d %s %v", resp.StatusCode, resp.Body, err)
		}
		for _, e := range evs {
			accepted = append(accepted, e.(map[string]any)["event_id"].(string))
		}
	}
	return accepted
}

// forwardAll runs the event source mapping until the stream is drained.
func (p *pipeline) forwardAll(t *testing.T) streampoller.Stats {
	t.Helper()
	poller, err := streampoller.New(p.client, streampoller.Config{Stream: p.stream, BatchSize: 1000,
		BatchingWindow: 200 * time.Millisecond, BisectOnError: true, MaxRetryAttempts: 10, ReportBatchItemFailures: true,
		FunctionTimeout: 60 * time.Second, PollInterval: 20 * time.Millisecond,
		OnFailure: func(_ context.Context, f streampoller.FailureRecord) error {
			t.Errorf("records given up by the event source mapping: %+v", f)
			return nil
		}}, p.fwd.Handle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); poller.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait, stop := context.WithTimeout(context.Background(), 90*time.Second)
	defer stop()
	if err := poller.WaitIdle(wait); err != nil {
		t.Fatalf("stream not drained: %v (%+v)", err, poller.Stats())
	}
	return poller.Stats()
}

func (p *pipeline) metaIDs() []string {
	var ids []string
	for _, a := range p.sandbox.Accepted() {
		ids = append(ids, a.EventID)
	}
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

// TestPipelineEndToEnd: every event the API accepted reaches Meta once in effect, in full
// batches; with Meta failing 30% of requests transiently nothing is lost or dead-lettered;
// a poison event is dead-lettered alone.
func TestPipelineEndToEnd(t *testing.T) {
	kinesalite := emulators.StartForTest(t, emulators.Kinesis)

	t.Run("full batches: CAPI requests per 1,000 events", func(t *testing.T) {
		// One shard and the events on the stream before the mapping starts: every batch is full
		// (with more shards, each shard's last batch of a burst is partial).
		p := newPipeline(t, kinesalite, 1, metasandbox.Faults{})
		accepted := p.send(t, 3000)
		p.forwardAll(t)
		if got := p.metaIDs(); !slices.Equal(got, slices.Sorted(slices.Values(accepted))) {
			t.Fatalf("Meta accepted %d ids, the API %d", len(got), len(accepted))
		}
		perThousand := float64(len(p.sandbox.Requests())) / float64(len(accepted)) * 1000
		t.Logf("CAPI requests per 1,000 events: %.2f (%d requests for %d events)", perThousand, len(p.sandbox.Requests()), len(accepted))
		if perThousand > 1.1 {
			t.Errorf("%.2f CAPI requests per 1,000 events, target <= 1.1", perThousand)
		}
	})

	t.Run("30% transient failures and a poison event", func(t *testing.T) {
		const poison = "e2e-01234"
		p := newPipeline(t, kinesalite, 2, metasandbox.Faults{ServerErrorRate: 0.3, Seed: 7, PoisonEventIDs: []string{poison}})
		accepted := p.send(t, 2000)
		stats := p.forwardAll(t)
		var want []string
		for _, id := range slices.Sorted(slices.Values(accepted)) {
			if id != poison {
				want = append(want, id)
			}
		}
		if got := p.metaIDs(); !slices.Equal(got, want) {
			t.Fatalf("Meta accepted %d ids, want the %d accepted minus the poison one", len(got), len(want))
		}
		letters := p.dlq.Letters()
		if len(letters) != 1 || letters[0].EventID != poison || letters[0].Meta == nil || letters[0].Meta.Code != 100 {
			t.Fatalf("dead letters: %+v", letters)
		}
		failed := 0
		for _, r := range p.sandbox.Requests() {
			if r.Status >= 500 {
				failed++
			}
		}
		t.Logf("%d CAPI requests, %d failed with 5xx; %d invocations, %d retries by the mapping", len(p.sandbox.Requests()), failed, stats.Invocations, stats.Retries)
		if failed == 0 {
			t.Fatal("the sandbox injected no failures: the test proves nothing")
		}
	})
}

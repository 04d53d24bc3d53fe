package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// probes time one trivial call to each part of the stack every probeEvery while the load runs:
// how long a part takes to answer a call that costs it nothing shows how long calls queue
// there, which points at the bottleneck (an emulator's single JavaScript thread, the dev
// stack's scheduler) better than CPU figures alone.
const probeEvery = 250 * time.Millisecond

// ProbeLatency is one part's answer times during the load.
type ProbeLatency struct {
	Target string `json:"target"`
	Call   string `json:"call"`
	LatencySummary
	Errors int `json:"errors"`
}

type probe struct {
	target, call string
	do           func(ctx context.Context) error
	mu           sync.Mutex
	ms           []float64
	errors       int
}

// startProbes begins probing the endpoints that are known; stop returns the results.
func startProbes(ctx context.Context, ep Endpoints, stream, table string) (stop func() []ProbeLatency) {
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(url string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}
	}
	var probes []*probe
	if ep.API != "" {
		probes = append(probes, &probe{target: "dev stack API (gateway + ingest function)", call: "GET /v1/health", do: get(ep.API + "/v1/health")})
	}
	if ep.Sandbox != "" {
		probes = append(probes, &probe{target: "Meta sandbox (in the dev stack)", call: "GET /health", do: get(ep.Sandbox + "/health")})
	}
	if ep.Kinesis != "" {
		if cfg, err := emulators.AWSConfig(ctx, ep.Kinesis); err == nil {
			k := kinesis.NewFromConfig(cfg)
			probes = append(probes, &probe{target: "kinesalite", call: "DescribeStreamSummary", do: func(ctx context.Context) error {
				_, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
				return err
			}})
		}
	}
	if ep.DynamoDB != "" {
		if cfg, err := emulators.AWSConfig(ctx, ep.DynamoDB); err == nil {
			d := dynamodb.NewFromConfig(cfg)
			probes = append(probes, &probe{target: "dynalite", call: "DescribeTable", do: func(ctx context.Context) error {
				_, err := d.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
				return err
			}})
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() {
			t := time.NewTicker(probeEvery)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
				start := time.Now()
				err := p.do(runCtx)
				took := time.Since(start)
				if runCtx.Err() != nil {
					return
				}
				p.mu.Lock()
				if err != nil {
					p.errors++
				} else {
					p.ms = append(p.ms, float64(took.Microseconds())/1000)
				}
				p.mu.Unlock()
			}
		})
	}
	return func() []ProbeLatency {
		cancel()
		wg.Wait()
		var out []ProbeLatency
		for _, p := range probes {
			out = append(out, ProbeLatency{Target: p.target, Call: p.call, LatencySummary: Summarize(p.ms), Errors: p.errors})
		}
		return out
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/handlers/usersapi"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// sampleConfig is the repository's sample config (app sample-shop, the default segment pack
// and six audiences marked create).
var sampleConfig = filepath.Join("..", "..", "config", "apps.json")

// testNow is the clock of the tests: a Monday, 10:00 UTC.
var testNow = time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)

// harness runs the CLI in-process with captured output and a private environment.
type harness struct {
	t              *testing.T
	env            map[string]string
	stdin          string
	stdout, stderr bytes.Buffer
	now            time.Time
	tty            bool
	newSQS         func() sqsAPI
	// reports, when set, replaces the report function (hand-built reports).
	reports usersapi.ReportFunc
	// wd is where the CLI looks for a dev stack's endpoints file; "" nowhere.
	wd string
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, env: map[string]string{}, now: testNow}
}

// run runs `retarget args...` and returns the exit code; output is in h.stdout and h.stderr
// (reset at each run).
func (h *harness) run(args ...string) int {
	h.t.Helper()
	h.stdout.Reset()
	h.stderr.Reset()
	c := &cli{
		stdin: strings.NewReader(h.stdin), stdout: &h.stdout, stderr: &h.stderr,
		getenv: func(k string) string { return h.env[k] }, now: func() time.Time { return h.now },
		stderrTTY: h.tty, newSQS: h.newSQS, target: target{wd: h.wd}, reports: h.reports,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.run(ctx, args)
}

// mustRun runs the CLI and fails the test unless it exits with want.
func (h *harness) mustRun(want int, args ...string) string {
	h.t.Helper()
	if code := h.run(args...); code != want {
		h.t.Fatalf("retarget %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, h.stdout.String(), h.stderr.String())
	}
	return h.stdout.String()
}

// decodeJSON decodes the JSON stdout of the last run.
func (h *harness) decodeJSON(v any) {
	h.t.Helper()
	if err := json.Unmarshal(h.stdout.Bytes(), v); err != nil {
		h.t.Fatalf("stdout is not the JSON expected: %v\n%s", err, h.stdout.String())
	}
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

func wantNotContains(t *testing.T, got string, nots ...string) {
	t.Helper()
	for _, n := range nots {
		if n != "" && strings.Contains(got, n) {
			t.Errorf("output contains %q, which it must not:\n%s", n, got)
		}
	}
}

// tableRow returns the first line of out whose whitespace-separated fields start with the
// given cells, or fails.
func tableRow(t *testing.T, out string, cells ...string) []string {
	t.Helper()
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < len(cells) {
			continue
		}
		match := true
		for i, c := range cells {
			if f[i] != c {
				match = false
				break
			}
		}
		if match {
			return f
		}
	}
	t.Fatalf("no row starting with %q in:\n%s", cells, out)
	return nil
}

// fieldValue returns the value of a key/value line ("name  value") of out.
func fieldValue(t *testing.T, out, name string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, name+"  "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %q line in:\n%s", name, out)
	return ""
}

func loadSampleConfig(t *testing.T) *appconfig.Config {
	t.Helper()
	cfg, err := env.LoadApps(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var tables atomic.Int64

// dynalite starts a DynamoDB emulator with a fresh state table; it returns the endpoint, the
// table and a client.
func dynalite(t *testing.T) (endpoint, table string, client *dynamodb.Client) {
	t.Helper()
	emu := emulators.StartForTest(t, emulators.DynamoDB)
	cfg, err := emulators.AWSConfig(context.Background(), emu.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client = dynamodb.NewFromConfig(cfg)
	table = freshTable(t, client)
	return emu.Endpoint, table, client
}

func freshTable(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("cli-state-%d", tables.Add(1))
	if err := dynamostate.CreateTable(ctx, client, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// kinesalite starts a Kinesis emulator with one stream; it returns the endpoint and a client.
func kinesalite(t *testing.T, stream string) (string, *kinesis.Client) {
	t.Helper()
	emu := emulators.StartForTest(t, emulators.Kinesis)
	cfg, err := emulators.AWSConfig(context.Background(), emu.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client := kinesis.NewFromConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kinesisstream.EnsureStream(ctx, client, stream, 1); err != nil {
		t.Fatal(err)
	}
	return emu.Endpoint, client
}

// streamRecords reads every record of the stream.
func streamRecords(t *testing.T, client *kinesis.Client, stream string) []kinesisstream.TailedRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := kinesisstream.NewTailer(client, stream, kinesisstream.TrimHorizon).Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

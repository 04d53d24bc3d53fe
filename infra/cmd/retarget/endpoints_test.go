//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// TestStackOutputNamesMatchTheStack reads the output names from the stack's source (importing
// infra/stack would compile the CDK into the test), so --stack cannot drift from what is
// deployed.
func TestStackOutputNamesMatchTheStack(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(ingesttest.RepoRoot(t), "infra", "stack", "stack.go"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(Output\w+)\s*=\s*"(\w+)"`).FindAllStringSubmatch(string(src), -1) {
		names[m[1]] = m[2]
	}
	for constant, ours := range map[string]string{
		"OutputApiUrl": outputAPIURL, "OutputEventStreamName": outputStream, "OutputPepperSecretArn": outputPepperSecret,
		"OutputMetaSecretArn": outputMetaSecret, "OutputDeadLetterQueueUrl": outputDeadLetterURL, "OutputStateTableName": outputStateTableName,
		"OutputMetaCapiVersion": outputMetaCapiVersion, "OutputMetaMarketingVersion": outputMetaMarketingVersion,
		"OutputEventBusName": outputEventBus, "OutputArchiveBucketName": outputArchiveBucket,
	} {
		if names[constant] != ours {
			t.Errorf("infra/stack %s = %q, the CLI reads %q", constant, names[constant], ours)
		}
	}
}

// fakeCloudFormation answers DescribeStacks in the query protocol, as CloudFormation does, for
// the stacks it holds (name -> outputs).
type fakeCloudFormation struct {
	url    string
	mu     sync.Mutex
	stacks map[string]map[string]string
	calls  []url.Values
}

func startCloudFormation(t *testing.T, stacks map[string]map[string]string) *fakeCloudFormation {
	t.Helper()
	f := &fakeCloudFormation{stacks: stacks}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		f.mu.Lock()
		f.calls = append(f.calls, form)
		outputs, ok := f.stacks[form.Get("StackName")]
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		if form.Get("Action") != "DescribeStacks" || !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id %s does not exist</Message></Error>
  <RequestId>b9b5b6e4-0000-4000-8000-000000000000</RequestId>
</ErrorResponse>`, form.Get("StackName"))
			return
		}
		var members strings.Builder
		for k, v := range outputs {
			fmt.Fprintf(&members, "<member><OutputKey>%s</OutputKey><OutputValue>%s</OutputValue></member>", k, v)
		}
		fmt.Fprintf(w, `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <DescribeStacksResult><Stacks><member>
    <StackName>%s</StackName>
    <StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/%s/0a1b2c3d</StackId>
    <StackStatus>UPDATE_COMPLETE</StackStatus>
    <CreationTime>2026-03-01T10:00:00Z</CreationTime>
    <Outputs>%s</Outputs>
  </member></Stacks></DescribeStacksResult>
  <ResponseMetadata><RequestId>b9b5b6e4-0000-4000-8000-000000000001</RequestId></ResponseMetadata>
</DescribeStacksResponse>`, form.Get("StackName"), form.Get("StackName"), members.String())
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// eventsSink is an ingest API stand-in that accepts everything and records where each
// request went and with which key.
type eventsSink struct {
	url  string
	mu   sync.Mutex
	hits []string // "path key"
}

func startEventsSink(t *testing.T) *eventsSink {
	t.Helper()
	s := &eventsSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch struct {
			Events []json.RawMessage `json:"events"`
		}
		json.NewDecoder(r.Body).Decode(&batch)
		s.mu.Lock()
		s.hits = append(s.hits, r.URL.Path+" "+r.Header.Get("x-api-key"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"accepted": %d, "rejected": []}`, len(batch.Events))
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *eventsSink) lastHit() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.hits) == 0 {
		return ""
	}
	return s.hits[len(s.hits)-1]
}

// fullOutputs are the outputs of a deployed stack, with its API at base.
func fullOutputs(base string) map[string]string {
	return map[string]string{
		"ApiUrl": base + "/prod/", "EventStreamName": "Retarget-Events-1A2B", "StateTableName": "Retarget-State-3C4D",
		"PepperSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pepper-AbCdEf", "MetaSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:meta-AbCdEf",
		"DeadLetterQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/Retarget-DeadLetters", "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
	}
}

func TestStackTarget(t *testing.T) {
	api := startEventsSink(t)
	partial := fullOutputs(api.url)
	delete(partial, "EventStreamName")
	noSegments := fullOutputs(api.url)
	delete(noSegments, "StateTableName")
	cfn := startCloudFormation(t, map[string]map[string]string{"Retarget-prod": fullOutputs(api.url), "Retarget-old": partial, "Retarget-lean": noSegments})

	newH := func(t *testing.T) *harness {
		h := newHarness(t)
		h.env["AWS_ENDPOINT_URL_CLOUDFORMATION"] = cfn.url
		return h
	}

	t.Run("outputs become settings", func(t *testing.T) {
		h := newH(t)
		c := &cli{getenv: func(k string) string { return h.env[k] }}
		got, err := c.stackSettings(t.Context(), "Retarget-prod")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"RETARGET_API_URL": api.url + "/prod/", "EVENT_STREAM_NAME": "Retarget-Events-1A2B", "STATE_TABLE_NAME": "Retarget-State-3C4D",
			"PEPPER_SECRET_ID": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pepper-AbCdEf", "META_SECRET_ID": "arn:aws:secretsmanager:us-east-1:123456789012:secret:meta-AbCdEf",
			"DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/Retarget-DeadLetters",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("settings\n%v\nwant\n%v", got, want)
		}
		cfn.mu.Lock()
		last := cfn.calls[len(cfn.calls)-1]
		cfn.mu.Unlock()
		if last.Get("Action") != "DescribeStacks" || last.Get("StackName") != "Retarget-prod" || last.Get("Version") != "2010-05-15" {
			t.Errorf("request %v", last)
		}
	})

	// The stack's ApiUrl ends with its stage: send posts under it.
	for _, args := range [][]string{
		{"send", "--sample", "2", "--stack", "Retarget-prod"},
		{"--stack", "Retarget-prod", "send", "--sample", "2"},
		{"--stack=Retarget-prod", "send", "--sample", "2"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			h := newH(t)
			h.mustRun(exitOK, args...)
			if got := api.lastHit(); got != "/prod/v1/events dev-api-key" {
				t.Errorf("request went to %q, want the stack's API", got)
			}
		})
	}

	t.Run("the environment beats the stack", func(t *testing.T) {
		h := newH(t)
		h.env["RETARGET_API_URL"] = api.url + "/staging/"
		h.mustRun(exitOK, "send", "--sample", "1", "--stack", "Retarget-prod")
		if got := api.lastHit(); got != "/staging/v1/events dev-api-key" {
			t.Errorf("request went to %q, want RETARGET_API_URL", got)
		}
	})

	t.Run("the stack beats the dev stack", func(t *testing.T) {
		h := newH(t)
		h.wd = devRepo(t, &devenv.Endpoints{PID: os.Getpid(), APIURL: api.url + "/dev-stack", APIKey: "dev-api-key", Table: "retarget-state"})
		h.mustRun(exitOK, "send", "--sample", "1", "--stack", "Retarget-prod")
		if got := api.lastHit(); got != "/prod/v1/events dev-api-key" {
			t.Errorf("request went to %q, want the stack's API", got)
		}
	})

	errorCases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"missing output", []string{"send", "--sample", "1", "--stack", "Retarget-old"},
			[]string{"--stack Retarget-old", "no output EventStreamName", "Retarget stack", "Its outputs: ", "ApiUrl"}},
		{"unknown stack", []string{"send", "--sample", "1", "--stack", "Nope"},
			[]string{"--stack Nope: no such stack in region us-east-1"}},
		{"optional output missing when needed", []string{"audiences", "status", "--stack", "Retarget-lean", "--config", sampleConfig},
			[]string{"no state table: pass --table or set STATE_TABLE_NAME", "stack Retarget-lean does not give it"}},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newH(t)
			h.mustRun(exitFailure, tc.args...)
			wantContains(t, h.stderr.String(), tc.wants...)
		})
	}
}

// devRepo makes a module folder whose .dev/endpoints.json is e and returns a folder two
// levels below the module root, where a developer might run the CLI.
func devRepo(t *testing.T, e *devenv.Endpoints) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if e != nil {
		if err := devenv.WriteEndpoints(filepath.Join(root, devenv.Dir), e); err != nil {
			t.Fatal(err)
		}
	}
	wd := filepath.Join(root, "infra", "cmd")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestDevStackTarget(t *testing.T) {
	api := startEventsSink(t)
	running := &devenv.Endpoints{PID: os.Getpid(), APIURL: api.url, APIKey: "key-from-the-file", Table: "retarget-state", Stream: "retarget-events"}

	t.Run("found from the working directory", func(t *testing.T) {
		h := newHarness(t)
		h.wd = devRepo(t, running)
		h.mustRun(exitOK, "send", "--sample", "1")
		if got := api.lastHit(); got != "/v1/events key-from-the-file" {
			t.Errorf("request went to %q, want the dev stack of the endpoints file", got)
		}
	})

	t.Run("--dev-dir", func(t *testing.T) {
		dir := t.TempDir()
		if err := devenv.WriteEndpoints(dir, running); err != nil {
			t.Fatal(err)
		}
		h := newHarness(t)
		h.mustRun(exitOK, "send", "--sample", "1", "--dev-dir", dir)
		if got := api.lastHit(); got != "/v1/events key-from-the-file" {
			t.Errorf("request went to %q, want the dev stack of --dev-dir", got)
		}
	})

	t.Run("the environment beats the file", func(t *testing.T) {
		h := newHarness(t)
		h.wd = devRepo(t, running)
		h.env["RETARGET_API_KEY"] = "key-from-the-env"
		h.mustRun(exitOK, "send", "--sample", "1")
		if got := api.lastHit(); got != "/v1/events key-from-the-env" {
			t.Errorf("request went to %q, want the file's URL with the environment's key", got)
		}
	})

	t.Run("AWS_ENDPOINT_URL beats the file's service endpoints", func(t *testing.T) {
		h := newHarness(t)
		h.wd = devRepo(t, &devenv.Endpoints{PID: os.Getpid(), DynamoDB: devenv.Service{Endpoint: "http://127.0.0.1:1"}})
		h.env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:2"
		c := &cli{getenv: func(k string) string { return h.env[k] }, target: target{wd: h.wd}}
		if err := c.resolveTarget(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := c.endpoint(serviceDynamoDB); got != "http://127.0.0.1:2" {
			t.Errorf("dynamodb endpoint %q, want AWS_ENDPOINT_URL's", got)
		}
	})

	stale := *running
	stale.PID = exitedPID(t)
	errorCases := []struct {
		name  string
		wd    string
		args  []string
		wants []string
	}{
		{"nothing found", devRepo(t, nil), []string{"audiences", "status", "--config", sampleConfig},
			[]string{"no state table", "start make dev", "--stack NAME", "is make dev running?"}},
		{"stale file", devRepo(t, &stale), []string{"audiences", "status", "--config", sampleConfig},
			[]string{"no state table", "start make dev", "no longer runs"}},
		{"--dev-dir without a file", "", []string{"audiences", "status", "--dev-dir", t.TempDir()},
			[]string{"endpoints.json does not exist: is make dev running?"}},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.wd = tc.wd
			h.mustRun(exitFailure, tc.args...)
			wantContains(t, h.stderr.String(), tc.wants...)
		})
	}
}

// exitedPID returns the pid of a process that has exited and been reaped.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

package faultproxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// fakeKinesis answers PutRecords like Kinesis: every entry gets sequence number
// "seq-<PartitionKey>", except entries with partition key "upstream-fail", which fail.
type fakeKinesis struct {
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	received []string // partition keys, in arrival order
}

type putRecordsBody struct {
	Records []struct {
		Data         []byte
		PartitionKey string
	}
	StreamName string
}

func (f *fakeKinesis) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if r.Header.Get("X-Amz-Target") != KinesisPutRecords {
		w.Write([]byte(`{"echo":` + string(body) + `}`))
		return
	}
	if int64(len(body)) != r.ContentLength {
		http.Error(w, "content length mismatch", http.StatusBadRequest)
		return
	}
	var in putRecordsBody
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	type entry struct {
		SequenceNumber, ShardId, ErrorCode, ErrorMessage string `json:",omitempty"`
	}
	out := struct {
		FailedRecordCount int
		Records           []entry
	}{}
	for _, rec := range in.Records {
		f.mu.Lock()
		f.received = append(f.received, rec.PartitionKey)
		f.mu.Unlock()
		if rec.PartitionKey == "upstream-fail" {
			out.FailedRecordCount++
			out.Records = append(out.Records, entry{ErrorCode: "InternalFailure", ErrorMessage: "upstream"})
			continue
		}
		out.Records = append(out.Records, entry{SequenceNumber: "seq-" + rec.PartitionKey, ShardId: "shardId-000000000000"})
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeKinesis) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

func putBody(keys ...string) string {
	var recs []string
	for _, k := range keys {
		recs = append(recs, `{"Data":"ZGF0YQ==","PartitionKey":"`+k+`"}`)
	}
	return `{"Records":[` + strings.Join(recs, ",") + `],"StreamName":"s"}`
}

// response is the decoded answer of the proxy.
type response struct {
	FailedRecordCount int
	Records           []map[string]string
	Type              string `json:"__type"`
	Message           string `json:"message"`
}

func failIndices(idx ...int) func(Call, int) *Fault {
	return func(_ Call, i int) *Fault {
		for _, j := range idx {
			if i == j {
				return ThroughputExceeded()
			}
		}
		return nil
	}
}

func TestProxy(t *testing.T) {
	tests := []struct {
		name         string
		target       string
		body         string
		gzip         bool
		rules        Rules
		wantStatus   int
		wantUpstream []string // partition keys the emulator received
		wantFailed   int
		wantCodes    []string // ErrorCode per response entry ("" = written, "seq" checked)
		wantType     string
	}{
		{
			name: "no rules: pass through", target: KinesisPutRecords, body: putBody("a", "b"),
			wantStatus: 200, wantUpstream: []string{"a", "b"}, wantCodes: []string{"", ""},
		},
		{
			name: "failed entries are not forwarded and spliced back", target: KinesisPutRecords,
			body: putBody("a", "b", "c", "d"), rules: Rules{FailEntry: failIndices(0, 2)},
			wantStatus: 200, wantUpstream: []string{"b", "d"}, wantFailed: 2,
			wantCodes: []string{"ProvisionedThroughputExceededException", "", "ProvisionedThroughputExceededException", ""},
		},
		{
			name: "upstream failures are kept and counted", target: KinesisPutRecords,
			body: putBody("a", "upstream-fail", "c"), rules: Rules{FailEntry: failIndices(2)},
			wantStatus: 200, wantUpstream: []string{"a", "upstream-fail"}, wantFailed: 2,
			wantCodes: []string{"", "InternalFailure", "ProvisionedThroughputExceededException"},
		},
		{
			name: "all entries fail: upstream not called", target: KinesisPutRecords,
			body: putBody("a", "b"), rules: Rules{FailEntry: failIndices(0, 1)},
			wantStatus: 200, wantFailed: 2,
			wantCodes: []string{"ProvisionedThroughputExceededException", "ProvisionedThroughputExceededException"},
		},
		{
			name: "gzip request is forwarded decompressed", target: KinesisPutRecords, gzip: true,
			body: putBody("a", "b", "c"), rules: Rules{FailEntry: failIndices(1)},
			wantStatus: 200, wantUpstream: []string{"a", "c"}, wantFailed: 1,
			wantCodes: []string{"", "ProvisionedThroughputExceededException", ""},
		},
		{
			name: "call fault 400", target: KinesisPutRecords, body: putBody("a"),
			rules:      Rules{FailCall: func(Call) *Fault { return ThroughputExceeded() }},
			wantStatus: 400, wantType: "ProvisionedThroughputExceededException",
		},
		{
			name: "call fault 500", target: KinesisPutRecords, body: putBody("a"),
			rules:      Rules{FailCall: func(Call) *Fault { return FaultFor("InternalFailure") }},
			wantStatus: 500, wantType: "InternalFailure",
		},
		{
			name: "entry rules ignore other targets", target: "Kinesis_20131202.ListStreams", body: `{"Limit":1}`,
			rules: Rules{FailEntry: failIndices(0)}, wantStatus: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeKinesis{}
			srv := httptest.NewServer(up)
			defer srv.Close()
			p, err := Start(srv.URL, tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()

			body := []byte(tt.body)
			if tt.gzip {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				zw.Write(body)
				zw.Close()
				body = buf.Bytes()
			}
			req, _ := http.NewRequest(http.MethodPost, p.URL()+"/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", tt.target)
			if tt.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, raw, tt.wantStatus)
			}
			if p.Calls(tt.target) != 1 {
				t.Errorf("Calls(%s) = %d, want 1", tt.target, p.Calls(tt.target))
			}
			if tt.target != KinesisPutRecords {
				if !strings.Contains(string(raw), tt.body) {
					t.Errorf("response %s does not echo the request", raw)
				}
				return
			}
			var got response
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("response %s: %v", raw, err)
			}
			if strings.Join(up.received, ",") != strings.Join(tt.wantUpstream, ",") {
				t.Errorf("upstream received %v, want %v", up.received, tt.wantUpstream)
			}
			for _, h := range up.headers {
				if h.Get("Content-Encoding") != "" {
					t.Errorf("upstream got Content-Encoding %q", h.Get("Content-Encoding"))
				}
			}
			if tt.wantType != "" {
				if got.Type != tt.wantType || got.Message == "" || up.calls() != 0 {
					t.Errorf("fault = %+v (upstream calls %d), want __type %s and no upstream call", got, up.calls(), tt.wantType)
				}
				return
			}
			if got.FailedRecordCount != tt.wantFailed || len(got.Records) != len(tt.wantCodes) {
				t.Fatalf("response %s: want FailedRecordCount %d, %d records", raw, tt.wantFailed, len(tt.wantCodes))
			}
			for i, code := range tt.wantCodes {
				e := got.Records[i]
				if e["ErrorCode"] != code || (code == "" && !strings.HasPrefix(e["SequenceNumber"], "seq-")) || (code != "" && e["ErrorMessage"] == "") {
					t.Errorf("entry %d = %v, want ErrorCode %q", i, e, code)
				}
			}
		})
	}
}

func TestCallSequenceAndSetRules(t *testing.T) {
	srv := httptest.NewServer(&fakeKinesis{})
	defer srv.Close()
	p, err := Start(srv.URL, Rules{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var seen []int
	var mu sync.Mutex
	p.SetRules(Rules{FailCall: func(c Call) *Fault {
		mu.Lock()
		defer mu.Unlock()
		if c.Target == KinesisPutRecords {
			seen = append(seen, c.Seq)
		}
		return nil
	}})
	for _, target := range []string{KinesisPutRecords, "Kinesis_20131202.ListStreams", KinesisPutRecords, KinesisPutRecords} {
		req, _ := http.NewRequest(http.MethodPost, p.URL(), strings.NewReader(putBody("a")))
		req.Header.Set("X-Amz-Target", target)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if p.Calls(KinesisPutRecords) != 3 || p.Calls("Kinesis_20131202.ListStreams") != 1 {
		t.Errorf("Calls = %d, %d, want 3, 1", p.Calls(KinesisPutRecords), p.Calls("Kinesis_20131202.ListStreams"))
	}
	if len(seen) != 3 || seen[0] != 0 || seen[1] != 1 || seen[2] != 2 {
		t.Errorf("Seq of PutRecords calls = %v, want [0 1 2]", seen)
	}
}

// The SDK must read injected faults as Kinesis errors.
func TestSDKSeesFaults(t *testing.T) {
	srv := httptest.NewServer(&fakeKinesis{})
	defer srv.Close()
	p, err := Start(srv.URL, Rules{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg, err := emulators.AWSConfig(context.Background(), p.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} })
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("1")},
		{PartitionKey: aws.String("b"), Data: []byte("2")},
	}}

	p.SetRules(Rules{FailEntry: failIndices(1)})
	out, err := client.PutRecords(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 1 || out.Records[0].ErrorCode != nil ||
		aws.ToString(out.Records[1].ErrorCode) != "ProvisionedThroughputExceededException" {
		t.Errorf("PutRecords output = %+v", out)
	}

	tests := []struct {
		fault    *Fault
		wantCode string
	}{
		{ThroughputExceeded(), "ProvisionedThroughputExceededException"},
		{InternalFailure(), "InternalFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.wantCode, func(t *testing.T) {
			p.SetRules(Rules{FailCall: func(Call) *Fault { return tt.fault }})
			_, err := client.PutRecords(context.Background(), in)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.wantCode {
				t.Fatalf("error = %v, want API error %s", err, tt.wantCode)
			}
		})
	}
	var pt *types.ProvisionedThroughputExceededException
	p.SetRules(Rules{FailCall: func(Call) *Fault { return ThroughputExceeded() }})
	if _, err := client.PutRecords(context.Background(), in); !errors.As(err, &pt) {
		t.Errorf("error = %v, want *types.ProvisionedThroughputExceededException", err)
	}
}

func TestStartRejectsBadUpstream(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:1", "ftp://127.0.0.1"} {
		if p, err := Start(u, Rules{}); err == nil {
			p.Close()
			t.Errorf("Start(%q) succeeded", u)
		}
	}
}

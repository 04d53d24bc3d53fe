package deadletters

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/retarget-dev/retarget/shared/ports"
)

func letters(n int) []ports.DeadLetter {
	out := make([]ports.DeadLetter, n)
	for i := range out {
		out[i] = ports.DeadLetter{App: "shop", EventID: "e-" + string(rune('a'+i%26)), EventName: "Purchase",
			Consumer: "capi-forwarder", Reason: "invalid_parameter", Attempts: 1, FailedAt: 1764300000000,
			Meta:   &ports.MetaError{Code: 100, Subcode: 2804016, ErrorUserTitle: "User Parameter Not Hashed", FBTraceID: "AbC"},
			Record: []byte(`{"v":1,"app":"shop"}`)}
	}
	return out
}

// fakeSQS speaks just enough of SQS's JSON protocol for SendMessageBatch.
type fakeSQS struct {
	mu       sync.Mutex
	bodies   []string
	failNext int // fail this many entries of the next call
}

func (f *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" {
		http.Error(w, "unexpected target "+r.Header.Get("X-Amz-Target"), 400)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var in struct {
		QueueUrl string
		Entries  []struct {
			Id                string
			MessageBody       string
			MessageAttributes map[string]struct{ StringValue string }
		}
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	type ok struct{ Id, MessageId, MD5OfMessageBody string }
	type bad struct {
		Id, Code, Message string
		SenderFault       bool
	}
	out := struct {
		Successful []ok
		Failed     []bad
	}{Successful: []ok{}, Failed: []bad{}}
	for _, e := range in.Entries {
		if f.failNext > 0 {
			f.failNext--
			out.Failed = append(out.Failed, bad{Id: e.Id, Code: "InternalError", Message: "try again"})
			continue
		}
		if e.MessageAttributes["reason"].StringValue == "" {
			http.Error(w, "missing attribute", 400)
			return
		}
		f.bodies = append(f.bodies, e.MessageBody)
		out.Successful = append(out.Successful, ok{Id: e.Id, MessageId: "m-" + e.Id})
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	json.NewEncoder(w).Encode(out)
}

func newSQS(t *testing.T, fake *fakeSQS) *SQS {
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := sqs.New(sqs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials:                      aws.AnonymousCredentials{},
		DisableMessageChecksumValidation: true, // the fake does not compute MD5s
		RetryMaxAttempts:                 1,
	})
	return NewSQS(client, srv.URL+"/000000000000/dead-letters")
}

func TestSQSSendsInBatchesOfTen(t *testing.T) {
	fake := &fakeSQS{}
	q := newSQS(t, fake)
	want := letters(23)
	if err := q.Send(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if len(fake.bodies) != 23 {
		t.Fatalf("%d messages, want 23", len(fake.bodies))
	}
	var got ports.DeadLetter
	if err := json.Unmarshal([]byte(fake.bodies[0]), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want[0]) {
		t.Fatalf("message\n%+v\nwant\n%+v", got, want[0])
	}
}

func TestSQSPartialFailureIsAnError(t *testing.T) {
	fake := &fakeSQS{failNext: 1}
	err := newSQS(t, fake).Send(context.Background(), letters(3))
	if err == nil || !strings.Contains(err.Error(), "1 of 3 not stored") {
		t.Fatalf("err = %v", err)
	}
}

func TestOversizedLetterIsRefused(t *testing.T) {
	l := letters(1)
	l[0].Record = make([]byte, MaxMessageBytes)
	if err := newSQS(t, &fakeSQS{}).Send(context.Background(), l); err == nil {
		t.Fatal("oversized letter accepted")
	}
}

func TestFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead-letters.jsonl")
	f := NewFile(path)
	want := letters(3)
	if err := f.Send(context.Background(), want[:2]); err != nil {
		t.Fatal(err)
	}
	if err := f.Send(context.Background(), want[2:]); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if none, err := ReadFile(filepath.Join(t.TempDir(), "missing")); err != nil || none != nil {
		t.Fatalf("missing file: %v %v", none, err)
	}
}

func TestMemory(t *testing.T) {
	var m Memory
	if err := m.Send(context.Background(), letters(2)); err != nil || len(m.Letters()) != 2 {
		t.Fatal(err)
	}
	m.Fail = errors.New("down")
	if err := m.Send(context.Background(), letters(1)); err == nil || len(m.Letters()) != 2 {
		t.Fatal("Fail ignored")
	}
}

// Package faultproxy is an HTTP reverse proxy for loopback tests. It sits between an AWS SDK
// client and a local emulator and injects the failures real AWS produces but the emulators
// never do, speaking the AWS JSON protocol:
//
//   - a whole call fails with an AWS error (for example HTTP 400
//     ProvisionedThroughputExceededException or HTTP 500 InternalFailure), and the emulator
//     never sees it;
//   - single entries of a batch call fail: for Kinesis PutRecords the failed entries are removed
//     from the request sent upstream and spliced back into the response as
//     {"ErrorCode": ..., "ErrorMessage": ...} at their indices, with FailedRecordCount
//     adjusted, so those records truly were not written.
//
// Rules decide per call (and per entry) and can change while the proxy runs. Calls are counted
// per X-Amz-Target. Batch operations are handled by per-target splicers (only
// Kinesis_20131202.PutRecords today; DynamoDB BatchWriteItem UnprocessedItems fits the same
// shape).
//
// The proxy rewrites request bodies, so SigV4 signatures no longer match; the emulators do not
// verify them. It listens on 127.0.0.1 only.
package faultproxy

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// X-Amz-Target values the proxy understands.
const (
	// KinesisPutRecords is the target of Kinesis PutRecords calls.
	KinesisPutRecords = "Kinesis_20131202.PutRecords"
)

// maxBody bounds request and response bodies (Kinesis requests are at most ~7 MiB).
const maxBody = 32 << 20

// Call describes one request the proxy received.
type Call struct {
	// Target is the X-Amz-Target header, for example KinesisPutRecords.
	Target string
	// Seq is the 0-based number of this call among the calls with the same Target since the
	// proxy started.
	Seq int
}

// Fault is an error the proxy injects.
type Fault struct {
	// Status is the HTTP status of a whole-call fault; entry faults ignore it.
	Status int
	// Code is the AWS error code (the __type of a call fault, the ErrorCode of an entry).
	Code string
	// Message is the error message.
	Message string
}

// ThroughputExceeded returns the fault Kinesis answers when a shard is over its limits.
func ThroughputExceeded() *Fault {
	return &Fault{Status: http.StatusBadRequest, Code: "ProvisionedThroughputExceededException",
		Message: "Rate exceeded for shard (injected by faultproxy)"}
}

// InternalFailure returns the fault of a Kinesis server-side error.
func InternalFailure() *Fault {
	return &Fault{Status: http.StatusInternalServerError, Code: "InternalFailure",
		Message: "Internal service failure (injected by faultproxy)"}
}

// FaultFor returns a fault with the given AWS error code and the HTTP status AWS uses for it
// (500 for InternalFailure and ServiceUnavailable, 400 otherwise).
func FaultFor(code string) *Fault {
	status := http.StatusBadRequest
	switch code {
	case "InternalFailure", "InternalServerError":
		status = http.StatusInternalServerError
	case "ServiceUnavailable":
		status = http.StatusServiceUnavailable
	}
	return &Fault{Status: status, Code: code, Message: code + " (injected by faultproxy)"}
}

// Rules decide which faults to inject. Nil funcs and nil results inject nothing. The funcs
// may be called concurrently.
type Rules struct {
	// FailCall is asked once per call; a fault answers the whole call with it.
	FailCall func(c Call) *Fault
	// FailEntry is asked once per entry of a batch call the proxy can split (see
	// KinesisPutRecords); a fault fails that entry alone. Calls of other targets pass through.
	FailEntry func(c Call, index int) *Fault
}

// Proxy is a running fault-injecting proxy. It is also an http.Handler.
type Proxy struct {
	upstream *url.URL
	client   *http.Client
	server   *http.Server
	listener net.Listener
	served   chan struct{}

	mu    sync.Mutex
	rules Rules
	calls map[string]int
}

// splicer fails single entries of one kind of batch call.
type splicer func(p *Proxy, w http.ResponseWriter, r *http.Request, body []byte, c Call, fail func(Call, int) *Fault)

// splicers maps an X-Amz-Target to the splicer for its batch entries.
var splicers = map[string]splicer{
	KinesisPutRecords: (*Proxy).splicePutRecords,
}

// Start runs a proxy to upstream (an emulator's base URL) on a free 127.0.0.1 port.
func Start(upstream string, rules Rules) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("start fault proxy: bad upstream %q", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start fault proxy: %w", err)
	}
	p := &Proxy{
		upstream: u,
		// No Proxy func: loopback traffic must never go through an HTTP_PROXY.
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}},
		listener: ln,
		served:   make(chan struct{}),
		rules:    rules,
		calls:    make(map[string]int),
	}
	p.server = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.served)
		p.server.Serve(ln)
	}()
	return p, nil
}

// URL is the proxy's base URL, http://127.0.0.1:PORT; point the SDK client here.
func (p *Proxy) URL() string { return "http://" + p.listener.Addr().String() }

// SetRules replaces the rules; calls already in flight keep the old ones.
func (p *Proxy) SetRules(r Rules) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = r
}

// Calls returns how many calls with the given X-Amz-Target the proxy received, faulted or not.
func (p *Proxy) Calls(target string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[target]
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	err := p.server.Close()
	<-p.served
	p.client.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close fault proxy: %w", err)
	}
	return nil
}

// ServeHTTP applies the rules to one call and forwards what is left of it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	p.mu.Lock()
	c := Call{Target: target, Seq: p.calls[target]}
	p.calls[target]++
	rules := p.rules
	p.mu.Unlock()

	body, err := readBody(r)
	if err != nil {
		writeFault(w, &Fault{Status: http.StatusBadRequest, Code: "SerializationException", Message: "faultproxy: " + err.Error()})
		return
	}
	if rules.FailCall != nil {
		if f := rules.FailCall(c); f != nil {
			writeFault(w, f)
			return
		}
	}
	if s, ok := splicers[target]; ok && rules.FailEntry != nil {
		s(p, w, r, body, c, rules.FailEntry)
		return
	}
	p.pass(w, r, body)
}

// pass forwards the call unchanged and copies the answer back.
func (p *Proxy) pass(w http.ResponseWriter, r *http.Request, body []byte) {
	resp, respBody, err := p.forward(r, body)
	if err != nil {
		writeFault(w, &Fault{Status: http.StatusBadGateway, Code: "InternalFailure", Message: "faultproxy: " + err.Error()})
		return
	}
	copyResponse(w, resp, respBody)
}

// forward sends body upstream with the call's method, path and headers.
func (p *Proxy) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("forward: %w", err)
	}
	for k, vs := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Encoding", "Accept-Encoding", "Connection", "Keep-Alive",
			"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue // set by the transport for the body we send
		}
		req.Header[k] = vs
	}
	req.ContentLength = int64(len(body))
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("forward: %w", err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("forward: read response: %w", err)
	}
	return resp, respBody, nil
}

// splicePutRecords fails the chosen entries of a Kinesis PutRecords call: it forwards the others
// and rebuilds the response with the failed entries at their indices.
func (p *Proxy) splicePutRecords(w http.ResponseWriter, r *http.Request, body []byte, c Call, fail func(Call, int) *Fault) {
	var req map[string]json.RawMessage
	var entries []json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		p.pass(w, r, body) // not JSON (CBOR?): let the emulator answer
		return
	}
	if err := json.Unmarshal(req["Records"], &entries); err != nil {
		p.pass(w, r, body)
		return
	}
	faults := make([]*Fault, len(entries))
	keep := make([]json.RawMessage, 0, len(entries))
	for i, e := range entries {
		if faults[i] = fail(c, i); faults[i] == nil {
			keep = append(keep, e)
		}
	}
	if len(keep) == len(entries) {
		p.pass(w, r, body)
		return
	}

	out := map[string]json.RawMessage{}
	var written []json.RawMessage
	failedUpstream := 0
	if len(keep) > 0 {
		req["Records"] = mustJSON(keep)
		resp, respBody, err := p.forward(r, mustJSON(req))
		if err != nil {
			writeFault(w, &Fault{Status: http.StatusBadGateway, Code: "InternalFailure", Message: "faultproxy: " + err.Error()})
			return
		}
		if resp.StatusCode != http.StatusOK {
			copyResponse(w, resp, respBody) // the emulator failed the whole call
			return
		}
		var parsed struct {
			FailedRecordCount int
			Records           []json.RawMessage
		}
		err = json.Unmarshal(respBody, &parsed)
		if err == nil {
			err = json.Unmarshal(respBody, &out) // keeps fields such as EncryptionType
		}
		if err == nil && len(parsed.Records) != len(keep) {
			err = fmt.Errorf("%d records for %d", len(parsed.Records), len(keep))
		}
		if err != nil {
			writeFault(w, &Fault{Status: http.StatusBadGateway, Code: "InternalFailure",
				Message: fmt.Sprintf("faultproxy: bad upstream PutRecords response: %v", err)})
			return
		}
		written, failedUpstream = parsed.Records, parsed.FailedRecordCount
	}
	// else: every entry failed; Kinesis would still answer 200 with all entries failed.

	merged := make([]json.RawMessage, len(entries))
	injected := 0
	for i, f := range faults {
		if f == nil {
			merged[i], written = written[0], written[1:]
			continue
		}
		injected++
		merged[i] = mustJSON(map[string]string{"ErrorCode": f.Code, "ErrorMessage": f.Message})
	}
	out["Records"] = mustJSON(merged)
	out["FailedRecordCount"] = mustJSON(failedUpstream + injected)
	writeJSON(w, http.StatusOK, out)
}

// readBody returns the request body, decompressed if the SDK gzipped it.
func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if strings.Contains(r.Header.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		defer gz.Close()
		rd = gz
	}
	body, err := io.ReadAll(io.LimitReader(rd, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBody {
		return nil, errors.New("read body: request too large")
	}
	return body, nil
}

func copyResponse(w http.ResponseWriter, resp *http.Response, body []byte) {
	for k, vs := range resp.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive":
			continue
		}
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// writeFault answers a call with an AWS JSON protocol error.
func writeFault(w http.ResponseWriter, f *Fault) {
	status := f.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, map[string]string{"__type": f.Code, "message": f.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body := mustJSON(v)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(status)
	w.Write(body)
}

// mustJSON marshals values that cannot fail to marshal (maps, slices and raw JSON).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("faultproxy: marshal %T: %v", v, err))
	}
	return b
}

func requestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

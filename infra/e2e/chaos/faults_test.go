package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
	"github.com/retarget-dev/retarget/shared/testkit/faultproxy"
)

// Fault rates while the faults are on. Each is a probability per call (per entry for entry
// faults, per item for unprocessed items, per invocation for the mapping faults). On top of
// them the fault schedule forces each kind of Meta fault at least once and
// opens short outage windows (faultSchedule.run).
const (
	// Meta sandbox, per Graph request.
	metaServerErrorRate       = 0.08 // HTTP 500 code 2, or a bare 503, half and half
	metaTimeoutRate           = 0.04 // held metaTimeoutDelay, longer than the client's 1.5 s
	metaTimeoutDelay          = 1600 * time.Millisecond
	metaRateLimitRate         = 0.08 // a code drawn from rateLimitCodes
	metaAudienceRateLimitRate = 0.08 // code 80003 on the Custom Audience endpoints
	metaTokenExpiredWindow    = 1500 * time.Millisecond
	metaRefuseRemovalsWindow  = 2500 * time.Millisecond // every removal "audience size too low"
	// metaVersionExpiredWindow: both API versions answer 2635 (expired) for this long.
	metaVersionExpiredWindow = 1500 * time.Millisecond
	// metaUsageWindow: each ad account may make metaUsageBudget audience calls per
	// metaUsageBudgetWindow for this long (usage headers on every answer, 80003 above 100%).
	metaUsageWindow       = 1500 * time.Millisecond
	metaUsageBudget       = 2
	metaUsageBudgetWindow = time.Second

	// Kinesis, through faultproxy (and the client transport for lost responses).
	kinesisPutCallFaultRate  = 0.06 // whole PutRecords call: throughput exceeded or InternalFailure
	kinesisPutEntryFaultRate = 0.08 // single PutRecords entries
	kinesisReadFaultRate     = 0.04 // GetRecords / GetShardIterator throttled
	kinesisLostResponseRate  = 0.03 // PutRecords written, answer lost: the producer resends
	kinesisOutage            = 800 * time.Millisecond

	// DynamoDB, through faultproxy, dynamoProxy and the client transport.
	dynamoThrottleRate     = 0.06 // ProvisionedThroughputExceededException / ThrottlingException
	dynamoServerErrorRate  = 0.03 // InternalServerError (500) / ServiceUnavailable (503)
	dynamoUnprocessedRate  = 0.25 // per BatchWriteItem item
	dynamoLostResponseRate = 0.02 // a write applied, its answer lost: the SDK retries it
	dynamoSlowWriteRate    = 0.06 // a write held before it reaches the table (a latency spike)
	dynamoSlowWriteDelay   = 400 * time.Millisecond
	dynamoOutage           = time.Second

	// Event source mappings, per invocation.
	midBatchKillRate = 0.08 // part of the batch processed, then the invocation dies
	crashAfterRate   = 0.05 // the whole batch processed, then the invocation dies

	// Clients: the 202 of a request lost, so the client sends the whole request again.
	clientLostResponseRate = 0.04
)

// rng is a random source safe for concurrent use.
type rng struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newRNG(seed uint64) *rng { return &rng{r: rand.New(rand.NewPCG(seed, 0x6368616f73))} } // "chaos"

func (g *rng) float() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.Float64()
}

func (g *rng) intN(n int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.IntN(n)
}

// rate is a probability that can change while calls read it.
type rate struct{ bits atomic.Uint64 }

func (r *rate) set(p float64) { r.bits.Store(math.Float64bits(p)) }
func (r *rate) get() float64  { return math.Float64frombits(r.bits.Load()) }

// counters counts injected faults by name, for the log and the coverage check.
type counters struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counters) add(name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[name] += n
}

func (c *counters) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// X-Amz-Target values the fault rules look at.
const (
	kinesisGetRecords       = "Kinesis_20131202.GetRecords"
	kinesisGetShardIterator = "Kinesis_20131202.GetShardIterator"
	dynamoPrefix            = "DynamoDB_20120810."
	dynamoBatchWriteItem    = dynamoPrefix + "BatchWriteItem"
)

// awsFaults decides the whole-call and entry faults of both fault proxies. Its state changes
// while the proxies run: on, off, or an outage of one service.
type awsFaults struct {
	rng      *rng
	on       atomic.Bool
	outage   sync.Map // "kinesis" / "dynamodb" -> true while that service is down
	injected *counters
}

func (f *awsFaults) down(service string) bool {
	v, ok := f.outage.Load(service)
	return ok && v.(bool)
}

// kinesisRules are the Kinesis proxy's rules. ListShards is left alone: the mapping's first
// listing must succeed (streampoller.Run returns its error), as AWS's own ESM listing would.
func (f *awsFaults) kinesisRules() faultproxy.Rules {
	return faultproxy.Rules{
		FailCall: func(c faultproxy.Call) *faultproxy.Fault {
			if !f.on.Load() {
				return nil
			}
			switch c.Target {
			case faultproxy.KinesisPutRecords:
				if f.down("kinesis") {
					f.injected.add("kinesis outage PutRecords", 1)
					return faultproxy.ThroughputExceeded()
				}
				if f.rng.float() < kinesisPutCallFaultRate {
					if f.rng.intN(3) == 0 {
						f.injected.add("kinesis PutRecords InternalFailure", 1)
						return faultproxy.InternalFailure()
					}
					f.injected.add("kinesis PutRecords throughput exceeded", 1)
					return faultproxy.ThroughputExceeded()
				}
			case kinesisGetRecords, kinesisGetShardIterator:
				if f.rng.float() < kinesisReadFaultRate {
					f.injected.add("kinesis "+strings.TrimPrefix(c.Target, "Kinesis_20131202.")+" throttled", 1)
					return faultproxy.ThroughputExceeded()
				}
			}
			return nil
		},
		FailEntry: func(_ faultproxy.Call, _ int) *faultproxy.Fault {
			if !f.on.Load() || f.rng.float() >= kinesisPutEntryFaultRate {
				return nil
			}
			if f.rng.intN(4) == 0 {
				f.injected.add("kinesis PutRecords entry InternalFailure", 1)
				return faultproxy.InternalFailure()
			}
			f.injected.add("kinesis PutRecords entry throughput exceeded", 1)
			return faultproxy.ThroughputExceeded()
		},
	}
}

// dynamoRules are the DynamoDB proxy's rules: any operation may be throttled or fail.
func (f *awsFaults) dynamoRules() faultproxy.Rules {
	return faultproxy.Rules{
		FailCall: func(c faultproxy.Call) *faultproxy.Fault {
			if !f.on.Load() || !strings.HasPrefix(c.Target, dynamoPrefix) {
				return nil
			}
			op := strings.TrimPrefix(c.Target, dynamoPrefix)
			if f.down("dynamodb") {
				f.injected.add("dynamodb outage", 1)
				return faultproxy.FaultFor("InternalServerError")
			}
			switch u := f.rng.float(); {
			case u < dynamoThrottleRate:
				code := "ProvisionedThroughputExceededException"
				if f.rng.intN(2) == 0 {
					code = "ThrottlingException"
				}
				f.injected.add("dynamodb "+op+" throttled", 1)
				return faultproxy.FaultFor(code)
			case u < dynamoThrottleRate+dynamoServerErrorRate:
				code := "InternalServerError"
				if f.rng.intN(2) == 0 {
					code = "ServiceUnavailable"
				}
				f.injected.add("dynamodb "+op+" 5xx", 1)
				return faultproxy.FaultFor(code)
			}
			return nil
		},
	}
}

// dynamoProxy sits between faultproxy and dynalite and adds the DynamoDB faults faultproxy
// lacks. It answers BatchWriteItem as DynamoDB does under load: some write requests are not
// applied and come back in UnprocessedItems (faultproxy splices entry faults only into Kinesis
// PutRecords; this is the same idea: the items left unprocessed are removed from the call sent
// upstream, so they truly were not written). And it holds some writes for a moment before
// they reach the table, as a latency spike does. Other calls pass through unchanged.
type dynamoProxy struct {
	upstream string
	client   *http.Client
	server   *httptest.Server
	rng      *rng
	rate     rate // share of BatchWriteItem items left unprocessed
	slow     rate // share of writes held dynamoSlowWriteDelay
	injected atomic.Int64
	slowed   atomic.Int64
}

func startDynamoProxy(upstream string, g *rng) *dynamoProxy {
	p := &dynamoProxy{
		upstream: strings.TrimSuffix(upstream, "/"),
		// No proxy from the environment, no transparent gzip: bodies are spliced as JSON.
		client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16}},
		rng:    g,
	}
	p.server = httptest.NewServer(p)
	return p
}

func (p *dynamoProxy) URL() string { return p.server.URL }

func (p *dynamoProxy) Close() {
	p.server.Close()
	p.client.CloseIdleConnections()
}

func (p *dynamoProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	if dynamoWrite(target) && p.rng.float() < p.slow.get() {
		p.slowed.Add(1)
		time.Sleep(dynamoSlowWriteDelay)
	}
	if target == dynamoBatchWriteItem && r.Header.Get("Content-Encoding") == "" {
		if p.splice(w, r, body) {
			return
		}
	}
	status, header, respBody, err := p.forward(r, body)
	if err != nil {
		writeAWSError(w, http.StatusInternalServerError, "InternalServerError", "chaos proxy: "+err.Error())
		return
	}
	copyHeader(w.Header(), header)
	w.WriteHeader(status)
	w.Write(respBody)
}

// splice leaves some write requests unprocessed. It reports false when it did nothing (the
// caller passes the call through).
func (p *dynamoProxy) splice(w http.ResponseWriter, r *http.Request, body []byte) bool {
	share := p.rate.get()
	if share <= 0 {
		return false
	}
	var req map[string]json.RawMessage
	var items map[string][]json.RawMessage
	if json.Unmarshal(body, &req) != nil || json.Unmarshal(req["RequestItems"], &items) != nil {
		return false
	}
	kept := map[string][]json.RawMessage{}
	held := map[string][]json.RawMessage{}
	nKept, nHeld := 0, 0
	for table, reqs := range items {
		for _, wr := range reqs {
			if p.rng.float() < share {
				held[table] = append(held[table], wr)
				nHeld++
			} else {
				kept[table] = append(kept[table], wr)
				nKept++
			}
		}
	}
	if nHeld == 0 {
		return false
	}
	if nKept == 0 {
		// DynamoDB answers a throttling error when it can write nothing; this proxy leaves
		// that to faultproxy and always writes at least one item.
		for table, reqs := range held {
			kept[table], held[table] = reqs[:1], reqs[1:]
			if len(held[table]) == 0 {
				delete(held, table)
			}
			nHeld--
			break
		}
		if nHeld == 0 {
			return false
		}
	}
	req["RequestItems"] = mustJSON(kept)
	status, header, respBody, err := p.forward(r, mustJSON(req))
	if err != nil {
		writeAWSError(w, http.StatusInternalServerError, "InternalServerError", "chaos proxy: "+err.Error())
		return true
	}
	var out map[string]json.RawMessage
	if status != http.StatusOK || json.Unmarshal(respBody, &out) != nil {
		copyHeader(w.Header(), header)
		w.WriteHeader(status)
		w.Write(respBody)
		return true
	}
	unprocessed := map[string][]json.RawMessage{}
	if raw, ok := out["UnprocessedItems"]; ok {
		json.Unmarshal(raw, &unprocessed)
	}
	for table, reqs := range held {
		unprocessed[table] = append(unprocessed[table], reqs...)
	}
	out["UnprocessedItems"] = mustJSON(unprocessed)
	newBody := mustJSON(out)
	p.injected.Add(int64(nHeld))
	copyHeader(w.Header(), header)
	// The SDK checks DynamoDB's CRC32 of the body it receives.
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(newBody)), 10))
	w.WriteHeader(http.StatusOK)
	w.Write(newBody)
	return true
}

func (p *dynamoProxy) forward(r *http.Request, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Accept-Encoding", "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		req.Header[k] = vs
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, respBody, nil
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive":
			continue
		}
		dst[k] = vs
	}
}

func writeAWSError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	w.Write(mustJSON(map[string]string{"__type": code, "message": msg}))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("chaos: marshal: " + err.Error())
	}
	return b
}

// lossyTransport is the AWS clients' HTTP transport. For a share of write calls it lets the
// call reach the service and complete, then drops the answer and reports a connection reset:
// the write happened, the caller thinks it may not have. This is how producer duplicates
// (PutRecords) and repeated conditional writes (DynamoDB) arise in AWS; the fault proxy
// cannot do it, because its faults answer before the emulator sees the call.
type lossyTransport struct {
	base     http.RoundTripper
	rng      *rng
	on       atomic.Bool
	injected *counters
}

func newLossyTransport(g *rng, injected *counters) *lossyTransport {
	return &lossyTransport{
		base:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second},
		rng:      g,
		injected: injected,
	}
}

// dynamoWrite reports whether a DynamoDB call changes the table.
func dynamoWrite(target string) bool {
	switch target {
	case dynamoPrefix + "PutItem", dynamoPrefix + "UpdateItem", dynamoPrefix + "DeleteItem", dynamoBatchWriteItem:
		return true
	}
	return false
}

// lossRate is the share of calls of a target whose answer is lost.
func lossRate(target string) float64 {
	switch {
	case target == faultproxy.KinesisPutRecords:
		return kinesisLostResponseRate
	case dynamoWrite(target):
		return dynamoLostResponseRate
	}
	return 0
}

func (l *lossyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || !l.on.Load() {
		return resp, err
	}
	target := req.Header.Get("X-Amz-Target")
	if p := lossRate(target); p == 0 || l.rng.float() >= p || resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.injected.add("lost answer "+target, 1)
	return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}

func (l *lossyTransport) client() *http.Client { return &http.Client{Transport: l} }

// errKilled is what a killed invocation looks like to the event source mapping.
var errKilled = errors.New("invocation killed mid-batch (injected by the chaos test)")

// crasher makes a mapping's invocations die. The streampoller's Crash hook fails an invocation
// after the handler returned; it cannot stop a handler half way, so wrap does that: the handler
// gets the first part of the batch only (as if the process died after those records), and the
// invocation fails, so the mapping retries (and bisects) the whole batch.
type crasher struct {
	name      string
	rng       *rng
	on        atomic.Bool
	midKills  atomic.Int64
	afterKill atomic.Int64
	calls     atomic.Int64 // wrapped invocations while on
	hooks     atomic.Int64 // Crash hook calls while on
}

// The first few invocations under faults include one of each kind of death, whatever the
// draws, so that every run exercises both.
const (
	forcedMidKill   = 3
	forcedAfterKill = 5
)

func (c *crasher) wrap(h streampoller.Handler) streampoller.Handler {
	return func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		if !c.on.Load() {
			return h(ctx, ev)
		}
		if c.calls.Add(1) != forcedMidKill && c.rng.float() >= midBatchKillRate {
			return h(ctx, ev)
		}
		c.midKills.Add(1)
		if n := c.rng.intN(len(ev.Records)); n > 0 { // n == 0: died before the first record
			h(ctx, events.KinesisEvent{Records: ev.Records[:n]})
		}
		return events.KinesisEventResponse{}, errKilled
	}
}

// crash is the streampoller Crash hook: the invocation finished its work, then died.
func (c *crasher) crash(_ events.KinesisEvent, _ int) bool {
	if !c.on.Load() {
		return false
	}
	if c.hooks.Add(1) != forcedAfterKill && c.rng.float() >= crashAfterRate {
		return false
	}
	c.afterKill.Add(1)
	return true
}

// rateLimitCodes are the throttling codes drawn at random: the sandbox's defaults (application,
// user, page, ads-API and business-use-case limits), each also forced once by the fault
// schedule, plus the other codes the forwarder treats as rate limits (341 and the rest of
// 80000-80014).
var rateLimitCodes = append(append([]int(nil), metasandbox.DefaultRateLimitCodes...),
	341, 80000, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014)

// metaFaults returns the sandbox's faults while the fault injection is on; the poison events
// are refused whatever else is set, also once the faults are off (Meta refuses them for good).
func metaFaults(seed int64, poison []string) metasandbox.Faults {
	return metasandbox.Faults{
		ServerErrorRate:       metaServerErrorRate,
		TimeoutRate:           metaTimeoutRate,
		TimeoutDelay:          metaTimeoutDelay,
		RateLimitRate:         metaRateLimitRate,
		RateLimitCodes:        rateLimitCodes,
		AudienceRateLimitRate: metaAudienceRateLimitRate,
		PoisonEventIDs:        poison,
		Seed:                  seed,
	}
}

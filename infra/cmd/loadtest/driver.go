package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/retarget-dev/retarget/shared/handlers/ingestapi"
)

// Driver sends the generated requests to the ingest API at a target rate.
//
// The rate is open loop: request i is due at start + i x (events per request / rate), whatever
// the answers before it, as independent devices would send. Senders take due requests; when
// all of them are busy, requests wait and the offered rate falls behind the target, which the
// result shows (Behind). Latency is measured per HTTP request, from sending to the end of the
// answer.
type Driver struct {
	URL     string // API base URL
	Key     string
	Gen     *Generator
	Rate    float64 // events per second
	Length  time.Duration
	Senders int
	Client  *http.Client
	// MaxAttempts bounds the sends of one request (throttling, 5xx, transport errors and
	// events answered "retryable" are sent again, with the same event_ids).
	MaxAttempts int
	// KeepIDs records the event_id of every accepted event with consent (to check arrivals).
	KeepIDs bool
	// KnownUsers: users 0..KnownUsers-1 already have state (prefilled); the others are new.
	KnownUsers int

	progress driverProgress
	started  time.Time
}

// driverProgress is what the progress display reads while the driver runs.
type driverProgress struct {
	sent, accepted atomic.Int64
}

// DriveResult is what the driver saw.
type DriveResult struct {
	Requests  int `json:"requests"`  // HTTP requests, retries included
	Retries   int `json:"retries"`   // of those, resends
	Generated int `json:"generated"` // events generated (each counted once)
	Accepted  int `json:"accepted"`  // events the API accepted
	Rejected  int `json:"rejected"`  // events the API refused for good
	Lost      int `json:"lost"`      // events never accepted after MaxAttempts
	// Consented is the number of accepted events with ads_personalization: the ones that
	// must reach Meta.
	Consented int `json:"consented"`
	// Users is the number of distinct users with an accepted event, NewUsers of those the
	// ones without state before the run.
	Users    int `json:"users"`
	NewUsers int `json:"new_users"`
	// ByStatus counts the answers by HTTP status (0: transport error).
	ByStatus map[int]int `json:"by_status"`
	// RejectReasons counts rejected events by "field: reason" (first error of each).
	RejectReasons map[string]int `json:"reject_reasons,omitempty"`
	// Start and End bound the sending: from the first request to the last answer.
	Start, End time.Time `json:"-"`
	// Behind is how late the last request started against its schedule.
	Behind time.Duration `json:"-"`
	// LatencyMs holds the duration of every HTTP request.
	LatencyMs []float64 `json:"-"`
	// IDs holds the accepted consented event ids (KeepIDs only).
	IDs map[string]bool `json:"-"`
	// AcceptedPerSecond counts accepted events by the second (from Start) of their answer.
	AcceptedPerSecond []int `json:"accepted_per_second"`
}

// apiAnswer is the ingest API's answer (202, 400, 503), or its {"error": ...}.
type apiAnswer struct {
	ingestapi.EventsResponse
	Error string `json:"error"`
}

// NewHTTPClient returns a client for loopback load: enough idle connections for every sender,
// no proxy.
func NewHTTPClient(senders int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        senders * 2,
			MaxIdleConnsPerHost: senders * 2,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// Run sends until Length has passed (or ctx ends) and returns what happened.
func (d *Driver) Run(ctx context.Context) DriveResult {
	interval := time.Duration(float64(time.Second) * float64(d.Gen.PerRequest) / d.Rate)
	work := make(chan Request, d.Senders)
	results := make(chan senderResult, d.Senders)
	var wg sync.WaitGroup
	for i := 0; i < d.Senders; i++ {
		wg.Go(func() { results <- d.sender(ctx, work) })
	}

	res := DriveResult{Start: time.Now(), ByStatus: map[int]int{}, RejectReasons: map[string]int{}}
	d.started = res.Start
	end := res.Start.Add(d.Length)
	timer := time.NewTimer(0)
	<-timer.C
pace:
	for i := 0; ; i++ {
		due := res.Start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break pace
			}
		}
		req := d.Gen.Next(time.Now())
		res.Generated += len(req.Events)
		select {
		case work <- req:
		case <-ctx.Done():
			break pace
		}
		res.Behind = max(0, time.Since(due))
	}
	close(work)
	wg.Wait()
	close(results)
	users := map[int]bool{}
	if d.KeepIDs {
		res.IDs = map[string]bool{}
	}
	for r := range results {
		res.Requests += r.requests
		res.Retries += r.retries
		res.Accepted += r.accepted
		res.Rejected += r.rejected
		res.Lost += r.lost
		res.Consented += r.consented
		for k, v := range r.byStatus {
			res.ByStatus[k] += v
		}
		for k, v := range r.reasons {
			res.RejectReasons[k] += v
		}
		for u := range r.users {
			users[u] = true
		}
		for id := range r.ids {
			res.IDs[id] = true
		}
		res.LatencyMs = append(res.LatencyMs, r.latencyMs...)
		for sec, n := range r.acceptedAt {
			for len(res.AcceptedPerSecond) <= sec {
				res.AcceptedPerSecond = append(res.AcceptedPerSecond, 0)
			}
			res.AcceptedPerSecond[sec] += n
		}
	}
	res.Users = len(users)
	for u := range users {
		if u >= d.KnownUsers {
			res.NewUsers++
		}
	}
	res.End = time.Now()
	return res
}

// senderResult is one sender's tally.
type senderResult struct {
	requests, retries, accepted, rejected, lost, consented int
	byStatus                                               map[int]int
	reasons                                                map[string]int
	users                                                  map[int]bool
	ids                                                    map[string]bool
	latencyMs                                              []float64
	acceptedAt                                             map[int]int // second from the start -> events
}

func (d *Driver) sender(ctx context.Context, work <-chan Request) senderResult {
	r := senderResult{byStatus: map[int]int{}, reasons: map[string]int{}, users: map[int]bool{}, ids: map[string]bool{}, acceptedAt: map[int]int{}}
	for req := range work {
		d.progress.sent.Add(int64(len(req.Events)))
		d.send(ctx, req, &r)
	}
	return r
}

// send delivers one generated request, resending what may be resent.
func (d *Driver) send(ctx context.Context, req Request, r *senderResult) {
	pending := make([]int, len(req.Events)) // indexes into req still to be accepted
	for i := range pending {
		pending[i] = i
	}
	body := req.Body
	for attempt := 1; len(pending) > 0; attempt++ {
		if attempt > 1 {
			r.retries++
			evs := make([]*event, len(pending))
			for j, i := range pending {
				evs[j] = req.Events[i]
			}
			body = encodeEvents(evs)
		}
		status, ans, took, retryAfter := d.post(ctx, body)
		r.requests++
		r.byStatus[status]++
		r.latencyMs = append(r.latencyMs, float64(took.Microseconds())/1000)

		var retry []int
		switch {
		case status == http.StatusBadRequest && len(ans.Rejected) == 0:
			// The body as a whole was refused (unreadable JSON, the gateway's model check).
			r.rejected += len(pending)
			r.reasons["request: "+ans.Error]++
		case status == http.StatusAccepted || (status == http.StatusBadRequest || status == http.StatusServiceUnavailable) && len(ans.Rejected) > 0:
			refused := map[int]bool{}
			for _, rej := range ans.Rejected {
				if rej.Index < 0 || rej.Index >= len(pending) {
					continue
				}
				refused[rej.Index] = true
				if rej.Retryable {
					retry = append(retry, pending[rej.Index])
					continue
				}
				r.rejected++
				if len(rej.Errors) > 0 {
					r.reasons[rej.Errors[0].Field+": "+rej.Errors[0].Reason]++
				}
			}
			for j, i := range pending {
				if refused[j] {
					continue
				}
				r.accepted++
				r.users[req.Users[i]] = true
				if req.Consented[i] {
					r.consented++
					if d.KeepIDs {
						r.ids[req.Events[i].EventID] = true
					}
				}
				d.progress.accepted.Add(1)
				if r.acceptedAt != nil {
					r.acceptedAt[int(time.Since(d.started)/time.Second)]++
				}
			}
		case status == 0 || status == http.StatusTooManyRequests || status >= 500:
			retry = pending // nothing was stored (or we cannot know: resending is safe)
		default:
			r.rejected += len(pending)
			r.reasons[fmt.Sprintf("HTTP %d", status)] += len(pending)
		}
		if len(retry) == 0 || ctx.Err() != nil {
			r.lost += len(retry)
			return
		}
		if attempt >= d.MaxAttempts {
			r.lost += len(retry)
			return
		}
		pending = retry
		wait := retryAfter
		if wait == 0 {
			wait = time.Duration(100<<attempt) * time.Millisecond
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			r.lost += len(retry)
			return
		}
	}
}

// post sends one body; status 0 is a transport error.
func (d *Driver) post(ctx context.Context, body []byte) (status int, ans apiAnswer, took time.Duration, retryAfter time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, ans, 0, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", d.Key)
	start := time.Now()
	resp, err := d.Client.Do(req)
	if err != nil {
		return 0, ans, time.Since(start), 0
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took = time.Since(start)
	if err != nil {
		return 0, ans, took, 0
	}
	json.Unmarshal(raw, &ans)
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, ans, took, retryAfter
}

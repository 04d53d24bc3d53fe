// Package forward delivers a batch of stream events to Meta's Conversions API through a
// ports.CAPISender, and parks the events Meta refuses in a ports.DeadLetterQueue.
//
// Forward groups the events by dataset and test event code, cuts each group into requests of at
// most MaxEventsPerRequest events and MaxRequestBytes bytes, and sends them with bounded
// concurrency. What happens next depends on Meta's answer:
//
//   - accepted: the events are Delivered (events_received != sent is counted, not retried);
//   - transient, rate limited, unknown: the request is retried as is, with full-jitter backoff,
//     never shorter than the wait Meta asked for, and never past the ctx deadline minus
//     DeadlineMargin; when attempts or time run out its events are Failed;
//   - invalid parameter (code 100): one invalid event rejects the whole request, so the request
//     is bisected until the offending events stand alone; those become dead letters
//     ("invalid_parameter", with Meta's error fields), the others are delivered;
//   - auth (190, 102, 10, 200-299): nothing more is sent in this call; every event not yet
//     delivered is Failed and Outcome.AuthFailure is set so the caller can alert;
//   - blocked (368): the request's events are Failed at once, without burning retries;
//   - version expired (2635): as for auth, nothing more is sent in this call, every event not
//     yet delivered is Failed and Outcome.VersionExpired is set: no call on that version can
//     succeed until someone configures a newer one.
//
// Failed events stay on the stream: the caller reports them as batch item failures and the
// stream delivers them again. Meta deduplicates on event_id + event_name, so a resend of an
// event already accepted is harmless; this is why payloads are always sent byte for byte as
// they came. Nothing is lost: an event is Delivered, DeadLettered (stored in the DLQ), or
// Failed.
package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Dead-letter reasons set by the Forwarder.
const (
	// ReasonInvalidParameter: Meta refused the event alone with code 100.
	ReasonInvalidParameter = "invalid_parameter"
	// ReasonInvalidPayload: the payload is not JSON; it would make Meta refuse every request
	// it travels in, so it is never sent.
	ReasonInvalidPayload = "invalid_payload"
	// ReasonNoDataset: the item names no dataset to send it to.
	ReasonNoDataset = "no_dataset"
)

// DefaultMaxRequestBytes is the default cap on the summed size of the events of one request.
// Meta documents no body limit for /events; 2 MiB holds a full 1,000-event request of typical
// app events (0.5-1.5 KB each) in one request, keeps a request's upload well inside the 1.5 s
// client timeout, and only splits requests of unusually large events.
const DefaultMaxRequestBytes = 2 << 20

// unknownAttempts caps the attempts for errors Meta's table does not classify: they may be
// permanent, so we try once more and then leave them to the stream's own bounded retries.
const unknownAttempts = 2

// subcodeObjectMissing is the code-100 subcode Meta answers when the dataset does not exist or
// our token may not use it ("Unsupported post request. Object with ID ... does not exist,
// cannot be loaded due to missing permissions, or does not support this operation"). That is
// about the request, not an event: bisecting would dead-letter every event of the dataset.
const subcodeObjectMissing = 33

// Item is one stream event to forward.
type Item struct {
	// Index is the position in the stream batch of the record holding the event; Outcome
	// reports Index values. The events of one record share it.
	Index int
	// ShardID and SequenceNumber locate the record on the stream.
	ShardID, SequenceNumber       string
	App, DatasetID, TestEventCode string
	EventID, EventName            string
	// Payload is the CAPI server event, sent unchanged.
	Payload json.RawMessage
	// Valid says the caller guarantees Payload is JSON (it comes from an encoder, as
	// capi.AppendPayload, tested and fuzzed against encoding/json): Forward does not check it
	// again, which would cost about as much as making it. Other payloads are checked.
	Valid bool
	// Record is the stream record as read, kept for dead letters; Event is the item's event's
	// position among the Events events it holds (envelope.Decode order). A dead letter holds the
	// event alone: Record itself when it holds one event, else the event as a one-event record
	// (envelope.Append), so that replaying the letter replays that event and no other.
	Record        []byte
	Event, Events int
}

// letterRecord returns the stream record a dead letter of it holds: its event alone.
func letterRecord(it *Item) []byte {
	if it.Events <= 1 {
		return it.Record
	}
	recs, err := envelope.Decode(it.Record)
	if err != nil || it.Event < 0 || it.Event >= len(recs) {
		return it.Record // not what the caller decoded: keep the record whole rather than lose it
	}
	return envelope.Append(nil, &recs[it.Event])
}

// Options tunes a Forwarder. Zero fields take the defaults.
type Options struct {
	// MaxEventsPerRequest caps the events of one request (default and maximum
	// ports.MaxCAPIEvents, 1,000).
	MaxEventsPerRequest int
	// MaxRequestBytes caps the summed payload bytes of one request (default
	// DefaultMaxRequestBytes). An event larger than the cap travels alone.
	MaxRequestBytes int
	// Concurrency is how many requests may be in flight at once (default 4).
	Concurrency int
	// MaxAttempts bounds the sends of one request that keeps failing with a transient or rate
	// limit error (default 5). Unknown errors get at most 2.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the full-jitter exponential backoff: the delay before send
	// n+1 is uniform in [0, min(MaxDelay, BaseDelay*2^(n-1))), and at least the RetryAfter Meta
	// asked for. Defaults 100ms and 2s.
	BaseDelay, MaxDelay time.Duration
	// DeadlineMargin is kept free before the ctx deadline: no request starts, and no backoff
	// ends, later than deadline minus margin. It must cover one request (the CAPI client
	// timeout, 1.5 s by default) plus the dead-letter write. Default 2s.
	DeadlineMargin time.Duration
	// MaxBisectionRequests caps the requests one Forward call spends isolating invalid events
	// (default 200: about ten invalid events in a 1,000-event request). When Meta refuses
	// everything, for a reason bisection cannot see, the rest of the refused events are Failed
	// instead of each becoming a dead letter.
	MaxBisectionRequests int
	// Sleep waits between attempts (default: a timer that honours ctx). Tests pass a fake.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for the jitter (default math/rand/v2.Float64).
	Rand func() float64
	// Now is the clock for deadlines and dead-letter times (default time.Now).
	Now func() time.Time
	// Consumer names this consumer in dead letters (default "capi-forwarder").
	Consumer string
}

// Outcome says what Forward did. Every item is in exactly one of Delivered, DeadLettered and
// Failed.
type Outcome struct {
	// Delivered, DeadLettered and Failed hold Item.Index values, sorted, one per item: an index
	// appears as many times as its record has events there.
	Delivered, DeadLettered, Failed []int
	// Requests counts SendEvents calls.
	Requests int
	// Retries counts requests sent again after a transient, rate limit or unknown error.
	Retries int
	// Bisections counts requests sent for halves of refused requests (two per split).
	Bisections int
	// AuthFailure is set when Meta refused our credentials or permissions: alert.
	AuthFailure *ports.CAPIError
	// DatasetFailure is set when Meta refused a dataset as a whole (code 100, subcode 33: it does
	// not exist or our token may not use it); that dataset's events are Failed: alert.
	DatasetFailure *ports.CAPIError
	// Blocked is set when Meta answered 368 (temporarily blocked): alert.
	Blocked *ports.CAPIError
	// VersionExpired is set when Meta refused the API version (2635): alert.
	VersionExpired *ports.CAPIError
	// LastError is the last error that left items Failed, for the log.
	LastError error
	// DeadLetterErr is the DLQ's error when storing the dead letters failed (they are Failed).
	DeadLetterErr error
	// ReceivedMismatch sums |sent - events_received| over accepted requests.
	ReceivedMismatch int
	// UsagePct is the highest rate-limit usage Meta reported (0-100). Near 100, slow down:
	// fewer, fuller requests (a longer stream batching window) rather than more of them.
	UsagePct float64
	// FBTraceIDs are the fbtrace_id of the accepted requests, for the log.
	FBTraceIDs []string
}

// Forwarder forwards items to Meta. It is safe for concurrent use.
type Forwarder struct {
	sender ports.CAPISender
	dlq    ports.DeadLetterQueue
	o      Options
}

// New returns a Forwarder sending through sender and parking refused events in dlq.
func New(sender ports.CAPISender, dlq ports.DeadLetterQueue, o Options) *Forwarder {
	if o.MaxEventsPerRequest <= 0 || o.MaxEventsPerRequest > ports.MaxCAPIEvents {
		o.MaxEventsPerRequest = ports.MaxCAPIEvents
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 100 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 2 * time.Second
	}
	if o.DeadlineMargin <= 0 {
		o.DeadlineMargin = 2 * time.Second
	}
	if o.MaxBisectionRequests <= 0 {
		o.MaxBisectionRequests = 200
	}
	if o.Sleep == nil {
		o.Sleep = backoff.Sleep
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Consumer == "" {
		o.Consumer = "capi-forwarder"
	}
	return &Forwarder{sender: sender, dlq: dlq, o: o}
}

// state of one item during a Forward call.
type state uint8

const (
	pending state = iota
	delivered
	letter // dead letter waiting for the DLQ write
	failed
)

// run is the state of one Forward call. Positions (p) index the items slice.
type run struct {
	f     *Forwarder
	ctx   context.Context
	items []Item
	sem   chan struct{}
	wg    sync.WaitGroup

	mu        sync.Mutex
	out       Outcome
	state     []state
	sends     []int // requests that carried each item
	letters   map[int]*ports.DeadLetter
	holdUntil time.Time         // no request starts before (rate limit)
	aborted   bool              // auth failure: send nothing more
	refused   map[groupKey]bool // datasets Meta refused as a whole
}

type groupKey struct{ dataset, testCode string }

// task is one request to make: a run of items of one group, in stream order.
type task struct {
	key groupKey
	pos []int
}

// Forward sends items and reports what became of each. It returns when every item is settled;
// with a ctx deadline, no later than about the deadline minus DeadlineMargin plus one request.
func (f *Forwarder) Forward(ctx context.Context, items []Item) Outcome {
	r := &run{
		f: f, ctx: ctx, items: items,
		sem:     make(chan struct{}, f.o.Concurrency),
		state:   make([]state, len(items)),
		sends:   make([]int, len(items)),
		letters: make(map[int]*ports.DeadLetter),
		refused: make(map[groupKey]bool),
	}

	var order []groupKey
	groups := make(map[groupKey][]int)
	for p := range items {
		it := &items[p]
		switch {
		case it.DatasetID == "":
			r.deadLetter(p, ReasonNoDataset, "item names no dataset", nil)
			continue
		case !it.Valid && !json.Valid(it.Payload):
			r.deadLetter(p, ReasonInvalidPayload, fmt.Sprintf("payload of %d bytes is not JSON", len(it.Payload)), nil)
			continue
		}
		k := groupKey{it.DatasetID, it.TestEventCode}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], p)
	}
	for _, k := range order {
		for _, c := range r.chunk(groups[k]) {
			r.wg.Add(1)
			go r.process(task{key: k, pos: c})
		}
	}
	r.wg.Wait()
	r.storeLetters()
	return r.outcome()
}

// chunk cuts one group's positions into requests, keeping their order.
func (r *run) chunk(pos []int) [][]int {
	var chunks [][]int
	start, bytes := 0, 0
	for i, p := range pos {
		size := len(r.items[p].Payload) + 1 // a comma in the data array
		if n := i - start; n > 0 && (n == r.f.o.MaxEventsPerRequest || bytes+size > r.f.o.MaxRequestBytes) {
			chunks = append(chunks, pos[start:i:i])
			start, bytes = i, 0
		}
		bytes += size
	}
	if start < len(pos) {
		chunks = append(chunks, pos[start:])
	}
	return chunks
}

// process sends one task until it is settled, retrying or bisecting as Meta's answer says.
func (r *run) process(t task) {
	defer r.wg.Done()
	events := make([]json.RawMessage, len(t.pos))
	for i, p := range t.pos {
		events[i] = r.items[p].Payload
	}
	req := ports.CAPIRequest{DatasetID: t.key.dataset, Events: events, TestEventCode: t.key.testCode}

	for attempt := 1; ; attempt++ {
		ack, sent, err := r.send(t, req, attempt > 1)
		if !sent {
			r.fail(t.pos, nil)
			return
		}
		if err == nil {
			r.deliver(t.pos, ack)
			return
		}
		var e *ports.CAPIError
		if !errors.As(err, &e) {
			e = &ports.CAPIError{Class: ports.CAPIUnknown, Err: err}
		}

		switch e.Class {
		case ports.CAPIAuth, ports.CAPIVersionExpired: // send stopped the call
			r.fail(t.pos, e)
			return

		case ports.CAPIBlocked:
			r.mu.Lock()
			r.out.Blocked = e
			r.mu.Unlock()
			r.fail(t.pos, e)
			return

		case ports.CAPIInvalidParameter:
			r.refuse(t, e)
			return
		}

		// Transient, rate limited or unknown: send the same request again.
		limit := r.f.o.MaxAttempts
		if e.Class == ports.CAPIUnknown {
			limit = min(limit, unknownAttempts)
		}
		if attempt >= limit {
			r.fail(t.pos, e)
			return
		}
		if !r.waitTurn(r.backoff(attempt)) {
			r.fail(t.pos, e)
			return
		}
	}
}

// refuse handles a code-100 refusal of task t: bisect, or dead-letter a single event.
func (r *run) refuse(t task, e *ports.CAPIError) {
	if e.Meta.Subcode == subcodeObjectMissing { // send stopped the dataset
		r.fail(t.pos, e)
		return
	}
	if len(t.pos) == 1 {
		r.deadLetter(t.pos[0], ReasonInvalidParameter, detail(e), e)
		return
	}
	r.mu.Lock()
	if r.out.Bisections+2 > r.f.o.MaxBisectionRequests {
		r.mu.Unlock()
		r.fail(t.pos, e)
		return
	}
	r.out.Bisections += 2
	r.mu.Unlock()
	mid := len(t.pos) / 2
	r.wg.Add(2)
	go r.process(task{key: t.key, pos: t.pos[:mid:mid]})
	go r.process(task{key: t.key, pos: t.pos[mid:]})
}

// send makes one request when the call may still send and there is time left, after any
// rate-limit hold. sent reports whether the request was made. The hold is waited out in the
// slot: nobody should send during it anyway.
func (r *run) send(t task, req ports.CAPIRequest, retry bool) (ack ports.CAPIAck, sent bool, err error) {
	r.sem <- struct{}{}
	defer func() { <-r.sem }()
	if !r.waitTurn(0) {
		return ports.CAPIAck{}, false, nil
	}
	r.mu.Lock()
	stop := r.aborted || r.refused[t.key] || !r.fits(0)
	if !stop {
		r.out.Requests++
		if retry {
			r.out.Retries++
		}
		for _, p := range t.pos {
			r.sends[p]++
		}
	}
	r.mu.Unlock()
	if stop {
		return ports.CAPIAck{}, false, nil
	}
	ack, err = r.f.sender.SendEvents(r.ctx, req)
	// What stops or holds back the other requests of the call is recorded before the slot is
	// free, so that no request waiting for the slot slips out in between.
	var e *ports.CAPIError
	if errors.As(err, &e) {
		r.mu.Lock()
		switch {
		case e.Class == ports.CAPIAuth:
			r.aborted = true
			if r.out.AuthFailure == nil {
				r.out.AuthFailure = e
			}
		case e.Class == ports.CAPIVersionExpired:
			// Every request of the call goes to the same version: stop as for auth.
			r.aborted = true
			if r.out.VersionExpired == nil {
				r.out.VersionExpired = e
			}
		case e.Class == ports.CAPIInvalidParameter && e.Meta.Subcode == subcodeObjectMissing:
			r.refused[t.key] = true
			r.out.DatasetFailure = e
		}
		// A wait Meta asks for holds back every request of the call.
		if until := r.f.o.Now().Add(e.RetryAfter); e.RetryAfter > 0 && until.After(r.holdUntil) {
			r.holdUntil = until
		}
		r.mu.Unlock()
	}
	return ack, true, err
}

// waitTurn waits at least d and until any rate-limit hold is over. It returns false, without
// waiting, when that would end past the deadline minus margin, or when the call was aborted.
func (r *run) waitTurn(d time.Duration) bool {
	r.mu.Lock()
	if hold := r.holdUntil.Sub(r.f.o.Now()); hold > d {
		d = hold
	}
	ok := !r.aborted && r.fits(d)
	r.mu.Unlock()
	if !ok {
		return false
	}
	if d <= 0 {
		return true
	}
	return r.f.o.Sleep(r.ctx, d) == nil
}

// fits reports whether a request may still start after waiting d.
func (r *run) fits(d time.Duration) bool {
	if r.ctx.Err() != nil {
		return false
	}
	deadline, ok := r.ctx.Deadline()
	return !ok || deadline.Sub(r.f.o.Now()) >= r.f.o.DeadlineMargin+d
}

// backoff returns the full-jitter delay after the given attempt (1-based).
func (r *run) backoff(attempt int) time.Duration {
	return backoff.FullJitter(attempt, r.f.o.BaseDelay, r.f.o.MaxDelay, r.f.o.Rand)
}

func (r *run) deliver(pos []int, ack ports.CAPIAck) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pos {
		r.state[p] = delivered
	}
	diff := ack.EventsReceived - len(pos)
	r.out.ReceivedMismatch += max(diff, -diff)
	r.out.UsagePct = max(r.out.UsagePct, ack.UsagePct)
	if ack.FBTraceID != "" {
		r.out.FBTraceIDs = append(r.out.FBTraceIDs, ack.FBTraceID)
	}
}

// fail marks positions Failed; e, when set, becomes LastError.
func (r *run) fail(pos []int, e *ports.CAPIError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pos {
		r.state[p] = failed
	}
	if e != nil {
		r.out.LastError = e
		r.out.UsagePct = max(r.out.UsagePct, e.UsagePct)
	}
}

func (r *run) deadLetter(p int, reason, detail string, e *ports.CAPIError) {
	it := &r.items[p]
	r.mu.Lock()
	defer r.mu.Unlock()
	dl := &ports.DeadLetter{
		App: it.App, EventID: it.EventID, EventName: it.EventName,
		Consumer: r.f.o.Consumer, Reason: reason, Detail: detail,
		Attempts: r.sends[p], ShardID: it.ShardID, SequenceNumber: it.SequenceNumber,
		FailedAt: r.f.o.Now().UnixMilli(), Record: letterRecord(it),
	}
	if e != nil {
		m := e.Meta
		dl.Meta = &m
	}
	r.state[p] = letter
	r.letters[p] = dl
}

// detail is the human-readable part of a dead letter for Meta's refusal.
func detail(e *ports.CAPIError) string {
	s := e.Error()
	if e.Meta.ErrorUserTitle != "" || e.Meta.ErrorUserMsg != "" {
		s += "; " + e.Meta.ErrorUserTitle + ": " + e.Meta.ErrorUserMsg
	}
	return s
}

// storeLetters writes the dead letters in one DLQ call. When the call was aborted for auth, or
// the DLQ refuses them, the letters' items are Failed instead: they stay on the stream.
func (r *run) storeLetters() {
	if len(r.letters) == 0 {
		return
	}
	pos := make([]int, 0, len(r.letters))
	for p := range r.letters {
		pos = append(pos, p)
	}
	slices.Sort(pos)
	if r.aborted {
		r.fail(pos, nil)
		return
	}
	letters := make([]ports.DeadLetter, len(pos))
	for i, p := range pos {
		letters[i] = *r.letters[p]
	}
	if err := r.f.dlq.Send(r.ctx, letters); err != nil {
		r.out.DeadLetterErr = fmt.Errorf("send %d dead letters: %w", len(letters), err)
		r.fail(pos, nil)
	}
}

// outcome settles every item (after an auth failure, all not delivered are Failed) and sorts.
func (r *run) outcome() Outcome {
	out := r.out
	for p, s := range r.state {
		idx := r.items[p].Index
		switch {
		case s == delivered:
			out.Delivered = append(out.Delivered, idx)
		case s == letter && !r.aborted:
			out.DeadLettered = append(out.DeadLettered, idx)
		default:
			out.Failed = append(out.Failed, idx)
		}
	}
	slices.Sort(out.Delivered)
	slices.Sort(out.DeadLettered)
	slices.Sort(out.Failed)
	return out
}

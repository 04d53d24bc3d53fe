// Package devbus is the event bus of make dev: it stands in for the stack's EventBridge bus,
// its rules and its API destinations. Publish takes segment events as PutEvents does (at most
// 10); each event goes to the channels whose rule matches it (the event's app, a detail-type
// the channel delivers, the channel's id in detail.channels: the pattern infra/stack writes),
// rendered as the channel's input transformer renders it (package channels), POSTed with the
// channel's header set to its auth.dev_value.
//
// Retries mirror an API destination's, compressed from hours into seconds: EventBridge retries
// a delivery for up to 24 hours and 185 attempts with exponential backoff and jitter; the dev
// bus makes DefaultAttempts attempts, the waits between them full-jitter exponential from
// DefaultBackoffBase up to DefaultBackoffMax (at most 1+2+4+8 = 15 s in all). Like EventBridge
// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-api-destinations.html), it
// retries a transport error, a timeout (5 s, the API destination's), 401, 407, 409, 429 and
// 5xx, and gives up at once on any other status below 200 or from 300. What it gives up on goes
// to the dead letters, a JSON-lines file standing in for the target's SQS dead-letter queue:
// each line the event and the attributes EventBridge sets on a dead-lettered message.
package devbus

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/domain/channels"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Retry policy of make dev (see the package doc for EventBridge's).
const (
	DefaultAttempts    = 5
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 8 * time.Second
	// RequestTimeout is an API destination's timeout per request.
	RequestTimeout = 5 * time.Second
	// MaxEntries is PutEvents' limit of entries per call.
	MaxEntries = 10
	// UserAgent is the User-Agent API destinations send.
	UserAgent = "Amazon/EventBridge/ApiDestinations"
)

// Outcome of one delivery attempt.
type Outcome string

// Outcomes.
const (
	Delivered    Outcome = "delivered"
	Retrying     Outcome = "failed, retrying"
	DeadLettered Outcome = "dead-lettered"
)

// Delivery reports one attempt to deliver an event to a channel.
type Delivery struct {
	App, Channel, EventID, DetailType, Segment, UserKey string
	Attempt                                             int
	// Status is the HTTP status (0: no response; Err says why).
	Status  int
	Err     error
	Outcome Outcome
}

// Options tune a Bus; zero values take the defaults.
type Options struct {
	// DeadLetters is the JSON-lines file of the deliveries given up ("" keeps none).
	DeadLetters string
	// Report sees every attempt (make dev prints them); it must not block for long.
	Report      func(Delivery)
	Attempts    int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Client      *http.Client
	Now         func() time.Time
}

// Bus delivers segment events to the configured channels. It implements ports.EventPublisher.
type Bus struct {
	opts     Options
	apps     map[string]*appconfig.App
	compiled map[string]*channels.AppChannels

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dlMu   sync.Mutex
}

var _ ports.EventPublisher = (*Bus)(nil)

// New compiles every app's channels (a body that is not a valid template is an error here,
// as the stack's synth refuses it) and returns a Bus; Close stops it.
func New(cfg *appconfig.Config, opts Options) (*Bus, error) {
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: RequestTimeout}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Report == nil {
		opts.Report = func(Delivery) {}
	}
	b := &Bus{opts: opts, apps: map[string]*appconfig.App{}, compiled: map[string]*channels.AppChannels{}}
	for i := range cfg.Apps {
		app := &cfg.Apps[i]
		c, err := channels.Compile(app)
		if err != nil {
			return nil, fmt.Errorf("dev bus: %w", err)
		}
		b.apps[app.ID], b.compiled[app.ID] = app, c
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Close stops retrying and waits for the deliveries in flight.
func (b *Bus) Close() {
	b.cancel()
	b.wg.Wait()
}

// Wait waits until every delivery published so far has ended (delivered or dead-lettered).
func (b *Bus) Wait() { b.wg.Wait() }

// Publish takes events as PutEvents does and delivers them in the background. The bus takes
// every valid entry; an entry it cannot encode is listed in failed.
func (b *Bus) Publish(ctx context.Context, events []ports.SegmentEvent) (failed []int, err error) {
	if len(events) > MaxEntries {
		return nil, fmt.Errorf("dev bus: %d entries, PutEvents takes at most %d", len(events), MaxEntries)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range events {
		ev := events[i]
		id := newEventID()
		event := channels.Event(id, b.opts.Now().UTC().Format(time.RFC3339), &ev)
		for _, ch := range b.targets(&ev) {
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.Deliver(b.ctx, ev.App, ch, event)
			}()
		}
	}
	return nil, nil
}

// targets are the channels whose rule matches ev: the app's channels that deliver ev's
// detail-type and are named in ev.Channels (the publisher's choice: segments, events,
// cool-down).
func (b *Bus) targets(ev *ports.SegmentEvent) []*appconfig.Channel {
	c := b.compiled[ev.App]
	if c == nil {
		return nil
	}
	kind := appconfig.ChannelLeft
	if ev.Joined {
		kind = appconfig.ChannelJoined
	}
	var out []*appconfig.Channel
	for _, id := range ev.Channels {
		if ch := c.Channel(id); ch != nil && slices.Contains(ch.EventKinds(), kind) {
			out = append(out, ch)
		}
	}
	return out
}

// Channel returns app's channel id, or nil.
func (b *Bus) Channel(app, id string) *appconfig.Channel {
	if c := b.compiled[app]; c != nil {
		return c.Channel(id)
	}
	return nil
}

// Deliver sends event (an EventBridge event, JSON) to ch with the retry policy, reporting
// every attempt, and dead-letters it after the last; it returns the last attempt.
func (b *Bus) Deliver(ctx context.Context, app string, ch *appconfig.Channel, event []byte) Delivery {
	d := Delivery{App: app, Channel: ch.ID}
	var meta struct {
		ID         string             `json:"id"`
		DetailType string             `json:"detail-type"`
		Detail     ports.SegmentEvent `json:"detail"`
	}
	_ = json.Unmarshal(event, &meta) // built by channels.Event
	d.EventID, d.DetailType, d.Segment, d.UserKey = meta.ID, meta.DetailType, meta.Detail.Segment, meta.Detail.UserKey
	body, err := channels.Render(ch.Body, event)
	if err != nil { // Compile checked the body: only a broken event gets here
		d.Err, d.Outcome, d.Attempt = err, DeadLettered, 1
		b.deadLetter(d, event, "INPUT_TRANSFORMATION_FAILED")
		b.opts.Report(d)
		return d
	}
	for attempt := 1; ; attempt++ {
		d.Attempt = attempt
		d.Status, d.Err = b.post(ctx, ch, body)
		switch {
		case d.Err == nil && d.Status >= 200 && d.Status < 300:
			d.Outcome = Delivered
			b.opts.Report(d)
			return d
		case attempt < b.opts.Attempts && retryable(d.Status) && ctx.Err() == nil:
			d.Outcome = Retrying
			b.opts.Report(d)
			wait := backoff.FullJitter(attempt, b.opts.BackoffBase, b.opts.BackoffMax, rand.Float64)
			if backoff.Sleep(ctx, wait) == nil {
				continue
			}
			d.Err = fmt.Errorf("stopped while retrying: %w", ctx.Err())
		}
		d.Outcome = DeadLettered
		code := "SDK_CLIENT_ERROR"
		if d.Status != 0 {
			code = "HTTP_" + strconv.Itoa(d.Status)
		}
		b.deadLetter(d, event, code)
		b.opts.Report(d)
		return d
	}
}

// retryable reports whether EventBridge retries an API destination's answer (0: no answer).
func retryable(status int) bool {
	switch {
	case status == 0, status >= 500:
		return true
	case status == http.StatusUnauthorized, status == http.StatusProxyAuthRequired,
		status == http.StatusConflict, status == http.StatusTooManyRequests:
		return true
	}
	return false
}

func (b *Bus) post(ctx context.Context, ch *appconfig.Channel, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", UserAgent)
	if a := ch.Auth; a == nil {
		req.Header.Set(channels.NoAuthHeader, ch.ID) // as the stack's connection does
	} else if a.DevValue != "" {
		req.Header.Set(a.Header, a.DevValue)
	}
	resp, err := b.opts.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	return resp.StatusCode, nil
}

// deadLetter is one line of the dead letters: the event as the queue gets it, with the
// message attributes EventBridge sets (ERROR_CODE, ERROR_MESSAGE, RULE_ARN, TARGET_ARN,
// RETRY_ATTEMPTS).
type deadLetter struct {
	At         string            `json:"at"`
	App        string            `json:"app"`
	Channel    string            `json:"channel"`
	Attributes map[string]string `json:"attributes"`
	Event      json.RawMessage   `json:"event"`
}

func (b *Bus) deadLetter(d Delivery, event []byte, code string) {
	if b.opts.DeadLetters == "" {
		return
	}
	msg := "HTTP status " + strconv.Itoa(d.Status)
	if d.Err != nil {
		msg = d.Err.Error()
	}
	line, err := json.Marshal(deadLetter{
		At: b.opts.Now().UTC().Format(time.RFC3339Nano), App: d.App, Channel: d.Channel,
		Attributes: map[string]string{
			"ERROR_CODE": code, "ERROR_MESSAGE": msg, "RETRY_ATTEMPTS": strconv.Itoa(d.Attempt - 1),
			"RULE_ARN":   "arn:aws:events:" + channels.DevRegion + ":" + channels.DevAccount + ":rule/retarget-dev/" + d.App + "-" + d.Channel,
			"TARGET_ARN": "arn:aws:events:" + channels.DevRegion + ":" + channels.DevAccount + ":api-destination/" + d.App + "-" + d.Channel,
		},
		Event: event,
	})
	if err == nil {
		b.dlMu.Lock()
		defer b.dlMu.Unlock()
		var f *os.File
		if f, err = os.OpenFile(b.opts.DeadLetters, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			_, err = f.Write(append(line, '\n'))
			err = errors.Join(err, f.Close())
		}
	}
	if err != nil {
		d.Err = errors.Join(d.Err, fmt.Errorf("write dead letter: %w", err))
		b.opts.Report(d)
	}
}

// newEventID returns a random UUID (version 4), as EventBridge's event ids are.
func newEventID() string {
	var u [16]byte
	_, _ = cryptorand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

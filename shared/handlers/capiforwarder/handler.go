// Package capiforwarder is the CAPI forwarder function's handler: it reads a batch of stream
// records (as the Kinesis event source mapping delivers them; a record holds one event, or
// several of one user), maps each event to a Conversions API app event, sets aside the ones
// Meta would refuse, forwards the rest in batches and answers with the first record that still
// has an event to retry. Every event ends delivered, skipped by design (no consent), dead-
// lettered with its reason, or retried from the stream. The hot path allocates next to nothing
// per event: the records are decoded by hand (envelope.Decoder) and each event is written as
// CAPI JSON in one pass (capi.Encoder), into memory kept from one invocation to the next.
package capiforwarder

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/forward"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/capi"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Consumer names this function in dead letters and metrics.
const Consumer = "capi-forwarder"

// Forwarder sends mapped events to Meta (package forward). The items, and the payloads they
// hold, are the handler's memory: valid until Forward returns, reused by the next batch.
type Forwarder interface {
	Forward(ctx context.Context, items []forward.Item) forward.Outcome
}

// Config wires a Handler.
type Config struct {
	Apps      *appconfig.Config
	Forwarder Forwarder
	DLQ       ports.DeadLetterQueue
	Logger    *slog.Logger
	Metrics   *observability.Emitter
	Now       func() time.Time
	// HoldPause is how long an invocation waits before answering when Meta refuses our
	// credentials, a dataset, or blocks us (default DefaultHoldPause): the event source mapping
	// retries at once, and without a pause it would hammer Meta and race through its retries.
	HoldPause time.Duration
	// UsagePause is how long an invocation waits before answering once Meta's usage headers
	// pass PauseAtUsagePct (usage.go); default the lesser of DefaultUsagePause and HoldPause.
	UsagePause time.Duration
	// Consents, when set (the stack sets it with the segment state), holds explicit decisions
	// made through the consent and erasure API: a user who withdrew there is not forwarded,
	// whatever the events say, and set tracking or LDU flags override the events'.
	Consents ports.ConsentStore
}

// DefaultHoldPause paces the retries of a batch that Meta cannot take until someone acts.
const DefaultHoldPause = 10 * time.Second

// Handler handles Kinesis batches. It is safe for concurrent use.
type Handler struct {
	cfg Config
	// spare holds the memory of finished invocations for the next (a sync.Pool would drop it
	// at every garbage collection: this is the memory that keeps collections rare).
	mu    sync.Mutex
	spare []*scratch
}

// maxSpare bounds the invocations' memory kept: Lambda runs one at a time.
const maxSpare = 2

func (h *Handler) getScratch() *scratch {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.spare); n > 0 {
		sc := h.spare[n-1]
		h.spare = h.spare[:n-1]
		return sc
	}
	return &scratch{}
}

func (h *Handler) putScratch(sc *scratch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.spare) < maxSpare {
		h.spare = append(h.spare, sc)
	}
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Apps == nil || cfg.Forwarder == nil || cfg.DLQ == nil {
		return nil, errors.New("capiforwarder: Apps, Forwarder and DLQ are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HoldPause <= 0 {
		cfg.HoldPause = DefaultHoldPause
	}
	if cfg.UsagePause <= 0 {
		cfg.UsagePause = min(DefaultUsagePause, cfg.HoldPause)
	}
	return &Handler{cfg: cfg}, nil
}

// counts tallies one invocation for logs and metrics.
type counts struct {
	records, events, skipped, withdrawn, deadLettered, delivered, failed int
	// replayTooOld counts replayed events (envelope.Record.Replay) older than Meta accepts:
	// skipped by design, logged, never dead-lettered.
	replayTooOld int
	byReason     map[string]int
}

// reasonTooOld is capi.Check's reason for an event past Meta's 7 days.
const reasonTooOld = "too_old"

// scratch is the memory one invocation reuses from the last.
type scratch struct {
	dec     envelope.Decoder
	enc     capi.Encoder
	recs    [][]envelope.Record // the events of each stream record; nil for a dead-lettered one
	ends    []int               // end offset in payload of each item's payload
	payload []byte              // the CAPI events of the batch, one after the other
	items   []forward.Item
}

// Handle processes one batch. It never returns an error for a bad record: those are dead
// letters. A stream record holds one event (version 1) or several (version 2): each event is
// mapped, checked, forwarded, skipped or dead-lettered on its own; it reports the first record
// with an event to retry in BatchItemFailures, and Lambda retries from there (records after it
// come again, and the delivered events of that record; Meta deduplicates them on event_id and
// event_name).
func (h *Handler) Handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	now := h.cfg.Now()
	sc := h.getScratch()
	defer h.putScratch(sc)
	sc.dec.Reset()
	log := h.cfg.Logger
	debug := log.Enabled(ctx, slog.LevelDebug)
	c := counts{records: len(ev.Records), byReason: map[string]int{}}
	var letters []ports.DeadLetter
	var letterIdx []int
	// deadLetter parks event j of record i (recs are the record's events), or the whole record
	// when recs is nil: a letter holds one event, so that replaying it replays that event only.
	deadLetter := func(i int, recs []envelope.Record, j int, reason, detail string) {
		rec := &ev.Records[i]
		l := ports.DeadLetter{Consumer: Consumer, Reason: reason, Detail: detail, Attempts: 1,
			ShardID: shardOf(rec), SequenceNumber: rec.Kinesis.SequenceNumber, FailedAt: now.UnixMilli(), Record: rec.Kinesis.Data}
		if recs != nil {
			env := &recs[j]
			l.App, l.EventID, l.EventName = env.App, env.Event.ID, env.Event.Name
			if len(recs) > 1 {
				l.Record = envelope.Append(nil, env)
			}
		}
		letters, letterIdx = append(letters, l), append(letterIdx, i)
		c.byReason[reason]++
		if debug {
			log.Debug("event dead-lettered", "reason", reason, "app", l.App, "event_id", l.EventID,
				"sequence_number", l.SequenceNumber)
		}
	}

	// The records in one string: the strings of every event are substrings of it.
	size := 0
	for i := range ev.Records {
		size += len(ev.Records[i].Kinesis.Data)
	}
	var all strings.Builder
	all.Grow(size)
	for i := range ev.Records {
		all.Write(ev.Records[i].Kinesis.Data)
	}
	batch := all.String()
	recs := sc.recs[:0]
	off := 0
	for i := range ev.Records {
		rec := &ev.Records[i]
		data := batch[off:][:len(rec.Kinesis.Data)]
		evs, err := sc.dec.DecodeMoreString(data)
		if err != nil {
			reason := "undecodable"
			if errors.Is(err, envelope.ErrUnsupportedVersion) {
				reason = "unsupported_version"
			}
			deadLetter(i, nil, 0, reason, err.Error())
			evs = nil
		}
		recs = append(recs, evs)
		c.events += len(evs)
		off += len(rec.Kinesis.Data)
	}
	sc.recs = recs
	if len(letters) > 0 {
		c.events += len(letters) // an undecodable record counts as one event
	}
	decisions, err := h.decisions(ctx, recs)
	if err != nil {
		// Forwarding without knowing who withdrew could send what must not be sent: the
		// whole batch comes again.
		h.cfg.Logger.Error("consent decisions unavailable: records stay on the stream", "error", err.Error())
		return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{
			{ItemIdentifier: ev.Records[0].Kinesis.SequenceNumber},
		}}, nil
	}

	// The payloads share one buffer: a CAPI event of a fully identified user is about 1.4 KB.
	payload := slices.Grow(sc.payload[:0], size+1024*c.events)
	items := slices.Grow(sc.items[:0], c.events)
	ends := sc.ends[:0]
	for i, evs := range recs {
		if len(evs) == 0 {
			continue // dead-lettered above
		}
		rec := &ev.Records[i]
		head := &evs[0] // the events of a record share app and user
		app, ok := h.cfg.Apps.App(head.App)
		if !ok {
			for j := range evs {
				deadLetter(i, evs, j, "unknown_app", "app "+head.App+" is not in the config")
			}
			continue
		}
		var restrict *capi.Restriction
		if decision, explicit := decisions[userRef{head.App, head.UserKey}]; explicit {
			if decision.Withdrawn() {
				c.skipped += len(evs)
				c.withdrawn += len(evs)
				continue
			}
			restrict = &capi.Restriction{AdvertiserTracking: decision.AdvertiserTracking,
				ApplicationTracking: decision.ApplicationTracking, LDU: decision.LDU}
		}
		shard := shardOf(rec)
		for j := range evs {
			env := &evs[j]
			var name string
			var err error
			payload, name, err = sc.enc.AppendPayload(payload, env, restrict, now)
			if err != nil {
				var problem *capi.Problem
				switch {
				case errors.Is(err, capi.ErrNoConsent):
					c.skipped++
				case !errors.As(err, &problem):
					deadLetter(i, evs, j, "unencodable", err.Error())
				case env.Replay && problem.Reason == reasonTooOld:
					// A replay from the event archive (a backfill of segment rules over months
					// of history) is expected to reach past Meta's window: Meta can never take
					// these, and a dead letter each would bury the ones someone must act on.
					c.replayTooOld++
				default:
					deadLetter(i, evs, j, problem.Reason, problem.Detail)
				}
				continue
			}
			items = append(items, forward.Item{
				Index: i, ShardID: shard, SequenceNumber: rec.Kinesis.SequenceNumber,
				App: app.ID, DatasetID: app.Meta.DatasetID, TestEventCode: app.Meta.TestEventCode,
				EventID: env.Event.ID, EventName: name, Record: rec.Kinesis.Data, Event: j, Events: len(evs),
				Valid: true, // capi.Encoder writes JSON
			})
			ends = append(ends, len(payload))
		}
	}
	sc.ends, sc.payload = ends, payload
	defer func() { clear(items); sc.items = items[:0] }() // the strings of this batch
	start := 0
	for k, end := range ends {
		items[k].Payload, start = payload[start:end:end], end
	}

	var failed []int
	if len(letters) > 0 {
		if err := h.cfg.DLQ.Send(ctx, letters); err != nil {
			h.cfg.Logger.Error("dead-letter queue unavailable: records stay on the stream", "error", err.Error(), "letters", len(letters))
			failed = append(failed, letterIdx...)
		} else {
			c.deadLettered += len(letters)
		}
	}

	var out forward.Outcome
	if len(items) > 0 {
		out = h.cfg.Forwarder.Forward(ctx, items)
		c.delivered += len(out.Delivered)
		c.deadLettered += len(out.DeadLettered)
		if n := len(out.DeadLettered); n > 0 {
			c.byReason["refused_by_meta"] += n // forward stored them, with Meta's error fields
		}
		failed = append(failed, out.Failed...)
	}
	c.failed = len(failed)
	h.record(c, out)
	if out.AuthFailure != nil || out.DatasetFailure != nil || out.Blocked != nil || out.VersionExpired != nil {
		h.pause(ctx)
	} else {
		h.usagePause(ctx, out.UsagePct)
	}

	if len(failed) == 0 {
		return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}, nil
	}
	// Lambda checkpoints just before the lowest reported sequence number: report the first.
	first := slices.Min(failed)
	return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{
		{ItemIdentifier: ev.Records[first].Kinesis.SequenceNumber},
	}}, nil
}

// userRef names a user across apps.
type userRef struct{ app, userKey string }

// decisions reads the explicit consent decisions of the batch's users: one call per app, each
// user once however many events and records they have in the batch.
func (h *Handler) decisions(ctx context.Context, recs [][]envelope.Record) (map[userRef]ports.UserConsent, error) {
	if h.cfg.Consents == nil {
		return nil, nil
	}
	users := map[userRef]bool{}
	byApp := map[string][]string{}
	for _, evs := range recs {
		if len(evs) == 0 {
			continue
		}
		u := userRef{evs[0].App, evs[0].UserKey}
		if u.userKey == "" || users[u] {
			continue
		}
		users[u] = true
		byApp[u.app] = append(byApp[u.app], u.userKey)
	}
	out := map[userRef]ports.UserConsent{}
	for app, keys := range byApp {
		if _, ok := h.cfg.Apps.App(app); !ok {
			continue // dead-lettered as unknown_app
		}
		found, err := h.cfg.Consents.Consents(ctx, app, keys)
		if err != nil {
			return nil, err
		}
		for uk, c := range found {
			out[userRef{app, uk}] = c
		}
	}
	return out, nil
}

// pause waits HoldPause, but leaves a second of the invocation's deadline to answer.
func (h *Handler) pause(ctx context.Context) { h.wait(ctx, h.cfg.HoldPause) }

// wait waits d, but leaves a second of the invocation's deadline to answer.
func (h *Handler) wait(ctx context.Context, d time.Duration) {
	if deadline, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(deadline)-time.Second)
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func shardOf(rec *events.KinesisEventRecord) string {
	// eventID is "shardId-000000000000:<sequence number>".
	for i := 0; i < len(rec.EventID); i++ {
		if rec.EventID[i] == ':' {
			return rec.EventID[:i]
		}
	}
	return ""
}

// record logs and measures an invocation. At INFO an invocation writes its metrics (an EMF
// line, the counts of the summary) and nothing per event: a few hundred bytes for any batch.
// The summary is a DEBUG line, a WARN one when events are left to retry; alerts and warnings
// are logged as they arise.
func (h *Handler) record(c counts, out forward.Outcome) {
	log := h.cfg.Logger
	attrs := []any{"records", c.records, "events", c.events, "delivered", c.delivered, "skipped_no_consent", c.skipped, "withdrawn", c.withdrawn,
		"dead_lettered", c.deadLettered, "to_retry", c.failed, "capi_requests", out.Requests,
		"capi_retries", out.Retries, "bisections", out.Bisections}
	if len(c.byReason) > 0 {
		attrs = append(attrs, "dead_letter_reasons", c.byReason)
	}
	if c.replayTooOld > 0 {
		attrs = append(attrs, "skipped_replay_too_old", c.replayTooOld)
	}
	level := slog.LevelDebug
	if c.failed > 0 {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "batch forwarded", attrs...)
	// Alerts: these hold records on the stream until someone fixes the cause.
	for _, a := range []struct {
		err *ports.CAPIError
		msg string
	}{
		{out.AuthFailure, "ALERT: Meta refused the access token or permissions; forwarding is stopped"},
		{out.DatasetFailure, "ALERT: Meta refused a dataset (missing, or the token may not use it)"},
		{out.Blocked, "ALERT: Meta temporarily blocked our calls (code 368)"},
		{out.VersionExpired, "ALERT: Meta refused the Conversions API version as expired (code 2635): set " +
			"META_CAPI_VERSION to a current version; records stay on the stream until then"},
	} {
		if a.err != nil {
			log.Error(a.msg, "code", a.err.Meta.Code, "subcode", a.err.Meta.Subcode, "fbtrace_id", a.err.Meta.FBTraceID)
		}
	}
	if out.DeadLetterErr != nil {
		log.Error("dead-letter queue unavailable: records stay on the stream", "error", out.DeadLetterErr.Error())
	}
	if out.LastError != nil && c.failed > 0 {
		log.Warn("records left for the stream to retry", "last_error", out.LastError.Error())
	}
	if out.UsagePct >= 80 {
		log.Warn("Meta rate-limit usage is high: lengthen the stream batching window", "usage_pct", out.UsagePct)
	}
	if out.ReceivedMismatch > 0 {
		log.Warn("Meta's events_received differs from the number of events sent", "difference", out.ReceivedMismatch)
	}
	dims := []observability.Dimension{{Name: "Function", Value: Consumer}}
	metric := func(name string, v int) observability.Metric {
		return observability.Metric{Name: name, Unit: observability.Count, Value: float64(v)}
	}
	auth := 0
	if out.AuthFailure != nil || out.DatasetFailure != nil {
		auth = 1
	}
	versionExpired := 0
	if out.VersionExpired != nil {
		versionExpired = 1
	}
	// The failure-rate alarm's three metrics always, the others when not zero: an EMF line
	// costs its bytes of log for every invocation.
	metrics := []observability.Metric{metric("RecordsRead", c.records), metric("EventsForwarded", c.delivered),
		metric("EventsDeadLettered", c.deadLettered), metric("EventsToRetry", c.failed)}
	for _, m := range []observability.Metric{
		metric("EventsSkippedNoConsent", c.skipped), metric("EventsWithdrawn", c.withdrawn),
		metric("EventsSkippedReplayTooOld", c.replayTooOld), metric("CAPIRequests", out.Requests),
		metric("CAPIRetries", out.Retries), metric("CAPIBisections", out.Bisections),
		metric("CAPIReceivedMismatch", out.ReceivedMismatch), metric("CAPIAuthFailures", auth),
		metric("CAPIVersionExpired", versionExpired),
		{Name: "CAPIUsagePct", Unit: observability.Count, Value: out.UsagePct},
	} {
		if m.Value != 0 {
			metrics = append(metrics, m)
		}
	}
	h.cfg.Metrics.Emit(dims, metrics...)
	for reason, n := range c.byReason {
		h.cfg.Metrics.Emit(append(dims, observability.Dimension{Name: "Reason", Value: reason}), metric("DeadLetters", n))
	}
}

// Package segmentupdater is the segment updater function's handler: it reads a batch of stream
// records (as the Kinesis event source mapping delivers them; a version 2 record holds several
// events of one user, a version 1 record one event), groups the events by user, folds each
// user's new events into the stored state with one read (state and explicit consent decision
// in one Query, through Config.Reader) and one conditional write per user, re-evaluates the
// segment rules and records every membership change for audience sync. Users are independent
// items: up to Config.Concurrency of them are read and written at once.
//
// Exactly once in effect under at-least-once delivery: a user's record carries the highest
// sequence number applied (records of one user stay on one shard, in order) and the hashes of
// the event ids applied recently; redelivered records and client or producer retries of the
// same event_id change nothing. The events of one stream record share its sequence number and
// are written together, so a record is applied whole or not at all (see fold).
//
// Logs: at INFO an invocation writes one EMF document (about 500 bytes: under 10 bytes an
// event for batches of 100 or more) and the warnings and errors of what went wrong; the batch
// summary and one line per user are at DEBUG.
//
// Outcomes of measured audiences (package outcomes): while folding, the handler enrols the
// users who join a segment with an audience and counts their re-engagements, purchases and
// revenue. The flags that make each user count once per window are written with the user's
// state; the counters themselves are added once per batch, one ADD per audience and join day (both arms in one item), after every user
// of the batch was written (see writeOutcomes for what a failure in between costs).
package segmentupdater

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/outcomes"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Consumer names this function in logs and metrics.
const Consumer = "segment-updater"

// Defaults.
const (
	// RecentIDs is how many event-id hashes a user record keeps, the latest by event time, to
	// catch retried events that carry a new sequence number (producer retries come within
	// seconds, client retries of an SDK batch of ~20 within minutes). 24 entries of 13 bytes
	// keep the item well under 1 KB.
	RecentIDs = 24
	// DefaultConcurrency is how many users a batch reads and writes at once: a batch of 500
	// events holds up to a few hundred users, and one user's read and write take a few
	// milliseconds each, so the batch takes tens of them instead of hundreds, without a burst
	// that a new table's partitions would throttle.
	DefaultConcurrency = 16
)

// Config wires a Handler.
type Config struct {
	Rules   map[string]*segments.AppRules // by app id
	Store   ports.SegmentStore
	Logger  *slog.Logger
	Metrics *observability.Emitter
	Now     func() time.Time
	UserTTL time.Duration
	// Consents, when set, holds explicit decisions (consent and erasure API): a user who
	// withdrew there is not segmented, whatever the events say, until an explicit grant.
	Consents ports.ConsentStore
	// Reader, when set, is Store's read of a user's state and consent decision in one request
	// (the same store, as a ports.UserReader): each user of a batch is read once, and the
	// decisions come with the reads (Consents is not called). Without it, Consents is read per
	// app and the state by Store.Update.
	Reader ports.UserReader
	// Concurrency bounds how many users of a batch are read and written at once (default 16).
	Concurrency int
	// Outcomes and Plans, both set, count the outcomes of measured audiences (by app id; an app
	// without a plan counts nothing). Either nil: nothing is enrolled or counted.
	Outcomes ports.OutcomeStore
	Plans    map[string]*outcomes.Plan
	// OutcomeAttempts bounds the AddOutcomes calls per batch (default 3), with full-jitter
	// backoff from OutcomeRetryBase (default 100 ms).
	OutcomeAttempts  int
	OutcomeRetryBase time.Duration
}

// Handler handles Kinesis batches.
type Handler struct{ cfg Config }

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Rules == nil || cfg.Store == nil {
		return nil, errors.New("segmentupdater: Rules and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UserTTL <= 0 {
		cfg.UserTTL = segments.DefaultUserTTL
	}
	if cfg.Outcomes == nil {
		cfg.Plans = nil // enrolling without counting would set flags no counter ever saw
	}
	if cfg.OutcomeAttempts <= 0 {
		cfg.OutcomeAttempts = 3
	}
	if cfg.OutcomeRetryBase <= 0 {
		cfg.OutcomeRetryBase = 100 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	return &Handler{cfg: cfg}, nil
}

// item is one event of the batch. A version 2 stream record holds several events of one user:
// they share the record's index and sequence number.
type item struct {
	index int
	seq   string
	event envelope.Event
}

type userKey struct{ app, uk string }

// stats tallies one invocation. Records count stream records, the rest events or users.
type stats struct {
	records, events, applied, duplicates, skipped, users, writes, changes, conflicts, failedUsers, withdrawn int
	// outcomeCohorts is how many cohorts' counters the batch added to, outcomeLost how many it
	// could not (see writeOutcomes).
	outcomeCohorts, outcomeLost int
}

// userResult is what one user's read and write did.
type userResult struct {
	applied, duplicates, withdrawn, changes, conflicts int
	written                                            bool
	counted                                            outcomes.Tally // of the write that landed
}

// Handle processes one batch and reports the first record to retry, if any.
//
// Every event of every record is folded into its user's state. Records whose user could not be
// written are reported from the earliest: the event source mapping retries from there (a
// version 2 record is one user's, so it is retried whole). Skipped records (undecodable, of an
// unknown app) carry no state and are not retried.
func (h *Handler) Handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	now := h.cfg.Now()
	var st stats
	st.records = len(ev.Records)
	users := map[userKey][]item{}
	var order []userKey
	for i := range ev.Records {
		r := &ev.Records[i]
		recs, err := envelope.Decode(r.Kinesis.Data)
		if err != nil {
			// The forwarder dead-letters such records with their bytes; here they carry no state.
			h.cfg.Logger.Warn("record skipped", "reason", "undecodable", "sequence_number", r.Kinesis.SequenceNumber, "error", err.Error())
			st.skipped++
			continue
		}
		if _, ok := h.cfg.Rules[recs[0].App]; !ok { // a record's events share its app
			h.cfg.Logger.Warn("record skipped", "reason", "unknown_app", "app", recs[0].App, "sequence_number", r.Kinesis.SequenceNumber)
			st.skipped++
			continue
		}
		st.events += len(recs)
		for j := range recs {
			k := userKey{recs[j].App, recs[j].UserKey}
			if _, ok := users[k]; !ok {
				order = append(order, k)
			}
			users[k] = append(users[k], item{index: i, seq: r.Kinesis.SequenceNumber, event: recs[j].Event})
		}
	}

	var decisions map[userKey]ports.UserConsent
	if h.cfg.Reader == nil {
		var err error
		if decisions, err = h.decisions(ctx, order); err != nil {
			// Without the decisions no user can be folded safely: the whole batch comes again.
			h.cfg.Logger.Error("consent decisions unavailable: records stay on the stream", "error", err.Error())
			h.record(st)
			if len(ev.Records) == 0 {
				return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}, nil
			}
			return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{
				{ItemIdentifier: ev.Records[0].Kinesis.SequenceNumber},
			}}, nil
		}
	}
	// Users are independent (each is one item, written on its own condition): up to
	// Concurrency of them are read and written at once. Each user's events stay in order.
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		failed []int
		tally  = outcomes.Tally{}
		slots  = make(chan struct{}, h.cfg.Concurrency)
	)
	for _, k := range order {
		its := users[k]
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			res, err := h.user(ctx, k, its, decisions, now)
			mu.Lock()
			defer mu.Unlock()
			st.users++
			st.withdrawn += res.withdrawn
			st.conflicts += res.conflicts
			if err != nil {
				h.cfg.Logger.Error("user state not updated: records stay on the stream", "app", k.app, "user", k.uk, "error", err.Error())
				st.failedUsers++
				for _, it := range its {
					failed = append(failed, it.index)
				}
				return
			}
			st.duplicates += res.duplicates
			if res.written {
				tally.Merge(res.counted)
				st.applied += res.applied
				st.writes++
				st.changes += res.changes
			}
			h.cfg.Logger.Debug("user applied", "app", k.app, "user", k.uk, "events", len(its), "applied", res.applied,
				"duplicates", res.duplicates, "written", res.written, "membership_changes", res.changes, "conflicts", res.conflicts)
		}()
	}
	wg.Wait()
	h.writeOutcomes(ctx, tally, &st)
	h.record(st)
	if len(failed) == 0 {
		return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{}}, nil
	}
	first := slices.Min(failed)
	return events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{
		{ItemIdentifier: ev.Records[first].Kinesis.SequenceNumber},
	}}, nil
}

// decisions reads the explicit consent decisions of the batch's users, one call per app; users
// without one are absent. It serves a handler without a Reader.
func (h *Handler) decisions(ctx context.Context, users []userKey) (map[userKey]ports.UserConsent, error) {
	out := map[userKey]ports.UserConsent{}
	if h.cfg.Consents == nil || len(users) == 0 {
		return out, nil
	}
	byApp := map[string][]string{}
	for _, k := range users {
		byApp[k.app] = append(byApp[k.app], k.uk)
	}
	for app, keys := range byApp {
		decisions, err := h.cfg.Consents.Consents(ctx, app, keys)
		if err != nil {
			return nil, err
		}
		for uk, c := range decisions {
			out[userKey{app, uk}] = c
		}
	}
	return out, nil
}

// user reads one user (state and consent decision in one request, with a Reader) and folds
// their events into the state. decisions are the consent decisions read beforehand by a
// handler without a Reader.
func (h *Handler) user(ctx context.Context, k userKey, its []item, decisions map[userKey]ports.UserConsent, now time.Time) (userResult, error) {
	var res userResult
	decision, decided := decisions[k]
	var read ports.UserRead
	if h.cfg.Reader != nil {
		var err error
		if read, err = h.cfg.Reader.ReadUser(ctx, k.app, k.uk); err != nil {
			return res, err
		}
		if read.Consent != nil {
			decision, decided = *read.Consent, true
		}
	}
	if decided && decision.Withdrawn() {
		// An explicit withdrawal (or erasure) overrides the events' consent: they fold as
		// events without consent, which record nothing but the withdrawal.
		for i := range its {
			its[i].event.Consent.AdsPersonalization = envelope.False
		}
		res.withdrawn = len(its)
	}
	fn := h.fold(k, its, decision.LDU, decision.At, now, &res)
	var up ports.UserUpdate
	var err error
	if h.cfg.Reader != nil {
		up, err = h.cfg.Reader.UpdateRead(ctx, read, fn)
	} else {
		up, err = h.cfg.Store.Update(ctx, k.app, k.uk, fn)
	}
	res.conflicts = up.Conflicts
	res.written, res.changes = up.Written, len(up.Changes)
	if !up.Written {
		res.applied, res.counted, res.changes = 0, nil, 0
	}
	return res, err
}

// fold returns the function that folds one user's events into their stored state, for the
// store's Update: skip what was applied, fold, evaluate; Update records the membership changes
// and writes conditionally, and on a concurrent write calls the fold again on the fresh state.
// ldu is the user's explicit Limited Data Use decision, made at decidedAt (nil: none): it is
// folded in with the events, so it reaches the state of a user who decided before their first
// event. The counts of the last call (the state it was handed) are left in res.
//
// Redelivery: a record is skipped when its sequence number is not after the user's LastSeq,
// the highest one applied. The events of a version 2 record share its sequence number and are
// always folded in the same write (a record is one user's, and a user is one write per batch),
// so a record is applied whole or not at all: comparing with the stored LastSeq, never with
// the one this fold advances, keeps the record's later events from being taken for repeats of
// its first. An event already applied under another sequence number (a producer or client
// retry, regrouped in another record) is caught by its id among RecentIDs.
func (h *Handler) fold(k userKey, its []item, ldu *bool, decidedAt int64, now time.Time, res *userResult) func(*ports.UserState) error {
	rules := h.cfg.Rules[k.app]
	plan := h.cfg.Plans[k.app]
	return func(u *ports.UserState) error {
		recent := slices.Clone(u.RecentIDs)
		lastSeq := u.LastSeq
		applied, dups := 0, 0
		counted := outcomes.Tally{} // a conflict reruns fn on the fresh state: count afresh
		res.applied, res.duplicates, res.counted = 0, 0, counted
		auidAt := int64(-1 << 63)
		for _, it := range its {
			id := idEntry(&it.event)
			if !seqAfter(it.seq, u.LastSeq) || hasID(recent, id) {
				dups++ // redelivered record, or a retry of an event already applied
				continue
			}
			// One event at a time, so each one's outcomes are exact (which window, which
			// purchase): the same fold as State.Apply, observed.
			plan.Apply(&u.State, &it.event, rules, counted)
			keepAppUserID(&u.State, &it.event, &auidAt)
			recent = append(recent, id)
			if seqAfter(it.seq, lastSeq) {
				lastSeq = it.seq
			}
			applied++
		}
		res.applied, res.duplicates = applied, dups
		if applied == 0 {
			return ports.ErrNothingToWrite
		}
		if ldu != nil {
			u.State.RecordLDUDecision(*ldu, decidedAt)
		}
		after, due := rules.Evaluate(&u.State, now)
		joined, _ := segments.Diff(u.Segments, after)
		u.ChangedAt, u.RecordedAt, u.Reason = latestEventMillis(its), h.cfg.Now(), ports.ReasonEvents
		if plan != nil {
			// The join's time is the membership change's: the latest event of the batch.
			plan.Enrol(&u.State, k.uk, joined, u.ChangedAt/1000, counted)
			outcomes.Prune(&u.State, now.Unix())
		}
		u.Segments, u.LastSeq, u.RecentIDs = after, lastSeq, latestIDs(recent, RecentIDs)
		u.DueAt = keepEarlierDue(u.DueAt, segments.DueAt(due), now)
		u.ExpiresAt = expiresAt(&u.State, u.ExpiresAt, now, h.cfg.UserTTL)
		return nil
	}
}

// expiresAt is when a user's state may be deleted: UserTTL after the user was last seen. A state
// that saw no consented event (only withdrawals, or an erasure's tombstone) keeps its stored
// expiry, or gets UserTTL from now: never a time in the past, which would let DynamoDB delete a
// withdrawal record at once.
func expiresAt(st *segments.State, stored int64, now time.Time, ttl time.Duration) int64 {
	if st.LastSeen > 0 {
		return time.Unix(st.LastSeen, 0).Add(ttl).Unix()
	}
	if stored > now.Unix() {
		return stored
	}
	return now.Add(ttl).Unix()
}

// idEntry identifies an event for deduplication (its id and name, as Meta does) prefixed with
// its event time: "<unix seconds, base 36, 6 digits>.<6-character hash>" (36 bits of hash: a
// false match among one user's 24 recent events is a 1 in 3 billion chance). The store keeps
// the entries as a set, without order; the time prefix is what orders them.
func idEntry(e *envelope.Event) string {
	sum := sha256.Sum256([]byte(e.ID + "\x00" + e.Name))
	t := strconv.FormatInt(max(e.Time, 0), 36)
	if len(t) < 6 {
		t = strings.Repeat("0", 6-len(t)) + t
	}
	return t + "." + base64.RawURLEncoding.EncodeToString(sum[:5])[:6]
}

// hasID reports whether recent holds the event of entry (whatever time it was recorded with).
func hasID(recent []string, entry string) bool {
	hash := entry[strings.IndexByte(entry, '.'):]
	for _, r := range recent {
		if strings.HasSuffix(r, hash) {
			return true
		}
	}
	return false
}

// latestIDs keeps the n entries with the latest event times.
func latestIDs(ids []string, n int) []string {
	slices.Sort(ids) // fixed-width time prefix: lexical order is time order
	ids = slices.Compact(ids)
	if len(ids) > n {
		ids = ids[len(ids)-n:]
	}
	return ids
}

// seqAfter reports whether Kinesis sequence number a comes after b ("" is before everything).
// Sequence numbers are decimal strings of up to 129 digits: longer is larger, then compare.
func seqAfter(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// keepAppUserID keeps in st the app user id of the latest event (by event time) of the batch
// that carries one: only the records of apps sharing it do (share_app_user_id). Update stamps
// it on the user's membership changes for the segment events.
func keepAppUserID(st *segments.State, ev *envelope.Event, latest *int64) {
	if ev.User.AppUserID != "" && ev.Time >= *latest {
		st.AppUserID, *latest = ev.User.AppUserID, ev.Time
	}
}

func latestEventMillis(its []item) int64 {
	var t int64
	for _, it := range its {
		t = max(t, it.event.Time)
	}
	return t * 1000
}

// keepEarlierDue returns the due index value to write: the stored one when it is still ahead
// and not later than the new one, else the new one. A due time earlier than the true next flip
// is harmless (the sweeper visits, finds nothing to change and writes the true one), and
// keeping it spares an index move on most writes: every event of an active user pushes
// lapsed_7d's flip a little later, which would otherwise move the user in the due index.
func keepEarlierDue(stored, next int64, now time.Time) int64 {
	if stored > now.Unix() && (next == 0 || stored <= next) {
		return stored
	}
	return next
}

// writeOutcomes adds the batch's counter deltas with one AddOutcomes call (one ADD per audience and join day),
// retried a few times with backoff. It runs after the users were written: their flags are what
// keeps a redelivered batch from counting twice, so the counters follow the flags. If the call
// still fails (or the function dies before it), those increments are lost, never doubled; the
// loss is logged with the counts (no user data) and counted in OutcomeCountsLost, and the
// records are not retried: their users were written, so a redelivery would count nothing.
func (h *Handler) writeOutcomes(ctx context.Context, tally outcomes.Tally, st *stats) {
	deltas := tally.Outcomes()
	if len(deltas) == 0 {
		return
	}
	var err error
	for attempt := 1; attempt <= h.cfg.OutcomeAttempts; attempt++ {
		if err = h.cfg.Outcomes.AddOutcomes(ctx, deltas); err == nil {
			st.outcomeCohorts += len(deltas)
			return
		}
		if attempt < h.cfg.OutcomeAttempts {
			if backoff.Sleep(ctx, backoff.FullJitter(attempt, h.cfg.OutcomeRetryBase, 2*time.Second, rand.Float64)) != nil {
				break
			}
		}
	}
	st.outcomeLost += len(deltas)
	lost := tally.Total()
	h.cfg.Logger.Error("outcome counters not written: this batch's increments are lost", "cohorts", len(deltas),
		"users", lost.Users, "reengaged_1d", lost.Reengaged1d, "reengaged_7d", lost.Reengaged7d,
		"reengaged_28d", lost.Reengaged28d, "purchasers_28d", lost.Purchasers28d, "revenue_micros", lost.RevenueMicros,
		"error", err.Error())
}

// record reports the invocation in one EMF document (and, at DEBUG, one log line with the
// same counts). The logs are billed by the byte, so the document holds the metrics that say
// how much was done always (RecordsRead, EventsRead, UsersRead, EventsApplied, UserWrites) and
// the others only when they are not zero: a metric missing from an invocation's document is
// no datapoint, which sums, graphs and alarms on Sum read as zero. About 500 bytes a batch,
// under 10 bytes an event for batches of 100 or more.
func (h *Handler) record(s stats) {
	h.cfg.Logger.Debug("batch applied", "records", s.records, "events", s.events, "users", s.users, "applied", s.applied,
		"duplicates", s.duplicates, "skipped", s.skipped, "writes", s.writes, "membership_changes", s.changes,
		"conflicts", s.conflicts, "failed_users", s.failedUsers, "withdrawn_events", s.withdrawn,
		"outcome_cohorts", s.outcomeCohorts, "outcome_cohorts_lost", s.outcomeLost)
	m := func(name string, v int) observability.Metric {
		return observability.Metric{Name: name, Unit: observability.Count, Value: float64(v)}
	}
	metrics := []observability.Metric{m("RecordsRead", s.records), m("EventsRead", s.events), m("UsersRead", s.users),
		m("EventsApplied", s.applied), m("UserWrites", s.writes)}
	for _, x := range []observability.Metric{m("EventsDuplicate", s.duplicates), m("RecordsSkipped", s.skipped),
		m("SegmentChanges", s.changes), m("WriteConflicts", s.conflicts), m("UsersFailed", s.failedUsers),
		m("EventsWithdrawn", s.withdrawn), m("OutcomeCohortsWritten", s.outcomeCohorts), m("OutcomeCountsLost", s.outcomeLost)} {
		if x.Value != 0 {
			metrics = append(metrics, x)
		}
	}
	h.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}}, metrics...)
}

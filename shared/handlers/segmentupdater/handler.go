// Package segmentupdater is the segment updater function's handler: it reads a batch of stream
// records (as the Kinesis event source mapping delivers them), groups them by user, folds each
// user's new events into the stored state with one read and one conditional write per user,
// re-evaluates the segment rules and records every membership change for audience sync.
//
// Exactly once in effect under at-least-once delivery: a user's record carries the highest
// sequence number applied (records of one user stay on one shard, in order) and the hashes of
// the event ids applied recently; redelivered records and client or producer retries of the
// same event_id change nothing.
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
	return &Handler{cfg: cfg}, nil
}

// item is one record of the batch that belongs to a user.
type item struct {
	index int
	seq   string
	event envelope.Event
}

type userKey struct{ app, uk string }

// stats tallies one invocation.
type stats struct {
	records, applied, duplicates, skipped, users, writes, changes, conflicts, failedUsers, withdrawn int
	// outcomeCohorts is how many cohorts' counters the batch added to, outcomeLost how many it
	// could not (see writeOutcomes).
	outcomeCohorts, outcomeLost int
}

// Handle processes one batch and reports the first record to retry, if any.
func (h *Handler) Handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	now := h.cfg.Now()
	var st stats
	st.records = len(ev.Records)
	users := map[userKey][]item{}
	var order []userKey
	for i := range ev.Records {
		r := &ev.Records[i]
		env, err := envelope.DecodeOne(r.Kinesis.Data)
		if err != nil {
			// The forwarder dead-letters such records with their bytes; here they carry no state.
			h.cfg.Logger.Warn("record skipped", "reason", "undecodable", "sequence_number", r.Kinesis.SequenceNumber, "error", err.Error())
			st.skipped++
			continue
		}
		if _, ok := h.cfg.Rules[env.App]; !ok {
			h.cfg.Logger.Warn("record skipped", "reason", "unknown_app", "app", env.App, "sequence_number", r.Kinesis.SequenceNumber)
			st.skipped++
			continue
		}
		k := userKey{env.App, env.UserKey}
		if _, ok := users[k]; !ok {
			order = append(order, k)
		}
		users[k] = append(users[k], item{index: i, seq: r.Kinesis.SequenceNumber, event: env.Event})
	}

	decisions, err := h.decisions(ctx, order)
	if err != nil {
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
	var failed []int
	tally := outcomes.Tally{}
	for _, k := range order {
		its := users[k]
		st.users++
		decision, decided := decisions[k]
		if decided && decision.Withdrawn() {
			// An explicit withdrawal (or erasure) overrides the events' consent: they fold as
			// events without consent, which record nothing but the withdrawal.
			for i := range its {
				its[i].event.Consent.AdsPersonalization = envelope.False
			}
			st.withdrawn += len(its)
		}
		if err := h.applyUser(ctx, k, its, decision.LDU, decision.At, now, tally, &st); err != nil {
			h.cfg.Logger.Error("user state not updated: records stay on the stream", "app", k.app, "user", k.uk, "error", err.Error())
			st.failedUsers++
			for _, it := range its {
				failed = append(failed, it.index)
			}
		}
	}
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
// without one are absent.
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

// applyUser folds one user's records into the stored state, through the store's Update: skip
// what was applied, fold, evaluate; Update records the membership changes and writes
// conditionally, and on a concurrent write calls the fold again on the fresh state. ldu is the
// user's explicit Limited Data Use decision, made at decidedAt (nil: none): it is folded in
// with the events, so it reaches the state of a user who decided before their first event.
// The outcome counts of the user's write are added to tally (those of the attempt written).
func (h *Handler) applyUser(ctx context.Context, k userKey, its []item, ldu *bool, decidedAt int64, now time.Time, tally outcomes.Tally, st *stats) error {
	rules := h.cfg.Rules[k.app]
	plan := h.cfg.Plans[k.app]
	var applied, dups int // of the last attempt: fn starts from the state it is handed
	var counted outcomes.Tally
	res, err := h.cfg.Store.Update(ctx, k.app, k.uk, func(u *ports.UserState) error {
		recent := slices.Clone(u.RecentIDs)
		lastSeq := u.LastSeq
		applied, dups = 0, 0
		counted = outcomes.Tally{} // a conflict reruns fn on the fresh state: count afresh
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
	})
	st.conflicts += res.Conflicts
	if err != nil {
		return err
	}
	st.duplicates += dups
	if res.Written {
		tally.Merge(counted)
		st.applied += applied
		st.writes++
		st.changes += len(res.Changes)
	}
	return nil
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

func (h *Handler) record(s stats) {
	h.cfg.Logger.Info("batch applied", "records", s.records, "users", s.users, "applied", s.applied,
		"duplicates", s.duplicates, "skipped", s.skipped, "writes", s.writes, "membership_changes", s.changes,
		"conflicts", s.conflicts, "failed_users", s.failedUsers, "withdrawn_events", s.withdrawn,
		"outcome_cohorts", s.outcomeCohorts, "outcome_cohorts_lost", s.outcomeLost)
	m := func(name string, v int) observability.Metric {
		return observability.Metric{Name: name, Unit: observability.Count, Value: float64(v)}
	}
	h.cfg.Metrics.Emit([]observability.Dimension{{Name: "Function", Value: Consumer}},
		m("RecordsRead", s.records), m("EventsApplied", s.applied), m("EventsDuplicate", s.duplicates),
		m("RecordsSkipped", s.skipped), m("UserWrites", s.writes), m("SegmentChanges", s.changes),
		m("WriteConflicts", s.conflicts), m("UsersFailed", s.failedUsers), m("EventsWithdrawn", s.withdrawn),
		m("OutcomeCohortsWritten", s.outcomeCohorts), m("OutcomeCountsLost", s.outcomeLost))
}

package audiencesync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/ports"
)

// The full refresh replaces an audience at Meta with its members as the sync knows them: every
// user key in the member index (the users whose addition Meta acknowledged and whose removal
// it did not), with the identifiers they have now, through one usersreplace session. It heals
// what the incremental uploads cannot see: rows Meta dropped or never matched, EXTERN_IDs Meta
// forgot after 90 days, identifiers that changed while the user stayed in the segment, and rows
// someone added by hand. Members who no longer belong (left the segment, outranked in their
// exclusive group, state expired, consent withdrawn, nothing matchable left) are left out, so
// the replace removes them; they count against the removal guard like any removal.
//
// A refresh runs when it is due (audience_sync.full_refresh_hours after the last one) and the
// audience has nothing pending in this run. It walks the index in key order, checkpointing
// after each acknowledged batch (cursor, batch count, rows), so a timeout, crash or rate limit
// resumes at the next batch of the same session in a later run (within 80 of Meta's 90
// minutes; after that it starts over). While it lasts, no /users call goes to the audience
// (Meta refuses them during a replace): the audience's changes stay pending until it ends.

const (
	opReplace = "replace"
	// DefaultRefreshReserve is the time a run keeps for itself: no refresh batch starts later.
	DefaultRefreshReserve = 60 * time.Second
	// readConcurrency bounds the user reads in flight.
	readConcurrency = 16
)

// errNoTime stops a refresh that would not finish its next batch before the deadline.
var errNoTime = errors.New("too little time left in this run for another batch; the next run resumes")

// refreshOpen reports whether st has a replace session the sync can still continue.
func refreshOpen(st *ports.AudienceSyncState, now time.Time) bool {
	return st.Op == opReplace && st.SessionID != 0 && now.Sub(time.Unix(st.SessionStartedAt, 0)) < sessionWindow
}

// refreshDue reports whether a's refresh should run now. The first complete sync of an audience
// sets the baseline: its first refresh comes one period later.
func refreshDue(every time.Duration, st *ports.AudienceSyncState, now time.Time) bool {
	if refreshOpen(st, now) {
		return true
	}
	return every > 0 && st.LastRefreshAt > 0 && now.Sub(time.Unix(st.LastRefreshAt, 0)) >= every
}

// memberEntry is one member of the index as the refresh sees it: row is nil when the member is
// left out of the replace.
type memberEntry struct {
	key string
	row []string
}

// memberSource walks one audience's member index in key order and turns members into rows.
type memberSource struct {
	s         *Syncer
	aa        *audiences.AppAudiences
	a         *audiences.Audience
	after     string
	exhausted bool
	buf       []memberEntry
	rows      int // entries of buf with a row
}

// fill reads members until the buffer holds more than want rows or the index is exhausted.
func (m *memberSource) fill(ctx context.Context, want int) error {
	for m.rows <= want && !m.exhausted {
		keys, next, err := m.s.cfg.State.Members(ctx, m.aa.App(), m.a.Segment(), m.after, pageSize)
		if err != nil {
			return fmt.Errorf("member index: %w", err)
		}
		users, err := m.s.readUsers(ctx, m.aa.App(), keys)
		if err != nil {
			return err
		}
		for i, k := range keys {
			e := memberEntry{key: k}
			// Each arm's audience keeps only the users of its arm (a user whose arm changed with
			// a new holdout_fraction or holdout_salt is left out: the replace removes them).
			if u := users[i]; u.found && slices.Contains(m.aa.DesiredFor(k, u.segments, u.state), m.a.Segment()) {
				if row, ok := m.a.Row(k, u.state); ok {
					e.row = row
					m.rows++
				}
			}
			m.buf = append(m.buf, e)
		}
		m.after, m.exhausted = next, next == ""
	}
	return nil
}

// take removes the next batch from the buffer: entries up to and including the last row of
// the first Chunk of the buffered rows; all entries when that is the last batch.
func (m *memberSource) take(schema []string, maxBytes int) (entries []memberEntry, rows [][]string, last bool) {
	all := make([][]string, 0, m.rows)
	for _, e := range m.buf {
		if e.row != nil {
			all = append(all, e.row)
		}
	}
	if len(all) > 0 {
		rows = audiences.Chunk(all, schema, audiences.MaxRows, maxBytes)[0]
	}
	last = m.exhausted && len(rows) == len(all)
	n := len(m.buf)
	if !last {
		seen := 0
		for i, e := range m.buf {
			if e.row != nil {
				if seen++; seen == len(rows) {
					n = i + 1
					break
				}
			}
		}
	}
	entries, m.buf = m.buf[:n:n], m.buf[n:]
	m.rows -= len(rows)
	return entries, rows, last
}

// refresh runs or continues a's full refresh; st is its current state (audience id known).
func (s *Syncer) refresh(ctx context.Context, aa *audiences.AppAudiences, a *audiences.Audience, st *ports.AudienceSyncState, r *AudienceReport, now time.Time) error {
	r.Refreshing = true
	if !refreshOpen(st, now) {
		st.Op, st.SessionID, st.BatchesDone, st.SessionStartedAt, st.Plan = opReplace, sessionID(), 0, now.Unix(), ""
		st.RefreshCursor, st.RefreshRows, st.RefreshExcluded = "", 0, 0
		// Stored before the first batch: a run that dies after Meta took batch 1 resumes this
		// session rather than leaving it open at Meta, which would refuse other uploads.
		if err := s.putState(ctx, st); err != nil {
			return err
		}
	}
	schema := a.Schema()
	src := &memberSource{s: s, aa: aa, a: a, after: st.RefreshCursor}
	for {
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < s.cfg.RefreshReserve {
			return errNoTime
		}
		if err := src.fill(ctx, audiences.MaxRows); err != nil {
			return err
		}
		entries, rows, last := src.take(schema, aa.Rules().MaxPayloadBytes)
		var left []string
		for _, e := range entries {
			if e.row == nil {
				left = append(left, e.key)
			}
		}
		excluded := st.RefreshExcluded + int64(len(left))
		if len(rows) == 0 { // only when last: a batch that is not the last always has rows
			if st.BatchesDone == 0 {
				// Nothing to upload: a replace would empty the audience (Meta refuses it too).
				s.cfg.Logger.Warn("full refresh skipped: no member of the audience has a row to upload", "app", aa.App(),
					"segment", a.Segment(), "members_left_out", len(left))
				s.endRefresh(st, now)
				return s.putState(ctx, st)
			}
			// Resumed, and every member after the cursor has dropped out meanwhile: there is no
			// row to close the session with. Abandon it (Meta discards it) and start over.
			st.Op, st.SessionID, st.BatchesDone = "", 0, 0
			if err := s.putState(ctx, st); err != nil {
				return err
			}
			return errors.New("full refresh restarts: no row left for the session's last batch")
		}
		if err := audiences.RemovalGuard(aa.Rules().MaxRemovalFraction, int(st.Size), int(excluded)); err != nil {
			s.cfg.Logger.Error("ALERT: full refresh paused: it would remove too many members", "app", aa.App(), "segment", a.Segment(),
				"left_out", excluded, "size", st.Size, "max_fraction", aa.Rules().MaxRemovalFraction)
			// The session is abandoned without its last batch: Meta discards it. The next
			// refresh comes one period later; the alert is for someone to look first.
			s.endRefresh(st, now)
			if perr := s.putState(ctx, st); perr != nil {
				return errors.Join(err, perr)
			}
			return err
		}
		ack, err := s.meta(aa.App(), a).Upload(ctx, ports.AudienceUpload{
			AudienceID: st.AudienceID, Op: ports.AudienceReplace, Schema: schema, Rows: rows,
			Session: ports.AudienceSession{ID: st.SessionID, BatchSeq: st.BatchesDone + 1, Last: last, EstimatedTotal: int(st.Size)},
		})
		r.Requests++
		if err != nil {
			if ports.IsSessionEnded(err) {
				st.SessionID, st.BatchesDone = 0, 0 // Meta closed it: the next due run starts over
				_ = s.putState(ctx, st)
			}
			return err
		}
		r.Invalid += ack.NumInvalid
		// Members left out are no longer members once the replace is applied; taking them out
		// of the index now (before the checkpoint, so a retry repeats it) is safe also if the
		// session never finishes: the next refresh leaves them out again.
		if len(left) > 0 {
			if err := s.cfg.State.SetMembers(ctx, aa.App(), a.Segment(), nil, left); err != nil {
				return fmt.Errorf("member index: %w", err)
			}
		}
		st.BatchesDone++
		st.RefreshCursor = entries[len(entries)-1].key
		st.RefreshRows += int64(len(rows))
		st.RefreshExcluded = excluded
		r.RefreshRows += len(rows)
		r.RefreshExcluded += len(left)
		if last {
			st.Size = st.RefreshRows
			s.endRefresh(st, now)
			r.Refreshed = true
			s.cfg.Logger.Info("full refresh done", "app", aa.App(), "segment", a.Segment(), "rows", st.Size,
				"left_out", excluded, "batches", st.BatchesDone)
		}
		if err := s.putState(ctx, st); err != nil { // checkpoint: this batch is never sent again
			return err
		}
		if last {
			return nil
		}
	}
}

// endRefresh closes the refresh in st (completed, skipped or abandoned): the next one is due a
// period from now.
func (s *Syncer) endRefresh(st *ports.AudienceSyncState, now time.Time) {
	st.Op, st.SessionID, st.BatchesDone, st.SessionStartedAt, st.Plan = "", 0, 0, 0, ""
	st.RefreshCursor, st.RefreshRows, st.RefreshExcluded = "", 0, 0
	st.LastRefreshAt = now.Unix()
}

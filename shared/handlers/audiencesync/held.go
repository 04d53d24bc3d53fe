package audiencesync

import (
	"context"
	"errors"
	"fmt"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Removals Meta refuses are held, never dropped. Meta refuses removals that would leave an
// audience too small to use ("audience size too low": an audience needs about 100 matched
// people; reference meta-api.md section 2, message as integrators saw it in
// https://github.com/grouparoo/grouparoo/pull/1108; Meta publishes neither the threshold nor
// the code). The refused rows' changes stay pending, so the next runs plan them again; the
// audience's state keeps Meta's answer and a backoff counted in sync runs (1, 2, 4, ... up to
// maxRemovalSkipRuns runs skipped between attempts), and the additions of the same run go on.

// maxRemovalSkipRuns caps the backoff: at the deployed 5-minute schedule, about 5 hours.
const maxRemovalSkipRuns = 63

// heldRemovals says whether a removal error holds the removals (true) or stops the audience
// as before: a Meta refusal or a transient failure holds; an auth failure, a rate limit, a
// vanished audience and anything not from Meta (the state store) stop.
func heldRemovals(err error) bool {
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ports.IsAudienceGone(err) {
		return false
	}
	return ce.Class != ports.CAPIAuth && ce.Class != ports.CAPIRateLimited
}

// holdRemovals records a refused removal in st: Meta's answer, the rows held and the backoff.
// Transient failures retry at the next run.
func (s *Syncer) holdRemovals(ctx context.Context, app, segment string, st *ports.AudienceSyncState, rows int, err error, r *AudienceReport) error {
	var ce *ports.CAPIError
	errors.As(err, &ce)
	st.RemovalsHeld, st.RemovalError = int64(rows), err.Error()
	st.RemovalSkipRuns = 0
	if ce.Class != ports.CAPITransient && ce.Class != ports.CAPISessionEnded {
		st.RemovalRefusals++
		st.RemovalSkipRuns = min(int64(1)<<min(st.RemovalRefusals-1, 6)-1, maxRemovalSkipRuns)
	}
	r.RemovalsHeld, r.RemovalError = rows, st.RemovalError
	s.cfg.Logger.Warn("audience removals refused by Meta: held, retried with backoff; additions go on",
		"app", app, "segment", segment, "removals", rows, "refusals", st.RemovalRefusals,
		"skip_runs", st.RemovalSkipRuns, "code", ce.Meta.Code, "subcode", ce.Meta.Subcode, "error", err.Error())
	return s.putState(ctx, st)
}

// clearHeld forgets a hold once the removals went through (or none is planned any more).
func clearHeld(st *ports.AudienceSyncState) bool {
	if st.RemovalsHeld == 0 && st.RemovalRefusals == 0 && st.RemovalSkipRuns == 0 && st.RemovalError == "" {
		return false
	}
	st.RemovalsHeld, st.RemovalError, st.RemovalRefusals, st.RemovalSkipRuns = 0, "", 0, 0
	return true
}

// markGone records that Meta deleted the audience (100/33 on a call to it): nothing more is
// sent to it until an operator re-creates it (retarget audiences create --recreate-gone) or
// configures another id. Alerts once; the AudienceGone metric repeats every run.
func (s *Syncer) markGone(ctx context.Context, app, segment string, st *ports.AudienceSyncState, err error) error {
	st.GoneID, st.GoneAt = st.AudienceID, s.cfg.Now().Unix()
	st.SessionID, st.BatchesDone, st.Plan, st.Op = 0, 0, "", ""
	s.cfg.Logger.Error("ALERT: Meta deleted the audience (100/33); its sync is stopped until it is re-created with `retarget audiences create --recreate-gone` or another id is configured",
		"app", app, "segment", segment, "audience_id", st.AudienceID, "error", err.Error())
	if perr := s.putState(ctx, st); perr != nil {
		return perr
	}
	return fmt.Errorf("%w: %s", errAudienceGone, st.AudienceID)
}

// errAudienceGone is AudienceReport.Stopped's reason for an audience Meta deleted.
var errAudienceGone = errors.New("audience deleted at Meta (100/33): re-create it with retarget audiences create --recreate-gone")

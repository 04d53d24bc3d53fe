package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
)

// The checks take plain observations and return problems, one line each, so that each can be
// shown to fail on a made-up observation (TestChecksReportProblems) without emulators.

// refUser is one user as the reference computes them from the accepted input.
type refUser struct {
	appUserID, userKey string
	events             int // accepted events folded
	state              *segments.State
	// segments at the start of the load and at the checks; when they differ a rule flipped
	// during the run and the user's segments are not compared.
	segsStart, segsEnd []string
}

// stable reports whether the user's segments stayed the same during the run.
func (r *refUser) stable() bool { return slices.Equal(r.segsStart, r.segsEnd) }

func (r *refUser) String() string {
	k := r.userKey
	if len(k) > 8 {
		k = k[:8]
	}
	return fmt.Sprintf("%s (key %s…)", r.appUserID, k)
}

// reference folds each user's accepted events, in event-time order, with package segments.
func reference(in *input, accepted map[string]bool, rules *segments.AppRules, start, end time.Time) []*refUser {
	var out []*refUser
	for _, u := range in.users {
		var evs []*envelope.Event
		for _, e := range u.events {
			if accepted[e.id()] {
				evs = append(evs, u.byID[e.id()])
			}
		}
		if len(evs) == 0 {
			continue
		}
		slices.SortFunc(evs, byEventTime)
		st := &segments.State{}
		for _, ev := range evs {
			st.Apply(ev, rules)
		}
		r := &refUser{appUserID: u.appUserID, userKey: u.userKey, events: len(evs), state: st}
		r.segsStart, _ = rules.Evaluate(st, start)
		r.segsEnd, _ = rules.Evaluate(st, end)
		out = append(out, r)
	}
	return out
}

// some lists at most n items, and how many more there are.
func some(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(", … (%d more)", len(items)-n)
}

// checkMeta: the events Meta accepted, deduplicated by event_id as Meta does, are exactly the
// events the API accepted minus the poison ones. owner names an event's user.
func checkMeta(apiAccepted []string, poison []string, metaAccepted map[string]int, owner func(id string) string) []string {
	isPoison := map[string]bool{}
	for _, id := range poison {
		isPoison[id] = true
	}
	want := map[string]bool{}
	for _, id := range apiAccepted {
		if !isPoison[id] {
			want[id] = true
		}
	}
	var missing, extra, poisonIn []string
	for id := range want {
		if metaAccepted[id] == 0 {
			missing = append(missing, id+" of "+owner(id))
		}
	}
	for id := range metaAccepted {
		switch {
		case isPoison[id]:
			poisonIn = append(poisonIn, id)
		case !want[id]:
			extra = append(extra, id)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(poisonIn)
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("Meta never accepted %d of the %d events the API accepted (lost): %s",
			len(missing), len(want), some(missing, 10)))
	}
	if len(poisonIn) > 0 {
		problems = append(problems, fmt.Sprintf("Meta accepted %d poison events it refuses: %s", len(poisonIn), some(poisonIn, 10)))
	}
	if len(extra) > 0 {
		problems = append(problems, fmt.Sprintf("Meta accepted %d events the API never accepted: %s", len(extra), some(extra, 10)))
	}
	return problems
}

// checkDeadLetters: every poison event is a dead letter with a reason and Meta's error, and
// no other event is.
func checkDeadLetters(poison []string, letters []ports.DeadLetter) []string {
	byID := map[string][]ports.DeadLetter{}
	for _, l := range letters {
		byID[l.EventID] = append(byID[l.EventID], l)
	}
	var problems []string
	for _, id := range poison {
		ls := byID[id]
		if len(ls) == 0 {
			problems = append(problems, fmt.Sprintf("poison event %s is not in the dead letters", id))
			continue
		}
		for _, l := range ls {
			if l.Reason == "" || l.Meta == nil || l.Meta.Code == 0 || len(l.Record) == 0 {
				problems = append(problems, fmt.Sprintf("dead letter of poison event %s lacks its reason, Meta's error or the record: reason %q, meta %+v, %d record bytes",
					id, l.Reason, l.Meta, len(l.Record)))
			}
		}
		delete(byID, id)
	}
	var others []string
	for id, ls := range byID {
		others = append(others, fmt.Sprintf("%s (%s: %s)", id, ls[0].Reason, ls[0].Detail))
	}
	sort.Strings(others)
	if len(others) > 0 {
		problems = append(problems, fmt.Sprintf("%d events that are not poison were dead-lettered: %s", len(others), some(others, 5)))
	}
	return problems
}

// stateFields names the stored state's JSON keys for the messages.
var stateFields = map[string]string{
	"fs": "first_seen", "ls": "last_seen", "pf": "platform", "last": "latest time per event",
	"daily": "daily counts", "ltv": "lifetime value (micros)", "ltv_other": "unconverted value (micros)",
	"buys": "purchases", "sub": "subscription", "consent": "consent", "em": "email", "ph": "phone",
	"xid": "external_id", "madid": "madid",
}

// stateDiff lists the fields of got that differ from want.
func stateDiff(got, want *segments.State) []string {
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if bytes.Equal(gj, wj) {
		return nil
	}
	var gm, wm map[string]json.RawMessage
	json.Unmarshal(gj, &gm)
	json.Unmarshal(wj, &wm)
	keys := map[string]bool{}
	for k := range gm {
		keys[k] = true
	}
	for k := range wm {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(keysOf(keys)) {
		if !bytes.Equal(gm[k], wm[k]) {
			name := stateFields[k]
			if name == "" {
				name = k
			}
			out = append(out, fmt.Sprintf("%s stored %s, reference %s", name, orNone(gm[k]), orNone(wm[k])))
		}
	}
	return out
}

func orNone(b json.RawMessage) string {
	if len(b) == 0 {
		return "(none)"
	}
	return string(b)
}

// checkStates: every user's stored state equals the reference fold (counters, lifetime value,
// times, identifiers, consent), and the stored segments equal the rules applied to it.
func checkStates(refs []*refUser, stored map[string]ports.UserRecord) []string {
	var problems []string
	for _, r := range refs {
		rec, ok := stored[r.userKey]
		if !ok {
			problems = append(problems, fmt.Sprintf("user %s: no state in DynamoDB for %d accepted events", r, r.events))
			continue
		}
		var got segments.State
		if err := json.Unmarshal(rec.State, &got); err != nil {
			problems = append(problems, fmt.Sprintf("user %s: stored state does not decode: %v", r, err))
			continue
		}
		// Cohorts carry join times, which depend on how the stream batched the events (a join is
		// stamped with its batch's latest event time): checkCohorts checks what is certain.
		got.Cohorts = nil
		if d := stateDiff(&got, r.state); len(d) > 0 {
			problems = append(problems, fmt.Sprintf("user %s (%d accepted events): %s", r, r.events, strings.Join(d, "; ")))
		}
		// The store keeps segments as a set (sorted); the rules list them in config order.
		if r.stable() && !slices.Equal(sortedCopy(rec.Segments), sortedCopy(r.segsEnd)) {
			problems = append(problems, fmt.Sprintf("user %s: stored segments %v, reference %v", r, rec.Segments, r.segsEnd))
		}
	}
	return problems
}

// checkCohorts: every stored cohort is of a segment with an audience, in the arm the holdout
// assignment gives the user, joined no earlier than the user's first event; and every user whose
// final segments include a segment with an audience is followed in a cohort of it (they joined
// it through the pipeline, within the last 28 days).
func checkCohorts(aa *audiences.AppAudiences, refs []*refUser, stored map[string]ports.UserRecord) []string {
	var problems []string
	for _, r := range refs {
		rec, ok := stored[r.userKey]
		if !ok {
			continue // checkStates reports it
		}
		var got segments.State
		if err := json.Unmarshal(rec.State, &got); err != nil {
			continue // checkStates reports it
		}
		followed := map[string]bool{}
		for _, c := range got.Cohorts {
			followed[c.Segment] = true
			a, measured := aa.Audience(c.Segment)
			switch {
			case !measured || a.Base() != c.Segment:
				problems = append(problems, fmt.Sprintf("user %s: a cohort of %s, which has no audience", r, c.Segment))
			case c.Arm != aa.Assigner(c.Segment).Arm(r.userKey):
				problems = append(problems, fmt.Sprintf("user %s: cohort of %s in arm %s, the assignment says %s", r, c.Segment, c.Arm, aa.Assigner(c.Segment).Arm(r.userKey)))
			case c.JoinedAt < r.state.FirstSeen:
				problems = append(problems, fmt.Sprintf("user %s: cohort of %s joined at %d, before the first event (%d)", r, c.Segment, c.JoinedAt, r.state.FirstSeen))
			}
		}
		if !r.stable() {
			continue
		}
		for _, seg := range r.segsEnd {
			if _, measured := aa.Audience(seg); measured && !followed[seg] {
				problems = append(problems, fmt.Sprintf("user %s: in %s (which has an audience) but in no cohort of it", r, seg))
			}
		}
	}
	return problems
}

// checkAudiences: in every audience of the sandbox, exactly the users whose segments map to it
// (exclusive groups applied) and whom Meta can match. members holds each audience's member keys
// (EXTERN_ID) by segment. explain, when set, adds what the stores remember of a mismatch.
func checkAudiences(aa *audiences.AppAudiences, refs []*refUser, members map[string]map[string]bool, explain func(userKey, segment string) string) []string {
	var problems []string
	known := map[string]bool{}
	unstable := 0
	for _, r := range refs {
		known[r.userKey] = true
		if !r.stable() {
			unstable++
			continue
		}
		// The audience of each desired segment the user's holdout arm picks (treated or holdout).
		desired := aa.Desired(r.segsEnd)
		for i, seg := range desired {
			desired[i] = aa.KeyFor(r.userKey, seg)
		}
		for _, a := range aa.Audiences() {
			_, matchable := a.Row(r.userKey, r.state)
			want := slices.Contains(desired, a.Segment()) && matchable
			got := members[a.Segment()][r.userKey]
			if want == got {
				continue
			}
			msg := fmt.Sprintf("user %s is not in audience %q, but is in segments %v", r, a.Segment(), r.segsEnd)
			if got {
				msg = fmt.Sprintf("user %s is in audience %q, but is in segments %v (audiences wanted: %v)", r, a.Segment(), r.segsEnd, desired)
			}
			if explain != nil {
				msg += "; " + explain(r.userKey, a.Segment())
			}
			problems = append(problems, msg)
		}
	}
	for seg, ms := range members {
		for uk := range ms {
			if !known[uk] {
				problems = append(problems, fmt.Sprintf("audience %q holds member %q, no user of the input", seg, uk))
			}
		}
	}
	if unstable > len(refs)/10 {
		problems = append(problems, fmt.Sprintf("%d of %d users changed segments during the run and were not compared: the input's ages no longer avoid the rules' boundaries", unstable, len(refs)))
	}
	return problems
}

// pendingView is what is left over at the end, by mapped segment.
type pendingView struct {
	changes  map[string][]ports.PendingChange
	states   map[string]ports.AudienceSyncState
	sessions map[string][]metasandbox.AudienceSession // by segment
	infos    []metasandbox.AudienceInfo
}

// checkNothingPending: no membership change waits, no upload session is left open (in the
// sync's checkpoints or at Meta), no replace runs.
func checkNothingPending(v pendingView, owner func(userKey string) string) []string {
	var problems []string
	for _, seg := range slices.Sorted(keysOf(v.changes)) {
		cs := v.changes[seg]
		if len(cs) == 0 {
			continue
		}
		var list []string
		for _, c := range cs {
			verb := "left"
			if c.Joined {
				verb = "joined"
			}
			list = append(list, fmt.Sprintf("%s %s at %s", owner(c.UserKey), verb, time.UnixMilli(c.At).UTC().Format(time.RFC3339)))
		}
		problems = append(problems, fmt.Sprintf("segment %q: %d membership changes still pending: %s", seg, len(cs), some(list, 5)))
	}
	for _, seg := range slices.Sorted(keysOf(v.states)) {
		st := v.states[seg]
		if st.SessionID != 0 {
			problems = append(problems, fmt.Sprintf("audience %q: the sync's checkpoint still holds %s session %d (%d batches done)", seg, st.Op, st.SessionID, st.BatchesDone))
		}
	}
	for _, seg := range slices.Sorted(keysOf(v.sessions)) {
		for _, s := range v.sessions[seg] {
			if !s.Finished && !s.TimedOut {
				problems = append(problems, fmt.Sprintf("audience %q: %s session %d at Meta left open after batch %d (%d rows received)",
					seg, s.Operation, s.SessionID, s.LastBatchSeq, s.NumReceived))
			}
		}
	}
	for _, info := range v.infos {
		if info.ReplaceInProgress {
			problems = append(problems, fmt.Sprintf("audience %s (%q): a replace session is open at Meta", info.ID, info.Name))
		}
	}
	return problems
}

// checkStream: a mapping has handled every record of every shard (its checkpoint is the
// shard's last sequence number), holds nothing, and gave nothing up.
func checkStream(mapping string, last map[string]string, stats streampoller.Stats, gaveUp map[string]int) []string {
	var problems []string
	for _, shard := range slices.Sorted(keysOf(last)) {
		st, ok := stats.Shards[shard]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: shard %s (last record %s) was never read", mapping, shard, last[shard]))
		case st.Checkpoint != last[shard]:
			problems = append(problems, fmt.Sprintf("%s: shard %s checkpointed at %q, its last record is %s: records left unprocessed",
				mapping, shard, st.Checkpoint, last[shard]))
		case st.Buffered > 0:
			problems = append(problems, fmt.Sprintf("%s: shard %s still buffers %d records", mapping, shard, st.Buffered))
		}
	}
	if stats.RecordsToOnFailure > 0 {
		var what []string
		for k, n := range gaveUp {
			if strings.HasPrefix(k, mapping+":") {
				what = append(what, fmt.Sprintf("%s (%d records)", k, n))
			}
		}
		sort.Strings(what)
		problems = append(problems, fmt.Sprintf("%s: the mapping gave up on %d records: %s", mapping, stats.RecordsToOnFailure, some(what, 5)))
	}
	return problems
}

func keysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

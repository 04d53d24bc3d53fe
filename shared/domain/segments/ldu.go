package segments

import "github.com/retarget-dev/retarget/shared/domain/envelope"

// LDU is a Limited Data Use signal: on or off, at unix time At (0: never signalled).
//
// Meta's Limited Data Use covers customer-list Custom Audiences as well as the Conversions API
// (https://developers.facebook.com/docs/marketing-apis/data-processing-options; see
// /work/shared/reference/meta-api.md, "Corrections and additions (December 2026)"). How LDU is
// expressed on an audience's /users edge is not documented, so the audience sync leaves LDU
// users out of every upload (audiences.Audience.Row) and removes members whose LDU begins.
// The segments themselves do not change: they also answer GET /v1/me/segments.
type LDU struct {
	At int64 `json:"at"`
	On bool  `json:"on,omitempty"`
}

// observe keeps the latest signal; at the same second LDU on wins (privacy first), so the
// result does not depend on the order signals are folded in.
func (l *LDU) observe(o LDU) {
	if o.At == 0 {
		return
	}
	if o.At > l.At || o.At == l.At && o.On && !l.On {
		*l = o
	}
}

// observeLDU records the event's consent.ldu. An event that does not carry the flag is no
// signal either way: apps set Limited Data Use once for the user (the Facebook SDK's
// setDataProcessingOptions), so an event that omits it (a server-sent purchase, say) must not
// end it; only an explicit ldu false does.
func (s *State) observeLDU(ev *envelope.Event) {
	switch ev.Consent.LDU {
	case envelope.True:
		s.LDU.observe(LDU{At: ev.Time, On: true})
	case envelope.False:
		s.LDU.observe(LDU{At: ev.Time})
	}
}

// RecordLDUDecision folds the user's explicit Limited Data Use decision (the consent API's
// ldu), made at unix time at; the latest decision wins. It is kept apart from the events'
// signal: an explicit LDU on holds whatever later events say, and an explicit off only ends
// the decision, never an LDU the events ask for (as the Conversions API mapping restricts:
// capi.Restrict).
func (s *State) RecordLDUDecision(on bool, at int64) {
	s.LDUDecision.observe(LDU{At: at, On: on})
}

// LimitedDataUse reports whether the user is under Limited Data Use: their latest event that
// carried the flag said so, or their explicit decision does. A nil state is not.
func (s *State) LimitedDataUse() bool {
	return s != nil && (s.LDU.On || s.LDUDecision.On)
}

package audiences

import (
	"strconv"
	"strings"

	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// Row returns the cells of an add for the user, in Schema order:
//
//   - EXTERN_ID: userKey, the pseudonymous user key (stable per app, opaque, never hashed).
//     Meta keeps EXTERN_ID per ad account (for 90 days), so a later removal carrying the same
//     key matches the user even after their email, phone or advertising id changed.
//   - EMAIL, PHONE: the SHA-256 hex stored in the state. It was normalised and hashed at
//     ingest; it is sent as stored, never hashed again. "" when unknown.
//   - MADID: the advertising id, lowercased (hyphens kept, never hashed), only while tracking
//     is allowed: a state whose latest observation denied tracking gives "".
//   - LOOKALIKE_VALUE (value-based audiences): lifetime value in the reporting currency as a
//     decimal string ("250", "12.5"); negative sums (refunds) are sent as "0".
//
// ok is false, and the user is to be counted and skipped, when the row would match nobody: no
// EMAIL, PHONE or MADID cell in the audience's schema has a value. EXTERN_ID alone only
// matches users this ad account already received with that id, never on a first add. ok is
// also false without a user key, and when the user's latest consent signal is not a grant (the
// sync never asks then, since such users are in no segment; refusing here keeps a mistake from
// uploading them). ok is false as well for a user under Limited Data Use: see LeftOut.
func (a *Audience) Row(userKey string, st *segments.State) (row []string, ok bool) {
	if userKey == "" || st == nil || !st.Consented() || LeftOut(st) {
		return nil, false
	}
	row, matchable := a.cells(userKey, st)
	if !matchable {
		return nil, false
	}
	return row, true
}

// RemovalRow returns the cells of a removal, in Schema order, like Row but without the
// matchable and consent requirements: EXTERN_ID matches the user as added (within Meta's 90
// days), whatever their identifiers are now, and removals must work after a consent withdrawal
// or an erasure (st may be nil: EXTERN_ID alone, and "0" as value). The other identifiers are
// included because they still match when the EXTERN_ID has expired at Meta. ok is false only
// without a user key.
func (a *Audience) RemovalRow(userKey string, st *segments.State) (row []string, ok bool) {
	if userKey == "" {
		return nil, false
	}
	if st == nil {
		st = &segments.State{}
	}
	row, _ = a.cells(userKey, st)
	return row, true
}

// UserKey returns the user key of a row built by Row or RemovalRow (its EXTERN_ID cell; the
// configuration requires that column).
func (a *Audience) UserKey(row []string) string {
	for i, c := range a.cols {
		if c == colExternID && i < len(row) {
			return row[i]
		}
	}
	return ""
}

// cells builds the row and reports whether an identifier other than EXTERN_ID has a value.
func (a *Audience) cells(userKey string, st *segments.State) (row []string, matchable bool) {
	row = make([]string, len(a.cols))
	for i, c := range a.cols {
		switch c {
		case colExternID:
			row[i] = userKey
		case colEmail:
			if !st.Email.Hash.IsZero() {
				row[i] = st.Email.Hash.String() // lowercase hex, as stored: never hashed twice
			}
		case colPhone:
			if !st.Phone.Hash.IsZero() {
				row[i] = st.Phone.Hash.String()
			}
		case colMADID:
			row[i] = strings.ToLower(st.MADID.ID) // "" when never seen or tracking denied
		case colValue:
			row[i] = FormatValue(st.ValueMicros)
		}
		if c != colExternID && c != colValue && row[i] != "" {
			matchable = true
		}
	}
	return row, matchable
}

// FormatValue writes millionths of a currency unit as a plain decimal string without trailing
// zeros: 250_000_000 is "250", 12_500_000 is "12.5", 1 is "0.000001". Exact (no floating
// point). Values below zero are written as "0": a refund-heavy customer is worth nothing to
// a value-based audience, not less.
func FormatValue(micros int64) string {
	if micros <= 0 {
		return "0"
	}
	units, frac := micros/1_000_000, micros%1_000_000
	s := strconv.FormatInt(units, 10)
	if frac == 0 {
		return s
	}
	f := strconv.FormatInt(frac+1_000_000, 10)[1:] // six digits, leading zeros kept
	return s + "." + strings.TrimRight(f, "0")
}

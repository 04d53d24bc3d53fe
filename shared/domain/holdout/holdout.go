// Package holdout assigns users to the treated or the holdout arm of an audience: an HMAC-SHA256
// of the user's pseudonymous key, keyed by the app, the audience's segment and an optional salt,
// read as a number in [0, 1) and compared with the holdout fraction.
//
// The assignment depends on nothing else: not on when or how often the user joins, not on the
// sync, a full refresh, an exclusive group or the segment's rules. It is decided before any
// upload, so the comparison of the arms is intention-to-treat: every user assigned to an arm
// counts in it, reached by an ad or not. Arms of different audiences are independent.
package holdout

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// Arm is the side of an audience's experiment a user is on.
type Arm uint8

// Arms. Treated users are uploaded to the audience; holdout users to the holdout audience,
// which every ad set excludes.
const (
	Treated Arm = iota
	Holdout
)

// String returns "treated" or "holdout".
func (a Arm) String() string {
	if a == Holdout {
		return "holdout"
	}
	return "treated"
}

// Arms lists both arms in report order.
var Arms = [2]Arm{Treated, Holdout}

// Assigner assigns users to the arms of one audience. The zero value (fraction 0) assigns
// everyone to Treated.
type Assigner struct {
	key      []byte
	fraction float64
}

// New returns the assigner of the audience of segment in app, with a holdout of fraction
// (0..1) and salt ("" for none).
func New(app, segment, salt string, fraction float64) Assigner {
	return Assigner{key: []byte("retarget/holdout/v1\x00" + app + "\x00" + segment + "\x00" + salt), fraction: fraction}
}

// Fraction is the holdout fraction.
func (a Assigner) Fraction() float64 { return a.fraction }

// Enabled reports whether the audience has a holdout.
func (a Assigner) Enabled() bool { return a.fraction > 0 }

// Arm returns the arm of the user with pseudonymous key userKey.
func (a Assigner) Arm(userKey string) Arm {
	if a.fraction <= 0 {
		return Treated
	}
	if a.Point(userKey) < a.fraction {
		return Holdout
	}
	return Treated
}

// Point is the user's uniform point in [0, 1): the first 53 bits of the HMAC.
func (a Assigner) Point(userKey string) float64 {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(userKey))
	sum := m.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// Package storecheck holds the input validation and the change sort key shared by the two
// segment stores: dynamostate (DynamoDB) and memstate (its in-memory fake). Both must refuse
// exactly the same input and key changes the same way, so that the statetest contract suite
// holds for both and cursors are interchangeable; keeping one copy here means a rule or key
// format cannot drift between them.
package storecheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/retarget-dev/retarget/shared/ports"
)

const (
	// AtDigits is the width of the unix-millisecond prefix of a change's sort key: 13 digits
	// reach the year 2286.
	AtDigits = 13
	// MaxAt is the largest change time (unix ms) that fits in AtDigits digits.
	MaxAt = 9_999_999_999_999
)

// ErrInvalid marks rejected input; the messages say what is wrong.
var ErrInvalid = errors.New("invalid input")

// Name rejects an empty app or segment name, or one with '#', which separates key parts. kind
// ("app", "segment") names it in the error.
func Name(kind, name string) error {
	if name == "" || strings.Contains(name, "#") {
		return fmt.Errorf("%w: %s %q must be non-empty and without '#'", ErrInvalid, kind, name)
	}
	return nil
}

// User rejects an invalid app name or an empty user key.
func User(app, userKey string) error {
	if err := Name("app", app); err != nil {
		return err
	}
	if userKey == "" {
		return fmt.Errorf("%w: empty user key", ErrInvalid)
	}
	return nil
}

// Record rejects a user record that cannot be stored: an invalid app or user key, a version
// below 1, a negative DueAt or ExpiresAt, or an empty string in Segments or RecentIDs
// (DynamoDB sets cannot hold empty strings).
func Record(rec ports.UserRecord) error {
	if err := User(rec.App, rec.UserKey); err != nil {
		return err
	}
	if rec.Version < 1 {
		return fmt.Errorf("%w: version %d, want >= 1", ErrInvalid, rec.Version)
	}
	if rec.DueAt < 0 || rec.ExpiresAt < 0 {
		return fmt.Errorf("%w: negative DueAt or ExpiresAt", ErrInvalid)
	}
	for _, set := range [][]string{rec.Segments, rec.RecentIDs} {
		if slices.Contains(set, "") {
			return fmt.Errorf("%w: empty string in Segments or RecentIDs", ErrInvalid)
		}
	}
	return nil
}

// Change rejects a membership change with an invalid app or segment name, an empty user key,
// or a time outside 0..MaxAt.
func Change(c ports.MembershipChange) error {
	if err := Name("app", c.App); err != nil {
		return err
	}
	if err := Name("segment", c.Segment); err != nil {
		return err
	}
	if c.UserKey == "" {
		return fmt.Errorf("%w: change with an empty user key", ErrInvalid)
	}
	if c.At < 0 || c.At > MaxAt {
		return fmt.Errorf("%w: change time %d ms outside 0..%d", ErrInvalid, c.At, int64(MaxAt))
	}
	return nil
}

// ChangeSK is the sort key of a change and the Cursor of a PendingChange:
// <At, AtDigits digits>#<userKey>#<j|l>. String order is time order, then user key.
func ChangeSK(c ports.MembershipChange) string {
	dir := "l"
	if c.Joined {
		dir = "j"
	}
	return fmt.Sprintf("%0*d#%s#%s", AtDigits, c.At, c.UserKey, dir)
}

// ValidChangeSK reports whether s has the shape of a change sort key (a PendingChanges
// cursor). The user key in the middle may itself contain '#'.
func ValidChangeSK(s string) bool {
	if len(s) < AtDigits+4 || s[AtDigits] != '#' || s[len(s)-2] != '#' {
		return false
	}
	if d := s[len(s)-1]; d != 'j' && d != 'l' {
		return false
	}
	for _, r := range s[:AtDigits] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Holder rejects an invalid app name or an empty lease holder.
func Holder(app, holder string) error {
	if err := Name("app", app); err != nil {
		return err
	}
	if holder == "" {
		return fmt.Errorf("%w: empty lease holder", ErrInvalid)
	}
	return nil
}

// AudienceState rejects an audience sync state with an invalid app or segment name or a
// version below 1.
func AudienceState(st ports.AudienceSyncState) error {
	if err := Name("app", st.App); err != nil {
		return err
	}
	if err := Name("segment", st.Segment); err != nil {
		return err
	}
	if st.Version < 1 {
		return fmt.Errorf("%w: version %d, want >= 1", ErrInvalid, st.Version)
	}
	return nil
}

// Members rejects a member index update with an invalid app or segment name, an empty user
// key, or a key both added and removed.
func Members(app, segment string, added, removed []string) error {
	if err := Name("app", app); err != nil {
		return err
	}
	if err := Name("segment", segment); err != nil {
		return err
	}
	in := make(map[string]bool, len(added))
	for _, k := range added {
		if k == "" {
			return fmt.Errorf("%w: empty user key", ErrInvalid)
		}
		in[k] = true
	}
	for _, k := range removed {
		if k == "" {
			return fmt.Errorf("%w: empty user key", ErrInvalid)
		}
		if in[k] {
			return fmt.Errorf("%w: user key %q both added and removed", ErrInvalid, k)
		}
	}
	return nil
}

// MemberPage rejects a member index read with an invalid app or segment name or a limit
// below 1.
func MemberPage(app, segment string, limit int) error {
	if err := Name("app", app); err != nil {
		return err
	}
	if err := Name("segment", segment); err != nil {
		return err
	}
	if limit <= 0 {
		return fmt.Errorf("%w: limit %d", ErrInvalid, limit)
	}
	return nil
}

// Consent rejects a consent decision with an invalid app, an empty user key or no time.
func Consent(c ports.UserConsent) error {
	if err := User(c.App, c.UserKey); err != nil {
		return err
	}
	if c.At <= 0 {
		return fmt.Errorf("%w: consent without a time", ErrInvalid)
	}
	return nil
}

// Erasure rejects an audit record with an invalid app, an empty id or user key, an id with
// '#', or no request time.
func Erasure(r ports.ErasureRecord) error {
	if err := User(r.App, r.UserKey); err != nil {
		return err
	}
	if err := Name("erasure id", r.ID); err != nil {
		return err
	}
	if r.RequestedAt <= 0 || r.ExpiresAt < 0 || slices.Contains(r.Audiences, "") {
		return fmt.Errorf("%w: erasure %s needs a request time, a non-negative expiry and no empty audience", ErrInvalid, r.ID)
	}
	return nil
}

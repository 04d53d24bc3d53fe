package storecheck

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DueCursor is a DueUsers position, the last user returned, written "<dueAt>#<userKey>". Both
// stores page with it, so a cursor means the same in either.
type DueCursor struct {
	DueAt   int64
	UserKey string
}

// String writes the cursor.
func (c DueCursor) String() string { return strconv.FormatInt(c.DueAt, 10) + "#" + c.UserKey }

// Compare orders positions by due time, then user key.
func (c DueCursor) Compare(o DueCursor) int {
	return cmp.Or(cmp.Compare(c.DueAt, o.DueAt), strings.Compare(c.UserKey, o.UserKey))
}

// ParseDueCursor reads a cursor written by String.
func ParseDueCursor(s string) (DueCursor, error) {
	at, uk, ok := strings.Cut(s, "#")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || n <= 0 || uk == "" {
		return DueCursor{}, fmt.Errorf("invalid due cursor %q", s)
	}
	return DueCursor{DueAt: n, UserKey: uk}, nil
}

// DueWindow is the range of DueAt values (unix seconds, inclusive) that DueUsers lists: the
// whole seconds within [until-lookback, until].
func DueWindow(until time.Time, lookback time.Duration) (from, to int64) {
	to = until.Unix()
	f := until.Add(-lookback)
	from = f.Unix()
	if f.Nanosecond() > 0 {
		from++
	}
	return max(from, 1), to
}

// UserKeys lists the user keys of positions.
func UserKeys(found []DueCursor) []string {
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.UserKey
	}
	return out
}

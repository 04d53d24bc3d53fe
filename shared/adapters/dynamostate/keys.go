package dynamostate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Table layout: the CDK stack declares the same names. Keys and index keys are strings except
// dueAt; timestamps inside sort keys are fixed width so that string order is time order.
const (
	// PartitionKey and SortKey are the table's key attributes (both S).
	PartitionKey = "pk"
	SortKey      = "sk"
	// TTLAttribute holds the unix second after which DynamoDB may delete the item.
	TTLAttribute = "expiresAt"
	// PendingIndex lists the changes not yet synced: partition pendingPk (S), sort sk (S),
	// projection ALL. Sparse: MarkSynced removes pendingPk.
	PendingIndex = "pending"
	// DueIndex lists users by their next due time: partition dueBucket (S), sort dueAt (N),
	// projection KEYS_ONLY. Sparse: only users with a DueAt carry dueBucket.
	DueIndex = "due"
)

// Attribute names. Short, because every byte of a name is billed on every write.
const (
	attrPK        = PartitionKey
	attrSK        = SortKey
	attrExpiresAt = TTLAttribute
	// User items.
	attrState     = "st"
	attrSegments  = "segs"
	attrLastSeq   = "seq"
	attrRecentIDs = "ids"
	attrVersion   = "ver"
	attrDueAt     = "dueAt"
	attrDueBucket = "dueBucket"
	// Change items.
	attrUserKey   = "uk"
	attrJoined    = "joined"
	attrAt        = "at"
	attrPendingPK = "pendingPk"
)

const (
	userSK = "state"
	// atDigits is the width of the unix-millisecond prefix of a change's sort key: 13 digits
	// reach the year 2286.
	atDigits = 13
	maxAt    = 9_999_999_999_999
	// bucketLayout formats a due bucket's hour (UTC).
	bucketLayout = "2006010215"
)

func userPK(app, userKey string) string { return "user#" + app + "#" + userKey }

func changePK(app, segment string) string { return "chg#" + app + "#" + segment }

func pendingPK(app, segment string) string { return app + "#" + segment }

// changeSK is the sort key of a change and the Cursor of a PendingChange:
// <At, 13 digits>#<userKey>#<j|l>.
func changeSK(c ports.MembershipChange) string {
	dir := "l"
	if c.Joined {
		dir = "j"
	}
	return fmt.Sprintf("%0*d#%s#%s", atDigits, c.At, c.UserKey, dir)
}

// validChangeSK reports whether s has the shape of a change sort key (a PendingChanges
// cursor). The user key in the middle may itself contain '#'.
func validChangeSK(s string) bool {
	if len(s) < atDigits+4 || s[atDigits] != '#' || s[len(s)-2] != '#' {
		return false
	}
	if d := s[len(s)-1]; d != 'j' && d != 'l' {
		return false
	}
	for _, r := range s[:atDigits] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// dueBucket is the due index partition of a DueAt: <app>#<yyyymmddhh> in UTC.
func dueBucket(app string, dueAt int64) string {
	return app + "#" + time.Unix(dueAt, 0).UTC().Format(bucketLayout)
}

// hourOf is the start of the hour (unix seconds) holding t (unix seconds).
func hourOf(t int64) int64 {
	h := t - t%3600
	if t < 0 && t%3600 != 0 {
		h -= 3600
	}
	return h
}

// dueCursor is a DueUsers position: the last user returned, as <dueAt>#<userKey>. The bucket
// follows from dueAt.
type dueCursor struct {
	dueAt   int64
	userKey string
}

func (c dueCursor) String() string { return strconv.FormatInt(c.dueAt, 10) + "#" + c.userKey }

func parseDueCursor(s string) (dueCursor, error) {
	at, uk, ok := strings.Cut(s, "#")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || n <= 0 || uk == "" {
		return dueCursor{}, fmt.Errorf("invalid due cursor %q", s)
	}
	return dueCursor{dueAt: n, userKey: uk}, nil
}

// errInvalid marks rejected input; the messages say what is wrong.
var errInvalid = errors.New("invalid input")

// checkName rejects an empty app or segment name, or one with '#', which separates key parts.
func checkName(kind, name string) error {
	if name == "" || strings.Contains(name, "#") {
		return fmt.Errorf("%w: %s %q must be non-empty and without '#'", errInvalid, kind, name)
	}
	return nil
}

func checkUser(app, userKey string) error {
	if err := checkName("app", app); err != nil {
		return err
	}
	if userKey == "" {
		return fmt.Errorf("%w: empty user key", errInvalid)
	}
	return nil
}

func checkRecord(rec ports.UserRecord) error {
	if err := checkUser(rec.App, rec.UserKey); err != nil {
		return err
	}
	if rec.Version < 1 {
		return fmt.Errorf("%w: version %d, want >= 1", errInvalid, rec.Version)
	}
	if rec.DueAt < 0 || rec.ExpiresAt < 0 {
		return fmt.Errorf("%w: negative DueAt or ExpiresAt", errInvalid)
	}
	for _, set := range [][]string{rec.Segments, rec.RecentIDs} {
		for _, v := range set {
			if v == "" { // DynamoDB sets cannot hold empty strings
				return fmt.Errorf("%w: empty string in Segments or RecentIDs", errInvalid)
			}
		}
	}
	return nil
}

func checkChange(c ports.MembershipChange) error {
	if err := checkName("app", c.App); err != nil {
		return err
	}
	if err := checkName("segment", c.Segment); err != nil {
		return err
	}
	if c.UserKey == "" {
		return fmt.Errorf("%w: change with an empty user key", errInvalid)
	}
	if c.At < 0 || c.At > maxAt {
		return fmt.Errorf("%w: change time %d ms outside 0..%d", errInvalid, c.At, int64(maxAt))
	}
	return nil
}

// maxQueryLimit caps the Limit of one Query call (DynamoDB stops at 1 MB per call anyway);
// queries read one item more than the caller's limit, and a larger limit takes several calls.
const maxQueryLimit = 1 << 20

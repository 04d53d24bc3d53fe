package dynamostate

import (
	"time"
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
	// UnpublishedIndex lists the changes not yet published on the event bus: partition
	// unpubPk (S, the app), sort sk (S), projection ALL. Sparse: MarkPublished removes unpubPk.
	UnpublishedIndex = "unpublished"
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
	// attrStateVersion and attrRecordedAt: see ports.MembershipChange.
	attrStateVersion = "sver"
	attrRecordedAt   = "recAt"
	// attrChangeReason and attrAppUserID: see ports.MembershipChange; attrUnpubPK keys the
	// unpublished index (publish.go).
	attrChangeReason = "why"
	attrAppUserID    = "auid"
	attrUnpubPK      = "unpubPk"
	// Cool-down items (publish.go).
	attrLastDelivery = "lastAt"
)

const (
	userSK = "state"
	// bucketLayout formats a due bucket's hour (UTC).
	bucketLayout = "2006010215"
)

func userPK(app, userKey string) string { return "user#" + app + "#" + userKey }

func changePK(app, segment string) string { return "chg#" + app + "#" + segment }

func pendingPK(app, segment string) string { return app + "#" + segment }

// unpubPK is the unpublished index partition of a change: the app, so one query per app reads
// every segment's unpublished changes in time order.
func unpubPK(app string) string { return app }

// cooldownSK is the sort key of a user's cool-down item, beside their state item.
const cooldownSK = "cool"

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

// maxQueryLimit caps the Limit of one Query call (DynamoDB stops at 1 MB per call anyway);
// queries read one item more than the caller's limit, and a larger limit takes several calls.
const maxQueryLimit = 1 << 20

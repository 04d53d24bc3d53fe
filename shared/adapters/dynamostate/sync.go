package dynamostate

// Audience sync items, in the same table as the segment items:
//
//	lease item     pk=sync#<app>  sk=lease
//	               holder(S) until(N, unix ms)
//	audience item  pk=sync#<app>  sk=aud#<segment>
//	               aid(S) size(N) lastSync(N) sess(N) op(S) batches(N) plan(S) sessAt(N)
//	               refreshAt(N) refCur(S) refRows(N) refExcl(N)
//	               rmHeld(N) rmErr(S) rmRefusals(N) rmSkip(N) goneID(S) goneAt(N) ver(N)
//	member item    pk=mem#<app>#<segment>  sk=<user key>
//	               (no other attribute: the key is the whole fact)
//
// Zero values are omitted, as for user items.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.AudienceSyncStore = (*Store)(nil)

// Attribute names of the audience sync items.
const (
	// Lease item.
	attrHolder = "holder"
	attrUntil  = "until"
	// Audience item (and attrVersion).
	attrAudienceID  = "aid"
	attrSize        = "size"
	attrLastSyncAt  = "lastSync"
	attrSessionID   = "sess"
	attrOp          = "op"
	attrBatchesDone = "batches"
	attrPlan        = "plan"
	attrSessionAt   = "sessAt"
	attrRefreshAt   = "refreshAt"
	attrRefCursor   = "refCur"
	attrRefRows     = "refRows"
	attrRefExcluded = "refExcl"
	attrRmHeld      = "rmHeld"
	attrRmError     = "rmErr"
	attrRmRefusals  = "rmRefusals"
	attrRmSkip      = "rmSkip"
	attrGoneID      = "goneID"
	attrGoneAt      = "goneAt"
)

const leaseSK = "lease"

func syncPK(app string) string { return "sync#" + app }

func audienceSK(segment string) string { return "aud#" + segment }

func memberPK(app, segment string) string { return "mem#" + app + "#" + segment }

// AcquireLease writes the lease item if it is absent, expired at now, or already holder's.
// Times are kept in unix milliseconds.
func (s *Store) AcquireLease(ctx context.Context, app, holder string, now, until time.Time) (bool, error) {
	if err := storecheck.Holder(app, holder); err != nil {
		return false, fmt.Errorf("acquire lease: %w", err)
	}
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{
			attrPK:     str(syncPK(app)),
			attrSK:     str(leaseSK),
			attrHolder: str(holder),
			attrUntil:  num(until.UnixMilli()),
		},
		ConditionExpression:      aws.String("attribute_not_exists(" + attrPK + ") OR #until < :now OR #holder = :holder"),
		ExpressionAttributeNames: map[string]string{"#until": attrUntil, "#holder": attrHolder},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now":    num(now.UnixMilli()),
			":holder": str(holder),
		},
	})
	if err != nil {
		var failed *types.ConditionalCheckFailedException
		if errors.As(err, &failed) {
			return false, nil
		}
		return false, fmt.Errorf("acquire lease %s for %s: %w", app, holder, err)
	}
	return true, nil
}

// ReleaseLease deletes the lease item if holder has it; otherwise it does nothing.
func (s *Store) ReleaseLease(ctx context.Context, app, holder string) error {
	if err := storecheck.Holder(app, holder); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(syncPK(app), leaseSK),
		ConditionExpression:       aws.String("#holder = :holder"),
		ExpressionAttributeNames:  map[string]string{"#holder": attrHolder},
		ExpressionAttributeValues: map[string]types.AttributeValue{":holder": str(holder)},
	})
	if err != nil {
		var failed *types.ConditionalCheckFailedException
		if errors.As(err, &failed) {
			return nil
		}
		return fmt.Errorf("release lease %s for %s: %w", app, holder, err)
	}
	return nil
}

// GetAudienceState reads an audience item with a strongly consistent read.
func (s *Store) GetAudienceState(ctx context.Context, app, segment string) (ports.AudienceSyncState, bool, error) {
	if err := storecheck.Name("app", app); err != nil {
		return ports.AudienceSyncState{}, false, fmt.Errorf("get audience state: %w", err)
	}
	if err := storecheck.Name("segment", segment); err != nil {
		return ports.AudienceSyncState{}, false, fmt.Errorf("get audience state: %w", err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(syncPK(app), audienceSK(segment)),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return ports.AudienceSyncState{}, false, fmt.Errorf("get audience state %s/%s: %w", app, segment, err)
	}
	if out.Item == nil {
		return ports.AudienceSyncState{}, false, nil
	}
	st, err := parseAudienceState(app, segment, out.Item)
	if err != nil {
		return ports.AudienceSyncState{}, false, fmt.Errorf("get audience state %s/%s: %w", app, segment, err)
	}
	return st, true, nil
}

// PutAudienceState replaces the audience item if its version is st.Version-1 (absent for
// version 1). A failed condition is ports.ErrVersionConflict.
func (s *Store) PutAudienceState(ctx context.Context, st ports.AudienceSyncState) error {
	if err := storecheck.AudienceState(st); err != nil {
		return fmt.Errorf("put audience state: %w", err)
	}
	if err := s.putVersioned(ctx, audienceItem(st), st.Version); err != nil {
		return fmt.Errorf("put audience state %s/%s version %d: %w", st.App, st.Segment, st.Version, err)
	}
	return nil
}

// audienceItem is the item PutAudienceState writes.
func audienceItem(st ports.AudienceSyncState) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrPK:      str(syncPK(st.App)),
		attrSK:      str(audienceSK(st.Segment)),
		attrVersion: num(st.Version),
	}
	for name, v := range map[string]string{attrAudienceID: st.AudienceID, attrOp: st.Op, attrPlan: st.Plan, attrRefCursor: st.RefreshCursor,
		attrRmError: st.RemovalError, attrGoneID: st.GoneID} {
		if v != "" {
			item[name] = str(v)
		}
	}
	for name, v := range map[string]int64{
		attrSize: st.Size, attrLastSyncAt: st.LastSyncAt, attrSessionID: st.SessionID,
		attrBatchesDone: int64(st.BatchesDone), attrSessionAt: st.SessionStartedAt,
		attrRefreshAt: st.LastRefreshAt, attrRefRows: st.RefreshRows, attrRefExcluded: st.RefreshExcluded,
		attrRmHeld: st.RemovalsHeld, attrRmRefusals: st.RemovalRefusals, attrRmSkip: st.RemovalSkipRuns, attrGoneAt: st.GoneAt,
	} {
		if v != 0 {
			item[name] = num(v)
		}
	}
	return item
}

func parseAudienceState(app, segment string, item map[string]types.AttributeValue) (ports.AudienceSyncState, error) {
	st := ports.AudienceSyncState{App: app, Segment: segment}
	var batches int64
	for _, f := range []struct {
		name string
		dst  *int64
	}{
		{attrVersion, &st.Version}, {attrSize, &st.Size}, {attrLastSyncAt, &st.LastSyncAt},
		{attrSessionID, &st.SessionID}, {attrBatchesDone, &batches}, {attrSessionAt, &st.SessionStartedAt},
		{attrRefreshAt, &st.LastRefreshAt}, {attrRefRows, &st.RefreshRows}, {attrRefExcluded, &st.RefreshExcluded},
		{attrRmHeld, &st.RemovalsHeld}, {attrRmRefusals, &st.RemovalRefusals}, {attrRmSkip, &st.RemovalSkipRuns}, {attrGoneAt, &st.GoneAt},
	} {
		n, err := getNum(item, f.name)
		if err != nil {
			return st, err
		}
		*f.dst = n
	}
	if st.Version == 0 {
		return st, fmt.Errorf("item has no %s", attrVersion)
	}
	st.BatchesDone = int(batches)
	for _, f := range []struct {
		name string
		dst  *string
	}{{attrAudienceID, &st.AudienceID}, {attrOp, &st.Op}, {attrPlan, &st.Plan}, {attrRefCursor, &st.RefreshCursor},
		{attrRmError, &st.RemovalError}, {attrGoneID, &st.GoneID}} {
		if v, ok := item[f.name]; ok {
			sv, ok := v.(*types.AttributeValueMemberS)
			if !ok {
				return st, fmt.Errorf("attribute %s is %T, want S", f.name, v)
			}
			*f.dst = sv.Value
		}
	}
	return st, nil
}

// SetMembers puts a member item per added key and deletes the item of each removed key, with
// BatchWriteItem (25 per call, SyncConcurrency calls at a time, unprocessed items retried).
// Puts and deletes are idempotent, so a retried batch writes the same index.
func (s *Store) SetMembers(ctx context.Context, app, segment string, added, removed []string) error {
	if err := storecheck.Members(app, segment, added, removed); err != nil {
		return fmt.Errorf("set members: %w", err)
	}
	pk := memberPK(app, segment)
	seen := make(map[string]bool, len(added)+len(removed))
	reqs := make([]types.WriteRequest, 0, len(added)+len(removed))
	for _, k := range added {
		if !seen[k] { // one call must not name a key twice
			seen[k] = true
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: key(pk, k)}})
		}
	}
	for _, k := range removed {
		if !seen[k] {
			seen[k] = true
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(pk, k)}})
		}
	}
	if err := s.batchWriteAll(ctx, reqs); err != nil {
		return fmt.Errorf("set members of %s/%s: %w", app, segment, err)
	}
	return nil
}

// Members queries the member partition of one audience in sort key (user key) order, after
// the cursor, reading one key more than limit so that next is "" exactly when none follows.
// Strongly consistent: a refresh may follow the additions of the same run. Member items are
// ~80 bytes, so one read unit covers ~50 keys.
func (s *Store) Members(ctx context.Context, app, segment, after string, limit int) ([]string, string, error) {
	if err := storecheck.MemberPage(app, segment, limit); err != nil {
		return nil, "", fmt.Errorf("members: %w", err)
	}
	pk := memberPK(app, segment)
	var start map[string]types.AttributeValue
	if after != "" {
		start = key(pk, after)
	}
	var out []string
	for {
		res, err := s.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("#pk = :pk"),
			ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
			ExclusiveStartKey:         start,
			ConsistentRead:            aws.Bool(true),
			Limit:                     aws.Int32(int32(min(limit-len(out), maxQueryLimit-1) + 1)),
		})
		if err != nil {
			return nil, "", fmt.Errorf("members of %s/%s: %w", app, segment, err)
		}
		for _, item := range res.Items {
			k, err := getStr(item, attrSK)
			if err != nil {
				return nil, "", fmt.Errorf("members of %s/%s: %w", app, segment, err)
			}
			out = append(out, k)
		}
		start = res.LastEvaluatedKey
		if len(out) > limit {
			return out[:limit], out[limit-1], nil
		}
		if start == nil {
			return out, "", nil
		}
	}
}

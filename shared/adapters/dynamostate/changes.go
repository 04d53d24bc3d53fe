package dynamostate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/ports"
)

// maxBatchWrite is the most items one BatchWriteItem call takes.
const maxBatchWrite = 25

// RecordChanges writes the changes as pending change items with BatchWriteItem, 25 per call
// (SyncConcurrency calls at a time), retrying unprocessed items with backoff until they are written or ctx ends. A change's key
// is its identity, so writing it again overwrites the same item: that is what makes the call
// idempotent. BatchWriteItem takes no condition, so a change recorded again after it was
// synced is pending again (syncing it twice is harmless).
func (s *Store) RecordChanges(ctx context.Context, changes []ports.MembershipChange) error {
	seen := make(map[string]bool, len(changes))
	var reqs []types.WriteRequest
	for _, c := range changes {
		if err := storecheck.Change(c); err != nil {
			return fmt.Errorf("record changes: %w", err)
		}
		item := s.changeItem(c)
		// One call must not name a key twice; the copies are the same change anyway.
		id := changePK(c.App, c.Segment) + "\x00" + storecheck.ChangeSK(c)
		if seen[id] {
			continue
		}
		seen[id] = true
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	if err := s.batchWriteAll(ctx, reqs); err != nil {
		return fmt.Errorf("record changes: %w", err)
	}
	return nil
}

func (s *Store) changeItem(c ports.MembershipChange) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrPK:        str(changePK(c.App, c.Segment)),
		attrSK:        str(storecheck.ChangeSK(c)),
		attrUserKey:   str(c.UserKey),
		attrJoined:    &types.AttributeValueMemberBOOL{Value: c.Joined},
		attrAt:        num(c.At),
		attrPendingPK: str(pendingPK(c.App, c.Segment)),
		attrUnpubPK:   str(unpubPK(c.App)),
		attrExpiresAt: num(c.At/1000 + int64(s.opts.ChangeRetention/time.Second)),
	}
	if c.StateVersion != 0 {
		item[attrStateVersion] = num(c.StateVersion)
	}
	if c.RecordedAt != 0 {
		item[attrRecordedAt] = num(c.RecordedAt)
	}
	if c.Reason != "" {
		item[attrChangeReason] = str(c.Reason)
	}
	if c.AppUserID != "" {
		item[attrAppUserID] = str(c.AppUserID)
	}
	return item
}

// batchWrite sends one chunk and resends what DynamoDB leaves unprocessed.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	for attempt := 1; ; attempt++ {
		out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{s.table: reqs},
		})
		if err != nil {
			return fmt.Errorf("batch write %d items: %w", len(reqs), err)
		}
		reqs = out.UnprocessedItems[s.table]
		if len(reqs) == 0 {
			return nil
		}
		d := backoff.FullJitter(attempt, s.opts.RetryBase, s.opts.RetryMax, rand.Float64)
		if err := backoff.Sleep(ctx, d); err != nil {
			return fmt.Errorf("batch write: %d items still unprocessed after %d calls: %w", len(reqs), attempt, err)
		}
	}
}

// PendingChanges queries the pending index of one segment in sort key order (time, then user
// key), starting after the cursor. It reads one item more than limit, so next is "" exactly
// when nothing follows.
func (s *Store) PendingChanges(ctx context.Context, app, segment, after string, limit int) ([]ports.PendingChange, string, error) {
	if err := storecheck.Name("app", app); err != nil {
		return nil, "", fmt.Errorf("pending changes: %w", err)
	}
	if err := storecheck.Name("segment", segment); err != nil {
		return nil, "", fmt.Errorf("pending changes: %w", err)
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("pending changes: %w: limit %d", storecheck.ErrInvalid, limit)
	}
	if after != "" && !storecheck.ValidChangeSK(after) {
		return nil, "", fmt.Errorf("pending changes: %w: cursor %q", storecheck.ErrInvalid, after)
	}
	pp := pendingPK(app, segment)
	var start map[string]types.AttributeValue
	if after != "" {
		// The index's LastEvaluatedKey: index keys plus table keys, all derived from the sk.
		start = map[string]types.AttributeValue{
			attrPendingPK: str(pp), attrSK: str(after), attrPK: str(changePK(app, segment)),
		}
	}
	var out []ports.PendingChange
	for {
		res, err := s.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(PendingIndex),
			KeyConditionExpression:    aws.String("#pp = :pp"),
			ExpressionAttributeNames:  map[string]string{"#pp": attrPendingPK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pp": str(pp)},
			ExclusiveStartKey:         start,
			Limit:                     aws.Int32(int32(min(limit-len(out), maxQueryLimit-1) + 1)),
		})
		if err != nil {
			return nil, "", fmt.Errorf("pending changes of %s/%s: %w", app, segment, err)
		}
		for _, item := range res.Items {
			c, err := parseChange(app, segment, item)
			if err != nil {
				return nil, "", fmt.Errorf("pending changes of %s/%s: %w", app, segment, err)
			}
			out = append(out, c)
		}
		start = res.LastEvaluatedKey
		if len(out) > limit {
			return out[:limit], out[limit-1].Cursor, nil
		}
		if start == nil {
			return out, "", nil
		}
	}
}

func parseChange(app, segment string, item map[string]types.AttributeValue) (ports.PendingChange, error) {
	sk, err := getStr(item, attrSK)
	if err != nil {
		return ports.PendingChange{}, err
	}
	uk, err := getStr(item, attrUserKey)
	if err != nil {
		return ports.PendingChange{}, err
	}
	joined, ok := item[attrJoined].(*types.AttributeValueMemberBOOL)
	if !ok {
		return ports.PendingChange{}, fmt.Errorf("change %s: attribute %s missing or not BOOL", sk, attrJoined)
	}
	at, err := getNum(item, attrAt)
	if err != nil {
		return ports.PendingChange{}, err
	}
	ver, err := getNum(item, attrStateVersion)
	if err != nil {
		return ports.PendingChange{}, err
	}
	recAt, err := getNum(item, attrRecordedAt)
	if err != nil {
		return ports.PendingChange{}, err
	}
	reason, err := optStr(item, attrChangeReason)
	if err != nil {
		return ports.PendingChange{}, err
	}
	auid, err := optStr(item, attrAppUserID)
	if err != nil {
		return ports.PendingChange{}, err
	}
	return ports.PendingChange{
		MembershipChange: ports.MembershipChange{App: app, Segment: segment, UserKey: uk, Joined: joined.Value, At: at,
			StateVersion: ver, RecordedAt: recAt, Reason: reason, AppUserID: auid},
		Cursor: sk,
	}, nil
}

// MarkSynced removes pendingPk from each change item, at most SyncConcurrency calls at a time.
// A change is identified by its fields (App, Segment, UserKey, Joined, At), not by Cursor. The
// update is conditional on the item existing, so a change deleted meanwhile (TTL) is not
// recreated as a bare key, and on its StateVersion and RecordedAt being those read, so a change
// recorded again since (for a later state write) stays pending; a missing change, one already
// synced or one recorded again is not an error.
func (s *Store) MarkSynced(ctx context.Context, changes []ports.PendingChange) error {
	seen := make(map[string]bool, len(changes))
	var marks []ports.MembershipChange
	for _, c := range changes {
		if err := storecheck.Change(c.MembershipChange); err != nil {
			return fmt.Errorf("mark synced: %w", err)
		}
		if id := changePK(c.App, c.Segment) + "\x00" + storecheck.ChangeSK(c.MembershipChange); !seen[id] {
			seen[id] = true
			marks = append(marks, c.MembershipChange)
		}
	}

	if err := s.concurrently(ctx, len(marks), func(ctx context.Context, i int) error {
		return s.unmark(ctx, marks[i], "REMOVE #pp", map[string]string{"#pp": attrPendingPK})
	}); err != nil {
		return fmt.Errorf("mark synced: %w", err)
	}
	return nil
}

// concurrently calls fn for 0..n-1, at most SyncConcurrency calls at a time; the first error
// cancels the calls not yet started and is returned (or ctx's error, if it ended first).
func (s *Store) concurrently(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, s.opts.SyncConcurrency)
loop:
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(runCtx, i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// batchWriteAll writes reqs in BatchWriteItem calls of 25, SyncConcurrency calls at a time.
func (s *Store) batchWriteAll(ctx context.Context, reqs []types.WriteRequest) error {
	chunks := (len(reqs) + maxBatchWrite - 1) / maxBatchWrite
	return s.concurrently(ctx, chunks, func(ctx context.Context, i int) error {
		return s.batchWrite(ctx, reqs[i*maxBatchWrite:min((i+1)*maxBatchWrite, len(reqs))])
	})
}

// unmark applies update (a REMOVE of index keys, names its attributes) to the change item of
// c, only if it is still the recording that was read (MarkSynced, MarkPublished).
func (s *Store) unmark(ctx context.Context, c ports.MembershipChange, update string, names map[string]string) error {
	pk, sk := changePK(c.App, c.Segment), storecheck.ChangeSK(c)
	// Only the recording the reader read: the updater may have recorded the same change again
	// since (same identity, a later state write); that one stays listed for the next run.
	names["#pk"], names["#sv"], names["#ra"] = attrPK, attrStateVersion, attrRecordedAt
	values := map[string]types.AttributeValue{}
	cond := "attribute_exists(#pk)"
	for _, a := range []struct {
		name, value string
		v           int64
	}{{"#sv", ":sv", c.StateVersion}, {"#ra", ":ra", c.RecordedAt}} {
		if a.v == 0 {
			cond += " AND attribute_not_exists(" + a.name + ")"
			continue
		}
		cond += " AND " + a.name + " = " + a.value
		values[a.value] = num(a.v)
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      key(pk, sk),
		UpdateExpression:         aws.String(update),
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: names,
	}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
	}
	_, err := s.client.UpdateItem(ctx, in)
	var gone *types.ConditionalCheckFailedException
	if errors.As(err, &gone) {
		return nil // gone (TTL), or recorded again since: nothing to mark
	}
	if err != nil {
		return fmt.Errorf("change %s %s: %w", pk, sk, err)
	}
	return nil
}

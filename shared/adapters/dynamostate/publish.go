package dynamostate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var (
	_ ports.ChangeFeed    = (*Store)(nil)
	_ ports.CooldownStore = (*Store)(nil)
)

// UnpublishedChanges queries the unpublished index of app (every segment) in sort key order,
// time first, after the cursor. A cursor is "<segment>#<sk>": the index's position needs the
// table key too, and a segment name holds no '#'. One item more than limit is read, so next
// is "" exactly when nothing follows.
func (s *Store) UnpublishedChanges(ctx context.Context, app, after string, limit int) ([]ports.PendingChange, string, error) {
	if err := storecheck.Name("app", app); err != nil {
		return nil, "", fmt.Errorf("unpublished changes: %w", err)
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("unpublished changes: %w: limit %d", storecheck.ErrInvalid, limit)
	}
	var start map[string]types.AttributeValue
	if after != "" {
		segment, sk, err := ParseFeedCursor(after)
		if err != nil {
			return nil, "", fmt.Errorf("unpublished changes: %w", err)
		}
		start = map[string]types.AttributeValue{
			attrUnpubPK: str(unpubPK(app)), attrSK: str(sk), attrPK: str(changePK(app, segment)),
		}
	}
	prefix := changePK(app, "")
	var out []ports.PendingChange
	for {
		res, err := s.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(UnpublishedIndex),
			KeyConditionExpression:    aws.String("#up = :up"),
			ExpressionAttributeNames:  map[string]string{"#up": attrUnpubPK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":up": str(unpubPK(app))},
			ExclusiveStartKey:         start,
			Limit:                     aws.Int32(int32(min(limit-len(out), maxQueryLimit-1) + 1)),
		})
		if err != nil {
			return nil, "", fmt.Errorf("unpublished changes of %s: %w", app, err)
		}
		for _, item := range res.Items {
			pk, err := getStr(item, attrPK)
			if err != nil || !strings.HasPrefix(pk, prefix) {
				return nil, "", fmt.Errorf("unpublished changes of %s: item %q is not a change of the app", app, pk)
			}
			segment := pk[len(prefix):]
			c, err := parseChange(app, segment, item)
			if err != nil {
				return nil, "", fmt.Errorf("unpublished changes of %s: %w", app, err)
			}
			c.Cursor = FeedCursor(segment, c.Cursor)
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

// FeedCursor is the change feed's cursor of the change with sort key sk in segment (memstate
// pages with the same cursors).
func FeedCursor(segment, sk string) string { return segment + "#" + sk }

// ParseFeedCursor splits a FeedCursor.
func ParseFeedCursor(cursor string) (segment, sk string, err error) {
	segment, sk, ok := strings.Cut(cursor, "#")
	if !ok || segment == "" || !storecheck.ValidChangeSK(sk) {
		return "", "", fmt.Errorf("%w: cursor %q", storecheck.ErrInvalid, cursor)
	}
	return segment, sk, nil
}

// MarkPublished removes unpubPk, and the app's user id (kept only until the bus has it), from
// each change item, on the conditions of MarkSynced: the item exists and is still the
// recording that was read. A change recorded again since stays unpublished (it belongs to a
// later state write, and is published again: at least once).
func (s *Store) MarkPublished(ctx context.Context, changes []ports.PendingChange) error {
	seen := make(map[string]bool, len(changes))
	var marks []ports.MembershipChange
	for _, c := range changes {
		if err := storecheck.Change(c.MembershipChange); err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
		if id := changePK(c.App, c.Segment) + "\x00" + storecheck.ChangeSK(c.MembershipChange); !seen[id] {
			seen[id] = true
			marks = append(marks, c.MembershipChange)
		}
	}
	if err := s.concurrently(ctx, len(marks), func(ctx context.Context, i int) error {
		return s.unmark(ctx, marks[i], "REMOVE #up, #au", map[string]string{"#up": attrUnpubPK, "#au": attrAppUserID})
	}); err != nil {
		return fmt.Errorf("mark published: %w", err)
	}
	return nil
}

// LastDeliveries reads the users' cool-down items (pk user#<app>#<userKey>, sk cool) with
// BatchGetItem, strongly consistent; users without one are absent from the map.
func (s *Store) LastDeliveries(ctx context.Context, app string, userKeys []string) (map[string]int64, error) {
	seen := make(map[string]bool, len(userKeys))
	var keys []map[string]types.AttributeValue
	for _, k := range userKeys {
		if err := storecheck.User(app, k); err != nil {
			return nil, fmt.Errorf("last deliveries: %w", err)
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, key(userPK(app, k), cooldownSK))
		}
	}
	prefix := userPK(app, "")
	out := make(map[string]int64)
	err := s.batchGetAll(ctx, keys, func(item map[string]types.AttributeValue) error {
		pk, err := getStr(item, attrPK)
		if err != nil || !strings.HasPrefix(pk, prefix) {
			return fmt.Errorf("item %q is not of the app", pk)
		}
		at, err := getNum(item, attrLastDelivery)
		if err != nil {
			return err
		}
		out[pk[len(prefix):]] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("last deliveries of %s: %w", app, err)
	}
	return out, nil
}

// SetLastDeliveries writes the users' cool-down items (unix ms), replacing earlier ones; each
// expires ChangeRetention after its delivery, far beyond any sensible cool-down.
func (s *Store) SetLastDeliveries(ctx context.Context, app string, at map[string]int64) error {
	reqs := make([]types.WriteRequest, 0, len(at))
	for k, ms := range at {
		if err := storecheck.User(app, k); err != nil {
			return fmt.Errorf("set last deliveries: %w", err)
		}
		item := key(userPK(app, k), cooldownSK)
		item[attrLastDelivery] = num(ms)
		item[attrExpiresAt] = num(ms/1000 + int64(s.opts.ChangeRetention/time.Second))
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	if err := s.batchWriteAll(ctx, reqs); err != nil {
		return fmt.Errorf("set last deliveries of %s: %w", app, err)
	}
	return nil
}

// optStr reads an optional S attribute: "" when absent.
func optStr(item map[string]types.AttributeValue, name string) (string, error) {
	if _, ok := item[name]; !ok {
		return "", nil
	}
	return getStr(item, name)
}

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
)

// DueUsers queries the due index hour bucket by hour bucket, from the bucket of until-lookback
// to the bucket of until, for users with until-lookback <= DueAt <= until, in DueAt order.
// One query per bucket touched (an empty bucket costs a minimal read), plus one item more than
// limit, so next is "" exactly when nothing follows. The cursor is the last user returned
// (<dueAt>#<userKey>): a cursor before the window restarts at its beginning, one after it ends
// the listing, so a caller may move until between pages.
func (s *Store) DueUsers(ctx context.Context, app string, until time.Time, lookback time.Duration, limit int, cursor string) ([]string, string, error) {
	if err := storecheck.Name("app", app); err != nil {
		return nil, "", fmt.Errorf("due users: %w", err)
	}
	if limit <= 0 || lookback < 0 {
		return nil, "", fmt.Errorf("due users: %w: limit %d, lookback %s", storecheck.ErrInvalid, limit, lookback)
	}
	from, to := storecheck.DueWindow(until, lookback)
	var start map[string]types.AttributeValue
	hour := hourOf(from)
	if cursor != "" {
		c, err := storecheck.ParseDueCursor(cursor)
		if err != nil {
			return nil, "", fmt.Errorf("due users: %w: %w", storecheck.ErrInvalid, err)
		}
		switch {
		case c.DueAt > to:
			return nil, "", nil
		case c.DueAt >= from:
			hour = hourOf(c.DueAt)
			start = map[string]types.AttributeValue{
				attrDueBucket: str(dueBucket(app, c.DueAt)),
				attrDueAt:     num(c.DueAt),
				attrPK:        str(userPK(app, c.UserKey)),
				attrSK:        str(userSK),
			}
		}
	}
	if from > to {
		return nil, "", nil
	}

	prefix := userPK(app, "")
	var found []storecheck.DueCursor
	for ; hour <= hourOf(to); hour += 3600 {
		for {
			res, err := s.client.Query(ctx, &dynamodb.QueryInput{
				TableName:                aws.String(s.table),
				IndexName:                aws.String(DueIndex),
				KeyConditionExpression:   aws.String("#b = :b AND #d BETWEEN :from AND :to"),
				ExpressionAttributeNames: map[string]string{"#b": attrDueBucket, "#d": attrDueAt},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":b": str(dueBucket(app, hour)), ":from": num(from), ":to": num(to),
				},
				ExclusiveStartKey: start,
				Limit:             aws.Int32(int32(min(limit-len(found), maxQueryLimit-1) + 1)),
			})
			if err != nil {
				return nil, "", fmt.Errorf("due users of %s: %w", app, err)
			}
			for _, item := range res.Items {
				pk, err := getStr(item, attrPK)
				if err != nil {
					return nil, "", fmt.Errorf("due users of %s: %w", app, err)
				}
				uk, ok := strings.CutPrefix(pk, prefix)
				if !ok {
					return nil, "", fmt.Errorf("due users of %s: unexpected key %q", app, pk)
				}
				at, err := getNum(item, attrDueAt)
				if err != nil {
					return nil, "", fmt.Errorf("due users of %s: %w", app, err)
				}
				found = append(found, storecheck.DueCursor{DueAt: at, UserKey: uk})
			}
			start = res.LastEvaluatedKey
			if len(found) > limit {
				return storecheck.UserKeys(found[:limit]), found[limit-1].String(), nil
			}
			if start == nil {
				break
			}
		}
	}
	return storecheck.UserKeys(found), "", nil
}

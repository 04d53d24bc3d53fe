package dynamostate

// Ad account pause items (rate limits), in the same table:
//
//	pause item  pk=pace#<ad account>  sk=pace
//	            notBefore(N, unix ms) reason(S)

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

const (
	paceSK        = "pace"
	attrNotBefore = "notBefore"
	attrReason    = "reason"
)

func pacePK(account string) string { return "pace#" + account }

// GetAccountPause reads an ad account's pause item with a strongly consistent read.
func (s *Store) GetAccountPause(ctx context.Context, account string) (ports.AccountPause, bool, error) {
	if err := storecheck.AdAccount(account); err != nil {
		return ports.AccountPause{}, false, fmt.Errorf("get account pause: %w", err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(pacePK(account), paceSK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return ports.AccountPause{}, false, fmt.Errorf("get account pause %s: %w", account, err)
	}
	if out.Item == nil {
		return ports.AccountPause{}, false, nil
	}
	ms, err := getNum(out.Item, attrNotBefore)
	if err != nil {
		return ports.AccountPause{}, false, fmt.Errorf("get account pause %s: %w", account, err)
	}
	p := ports.AccountPause{AdAccountID: account, NotBefore: time.UnixMilli(ms).UTC()}
	if v, ok := out.Item[attrReason].(*types.AttributeValueMemberS); ok {
		p.Reason = v.Value
	}
	return p, true, nil
}

// ExtendAccountPause writes the pause item unless the stored one ends at or after p.NotBefore
// (a failed condition is not an error: the longer pause stays).
func (s *Store) ExtendAccountPause(ctx context.Context, p ports.AccountPause) error {
	if err := storecheck.AdAccount(p.AdAccountID); err != nil {
		return fmt.Errorf("extend account pause: %w", err)
	}
	item := map[string]types.AttributeValue{
		attrPK:        str(pacePK(p.AdAccountID)),
		attrSK:        str(paceSK),
		attrNotBefore: num(p.NotBefore.UnixMilli()),
	}
	if p.Reason != "" {
		item[attrReason] = str(p.Reason)
	}
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(#nb) OR #nb < :nb"),
		ExpressionAttributeNames:  map[string]string{"#nb": attrNotBefore},
		ExpressionAttributeValues: map[string]types.AttributeValue{":nb": num(p.NotBefore.UnixMilli())},
	})
	var failed *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &failed) {
		return fmt.Errorf("extend account pause %s: %w", p.AdAccountID, err)
	}
	return nil
}

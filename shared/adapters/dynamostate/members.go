package dynamostate

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
)

// ScanUsers lists the users of app, only those whose stored segments include segment unless
// it is "", by scanning the table: limit items are read per call (DynamoDB's Limit counts the
// items read, not those that match, so a page may hold none while next is not ""); next is ""
// at the end.
//
// A scan reads the whole table (0.5 read units per 4 KB, eventually consistent). It is for
// operator actions: filling an audience added after its segment had members (`retarget
// audiences backfill`), applying changed rules to every stored user (`retarget rules apply`).
// Never for a hot path: there the membership changes and the due index say who to look at.
func (s *Store) ScanUsers(ctx context.Context, app, segment, cursor string, limit int) ([]string, string, error) {
	if err := storecheck.Name("app", app); err != nil {
		return nil, "", fmt.Errorf("scan users: %w", err)
	}
	if segment != "" {
		if err := storecheck.Name("segment", segment); err != nil {
			return nil, "", fmt.Errorf("scan users: %w", err)
		}
	}
	if limit <= 0 {
		return nil, "", fmt.Errorf("scan users: %w: limit %d", storecheck.ErrInvalid, limit)
	}
	var start map[string]types.AttributeValue
	if cursor != "" {
		pk, sk, err := parseScanCursor(cursor)
		if err != nil {
			return nil, "", fmt.Errorf("scan users: %w: %w", storecheck.ErrInvalid, err)
		}
		start = map[string]types.AttributeValue{attrPK: str(pk), attrSK: str(sk)}
	}
	prefix := userPK(app, "")
	filter := "#sk = :state AND begins_with(#pk, :prefix)"
	names := map[string]string{"#pk": attrPK, "#sk": attrSK}
	values := map[string]types.AttributeValue{":state": str(userSK), ":prefix": str(prefix)}
	if segment != "" {
		filter += " AND contains(#segs, :seg)"
		names["#segs"], values[":seg"] = attrSegments, str(segment)
	}
	res, err := s.client.Scan(ctx, &dynamodb.ScanInput{
		TableName:                 aws.String(s.table),
		FilterExpression:          aws.String(filter),
		ProjectionExpression:      aws.String("#pk"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ExclusiveStartKey:         start,
		Limit:                     aws.Int32(int32(min(limit, maxQueryLimit))),
	})
	if err != nil {
		return nil, "", fmt.Errorf("scan users of %s/%s: %w", app, segment, err)
	}
	keys := make([]string, 0, len(res.Items))
	for _, item := range res.Items {
		pk, err := getStr(item, attrPK)
		if err != nil {
			return nil, "", fmt.Errorf("scan users of %s/%s: %w", app, segment, err)
		}
		uk, ok := strings.CutPrefix(pk, prefix)
		if !ok || uk == "" {
			return nil, "", fmt.Errorf("scan users of %s/%s: unexpected key %q", app, segment, pk)
		}
		keys = append(keys, uk)
	}
	next := ""
	if len(res.LastEvaluatedKey) > 0 {
		pk, err := getStr(res.LastEvaluatedKey, attrPK)
		if err != nil {
			return nil, "", fmt.Errorf("scan users: last key: %w", err)
		}
		sk, err := getStr(res.LastEvaluatedKey, attrSK)
		if err != nil {
			return nil, "", fmt.Errorf("scan users: last key: %w", err)
		}
		next = scanCursor(pk, sk)
	}
	return keys, next, nil
}

// scanCursor encodes a table key as an opaque cursor: base64url(pk) "." base64url(sk).
func scanCursor(pk, sk string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(pk)) + "." + enc.EncodeToString([]byte(sk))
}

func parseScanCursor(c string) (pk, sk string, err error) {
	a, b, ok := strings.Cut(c, ".")
	enc := base64.RawURLEncoding
	p, err1 := enc.DecodeString(a)
	s, err2 := enc.DecodeString(b)
	if !ok || err1 != nil || err2 != nil || len(p) == 0 || len(s) == 0 {
		return "", "", fmt.Errorf("cursor %q is not one ScanUsers returned", c)
	}
	return string(p), string(s), nil
}

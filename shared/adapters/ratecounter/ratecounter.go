// Package ratecounter is the shared count of ratelimit.Limiter (ports.RateCounter) in DynamoDB: one item per app and
// window in its own small table (partition key "pk", TTL attribute "expires_at"), incremented
// with UpdateItem ADD, one write unit per call. The item holds an app id and a count, nothing
// about users.
package ratecounter

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/ports"
)

// Attribute names of the table (the stack declares KeyAttribute and TTLAttribute).
const (
	KeyAttribute   = "pk"
	CountAttribute = "n"
	TTLAttribute   = "expires_at"
)

// Keep is how long after its window an item stays (DynamoDB deletes expired items within days,
// free of charge; nothing reads an old window).
const Keep = time.Hour

// UpdateItemAPI is the part of *dynamodb.Client the counter uses.
type UpdateItemAPI interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Counter implements ports.RateCounter.
type Counter struct {
	client UpdateItemAPI
	table  string
}

var _ ports.RateCounter = (*Counter)(nil)

// New returns a Counter on table.
func New(client UpdateItemAPI, table string) *Counter {
	return &Counter{client: client, table: table}
}

// Key is the item of app's window starting at start: "rate#<app>#<unix seconds>".
func Key(app string, start time.Time) string {
	return "rate#" + app + "#" + strconv.FormatInt(start.Unix(), 10)
}

// Add adds n to the window's count and returns the new total.
func (c *Counter) Add(ctx context.Context, app string, start time.Time, window time.Duration, n int64) (int64, error) {
	out, err := c.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(c.table),
		Key:              map[string]types.AttributeValue{KeyAttribute: &types.AttributeValueMemberS{Value: Key(app, start)}},
		UpdateExpression: aws.String("ADD #n :n SET #e = if_not_exists(#e, :e)"),
		ExpressionAttributeNames: map[string]string{
			"#n": CountAttribute, "#e": TTLAttribute,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n": &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)},
			":e": &types.AttributeValueMemberN{Value: strconv.FormatInt(start.Add(window+Keep).Unix(), 10)},
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, fmt.Errorf("rate counter %s: %w", app, err)
	}
	v, ok := out.Attributes[CountAttribute].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("rate counter %s: UpdateItem returned no count", app)
	}
	total, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rate counter %s: count %q: %w", app, v.Value, err)
	}
	return total, nil
}

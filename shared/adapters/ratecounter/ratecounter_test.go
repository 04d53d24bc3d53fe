package ratecounter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// table is a fake DynamoDB applying the one update the counter sends.
type table struct {
	items map[string]int64
	ins   []*dynamodb.UpdateItemInput
	err   error
}

func (f *table) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	f.ins = append(f.ins, in)
	if f.err != nil {
		return nil, f.err
	}
	key := in.Key[KeyAttribute].(*types.AttributeValueMemberS).Value
	var n int64
	for _, c := range in.ExpressionAttributeValues[":n"].(*types.AttributeValueMemberN).Value {
		n = n*10 + int64(c-'0')
	}
	f.items[key] += n
	return &dynamodb.UpdateItemOutput{Attributes: map[string]types.AttributeValue{
		CountAttribute: &types.AttributeValueMemberN{Value: itoa(f.items[key])},
	}}, nil
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

func TestAdd(t *testing.T) {
	f := &table{items: map[string]int64{}}
	c := New(f, "rate-table")
	start := time.Unix(1_764_300_000, 0)
	for i, want := range []int64{7, 10} {
		got, err := c.Add(context.Background(), "shop", start, 10*time.Second, []int64{7, 3}[i])
		if err != nil || got != want {
			t.Fatalf("Add #%d = %d, %v; want %d", i, got, err, want)
		}
	}
	in := f.ins[0]
	if aws.ToString(in.TableName) != "rate-table" || in.ReturnValues != types.ReturnValueUpdatedNew {
		t.Errorf("input %+v", in)
	}
	if key := in.Key[KeyAttribute].(*types.AttributeValueMemberS).Value; key != "rate#shop#1764300000" {
		t.Errorf("key %q", key)
	}
	if expr := aws.ToString(in.UpdateExpression); !strings.HasPrefix(expr, "ADD #n :n") || in.ConditionExpression != nil {
		t.Errorf("update %q (condition %v): want an unconditional ADD", expr, in.ConditionExpression)
	}
	// Expires an hour after the window's end.
	if e := in.ExpressionAttributeValues[":e"].(*types.AttributeValueMemberN).Value; e != "1764303610" {
		t.Errorf("expires_at %s, want 1764303610", e)
	}
	if in.ExpressionAttributeNames["#e"] != TTLAttribute || in.ExpressionAttributeNames["#n"] != CountAttribute {
		t.Errorf("names %v", in.ExpressionAttributeNames)
	}
}

func TestAddError(t *testing.T) {
	cause := errors.New("throttled")
	c := New(&table{err: cause}, "t")
	if _, err := c.Add(context.Background(), "shop", time.Unix(0, 0), time.Second, 1); !errors.Is(err, cause) || !strings.Contains(err.Error(), "shop") {
		t.Errorf("error %v", err)
	}
}

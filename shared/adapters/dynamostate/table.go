package dynamostate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/domain/backoff"
)

// TableAPI is the part of *dynamodb.Client CreateTable uses.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// tablePollInterval is how often CreateTable looks whether the table is ACTIVE.
const tablePollInterval = 50 * time.Millisecond

// CreateTable creates the segment state table (on-demand, every GSI) unless a table with that
// name exists, and waits until it and its indexes are ACTIVE (or ctx ends). For tests and the
// dev stack; the deployed table comes from CDK, which also turns on TTL on expiresAt (dynalite
// has no TTL, so this does not).
func CreateTable(ctx context.Context, client TableAPI, name string) error {
	_, err := client.CreateTable(ctx, TableInput(name))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("create table %s: %w", name, err)
		}
		if active(out.Table) {
			return nil
		}
		if err := backoff.Sleep(ctx, tablePollInterval); err != nil {
			return fmt.Errorf("create table %s: waiting for ACTIVE: %w", name, err)
		}
	}
}

func active(t *types.TableDescription) bool {
	if t == nil || t.TableStatus != types.TableStatusActive {
		return false
	}
	for _, g := range t.GlobalSecondaryIndexes {
		if g.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}

// TableInput is the CreateTable request for the layout this package reads and writes.
func TableInput(name string) *dynamodb.CreateTableInput {
	keys := func(hash, rang string) []types.KeySchemaElement {
		return []types.KeySchemaElement{
			{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(rang), KeyType: types.KeyTypeRange},
		}
	}
	attr := func(name string, t types.ScalarAttributeType) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: t}
	}
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			attr(attrPK, types.ScalarAttributeTypeS),
			attr(attrSK, types.ScalarAttributeTypeS),
			attr(attrPendingPK, types.ScalarAttributeTypeS),
			attr(attrUnpubPK, types.ScalarAttributeTypeS),
			attr(attrDueBucket, types.ScalarAttributeTypeS),
			attr(attrDueAt, types.ScalarAttributeTypeN),
		},
		KeySchema: keys(attrPK, attrSK),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{
				IndexName:  aws.String(PendingIndex),
				KeySchema:  keys(attrPendingPK, attrSK),
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
			},
			{
				IndexName:  aws.String(UnpublishedIndex),
				KeySchema:  keys(attrUnpubPK, attrSK),
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
			},
			{
				IndexName:  aws.String(DueIndex),
				KeySchema:  keys(attrDueBucket, attrDueAt),
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
			},
		},
	}
}

package dynamostate

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Pending archive purges: one item per erasure the archive purge has not finished, in the
// app's own partition, pk=purge#<app> sk=<erasure id>. The list is sparse (PurgeDone deletes
// the item), so a purge run reads only what is pending, one Query per app, and costs nothing
// when no erasure is pending. The item keeps the audit record's TTL: an archive that is never
// purged does not keep pending items for ever.

var _ ports.ArchivePurges = (*Store)(nil)

func purgePK(app string) string { return "purge#" + app }

func (s *Store) putPendingPurge(ctx context.Context, r ports.ErasureRecord) error {
	item := key(purgePK(r.App), r.ID)
	item[attrUserKey] = str(r.UserKey)
	item[attrRequestedAt] = num(r.RequestedAt)
	if r.FirstDay != "" {
		item[attrFirstDay] = str(r.FirstDay)
	}
	if r.ExpiresAt != 0 {
		item[attrExpiresAt] = num(r.ExpiresAt)
	}
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("put pending purge %s: %w", r.ID, err)
	}
	return nil
}

// PendingPurges queries the app's pending purge items (strongly consistent), in id order.
func (s *Store) PendingPurges(ctx context.Context, app string) ([]ports.ErasureRecord, error) {
	if err := storecheck.Name("app", app); err != nil {
		return nil, fmt.Errorf("pending purges: %w", err)
	}
	var out []ports.ErasureRecord
	// Erasure ids never contain '#' and sort below "\U0010ffff": the range is the partition.
	err := s.queryRange(ctx, purgePK(app), "", "\U0010ffff", func(item map[string]types.AttributeValue) error {
		r := ports.ErasureRecord{App: app}
		var err error
		if r.ID, err = getStr(item, attrSK); err != nil {
			return err
		}
		if r.UserKey, err = getStr(item, attrUserKey); err != nil {
			return err
		}
		if r.RequestedAt, err = getNum(item, attrRequestedAt); err != nil {
			return err
		}
		if r.ExpiresAt, err = getNum(item, attrExpiresAt); err != nil {
			return err
		}
		if v, ok := item[attrFirstDay].(*types.AttributeValueMemberS); ok {
			r.FirstDay = v.Value
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending purges of %s: %w", app, err)
	}
	return out, nil
}

// PurgeDone deletes the erasure's pending purge item (deleting a missing item succeeds).
func (s *Store) PurgeDone(ctx context.Context, app, id string) error {
	if err := storecheck.Name("app", app); err != nil {
		return fmt.Errorf("purge done: %w", err)
	}
	if err := storecheck.Name("erasure id", id); err != nil {
		return fmt.Errorf("purge done: %w", err)
	}
	if _, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: key(purgePK(app), id)}); err != nil {
		return fmt.Errorf("purge done %s: %w", id, err)
	}
	return nil
}

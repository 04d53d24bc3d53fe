package dynamostate

// Consent and erasure items, in the same table:
//
//	consent item  pk=user#<app>#<user key>  sk=consent
//	              ads(BOOL) att(BOOL) ate(BOOL) ldu(BOOL) at(N) erasure(S)
//	erasure item  pk=audit#<app>  sk=<erasure id>
//	              uk(S) reqAt(N) doneAt(N) auds(SS) first(S) expiresAt(N, TTL)
//	purge item    pk=purge#<app>  sk=<erasure id>   (pending archive purge, purge.go)
//	              uk(S) reqAt(N) first(S) expiresAt(N, TTL)
//
// The consent item sits in the user's partition next to the state item, has no TTL (a
// withdrawal holds until an explicit grant) and holds no personal data.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/domain/backoff"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.ConsentStore = (*Store)(nil)

const (
	consentSK = "consent"
	// maxBatchGet is the most keys one BatchGetItem call takes.
	maxBatchGet = 100
)

// Attribute names of the consent and erasure items.
const (
	attrAds         = "ads"
	attrATT         = "att"
	attrATE         = "ate"
	attrLDU         = "ldu"
	attrErasure     = "erasure"
	attrRequestedAt = "reqAt"
	attrCompletedAt = "doneAt"
	attrAudiences   = "auds"
	attrFirstDay    = "first"
)

func auditPK(app string) string { return "audit#" + app }

// PutConsent writes the user's consent item, replacing any earlier one.
func (s *Store) PutConsent(ctx context.Context, c ports.UserConsent) error {
	if err := storecheck.Consent(c); err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: consentItem(c)}); err != nil {
		return fmt.Errorf("put consent of %s: %w", c.App, err)
	}
	return nil
}

func consentItem(c ports.UserConsent) map[string]types.AttributeValue {
	item := key(userPK(c.App, c.UserKey), consentSK)
	item[attrAds] = &types.AttributeValueMemberBOOL{Value: c.AdsPersonalization}
	item[attrAt] = num(c.At)
	for name, v := range map[string]*bool{attrATT: c.AdvertiserTracking, attrATE: c.ApplicationTracking, attrLDU: c.LDU} {
		if v != nil {
			item[name] = &types.AttributeValueMemberBOOL{Value: *v}
		}
	}
	if c.ErasureID != "" {
		item[attrErasure] = str(c.ErasureID)
	}
	return item
}

// Consents reads the users' consent items with BatchGetItem (100 keys per call, strongly
// consistent), retrying unprocessed keys with backoff until ctx ends.
func (s *Store) Consents(ctx context.Context, app string, userKeys []string) (map[string]ports.UserConsent, error) {
	seen := make(map[string]bool, len(userKeys))
	var keys []map[string]types.AttributeValue
	for _, k := range userKeys {
		if err := storecheck.User(app, k); err != nil {
			return nil, fmt.Errorf("consents: %w", err)
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, key(userPK(app, k), consentSK))
		}
	}
	out := make(map[string]ports.UserConsent)
	err := s.batchGetAll(ctx, keys, func(item map[string]types.AttributeValue) error {
		c, err := parseConsent(app, item)
		if err != nil {
			return err
		}
		out[c.UserKey] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consents of %s: %w", app, err)
	}
	return out, nil
}

// batchGetAll reads keys with strongly consistent BatchGetItem calls of at most maxBatchGet
// keys, retrying the unprocessed ones with full-jitter backoff, and hands each item to visit
// (an error from visit stops the read).
func (s *Store) batchGetAll(ctx context.Context, keys []map[string]types.AttributeValue, visit func(map[string]types.AttributeValue) error) error {
	for start := 0; start < len(keys); start += maxBatchGet {
		pending := keys[start:min(start+maxBatchGet, len(keys))]
		for attempt := 1; len(pending) > 0; attempt++ {
			if attempt > 1 {
				d := backoff.FullJitter(attempt-1, s.opts.RetryBase, s.opts.RetryMax, rand.Float64)
				if err := backoff.Sleep(ctx, d); err != nil {
					return fmt.Errorf("%d keys still unprocessed: %w", len(pending), err)
				}
			}
			res, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
				s.table: {Keys: pending, ConsistentRead: aws.Bool(true)},
			}})
			if err != nil {
				return err
			}
			for _, item := range res.Responses[s.table] {
				if err := visit(item); err != nil {
					return err
				}
			}
			pending = res.UnprocessedKeys[s.table].Keys
		}
	}
	return nil
}

func parseConsent(app string, item map[string]types.AttributeValue) (ports.UserConsent, error) {
	pk, err := getStr(item, attrPK)
	if err != nil {
		return ports.UserConsent{}, err
	}
	prefix := userPK(app, "")
	if len(pk) <= len(prefix) || pk[:len(prefix)] != prefix {
		return ports.UserConsent{}, fmt.Errorf("consent item %q is not of app %s", pk, app)
	}
	c := ports.UserConsent{App: app, UserKey: pk[len(prefix):]}
	ads, ok := item[attrAds].(*types.AttributeValueMemberBOOL)
	if !ok {
		return c, fmt.Errorf("consent item: attribute %s missing or not BOOL", attrAds)
	}
	c.AdsPersonalization = ads.Value
	if c.At, err = getNum(item, attrAt); err != nil {
		return c, err
	}
	for name, dst := range map[string]**bool{attrATT: &c.AdvertiserTracking, attrATE: &c.ApplicationTracking, attrLDU: &c.LDU} {
		if v, ok := item[name].(*types.AttributeValueMemberBOOL); ok {
			b := v.Value
			*dst = &b
		}
	}
	if v, ok := item[attrErasure].(*types.AttributeValueMemberS); ok {
		c.ErasureID = v.Value
	}
	return c, nil
}

// PutErasure writes the erasure's pending archive purge (purge.go), then the audit record with
// its TTL: pending first, so an audit record never exists without its purge.
func (s *Store) PutErasure(ctx context.Context, r ports.ErasureRecord) error {
	if err := storecheck.Erasure(r); err != nil {
		return fmt.Errorf("put erasure: %w", err)
	}
	if err := s.putPendingPurge(ctx, r); err != nil {
		return err
	}
	item := key(auditPK(r.App), r.ID)
	if r.FirstDay != "" {
		item[attrFirstDay] = str(r.FirstDay)
	}
	item[attrUserKey] = str(r.UserKey)
	item[attrRequestedAt] = num(r.RequestedAt)
	if r.CompletedAt != 0 {
		item[attrCompletedAt] = num(r.CompletedAt)
	}
	if len(r.Audiences) > 0 {
		auds := slices.Clone(r.Audiences)
		slices.Sort(auds)
		item[attrAudiences] = &types.AttributeValueMemberSS{Value: slices.Compact(auds)}
	}
	if r.ExpiresAt != 0 {
		item[attrExpiresAt] = num(r.ExpiresAt)
	}
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("put erasure %s: %w", r.ID, err)
	}
	return nil
}

// Erasure reads an audit record (strongly consistent). DynamoDB deletes a record within days
// after its ExpiresAt, not at once: compare ExpiresAt with the time to tell.
func (s *Store) Erasure(ctx context.Context, app, id string) (ports.ErasureRecord, bool, error) {
	if err := storecheck.Name("app", app); err != nil {
		return ports.ErasureRecord{}, false, fmt.Errorf("erasure: %w", err)
	}
	if err := storecheck.Name("erasure id", id); err != nil {
		return ports.ErasureRecord{}, false, fmt.Errorf("erasure: %w", err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: key(auditPK(app), id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return ports.ErasureRecord{}, false, fmt.Errorf("erasure %s: %w", id, err)
	}
	if out.Item == nil {
		return ports.ErasureRecord{}, false, nil
	}
	r := ports.ErasureRecord{ID: id, App: app}
	if r.UserKey, err = getStr(out.Item, attrUserKey); err != nil {
		return r, false, fmt.Errorf("erasure %s: %w", id, err)
	}
	for name, dst := range map[string]*int64{attrRequestedAt: &r.RequestedAt, attrCompletedAt: &r.CompletedAt, attrExpiresAt: &r.ExpiresAt} {
		if *dst, err = getNum(out.Item, name); err != nil {
			return r, false, fmt.Errorf("erasure %s: %w", id, err)
		}
	}
	if v, ok := out.Item[attrAudiences].(*types.AttributeValueMemberSS); ok {
		r.Audiences = v.Value
	}
	if v, ok := out.Item[attrFirstDay].(*types.AttributeValueMemberS); ok {
		r.FirstDay = v.Value
	}
	return r, true, nil
}

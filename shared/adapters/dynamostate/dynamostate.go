// Package dynamostate is the DynamoDB adapter of ports.SegmentStore (and of ports.ChangeFeed
// and ports.CooldownStore): one table holds user items and membership change items, with three
// sparse global secondary indexes (pending changes, unpublished changes, due users). The
// layout is a contract with the CDK stack; keys.go names it.
//
//	user item    pk=user#<app>#<userKey>  sk=state
//	             st(B) segs(SS) seq(S) ids(SS) ver(N) dueAt(N) dueBucket(S) expiresAt(N)
//	change item  pk=chg#<app>#<segment>   sk=<At ms, 13 digits>#<userKey>#<j|l>
//	             uk(S) joined(BOOL) at(N) sver(N) recAt(N) why(S, the reason)
//	             auid(S, the app's user id: shared apps only, removed once published)
//	             pendingPk(S, while pending) unpubPk(S, <app>, while unpublished) expiresAt(N)
//	cool-down    pk=user#<app>#<userKey>  sk=cool
//	             lastAt(N, unix ms of the user's last channel delivery) expiresAt(N) (publish.go)
//	outcome item pk=out#<app>#<segment>   sk=<join day, 6 digits>
//	             t|h + u r1 r7 r28 p28 rev (N) per arm, changed only by ADD (outcomes.go)
//	action item  pk=auto#<app>            sk=<action id: <UTC day>-<hash>>
//	             ver(N) doc(S, the action as JSON): the automation's audit trail (automation.go)
//	KPI item     pk=kpi#<app>#<segment>   sk=<UTC date>
//	             cost(S) sig(BOOL) mem(N) cur(S): the daily snapshot rules read (automation.go)
//	GSI pending  pendingPk / sk, ALL
//	GSI unpublished  unpubPk (S) / sk (S), ALL: every change of an app not yet on the bus
//	GSI due      dueBucket (<app>#<yyyymmddhh> of dueAt, UTC) / dueAt, KEYS_ONLY
//
// A user's items share their partition (state, consent decision, cool-down): ReadUser reads
// the state and the decision with one strongly consistent Query, what the segment updater pays
// per user and batch.
//
// Attributes with nothing to say are omitted (DynamoDB sets cannot be empty, and absent
// attributes cost nothing). Sets are unordered and duplicate-free: GetUser returns Segments
// and RecentIDs sorted and deduplicated.
//
// Reads of the indexes are eventually consistent in AWS (GSIs are): a change recorded a moment
// ago may be missing from PendingChanges, and one just synced may still be listed. Both are
// harmless for audience sync, whose operations are idempotent; for the publisher a change
// listed after it was published goes out again, with the same change_id (at least once). Items past their TTL are not
// filtered: DynamoDB may delete them, but until then they are valid state.
package dynamostate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/adapters/userstate"
	"github.com/retarget-dev/retarget/shared/ports"
)

// DynamoAPI is the part of *dynamodb.Client the Store uses.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	// Scan serves ScanUsers only (an operator action, never a hot path).
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Options tunes a Store. The zero value gives the defaults.
type Options struct {
	// ChangeRetention is how long a change item is kept after the change (its TTL is At plus
	// this). Default 30 days.
	ChangeRetention time.Duration
	// SyncConcurrency bounds the calls MarkSynced (UpdateItem), RecordChanges and SetMembers
	// (BatchWriteItem) run at once. Default 8.
	SyncConcurrency int
	// RetryBase and RetryMax shape the full-jitter backoff between BatchWriteItem calls that
	// left items unprocessed. Defaults 50 ms and 2 s.
	RetryBase, RetryMax time.Duration
}

// Defaults of Options.
const (
	DefaultChangeRetention = 30 * 24 * time.Hour
	DefaultSyncConcurrency = 8
	DefaultRetryBase       = 50 * time.Millisecond
	DefaultRetryMax        = 2 * time.Second
)

// Store is a ports.SegmentStore on one DynamoDB table. It is safe for concurrent use.
type Store struct {
	client DynamoAPI
	table  string
	opts   Options
}

var (
	_ ports.SegmentStore = (*Store)(nil)
	_ ports.UserReader   = (*Store)(nil)
)

// New returns a Store on the named table (created by CDK, or by CreateTable for tests and the
// dev stack).
func New(client DynamoAPI, table string, opts Options) *Store {
	if opts.ChangeRetention <= 0 {
		opts.ChangeRetention = DefaultChangeRetention
	}
	if opts.SyncConcurrency <= 0 {
		opts.SyncConcurrency = DefaultSyncConcurrency
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	return &Store{client: client, table: table, opts: opts}
}

// GetUser reads a user item with a strongly consistent read.
func (s *Store) GetUser(ctx context.Context, app, userKey string) (ports.UserRecord, bool, error) {
	if err := storecheck.User(app, userKey); err != nil {
		return ports.UserRecord{}, false, fmt.Errorf("get user: %w", err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(userPK(app, userKey), userSK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return ports.UserRecord{}, false, fmt.Errorf("get user %s/%s: %w", app, userKey, err)
	}
	if out.Item == nil {
		return ports.UserRecord{}, false, nil
	}
	rec, err := parseUser(app, userKey, out.Item)
	if err != nil {
		return ports.UserRecord{}, false, fmt.Errorf("get user %s/%s: %w", app, userKey, err)
	}
	return rec, true, nil
}

// ReadUser reads the user's partition with one strongly consistent Query: the state item and
// the consent item (consent.go) in one request, billed by their summed size (1 read unit per
// 4 KB, so one unit for both where GetUser and Consents take one each). The partition's other
// items (the cool-down item, a few bytes) come along and are ignored.
func (s *Store) ReadUser(ctx context.Context, app, userKey string) (ports.UserRead, error) {
	if err := storecheck.User(app, userKey); err != nil {
		return ports.UserRead{}, fmt.Errorf("read user: %w", err)
	}
	read := ports.UserRead{Record: ports.UserRecord{App: app, UserKey: userKey}}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(userPK(app, userKey))},
		ConsistentRead:            aws.Bool(true),
	}
	for {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return ports.UserRead{}, fmt.Errorf("read user %s/%s: %w", app, userKey, err)
		}
		for _, item := range out.Items {
			sk, _ := item[attrSK].(*types.AttributeValueMemberS)
			switch {
			case sk == nil:
			case sk.Value == userSK:
				if read.Record, err = parseUser(app, userKey, item); err != nil {
					return ports.UserRead{}, fmt.Errorf("read user %s/%s: %w", app, userKey, err)
				}
				read.Found = true
			case sk.Value == consentSK:
				c, err := parseConsent(app, item)
				if err != nil {
					return ports.UserRead{}, fmt.Errorf("read user %s/%s: %w", app, userKey, err)
				}
				read.Consent = &c
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return read, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// UpdateRead is Update starting from what ReadUser read (ports.UserReader.UpdateRead): no
// read on the first attempt.
func (s *Store) UpdateRead(ctx context.Context, read ports.UserRead, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.UpdateRead(ctx, s, read, fn)
}

// PutUser replaces the user item if its version is rec.Version-1 (absent for version 1).
// A failed condition is ports.ErrVersionConflict.
func (s *Store) PutUser(ctx context.Context, rec ports.UserRecord) error {
	if err := storecheck.Record(rec); err != nil {
		return fmt.Errorf("put user: %w", err)
	}
	if err := s.putVersioned(ctx, userItem(rec), rec.Version); err != nil {
		return fmt.Errorf("put user %s/%s version %d: %w", rec.App, rec.UserKey, rec.Version, err)
	}
	return nil
}

// Update reads, changes and conditionally writes one user (ports.SegmentStore.Update): one
// GetItem, one BatchWriteItem per 25 membership changes (none without changes) and one
// conditional PutItem per attempt, through userstate.Update.
func (s *Store) Update(ctx context.Context, app, userKey string, fn func(*ports.UserState) error) (ports.UserUpdate, error) {
	return userstate.Update(ctx, s, app, userKey, fn)
}

// putVersioned writes item if the stored item's version is version-1, or if there is none
// when version is 1. A failed condition is ports.ErrVersionConflict.
func (s *Store) putVersioned(ctx context.Context, item map[string]types.AttributeValue, version int64) error {
	in := &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}
	if version == 1 {
		in.ConditionExpression = aws.String("attribute_not_exists(" + attrPK + ")")
	} else {
		in.ConditionExpression = aws.String("#ver = :prev")
		in.ExpressionAttributeNames = map[string]string{"#ver": attrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": num(version - 1)}
	}
	if _, err := s.client.PutItem(ctx, in); err != nil {
		var failed *types.ConditionalCheckFailedException
		if errors.As(err, &failed) {
			return ports.ErrVersionConflict
		}
		return err
	}
	return nil
}

// userItem is the item PutUser writes.
func userItem(rec ports.UserRecord) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrPK:      str(userPK(rec.App, rec.UserKey)),
		attrSK:      str(userSK),
		attrVersion: num(rec.Version),
	}
	if len(rec.State) > 0 {
		item[attrState] = &types.AttributeValueMemberB{Value: rec.State}
	}
	if set := setOf(rec.Segments); len(set) > 0 {
		item[attrSegments] = &types.AttributeValueMemberSS{Value: set}
	}
	if rec.LastSeq != "" {
		item[attrLastSeq] = str(rec.LastSeq)
	}
	if set := setOf(rec.RecentIDs); len(set) > 0 {
		item[attrRecentIDs] = &types.AttributeValueMemberSS{Value: set}
	}
	if rec.DueAt > 0 {
		item[attrDueAt] = num(rec.DueAt)
		item[attrDueBucket] = str(dueBucket(rec.App, rec.DueAt))
	}
	if rec.ExpiresAt > 0 {
		item[attrExpiresAt] = num(rec.ExpiresAt)
	}
	return item
}

func parseUser(app, userKey string, item map[string]types.AttributeValue) (ports.UserRecord, error) {
	rec := ports.UserRecord{App: app, UserKey: userKey}
	var err error
	if rec.Version, err = getNum(item, attrVersion); err != nil {
		return rec, err
	}
	if rec.Version == 0 {
		return rec, fmt.Errorf("item has no %s", attrVersion)
	}
	if b, ok := item[attrState].(*types.AttributeValueMemberB); ok {
		rec.State = b.Value
	}
	rec.Segments = getSet(item, attrSegments)
	rec.RecentIDs = getSet(item, attrRecentIDs)
	if v, ok := item[attrLastSeq].(*types.AttributeValueMemberS); ok {
		rec.LastSeq = v.Value
	}
	if rec.DueAt, err = getNum(item, attrDueAt); err != nil {
		return rec, err
	}
	if rec.ExpiresAt, err = getNum(item, attrExpiresAt); err != nil {
		return rec, err
	}
	return rec, nil
}

// setOf returns the distinct values of ss, sorted: what a DynamoDB set holds.
func setOf(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

func getSet(item map[string]types.AttributeValue, name string) []string {
	v, ok := item[name].(*types.AttributeValueMemberSS)
	if !ok {
		return nil
	}
	return setOf(v.Value)
}

// getNum reads an integer N attribute; absent is 0.
func getNum(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name]
	if !ok {
		return 0, nil
	}
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("attribute %s is %T, want N", name, v)
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("attribute %s: %w", name, err)
	}
	return i, nil
}

func getStr(item map[string]types.AttributeValue, name string) (string, error) {
	v, ok := item[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", fmt.Errorf("attribute %s missing or not S", name)
	}
	return v.Value, nil
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(pk), attrSK: str(sk)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

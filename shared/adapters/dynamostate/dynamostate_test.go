package dynamostate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
	"github.com/retarget-dev/retarget/shared/testkit/statetest"
)

// dynalite starts an emulator for the test and returns a client for it.
func dynalite(t *testing.T) *dynamodb.Client {
	t.Helper()
	emu := emulators.StartForTest(t, emulators.DynamoDB)
	cfg, err := emulators.AWSConfig(context.Background(), emu.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(cfg)
}

var tables atomic.Int64

// freshTable creates a new, empty table and returns its name.
func freshTable(t *testing.T, client *dynamodb.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("segments-%d", tables.Add(1))
	if err := CreateTable(ctx, client, name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestContract(t *testing.T) {
	client := dynalite(t)
	statetest.Run(t, func(t *testing.T) ports.SegmentStore {
		return New(client, freshTable(t, client), Options{})
	})
}

func TestSyncContract(t *testing.T) {
	client := dynalite(t)
	statetest.RunSync(t, func(t *testing.T) ports.AudienceSyncStore {
		return New(client, freshTable(t, client), Options{})
	})
}

func TestSpendContract(t *testing.T) {
	client := dynalite(t)
	statetest.RunSpend(t, func(t *testing.T) ports.SpendStore {
		return New(client, freshTable(t, client), Options{})
	})
}

func TestAutomationContract(t *testing.T) {
	client := dynalite(t)
	statetest.RunAutomation(t, func(t *testing.T) ports.AutomationStore {
		return New(client, freshTable(t, client), Options{})
	})
}

func TestConsentContract(t *testing.T) {
	client := dynalite(t)
	statetest.RunConsent(t, func(t *testing.T) statetest.ConsentStore {
		return New(client, freshTable(t, client), Options{})
	})
}

func TestUserReadContract(t *testing.T) {
	client := dynalite(t)
	statetest.RunUserRead(t, func(t *testing.T) statetest.UserReadStore {
		return New(client, freshTable(t, client), Options{})
	})
}

func TestCreateTable(t *testing.T) {
	client := dynalite(t)
	name := freshTable(t, client)
	ctx := context.Background()
	if err := CreateTable(ctx, client, name); err != nil { // exists: accepted
		t.Fatalf("second CreateTable: %v", err)
	}
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	tbl := out.Table
	if got := keySchema(tbl.KeySchema); got != "pk HASH, sk RANGE" {
		t.Errorf("table keys = %s", got)
	}
	if tbl.BillingModeSummary == nil || tbl.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode = %+v, want PAY_PER_REQUEST", tbl.BillingModeSummary)
	}
	var attrs []string
	for _, a := range tbl.AttributeDefinitions {
		attrs = append(attrs, aws.ToString(a.AttributeName)+" "+string(a.AttributeType))
	}
	slices.Sort(attrs)
	if want := []string{"dueAt N", "dueBucket S", "pendingPk S", "pk S", "sk S", "unpubPk S"}; !slices.Equal(attrs, want) {
		t.Errorf("attribute definitions = %v, want %v", attrs, want)
	}
	gsis := map[string]string{}
	for _, g := range tbl.GlobalSecondaryIndexes {
		gsis[aws.ToString(g.IndexName)] = keySchema(g.KeySchema) + " / " + string(g.Projection.ProjectionType)
	}
	want := map[string]string{
		"pending":     "pendingPk HASH, sk RANGE / ALL",
		"unpublished": "unpubPk HASH, sk RANGE / ALL",
		"due":         "dueBucket HASH, dueAt RANGE / KEYS_ONLY",
	}
	if fmt.Sprint(gsis) != fmt.Sprint(want) {
		t.Errorf("GSIs = %v, want %v", gsis, want)
	}
	if err := CreateTable(ctx, client, "bad name!"); err == nil {
		t.Error("CreateTable with an invalid name succeeded")
	}
}

func keySchema(ks []types.KeySchemaElement) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	return strings.Join(parts, ", ")
}

// TestItemLayout pins the attributes of the items: the CDK stack and any reader of the table
// depend on them.
func TestItemLayout(t *testing.T) {
	client := dynalite(t)
	table := freshTable(t, client)
	s := New(client, table, Options{ChangeRetention: 48 * time.Hour})
	ctx := context.Background()
	raw := func(pk, sk string) map[string]types.AttributeValue {
		t.Helper()
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(pk, sk), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}

	dueAt := time.Date(2026, 3, 10, 9, 59, 59, 0, time.UTC).Unix()
	if err := s.PutUser(ctx, ports.UserRecord{
		App: "shop", UserKey: "u#1", State: []byte{1, 2}, Segments: []string{"vip"}, LastSeq: "0042",
		RecentIDs: []string{"id1"}, Version: 1, DueAt: dueAt, ExpiresAt: 1_800_000_000,
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(ctx, ports.UserRecord{App: "shop", UserKey: "bare", Version: 1}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC).UnixMilli() + 7
	change := ports.MembershipChange{App: "shop", Segment: "vip", UserKey: "u#1", Joined: true, At: at}
	if err := s.RecordChanges(ctx, []ports.MembershipChange{change}); err != nil {
		t.Fatal(err)
	}
	changeSK := fmt.Sprintf("%013d#u#1#j", at)
	full := ports.MembershipChange{App: "shop", Segment: "cart", UserKey: "u#1", Joined: false, At: at, StateVersion: 3,
		RecordedAt: at + 1, Reason: ports.ReasonConsent, AppUserID: "player-1"}
	if err := s.RecordChanges(ctx, []ports.MembershipChange{full}); err != nil {
		t.Fatal(err)
	}
	fullSK := fmt.Sprintf("%013d#u#1#l", at)
	if err := s.SetLastDeliveries(ctx, "shop", map[string]int64{"u#1": at}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		item map[string]types.AttributeValue
		want string
	}{
		{"user", raw("user#shop#u#1", "state"),
			"dueAt=N:" + fmt.Sprint(dueAt) + " dueBucket=S:shop#2026031009 expiresAt=N:1800000000 ids=SS:[id1] pk=S:user#shop#u#1 " +
				"segs=SS:[vip] seq=S:0042 sk=S:state st=B:0102 ver=N:1"},
		{"bare user", raw("user#shop#bare", "state"), "pk=S:user#shop#bare sk=S:state ver=N:1"},
		{"change", raw("chg#shop#vip", changeSK),
			"at=N:" + fmt.Sprint(at) + " expiresAt=N:" + fmt.Sprint(at/1000+48*3600) + " joined=BOOL:true pendingPk=S:shop#vip " +
				"pk=S:chg#shop#vip sk=S:" + changeSK + " uk=S:u#1 unpubPk=S:shop"},
		{"change with every field", raw("chg#shop#cart", fullSK),
			"at=N:" + fmt.Sprint(at) + " auid=S:player-1 expiresAt=N:" + fmt.Sprint(at/1000+48*3600) + " joined=BOOL:false " +
				"pendingPk=S:shop#cart pk=S:chg#shop#cart recAt=N:" + fmt.Sprint(at+1) + " sk=S:" + fullSK +
				" sver=N:3 uk=S:u#1 unpubPk=S:shop why=S:consent"},
		{"cool-down", raw("user#shop#u#1", "cool"),
			"expiresAt=N:" + fmt.Sprint(at/1000+48*3600) + " lastAt=N:" + fmt.Sprint(at) + " pk=S:user#shop#u#1 sk=S:cool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(tt.item); got != tt.want {
				t.Errorf("item =\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}

	pending, _, err := s.PendingChanges(ctx, "shop", "vip", "", 10)
	if err != nil || len(pending) != 1 || pending[0].Cursor != changeSK {
		t.Fatalf("PendingChanges = %+v, %v; want one change with cursor %s", pending, err, changeSK)
	}
	ghost := ports.PendingChange{MembershipChange: ports.MembershipChange{App: "shop", Segment: "vip", UserKey: "ghost", At: 5}}
	if err := s.MarkSynced(ctx, append(pending, ghost)); err != nil {
		t.Fatal(err)
	}
	if got := describe(raw("chg#shop#vip", changeSK)); strings.Contains(got, "pendingPk") || !strings.Contains(got, "uk=S:u#1") {
		t.Errorf("synced change = %s, want it kept without pendingPk", got)
	}
	if item := raw("chg#shop#vip", fmt.Sprintf("%013d#ghost#l", 5)); item != nil {
		t.Errorf("MarkSynced created an item for a change never recorded: %s", describe(item))
	}
}

// describe renders an item as sorted name=TYPE:value pairs.
func describe(item map[string]types.AttributeValue) string {
	var parts []string
	for name, v := range item {
		var s string
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			s = "S:" + v.Value
		case *types.AttributeValueMemberN:
			s = "N:" + v.Value
		case *types.AttributeValueMemberB:
			s = fmt.Sprintf("B:%x", v.Value)
		case *types.AttributeValueMemberBOOL:
			s = fmt.Sprintf("BOOL:%v", v.Value)
		case *types.AttributeValueMemberSS:
			s = fmt.Sprintf("SS:%v", v.Value)
		default:
			s = fmt.Sprintf("%T", v)
		}
		parts = append(parts, name+"="+s)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// flakyBatches leaves the last items of the first few BatchWriteItem calls unprocessed, as
// DynamoDB does under throttling, and passes everything else to the real client.
type flakyBatches struct {
	DynamoAPI
	mu       sync.Mutex
	calls    int
	flaky    int // calls that leave items unprocessed
	leave    int // items left per flaky call
	requests []int
}

func (f *flakyBatches) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	f.mu.Lock()
	f.calls++
	flaky := f.calls <= f.flaky
	var table string
	for name := range in.RequestItems {
		table = name
	}
	reqs := in.RequestItems[table]
	f.requests = append(f.requests, len(reqs))
	f.mu.Unlock()

	var left []types.WriteRequest
	if flaky {
		cut := max(len(reqs)-f.leave, 0)
		reqs, left = reqs[:cut], reqs[cut:]
	}
	out := &dynamodb.BatchWriteItemOutput{}
	if len(reqs) > 0 {
		var err error
		out, err = f.DynamoAPI.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}}, optFns...)
		if err != nil {
			return nil, err
		}
	}
	if len(left) > 0 {
		out.UnprocessedItems = map[string][]types.WriteRequest{table: left}
	}
	return out, nil
}

func TestUnprocessedItemsAreRetried(t *testing.T) {
	client := dynalite(t)
	var changes []ports.MembershipChange
	for i := range 60 {
		changes = append(changes, ports.MembershipChange{App: "shop", Segment: "s", UserKey: fmt.Sprintf("u%02d", i), Joined: true, At: int64(i)})
	}
	// One call at a time, so that the order of the calls is the order of the chunks.
	fast := Options{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, SyncConcurrency: 1}

	t.Run("until done", func(t *testing.T) {
		flaky := &flakyBatches{DynamoAPI: client, flaky: 2, leave: 10}
		s := New(flaky, freshTable(t, client), fast)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.RecordChanges(ctx, changes); err != nil {
			t.Fatal(err)
		}
		// Chunk 1: 25 (10 left), 10 (all left), 10; chunks 2 and 3: 25 and 10.
		if want := []int{25, 10, 10, 25, 10}; !slices.Equal(flaky.requests, want) {
			t.Errorf("BatchWriteItem sizes = %v, want %v", flaky.requests, want)
		}
		got, next, err := s.PendingChanges(ctx, "shop", "s", "", 100)
		if err != nil || next != "" || len(got) != 60 {
			t.Fatalf("pending = %d changes, next %q, %v; want all 60", len(got), next, err)
		}
		for i, p := range got {
			if p.MembershipChange != changes[i] {
				t.Fatalf("pending[%d] = %+v, want %+v", i, p.MembershipChange, changes[i])
			}
		}
	})

	t.Run("until the context ends", func(t *testing.T) {
		flaky := &flakyBatches{DynamoAPI: client, flaky: 1 << 30, leave: 25}
		s := New(flaky, freshTable(t, client), fast)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := s.RecordChanges(ctx, changes)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unprocessed") {
			t.Fatalf("RecordChanges = %v, want unprocessed items and the deadline", err)
		}
		if flaky.calls < 3 {
			t.Errorf("%d calls, want retries with backoff", flaky.calls)
		}
	})
}

func TestUserItemSize(t *testing.T) {
	t.Run("numbers", func(t *testing.T) {
		// Sizes as dynalite computes them (checked against DynamoDB by its authors).
		tests := map[string]int{
			"0": 1, "1": 2, "12": 2, "99": 2, "100": 2, "101": 3, "120": 3, "123": 3, "1000": 2, "1200": 2,
			"12345678": 5, "123456789": 6, "1773144000": 5, "1773144001": 6, "-5": 3, "0.5": 2, "0.05": 2,
			"1.5": 3, "007": 2, "9223372036854775807": 11,
		}
		for in, want := range tests {
			if got := numberSize(in); got != want {
				t.Errorf("numberSize(%s) = %d, want %d", in, got, want)
			}
		}
	})

	rec := ports.UserRecord{
		App: "shop", UserKey: "user-1", Segments: []string{"vip", "buyers"}, LastSeq: strings.Repeat("9", 56),
		RecentIDs: []string{"a1b2c3d4", "e5f6a7b8"}, Version: 1234, DueAt: 1_773_144_000, ExpiresAt: 1_780_000_000,
		State: []byte{1},
	}
	// Name + value: pk 2+16, sk 2+5, ver 3+3 (12|34), st 2+1, segs 4+9, seq 3+56, ids 3+16,
	// dueAt 5+5 (17|73|14|40), dueBucket 9+15, expiresAt 9+3 (17|80).
	if got, want := UserItemSize(rec), 18+7+6+3+13+59+19+10+24+12; got != want {
		t.Errorf("UserItemSize = %d, want %d", got, want)
	}
	if got := UserItemSize(ports.UserRecord{App: "a", UserKey: "ü", Version: 1}); got != 2+len("user#a#ü")+2+5+3+2 {
		t.Errorf("UserItemSize of a bare user = %d (names and UTF-8 bytes)", got)
	}

	// dynalite bills ceil(size/1024) units per write: items one byte either side of a unit
	// boundary pin the size to the byte.
	client := dynalite(t)
	table := freshTable(t, client)
	base := UserItemSize(rec) - len(rec.State)
	for i, size := range []int{1024, 1025, 2048, 2049, 4096, 4097} {
		r := rec
		r.UserKey = fmt.Sprintf("user-%d", i%10) // same length as user-1
		r.State = make([]byte, size-base)
		if got := UserItemSize(r); got != size {
			t.Fatalf("UserItemSize = %d, want %d", got, size)
		}
		out, err := client.PutItem(context.Background(), &dynamodb.PutItemInput{
			TableName: aws.String(table), Item: userItem(r), ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
		})
		if err != nil {
			t.Fatal(err)
		}
		want := float64((size + 1023) / 1024)
		if out.ConsumedCapacity == nil || aws.ToFloat64(out.ConsumedCapacity.CapacityUnits) != want {
			t.Errorf("size %d: dynalite consumed %+v units, want %v", size, out.ConsumedCapacity, want)
		}
	}
}

// countingAPI counts the calls of each DynamoDB operation and passes them to the real client.
type countingAPI struct {
	DynamoAPI
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingAPI) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
}

func (c *countingAPI) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem")
	return c.DynamoAPI.GetItem(ctx, in, optFns...)
}

func (c *countingAPI) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem")
	return c.DynamoAPI.PutItem(ctx, in, optFns...)
}

func (c *countingAPI) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	c.count("BatchWriteItem")
	return c.DynamoAPI.BatchWriteItem(ctx, in, optFns...)
}

func (c *countingAPI) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count("UpdateItem")
	return c.DynamoAPI.UpdateItem(ctx, in, optFns...)
}

func (c *countingAPI) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query")
	if !aws.ToBool(in.ConsistentRead) {
		c.count("Query(eventually consistent)")
	}
	return c.DynamoAPI.Query(ctx, in, optFns...)
}

func (c *countingAPI) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.count("BatchGetItem")
	return c.DynamoAPI.BatchGetItem(ctx, in, optFns...)
}

func (c *countingAPI) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := fmt.Sprint(c.calls)
	c.calls = map[string]int{}
	return s
}

// TestUpdateRequests pins what one Update costs: one strongly consistent read, one
// BatchWriteItem when there are membership changes (none without) and one conditional PutItem;
// nothing but the read when there is nothing to write. Every writer of user state pays this
// per user, so an extra request here is an extra request per user of every stream batch.
func TestUpdateRequests(t *testing.T) {
	client := dynalite(t)
	api := &countingAPI{DynamoAPI: client, calls: map[string]int{}}
	s := New(api, freshTable(t, client), Options{})
	ctx := context.Background()
	tests := []struct {
		name string
		fn   func(*ports.UserState) error
		want string
	}{
		{"new user joining two segments", func(u *ports.UserState) error {
			u.Segments, u.ChangedAt = []string{"a", "b"}, 1
			return nil
		}, "map[BatchWriteItem:1 GetItem:1 PutItem:1]"},
		{"state change without membership change", func(u *ports.UserState) error {
			u.State.LastSeen = 5
			return nil
		}, "map[GetItem:1 PutItem:1]"},
		{"nothing to write", func(u *ports.UserState) error {
			u.Segments = nil
			return ports.ErrNothingToWrite
		}, "map[GetItem:1]"},
	}
	for _, tt := range tests {
		if _, err := s.Update(ctx, "shop", "u", tt.fn); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := api.take(); got != tt.want {
			t.Errorf("%s: requests %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestPublishContract(t *testing.T) {
	client := dynalite(t)
	statetest.RunPublish(t, func(t *testing.T) statetest.PublishStore {
		return New(client, freshTable(t, client), Options{})
	})
}

// TestReadUserRequests pins what the segment updater pays per user: ReadUser is one strongly
// consistent Query whatever the partition holds (state, consent and cool-down items), and
// UpdateRead from it writes without reading again.
func TestReadUserRequests(t *testing.T) {
	client := dynalite(t)
	api := &countingAPI{DynamoAPI: client, calls: map[string]int{}}
	s := New(api, freshTable(t, client), Options{})
	ctx := context.Background()
	if err := s.PutConsent(ctx, ports.UserConsent{App: "shop", UserKey: "u", AdsPersonalization: true, At: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastDeliveries(ctx, "shop", map[string]int64{"u": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "shop", "u", func(u *ports.UserState) error { u.State.LastSeen = 5; return nil }); err != nil {
		t.Fatal(err)
	}
	api.take()
	read, err := s.ReadUser(ctx, "shop", "u")
	if err != nil || !read.Found || read.Consent == nil || read.Record.Version != 1 {
		t.Fatalf("ReadUser = %+v, %v; want the state and the consent", read, err)
	}
	if got := api.take(); got != "map[Query:1]" {
		t.Errorf("ReadUser: requests %s, want one strongly consistent Query", got)
	}
	if _, err := s.UpdateRead(ctx, read, func(u *ports.UserState) error { u.State.LastSeen = 6; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := api.take(); got != "map[PutItem:1]" {
		t.Errorf("UpdateRead: requests %s, want the conditional write alone", got)
	}
}

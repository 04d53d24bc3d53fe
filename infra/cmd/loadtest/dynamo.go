package main

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/sandbox/emulators"
)

// ItemSample describes user items read back from the state table after the run.
type ItemSample struct {
	Items     int     `json:"items"`
	MeanBytes float64 `json:"mean_bytes"`
	MaxBytes  int     `json:"max_bytes"`
	// WriteUnitsPerWrite is the mean of ceil(size / 1 KB): what one PutItem of such an item
	// costs on the table (DynamoDB bills the larger of the old and new item; items grow, so
	// the size after the run is the larger one).
	WriteUnitsPerWrite float64 `json:"write_units_per_write"`
	// ReadUnitsPerRead is the mean of ceil(size / 4 KB): one strongly consistent GetItem.
	ReadUnitsPerRead float64 `json:"read_units_per_read"`
	// DueShare is the share of items in the sparse due index.
	DueShare float64 `json:"due_share"`
}

// sampleUserItems reads up to max user items of app from the state table, sized by the
// table's own size model (dynamostate.UserItemSize, AWS's item size rules).
func sampleUserItems(ctx context.Context, endpoint, table, app string, limit int) (ItemSample, error) {
	cfg, err := emulators.AWSConfig(ctx, endpoint)
	if err != nil {
		return ItemSample{}, err
	}
	client := dynamodb.NewFromConfig(cfg)
	store := dynamostate.New(client, table, dynamostate.Options{})
	prefix := "user#" + app + "#"
	var keys []string
	var start map[string]types.AttributeValue
	for len(keys) < limit {
		out, err := client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ExclusiveStartKey: start,
			ProjectionExpression: aws.String("pk, sk"), Limit: aws.Int32(1000)})
		if err != nil {
			return ItemSample{}, fmt.Errorf("scan %s: %w", table, err)
		}
		for _, item := range out.Items {
			pk, _ := item[dynamostate.PartitionKey].(*types.AttributeValueMemberS)
			sk, _ := item[dynamostate.SortKey].(*types.AttributeValueMemberS)
			if pk != nil && sk != nil && sk.Value == "state" && strings.HasPrefix(pk.Value, prefix) {
				keys = append(keys, strings.TrimPrefix(pk.Value, prefix))
			}
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		start = out.LastEvaluatedKey
	}
	keys = keys[:min(len(keys), limit)]
	var s ItemSample
	var sum, wu, ru float64
	due := 0
	for _, uk := range keys {
		rec, found, err := store.GetUser(ctx, app, uk)
		if err != nil {
			return ItemSample{}, err
		}
		if !found {
			continue
		}
		size := dynamostate.UserItemSize(rec)
		s.Items++
		sum += float64(size)
		s.MaxBytes = max(s.MaxBytes, size)
		wu += math.Max(1, math.Ceil(float64(size)/1024))
		ru += math.Max(1, math.Ceil(float64(size)/4096))
		if rec.DueAt > 0 {
			due++
		}
	}
	if s.Items > 0 {
		n := float64(s.Items)
		s.MeanBytes, s.WriteUnitsPerWrite, s.ReadUnitsPerRead, s.DueShare = sum/n, wu/n, ru/n, float64(due)/n
	}
	return s, nil
}

// DynamoActivity is what the functions did to the state table during the run, from their
// EMF metrics and log lines.
type DynamoActivity struct {
	Events float64 // events the API accepted
	// Updater: users per batch summed (one GetItem and one consent key each), user item
	// writes, failed conditional writes (they consume write units too), membership changes.
	UpdaterUsers, UpdaterRecords, UserWrites, WriteConflicts, UpdaterChanges float64
	// UsersCreated: distinct users seen for the first time (their item enters the due index).
	UsersCreated float64
	// ForwarderRecords: records the forwarder read (it reads the consent decisions of each
	// batch's users).
	ForwarderRecords float64
	// Sweeper: users swept (GetItem and PutItem each) and their membership changes.
	SweptUsers, SweeperChanges float64
	// AudienceRows: rows added to and removed from audiences by the sync.
	AudienceRows float64
}

// DynamoUnits are request units with the share of each cause.
type DynamoUnits struct {
	WriteUnits         float64            `json:"write_units"`
	ReadUnits          float64            `json:"read_units"`
	WriteUnitsPerEvent float64            `json:"write_units_per_event"`
	ReadUnitsPerEvent  float64            `json:"read_units_per_event"`
	Writes             map[string]float64 `json:"writes_by_cause"`
	Reads              map[string]float64 `json:"reads_by_cause"`
}

// EstimateDynamoUnits prices the activity in request units with the table's access pattern
// (shared/adapters/dynamostate) and the measured item sizes:
//
//	updater   per user and batch: one strongly consistent Query of the user's partition (state
//	          and consent items together, ceil(summed size/4 KB), 1 RU for every user here); per write a
//	          conditional PutItem (ceil(size/1 KB), also when the condition fails); the due
//	          index gains an entry for each new user that has a due time (1 WU; later moves
//	          are rare: the updater keeps an earlier due time); each membership change is a
//	          change item and its pending-index entry (2 WU)
//	forwarder one consent key per user and batch; users per record taken from the updater's
//	          batches (the forwarder's batches are twice as large, so this overestimates a little)
//	sweeper   per user GetItem + PutItem + a due-index move (2 WU); its changes as above
//	sync      per audience row: the user's GetItem, the change's MarkSynced UpdateItem and its
//	          pending-index removal, the member index item (3 WU)
func EstimateDynamoUnits(a DynamoActivity, s ItemSample) DynamoUnits {
	wPer, rPer := math.Max(1, s.WriteUnitsPerWrite), math.Max(1, s.ReadUnitsPerRead)
	u := DynamoUnits{Writes: map[string]float64{}, Reads: map[string]float64{}}
	u.Writes["user items (updater)"] = (a.UserWrites + a.WriteConflicts) * wPer
	u.Writes["due index entries"] = a.UsersCreated * s.DueShare
	u.Writes["membership changes"] = 2 * (a.UpdaterChanges + a.SweeperChanges)
	u.Writes["sweeper"] = a.SweptUsers * (wPer + 2)
	u.Writes["audience sync"] = 3 * a.AudienceRows
	// One strongly consistent Query per user and batch reads the state and consent items
	// together (billed on their summed size, in 4 KB units), and one more after a conflict.
	u.Reads["user items (updater)"] = (a.UpdaterUsers + a.WriteConflicts) * rPer
	usersPerRecord := 0.0
	if a.UpdaterRecords > 0 {
		usersPerRecord = a.UpdaterUsers / a.UpdaterRecords
	}
	u.Reads["consent (forwarder)"] = a.ForwarderRecords * usersPerRecord
	u.Reads["sweeper"] = a.SweptUsers * rPer
	u.Reads["audience sync"] = a.AudienceRows * rPer
	for _, v := range u.Writes {
		u.WriteUnits += v
	}
	for _, v := range u.Reads {
		u.ReadUnits += v
	}
	if a.Events > 0 {
		u.WriteUnitsPerEvent, u.ReadUnitsPerEvent = u.WriteUnits/a.Events, u.ReadUnits/a.Events
	}
	return u
}

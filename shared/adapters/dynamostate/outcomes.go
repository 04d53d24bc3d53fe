package dynamostate

// Outcome counters (ports.OutcomeStore) live on the same table, without an index:
//
//	outcome item  pk=out#<app>#<segment>  sk=<join day, 6 digits>
//	              tu tr1 tr7 tr28 tp28 trev  hu hr1 hr7 hr28 hp28 hrev (N): per arm (t treated,
//	              h holdout) users, re-engaged within 1/7/28 days, purchasers and revenue
//	              (micros) within 28 days
//
// One item per audience and UTC join day holds both arms' cohorts, changed only by UpdateItem
// ADD, so concurrent writers (every updater shard, the sweeper) add up without reading, and a
// batch that touches both arms of a day pays one write unit, not two (the item stays far under
// 1 KB). A counter never written is absent and reads as 0; an arm with no counter at all is not
// returned. The items carry no TTL: they are the report's history, about a hundred bytes per
// audience and day. A report reads one audience's days with one Query (BETWEEN on the sort key).

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.OutcomeStore = (*Store)(nil)

// Outcome item attributes, without the arm's prefix (armPrefix).
const (
	attrUsers       = "u"
	attrReengaged1  = "r1"
	attrReengaged7  = "r7"
	attrReengaged28 = "r28"
	attrPurchasers  = "p28"
	attrRevenue     = "rev"
)

func outcomePK(app, segment string) string { return "out#" + app + "#" + segment }

// outcomeSK is the join day, 6 digits: string order is day order.
func outcomeSK(day int64) string { return fmt.Sprintf("%06d", day) }

// armPrefix starts the names of an arm's counters in the day's item.
func armPrefix(arm holdout.Arm) string {
	if arm == holdout.Holdout {
		return "h"
	}
	return "t"
}

// counters lists an outcome's counters with their attribute names (unprefixed).
func counters(o *ports.Outcome) []struct {
	attr string
	v    *int64
} {
	return []struct {
		attr string
		v    *int64
	}{{attrUsers, &o.Users}, {attrReengaged1, &o.Reengaged1d}, {attrReengaged7, &o.Reengaged7d},
		{attrReengaged28, &o.Reengaged28d}, {attrPurchasers, &o.Purchasers28d}, {attrRevenue, &o.RevenueMicros}}
}

// AddOutcomes adds the deltas with one UpdateItem ADD per distinct audience and join day
// (deltas of the same cohort are summed first, both arms of a day go in one call),
// SyncConcurrency calls at a time. ADD is not idempotent: a call that failed may have applied
// some days; the caller decides whether to retry (the updater does, a few times, and accepts a
// rare double count over losing a batch's counters silently).
func (s *Store) AddOutcomes(ctx context.Context, deltas []ports.Outcome) error {
	merged, err := storecheck.MergeOutcomes(deltas)
	if err != nil {
		return fmt.Errorf("add outcomes: %w", err)
	}
	type dayKey struct {
		app, segment string
		day          int64
	}
	var days []dayKey
	byDay := map[dayKey][]ports.Outcome{}
	for _, o := range merged {
		k := dayKey{o.App, o.Segment, o.JoinDay}
		if _, ok := byDay[k]; !ok {
			days = append(days, k)
		}
		byDay[k] = append(byDay[k], o)
	}
	if err := s.concurrently(ctx, len(days), func(ctx context.Context, i int) error {
		return s.addOutcomeDay(ctx, byDay[days[i]])
	}); err != nil {
		return fmt.Errorf("add outcomes: %w", err)
	}
	return nil
}

// OutcomeItemWrites is how many UpdateItem calls (of 1 write unit each: the items stay far under
// 1 KB) AddOutcomes makes for deltas: one per distinct audience and join day with a non-zero
// counter. The updater's benchmark bills the counters with it.
func OutcomeItemWrites(deltas []ports.Outcome) int {
	type dayKey struct {
		app, segment string
		day          int64
	}
	days := map[dayKey]bool{}
	for _, o := range deltas {
		if !o.OutcomeCounts.IsZero() {
			days[dayKey{o.App, o.Segment, o.JoinDay}] = true
		}
	}
	return len(days)
}

// addOutcomeDay adds the cohorts of one audience and day (one or both arms) in one UpdateItem.
func (s *Store) addOutcomeDay(ctx context.Context, cohorts []ports.Outcome) error {
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	var adds []string
	for i := range cohorts {
		p := armPrefix(cohorts[i].Arm)
		for _, c := range counters(&cohorts[i]) {
			if *c.v == 0 {
				continue // an ADD of 0 would still bill its bytes
			}
			a := p + c.attr
			names["#"+a] = a
			values[":"+a] = num(*c.v)
			adds = append(adds, "#"+a+" :"+a)
		}
	}
	if len(adds) == 0 {
		return nil
	}
	o := cohorts[0]
	pk, sk := outcomePK(o.App, o.Segment), outcomeSK(o.JoinDay)
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(pk, sk),
		UpdateExpression:          aws.String("ADD " + strings.Join(adds, ", ")),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if err != nil {
		return fmt.Errorf("outcome %s %s: %w", pk, sk, err)
	}
	return nil
}

// Outcomes reads the cohorts of app's segment that joined from fromDay to toDay with one
// Query (following LastEvaluatedKey past 1 MB), strongly consistent.
func (s *Store) Outcomes(ctx context.Context, app, segment string, fromDay, toDay int64) ([]ports.Outcome, error) {
	if err := storecheck.OutcomeRange(app, segment, fromDay, toDay); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	pk := outcomePK(app, segment)
	var out []ports.Outcome
	var start map[string]types.AttributeValue
	for {
		res, err := s.client.Query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(s.table),
			ConsistentRead:         aws.Bool(true),
			KeyConditionExpression: aws.String("#pk = :pk AND #sk BETWEEN :from AND :to"),
			ExpressionAttributeNames: map[string]string{
				"#pk": attrPK, "#sk": attrSK,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": str(pk), ":from": str(outcomeSK(fromDay)), ":to": str(outcomeSK(toDay)),
			},
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, fmt.Errorf("outcomes of %s/%s: %w", app, segment, err)
		}
		for _, item := range res.Items {
			os, err := parseOutcomes(app, segment, item)
			if err != nil {
				return nil, fmt.Errorf("outcomes of %s/%s: %w", app, segment, err)
			}
			out = append(out, os...)
		}
		if start = res.LastEvaluatedKey; start == nil {
			slices.SortStableFunc(out, func(a, b ports.Outcome) int {
				return cmp.Or(cmp.Compare(a.JoinDay, b.JoinDay), cmp.Compare(a.Arm, b.Arm))
			})
			return out, nil
		}
	}
}

// parseOutcomes reads one day's item: the cohort of each arm that has a counter, treated first.
func parseOutcomes(app, segment string, item map[string]types.AttributeValue) ([]ports.Outcome, error) {
	sk, err := getStr(item, attrSK)
	if err != nil {
		return nil, err
	}
	day, err := strconv.ParseInt(sk, 10, 64)
	if err != nil || len(sk) != 6 {
		return nil, fmt.Errorf("outcome sort key %q is not a 6-digit day", sk)
	}
	var out []ports.Outcome
	for _, arm := range holdout.Arms {
		o := ports.Outcome{OutcomeKey: ports.OutcomeKey{App: app, Segment: segment, JoinDay: day, Arm: arm}}
		present := false
		for _, c := range counters(&o) {
			a := armPrefix(arm) + c.attr
			if _, ok := item[a]; !ok {
				continue
			}
			present = true
			if *c.v, err = getNum(item, a); err != nil {
				return nil, fmt.Errorf("outcome %s: %w", sk, err)
			}
		}
		if present {
			out = append(out, o)
		}
	}
	return out, nil
}

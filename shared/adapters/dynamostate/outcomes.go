package dynamostate

// Outcome counters (ports.OutcomeStore) live on the same table, without an index:
//
//	outcome item  pk=out#<app>#<segment>  sk=<join day, 6 digits>#<t|h>
//	              u r1 r7 r28 p28 rev (N): users, re-engaged within 1/7/28 days, purchasers
//	              and revenue (micros) within 28 days
//
// One item per cohort (audience, UTC join day, arm), changed only by UpdateItem ADD, so
// concurrent writers (every updater shard, the sweeper) add up without reading; a counter
// never written is absent and reads as 0. The items carry no TTL: they are the report's
// history, a few hundred bytes per audience and day. A report reads one audience's days with
// one Query (BETWEEN on the sort key).

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

// Outcome item attributes.
const (
	attrUsers       = "u"
	attrReengaged1  = "r1"
	attrReengaged7  = "r7"
	attrReengaged28 = "r28"
	attrPurchasers  = "p28"
	attrRevenue     = "rev"
)

func outcomePK(app, segment string) string { return "out#" + app + "#" + segment }

// outcomeSK is <join day, 6 digits>#<t|h>: string order is day order (within a day the
// holdout sorts first; Outcomes returns treated first, as the port says).
func outcomeSK(day int64, arm holdout.Arm) string {
	a := "t"
	if arm == holdout.Holdout {
		a = "h"
	}
	return fmt.Sprintf("%06d#%s", day, a)
}

func parseOutcomeSK(sk string) (int64, holdout.Arm, error) {
	d, a, ok := strings.Cut(sk, "#")
	day, err := strconv.ParseInt(d, 10, 64)
	if !ok || err != nil || (a != "t" && a != "h") {
		return 0, 0, fmt.Errorf("outcome sort key %q is not <day>#<t|h>", sk)
	}
	if a == "h" {
		return day, holdout.Holdout, nil
	}
	return day, holdout.Treated, nil
}

// AddOutcomes adds the deltas with one UpdateItem ADD per distinct cohort (deltas of the same
// cohort are summed first), SyncConcurrency calls at a time. ADD is not idempotent: a call that
// failed may have applied some cohorts; the caller decides whether to retry (the updater does,
// a few times, and accepts a rare double count over losing a batch's counters silently).
func (s *Store) AddOutcomes(ctx context.Context, deltas []ports.Outcome) error {
	merged, err := storecheck.MergeOutcomes(deltas)
	if err != nil {
		return fmt.Errorf("add outcomes: %w", err)
	}
	if err := s.concurrently(ctx, len(merged), func(ctx context.Context, i int) error {
		return s.addOutcome(ctx, merged[i])
	}); err != nil {
		return fmt.Errorf("add outcomes: %w", err)
	}
	return nil
}

func (s *Store) addOutcome(ctx context.Context, o ports.Outcome) error {
	names := map[string]string{}
	values := map[string]types.AttributeValue{}
	var adds []string
	for _, c := range []struct {
		attr string
		v    int64
	}{{attrUsers, o.Users}, {attrReengaged1, o.Reengaged1d}, {attrReengaged7, o.Reengaged7d},
		{attrReengaged28, o.Reengaged28d}, {attrPurchasers, o.Purchasers28d}, {attrRevenue, o.RevenueMicros}} {
		if c.v == 0 {
			continue // an ADD of 0 would still bill its bytes
		}
		names["#"+c.attr] = c.attr
		values[":"+c.attr] = num(c.v)
		adds = append(adds, "#"+c.attr+" :"+c.attr)
	}
	pk, sk := outcomePK(o.App, o.Segment), outcomeSK(o.JoinDay, o.Arm)
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
				":pk": str(pk), ":from": str(fmt.Sprintf("%06d#", fromDay)), ":to": str(fmt.Sprintf("%06d#~", toDay)), // after both arms of toDay
			},
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, fmt.Errorf("outcomes of %s/%s: %w", app, segment, err)
		}
		for _, item := range res.Items {
			o, err := parseOutcome(app, segment, item)
			if err != nil {
				return nil, fmt.Errorf("outcomes of %s/%s: %w", app, segment, err)
			}
			out = append(out, o)
		}
		if start = res.LastEvaluatedKey; start == nil {
			slices.SortStableFunc(out, func(a, b ports.Outcome) int {
				return cmp.Or(cmp.Compare(a.JoinDay, b.JoinDay), cmp.Compare(a.Arm, b.Arm))
			})
			return out, nil
		}
	}
}

func parseOutcome(app, segment string, item map[string]types.AttributeValue) (ports.Outcome, error) {
	sk, err := getStr(item, attrSK)
	if err != nil {
		return ports.Outcome{}, err
	}
	day, arm, err := parseOutcomeSK(sk)
	if err != nil {
		return ports.Outcome{}, err
	}
	o := ports.Outcome{OutcomeKey: ports.OutcomeKey{App: app, Segment: segment, JoinDay: day, Arm: arm}}
	for _, c := range []struct {
		attr string
		v    *int64
	}{{attrUsers, &o.Users}, {attrReengaged1, &o.Reengaged1d}, {attrReengaged7, &o.Reengaged7d},
		{attrReengaged28, &o.Reengaged28d}, {attrPurchasers, &o.Purchasers28d}, {attrRevenue, &o.RevenueMicros}} {
		if *c.v, err = getNum(item, c.attr); err != nil {
			return ports.Outcome{}, fmt.Errorf("outcome %s: %w", sk, err)
		}
	}
	return o, nil
}

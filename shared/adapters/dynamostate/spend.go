package dynamostate

// Spend items (the insights run's pull of Ads Insights), in the same table:
//
//	spend item  pk=spend#<app>  sk=<date>#<ad set id>
//	            n(S) aud(SS) cont(SS) spend(N, micros) cur(S) imp(N) reach(N) clk(N) pulled(N)
//
// Zero values are omitted. No TTL: a report over an old period needs its spend as much as its
// cohort counters, and there is one small item per ad set and day.

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.SpendStore = (*Store)(nil)

// Attribute names of spend items.
const (
	attrAdSetName      = "n"
	attrSpendAudiences = "aud"
	attrContaminated   = "cont"
	attrSpend          = "spend"
	attrCurrency       = "cur"
	attrImpressions    = "imp"
	attrReach          = "reach"
	attrClicks         = "clk"
	attrPulledAt       = "pulled"
)

func spendPK(app string) string { return "spend#" + app }

// PutSpend writes each row over the stored one of the same app, date and ad set (Meta restates
// recent days, so the latest pull wins), in BatchWriteItem calls of 25 with the unprocessed
// items retried. A row named twice in one call is written once, the last copy.
func (s *Store) PutSpend(ctx context.Context, rows []ports.SpendDay) error {
	index := map[string]int{}
	var reqs []types.WriteRequest
	for _, r := range rows {
		if err := storecheck.SpendRow(r); err != nil {
			return fmt.Errorf("put spend: %w", err)
		}
		id := spendPK(r.App) + "\x00" + storecheck.SpendKey(r.Date, r.AdSetID)
		req := types.WriteRequest{PutRequest: &types.PutRequest{Item: spendItem(storecheck.NormalizeSpend(r))}}
		if i, dup := index[id]; dup {
			reqs[i] = req // one call must not name a key twice
			continue
		}
		index[id] = len(reqs)
		reqs = append(reqs, req)
	}
	if err := s.batchWriteAll(ctx, reqs); err != nil {
		return fmt.Errorf("put spend: %w", err)
	}
	return nil
}

func spendItem(r ports.SpendDay) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrPK: str(spendPK(r.App)),
		attrSK: str(storecheck.SpendKey(r.Date, r.AdSetID)),
	}
	for name, v := range map[string]string{attrAdSetName: r.AdSet, attrCurrency: r.Currency} {
		if v != "" {
			item[name] = str(v)
		}
	}
	for name, v := range map[string][]string{attrSpendAudiences: r.Audiences, attrContaminated: r.Contaminated} {
		if len(v) > 0 {
			item[name] = &types.AttributeValueMemberSS{Value: v}
		}
	}
	for name, v := range map[string]int64{attrSpend: r.SpendMicros, attrImpressions: r.Impressions, attrReach: r.Reach,
		attrClicks: r.Clicks, attrPulledAt: r.PulledAt} {
		if v != 0 {
			item[name] = num(v)
		}
	}
	return item
}

// Spend queries app's spend partition from fromDate to toDate (inclusive), in sort key order:
// (date, ad set id).
func (s *Store) Spend(ctx context.Context, app, fromDate, toDate string) ([]ports.SpendDay, error) {
	if err := storecheck.SpendRange(app, fromDate, toDate); err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	var out []ports.SpendDay
	var start map[string]types.AttributeValue
	for {
		res, err := s.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                aws.String(s.table),
			KeyConditionExpression:   aws.String("#pk = :pk AND #sk BETWEEN :from AND :to"),
			ExpressionAttributeNames: map[string]string{"#pk": attrPK, "#sk": attrSK},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": str(spendPK(app)), ":from": str(fromDate),
				// '$' follows '#': every "<toDate>#<ad set>" sorts before it.
				":to": str(toDate + "$"),
			},
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, fmt.Errorf("spend of %s from %s to %s: %w", app, fromDate, toDate, err)
		}
		for _, item := range res.Items {
			r, err := parseSpend(app, item)
			if err != nil {
				return nil, fmt.Errorf("spend of %s: %w", app, err)
			}
			out = append(out, r)
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = res.LastEvaluatedKey
	}
}

func parseSpend(app string, item map[string]types.AttributeValue) (ports.SpendDay, error) {
	sk, err := getStr(item, attrSK)
	if err != nil {
		return ports.SpendDay{}, err
	}
	if len(sk) < len(storecheck.DateLayout)+2 || sk[len(storecheck.DateLayout)] != '#' {
		return ports.SpendDay{}, fmt.Errorf("unexpected spend key %q", sk)
	}
	r := ports.SpendDay{App: app, Date: sk[:len(storecheck.DateLayout)], AdSetID: sk[len(storecheck.DateLayout)+1:],
		Audiences: getSet(item, attrSpendAudiences), Contaminated: getSet(item, attrContaminated)}
	r.AdSet, _ = getStr(item, attrAdSetName)
	r.Currency, _ = getStr(item, attrCurrency)
	for name, p := range map[string]*int64{attrSpend: &r.SpendMicros, attrImpressions: &r.Impressions, attrReach: &r.Reach,
		attrClicks: &r.Clicks, attrPulledAt: &r.PulledAt} {
		if *p, err = getNum(item, name); err != nil {
			return r, fmt.Errorf("spend %s: %w", sk, err)
		}
	}
	return r, nil
}

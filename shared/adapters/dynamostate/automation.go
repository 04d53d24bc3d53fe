package dynamostate

// Automation items (the audit trail of the automation's actions and the daily KPI snapshots
// its cost condition reads), in the same table:
//
//	action item  pk=auto#<app>              sk=<action id: <day>-<hash>>
//	             ver(N) doc(S, the ports.AutomationAction as JSON)
//	KPI item     pk=kpi#<app>#<segment>     sk=<date>
//	             cost(S, decimal, absent when none) sig(BOOL) mem(N) cur(S)
//
// An action id starts with the UTC day it was decided, so Action(app, id) is one GetItem and
// Actions(app, from, to) one Query over a key range. The action is stored as one JSON
// document: it is read and written whole (its history grows with each step), holds no
// personal data (rule, ad set, before/after, who: a rule or "operator"), and only its
// version is a condition. No TTL: the audit trail is kept.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

var _ ports.AutomationStore = (*Store)(nil)

// Attribute names of automation items.
const (
	attrActionDoc  = "doc"
	attrKPICost    = "cost"
	attrKPISig     = "sig"
	attrKPIMembers = "mem"
	// attrCurrency (spend.go) holds the KPI day's currency.
)

func actionPK(app string) string { return "auto#" + app }

func kpiPK(app, segment string) string { return "kpi#" + app + "#" + segment }

// PutAction writes a if the stored version is a.Version-1 (absent for 1); a failed condition
// is ports.ErrVersionConflict.
func (s *Store) PutAction(ctx context.Context, a ports.AutomationAction) error {
	if err := storecheck.Action(a); err != nil {
		return fmt.Errorf("put action: %w", err)
	}
	doc, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put action %s: %w", a.ID, err)
	}
	item := map[string]types.AttributeValue{attrPK: str(actionPK(a.App)), attrSK: str(a.ID), attrVersion: num(a.Version),
		attrActionDoc: str(string(doc))}
	if err := s.putVersioned(ctx, item, a.Version); err != nil {
		return fmt.Errorf("put action %s/%s version %d: %w", a.App, a.ID, a.Version, err)
	}
	return nil
}

// Action reads one action with a strongly consistent read.
func (s *Store) Action(ctx context.Context, app, id string) (ports.AutomationAction, bool, error) {
	if err := storecheck.ActionKey(app, id); err != nil {
		return ports.AutomationAction{}, false, fmt.Errorf("action: %w", err)
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: key(actionPK(app), id),
		ConsistentRead: aws.Bool(true)})
	if err != nil {
		return ports.AutomationAction{}, false, fmt.Errorf("action %s/%s: %w", app, id, err)
	}
	if out.Item == nil {
		return ports.AutomationAction{}, false, nil
	}
	a, err := parseAction(out.Item)
	if err != nil {
		return ports.AutomationAction{}, false, fmt.Errorf("action %s/%s: %w", app, id, err)
	}
	return a, true, nil
}

// Actions queries app's actions of the days fromDay to toDay (inclusive), in id order: by day,
// then hash.
func (s *Store) Actions(ctx context.Context, app, fromDay, toDay string) ([]ports.AutomationAction, error) {
	if err := storecheck.SpendRange(app, fromDay, toDay); err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	var out []ports.AutomationAction
	// '~' follows '-' and every hex digit: every "<toDay>-<hash>" sorts before it.
	err := s.queryRange(ctx, actionPK(app), fromDay, toDay+"~", func(item map[string]types.AttributeValue) error {
		a, err := parseAction(item)
		if err == nil {
			out = append(out, a)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("actions of %s from %s to %s: %w", app, fromDay, toDay, err)
	}
	return out, nil
}

func parseAction(item map[string]types.AttributeValue) (ports.AutomationAction, error) {
	doc, err := getStr(item, attrActionDoc)
	if err != nil {
		return ports.AutomationAction{}, err
	}
	var a ports.AutomationAction
	if err := json.Unmarshal([]byte(doc), &a); err != nil {
		return a, fmt.Errorf("action document: %w", err)
	}
	// The key attribute is the authority on the version the condition checks.
	if a.Version, err = getNum(item, attrVersion); err != nil {
		return a, err
	}
	return a, nil
}

// PutKPIs writes each snapshot over the stored one of the same app, segment and date, in
// BatchWriteItem calls of 25; a day named twice in one call is written once, the last copy.
func (s *Store) PutKPIs(ctx context.Context, days []ports.KPIDay) error {
	index := map[string]int{}
	var reqs []types.WriteRequest
	for _, k := range days {
		if err := storecheck.KPIDay(k); err != nil {
			return fmt.Errorf("put KPIs: %w", err)
		}
		item := map[string]types.AttributeValue{attrPK: str(kpiPK(k.App, k.Segment)), attrSK: str(k.Date),
			attrKPISig: &types.AttributeValueMemberBOOL{Value: k.Significant}}
		if k.CostPerIncremental != nil {
			item[attrKPICost] = str(strconv.FormatFloat(*k.CostPerIncremental, 'g', -1, 64))
		}
		if k.Members != 0 {
			item[attrKPIMembers] = num(k.Members)
		}
		if k.Currency != "" {
			item[attrCurrency] = str(k.Currency)
		}
		req := types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}
		id := kpiPK(k.App, k.Segment) + "\x00" + k.Date
		if i, dup := index[id]; dup {
			reqs[i] = req // one call must not name a key twice
			continue
		}
		index[id] = len(reqs)
		reqs = append(reqs, req)
	}
	if err := s.batchWriteAll(ctx, reqs); err != nil {
		return fmt.Errorf("put KPIs: %w", err)
	}
	return nil
}

// KPIs queries one audience's snapshots from fromDay to toDay (inclusive), oldest first.
func (s *Store) KPIs(ctx context.Context, app, segment, fromDay, toDay string) ([]ports.KPIDay, error) {
	if err := storecheck.KPIRange(app, segment, fromDay, toDay); err != nil {
		return nil, fmt.Errorf("KPIs: %w", err)
	}
	var out []ports.KPIDay
	err := s.queryRange(ctx, kpiPK(app, segment), fromDay, toDay, func(item map[string]types.AttributeValue) error {
		k := ports.KPIDay{App: app, Segment: segment}
		var err error
		if k.Date, err = getStr(item, attrSK); err != nil {
			return err
		}
		if v, ok := item[attrKPICost]; ok {
			c, isStr := v.(*types.AttributeValueMemberS)
			if !isStr {
				return fmt.Errorf("KPI day %s: attribute %s is %T, want S", k.Date, attrKPICost, v)
			}
			f, err := strconv.ParseFloat(c.Value, 64)
			if err != nil {
				return fmt.Errorf("KPI day %s: %w", k.Date, err)
			}
			k.CostPerIncremental = &f
		}
		if b, ok := item[attrKPISig].(*types.AttributeValueMemberBOOL); ok {
			k.Significant = b.Value
		}
		if k.Members, err = getNum(item, attrKPIMembers); err != nil {
			return fmt.Errorf("KPI day %s: %w", k.Date, err)
		}
		k.Currency, _ = getStr(item, attrCurrency)
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("KPIs of %s/%s from %s to %s: %w", app, segment, fromDay, toDay, err)
	}
	return out, nil
}

// queryRange runs a consistent Query of pk's items with from <= sk <= to, following pages,
// and hands each item to fn.
func (s *Store) queryRange(ctx context.Context, pk, from, to string, fn func(map[string]types.AttributeValue) error) error {
	var start map[string]types.AttributeValue
	for {
		res, err := s.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("#pk = :pk AND #sk BETWEEN :from AND :to"),
			ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#sk": attrSK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk), ":from": str(from), ":to": str(to)},
			ExclusiveStartKey:         start,
			ConsistentRead:            aws.Bool(true),
		})
		if err != nil {
			return err
		}
		for _, item := range res.Items {
			if err := fn(item); err != nil {
				return err
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return nil
		}
		start = res.LastEvaluatedKey
	}
}

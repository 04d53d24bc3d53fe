package memstate

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// automationState is the automation part of a Store (actions and KPI snapshots), kept apart
// like the spend rows. Actions are keyed as dynamostate keys them: app, then id (which starts
// with the day).
type automationState struct {
	mu      sync.Mutex
	actions map[string]map[string]ports.AutomationAction // app -> id -> action
	kpis    map[[2]string]map[string]ports.KPIDay        // (app, segment) -> date -> day
}

var _ ports.AutomationStore = (*Store)(nil)

// PutAction writes a if the stored version is a.Version-1 (absent for 1), else
// ports.ErrVersionConflict.
func (s *Store) PutAction(ctx context.Context, a ports.AutomationAction) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put action: %w", err)
	}
	if err := storecheck.Action(a); err != nil {
		return fmt.Errorf("put action: %w", err)
	}
	au := &s.automation
	au.mu.Lock()
	defer au.mu.Unlock()
	if au.actions == nil {
		au.actions = map[string]map[string]ports.AutomationAction{}
	}
	if au.actions[a.App] == nil {
		au.actions[a.App] = map[string]ports.AutomationAction{}
	}
	old, exists := au.actions[a.App][a.ID]
	if a.Version == 1 && exists || a.Version > 1 && (!exists || old.Version != a.Version-1) {
		return fmt.Errorf("put action %s/%s version %d: %w", a.App, a.ID, a.Version, ports.ErrVersionConflict)
	}
	au.actions[a.App][a.ID] = cloneAction(a)
	return nil
}

// Action returns a copy of the stored action.
func (s *Store) Action(ctx context.Context, app, id string) (ports.AutomationAction, bool, error) {
	if err := ctx.Err(); err != nil {
		return ports.AutomationAction{}, false, fmt.Errorf("action: %w", err)
	}
	if err := storecheck.ActionKey(app, id); err != nil {
		return ports.AutomationAction{}, false, fmt.Errorf("action: %w", err)
	}
	au := &s.automation
	au.mu.Lock()
	defer au.mu.Unlock()
	a, ok := au.actions[app][id]
	return cloneAction(a), ok, nil
}

// Actions returns app's actions of the days fromDay to toDay (inclusive) in id order.
func (s *Store) Actions(ctx context.Context, app, fromDay, toDay string) ([]ports.AutomationAction, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	if err := storecheck.SpendRange(app, fromDay, toDay); err != nil {
		return nil, fmt.Errorf("actions: %w", err)
	}
	au := &s.automation
	au.mu.Lock()
	defer au.mu.Unlock()
	var ids []string
	for id := range au.actions[app] {
		if id >= fromDay && id <= toDay+"~" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]ports.AutomationAction, 0, len(ids))
	for _, id := range ids {
		out = append(out, cloneAction(au.actions[app][id]))
	}
	return out, nil
}

// PutKPIs writes each snapshot over the stored one of the same app, segment and date.
func (s *Store) PutKPIs(ctx context.Context, days []ports.KPIDay) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put KPIs: %w", err)
	}
	for _, k := range days {
		if err := storecheck.KPIDay(k); err != nil {
			return fmt.Errorf("put KPIs: %w", err)
		}
	}
	au := &s.automation
	au.mu.Lock()
	defer au.mu.Unlock()
	if au.kpis == nil {
		au.kpis = map[[2]string]map[string]ports.KPIDay{}
	}
	for _, k := range days {
		id := [2]string{k.App, k.Segment}
		if au.kpis[id] == nil {
			au.kpis[id] = map[string]ports.KPIDay{}
		}
		if k.CostPerIncremental != nil {
			c := *k.CostPerIncremental
			k.CostPerIncremental = &c
		}
		au.kpis[id][k.Date] = k
	}
	return nil
}

// KPIs returns one audience's snapshots from fromDay to toDay (inclusive), oldest first.
func (s *Store) KPIs(ctx context.Context, app, segment, fromDay, toDay string) ([]ports.KPIDay, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("KPIs: %w", err)
	}
	if err := storecheck.KPIRange(app, segment, fromDay, toDay); err != nil {
		return nil, fmt.Errorf("KPIs: %w", err)
	}
	au := &s.automation
	au.mu.Lock()
	defer au.mu.Unlock()
	days := au.kpis[[2]string{app, segment}]
	var dates []string
	for d := range days {
		if d >= fromDay && d <= toDay {
			dates = append(dates, d)
		}
	}
	slices.Sort(dates)
	var out []ports.KPIDay
	for _, d := range dates {
		k := days[d]
		if k.CostPerIncremental != nil {
			c := *k.CostPerIncremental
			k.CostPerIncremental = &c
		}
		out = append(out, k)
	}
	return out, nil
}

func cloneAction(a ports.AutomationAction) ports.AutomationAction {
	a.History = slices.Clone(a.History)
	return a
}

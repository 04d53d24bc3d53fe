package memstate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/retarget-dev/retarget/shared/adapters/storecheck"
	"github.com/retarget-dev/retarget/shared/ports"
)

// spendState is the spend part of a Store (the insights run's rows), kept apart like the sync
// state. Rows are keyed as dynamostate keys them: app, then "<date>#<ad set id>".
type spendState struct {
	mu   sync.Mutex
	rows map[string]map[string]ports.SpendDay // app -> sort key -> row
}

var _ ports.SpendStore = (*Store)(nil)

// PutSpend writes each row over the stored one of the same app, date and ad set.
func (s *Store) PutSpend(ctx context.Context, rows []ports.SpendDay) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put spend: %w", err)
	}
	for _, r := range rows {
		if err := storecheck.SpendRow(r); err != nil {
			return fmt.Errorf("put spend: %w", err)
		}
	}
	sp := &s.spend
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.rows == nil {
		sp.rows = map[string]map[string]ports.SpendDay{}
	}
	for _, r := range rows {
		if sp.rows[r.App] == nil {
			sp.rows[r.App] = map[string]ports.SpendDay{}
		}
		sp.rows[r.App][storecheck.SpendKey(r.Date, r.AdSetID)] = storecheck.NormalizeSpend(r)
	}
	return nil
}

// Spend returns app's rows from fromDate to toDate (inclusive) in (date, ad set id) order.
func (s *Store) Spend(ctx context.Context, app, fromDate, toDate string) ([]ports.SpendDay, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	if err := storecheck.SpendRange(app, fromDate, toDate); err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	sp := &s.spend
	sp.mu.Lock()
	defer sp.mu.Unlock()
	keys := make([]string, 0, len(sp.rows[app]))
	for k := range sp.rows[app] {
		if date, _, _ := strings.Cut(k, "#"); date >= fromDate && date <= toDate {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]ports.SpendDay, 0, len(keys))
	for _, k := range keys {
		r := sp.rows[app][k]
		r.Audiences, r.Contaminated = slices.Clone(r.Audiences), slices.Clone(r.Contaminated)
		out = append(out, r)
	}
	return out, nil
}

package insights

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/measure"
	"github.com/retarget-dev/retarget/shared/ports"
)

// fakeWriter is a ports.AdsWriter that records the writes; err answers every write.
type fakeWriter struct {
	mu     sync.Mutex
	writes []ports.AdSetChange
	err    error
}

func (w *fakeWriter) AdSet(context.Context, string) (ports.AdSet, error) {
	return ports.AdSet{}, errors.New("not read in these tests")
}

func (w *fakeWriter) UpdateAdSet(_ context.Context, c ports.AdSetChange) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, c)
	return w.err
}

// withAutomation rebuilds f's runner with the automation store and w, and gives the app a rule
// pausing the cart abandoners' ad sets once the audience has 1000 members (it has 1500).
func withAutomation(t *testing.T, f *fixture, cfg *appconfig.Config, mode string, w *fakeWriter) {
	t.Helper()
	cfg.Apps[0].Automation = &appconfig.Automation{Mode: mode, Rules: []appconfig.AutomationRule{{ID: "pause-big", Segment: "cart_abandoner",
		When: appconfig.RuleCondition{AudienceSizeAtLeast: 1000}, Then: appconfig.RuleAction{PauseAdSets: true}}}}
	var err error
	f.runner, err = New(Config{Apps: cfg, Sync: f.state, Spend: f.state, Meta: f.ads, Automation: f.state, Writer: w,
		Report: func(ctx context.Context, app, from, to string, n time.Time) (measure.Report, error) {
			return f.report(ctx, app, from, to, n)
		},
		Logger: slog.New(slog.NewJSONHandler(&f.logs, nil)), Metrics: observability.NewEmitter(&f.metrics, "Retarget"),
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	f.ads.adSets["act_1"] = []ports.AdSet{adSet("1", "ACTIVE", []string{cartID}, []string{cartHoldoutID}), adSet("3", "ACTIVE", []string{otherID}, nil)}
}

func (f *fixture) actions(t *testing.T) []ports.AutomationAction {
	t.Helper()
	acts, err := f.state.Actions(context.Background(), "shop", "2026-03-10", "2026-03-10")
	if err != nil {
		t.Fatal(err)
	}
	return acts
}

func TestPullRecordsKPIDays(t *testing.T) {
	cfg := shopConfig()
	f := newFixture(t, cfg)
	withAutomation(t, f, cfg, "", &fakeWriter{})
	f.report = func(context.Context, string, string, string, time.Time) (measure.Report, error) {
		return measure.Report{Audiences: []measure.AudienceReport{
			{Segment: "cart_abandoner", CostPerIncrementalReengagement: frac(5.5), Lift7d: measure.Lift{Significant: true}, Currency: "USD"},
			{Segment: "vip", Currency: "USD"}, // no cost, no significant lift
		}}, nil
	}
	f.run(t, Request{})
	got, err := f.state.KPIs(context.Background(), "shop", "cart_abandoner", "2026-03-01", "2026-03-31")
	// The snapshot's date is the UTC day of the run (2026-03-10), not the account's.
	if err != nil || len(got) != 1 || got[0].Date != "2026-03-10" || got[0].CostPerIncremental == nil || *got[0].CostPerIncremental != 5.5 ||
		!got[0].Significant || got[0].Members != 1500 || got[0].Currency != "USD" {
		t.Fatalf("cart KPI days %+v, %v", got, err)
	}
	vip, _ := f.state.KPIs(context.Background(), "shop", "vip", "2026-03-01", "2026-03-31")
	if len(vip) != 1 || vip[0].CostPerIncremental != nil || vip[0].Significant || vip[0].Members != 400 {
		t.Fatalf("vip KPI days %+v", vip)
	}
}

func TestPullRunsTheAutomation(t *testing.T) {
	cfg := shopConfig()
	f := newFixture(t, cfg)
	w := &fakeWriter{}
	withAutomation(t, f, cfg, "", w)
	f.run(t, Request{})
	acts := f.actions(t)
	if len(acts) != 1 || acts[0].AdSetID != "1" || acts[0].Status != ports.ActionProposed || len(w.writes) != 0 {
		t.Fatalf("actions %+v, writes %+v: want ad set 1's pause proposed, nothing written", acts, w.writes)
	}
	if !strings.Contains(f.metrics.String(), `"AutomationProposals":1`) || !strings.Contains(f.logs.String(), "ALERT: automation proposes pausing ad set 1") {
		t.Errorf("metric or alert missing:\n%s\n%s", f.metrics.String(), f.logs.String())
	}
}

func TestPullAppliesInApplyMode(t *testing.T) {
	cfg := shopConfig()
	f := newFixture(t, cfg)
	w := &fakeWriter{}
	withAutomation(t, f, cfg, appconfig.AutomationApply, w)
	f.run(t, Request{})
	if acts := f.actions(t); len(acts) != 1 || acts[0].Status != ports.ActionApplied {
		t.Fatalf("actions %+v, want applied", acts)
	}
	if len(w.writes) != 1 || w.writes[0] != (ports.AdSetChange{AdSetID: "1", Status: ports.AdSetPaused}) {
		t.Fatalf("writes %+v", w.writes)
	}
}

func TestAutomationErrorsNeverFailThePull(t *testing.T) {
	cfg := shopConfig()
	f := newFixture(t, cfg)
	w := &fakeWriter{err: errors.New("connection reset")}
	withAutomation(t, f, cfg, appconfig.AutomationApply, w)
	if _, err := f.runner.Run(context.Background(), Request{}); err != nil {
		t.Fatalf("Run = %v: an automation error failed the pull", err)
	}
	// The write's outcome is unknown: the action stays proposed, and the error is logged.
	if acts := f.actions(t); len(acts) != 1 || acts[0].Status != ports.ActionProposed {
		t.Fatalf("actions %+v", acts)
	}
	if !strings.Contains(f.logs.String(), "automation run failed") {
		t.Errorf("no log of the failure:\n%s", f.logs.String())
	}
}

func TestNoAutomationAfterAnIncompletePull(t *testing.T) {
	cfg := shopConfig()
	f := newFixture(t, cfg)
	withAutomation(t, f, cfg, "", &fakeWriter{})
	f.ads.errs["act_1"] = &ports.CAPIError{Class: ports.CAPIRateLimited}
	f.run(t, Request{})
	if acts := f.actions(t); len(acts) != 0 {
		t.Fatalf("actions %+v after a rate-limited pull", acts)
	}
	if !strings.Contains(f.logs.String(), "automation skipped") {
		t.Errorf("no log of the skip:\n%s", f.logs.String())
	}
}

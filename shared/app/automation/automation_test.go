package automation

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/automation"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

const (
	token, secret = "tok", "sec"
	cartAudience  = "9001"
)

// harness is a service over memstate and the Meta sandbox, through the metagraph client over
// loopback: app shop, ad account act_1, segment cart with a treated audience of `members`.
type harness struct {
	sb       *metasandbox.Sandbox
	state    *memstate.Store
	cfg      *appconfig.Config
	svc      *Service
	logs     *bytes.Buffer
	proposed map[string]int
}

func newHarness(t *testing.T, members int64, au *appconfig.Automation) *harness {
	t.Helper()
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: token, AppSecret: secret, AdAccounts: []string{"act_1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	h := &harness{sb: sb, state: memstate.New(), logs: &bytes.Buffer{}, proposed: map[string]int{},
		cfg: &appconfig.Config{Apps: []appconfig.App{{ID: "shop", Meta: appconfig.Meta{AdAccountID: "act_1"},
			Audiences:  []appconfig.Audience{{Segment: "cart", Create: true}},
			Automation: au}}}}
	ctx := context.Background()
	if err := h.state.PutAudienceState(ctx, ports.AudienceSyncState{App: "shop", Segment: "cart", AudienceID: cartAudience,
		Size: members, Version: 1}); err != nil {
		t.Fatal(err)
	}
	meta := metagraph.New(metagraph.Config{BaseURL: url, AccessToken: token, AppSecret: secret})
	var mu sync.Mutex
	h.svc, err = New(Config{Apps: h.cfg, Sync: h.state, Spend: h.state, Store: h.state, Ads: meta, Writer: meta,
		Logger: slog.New(slog.NewTextHandler(h.logs, nil)),
		Proposed: func(_ context.Context, app string, n int) {
			mu.Lock()
			defer mu.Unlock()
			h.proposed[app] += n
		}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) addAdSet(t *testing.T, a metasandbox.AdSet) string {
	t.Helper()
	a.AdAccount = "act_1"
	got, err := h.sb.AddAdSet(a)
	if err != nil {
		t.Fatal(err)
	}
	return got.ID
}

func (h *harness) adSet(t *testing.T, id string) metasandbox.AdSet {
	t.Helper()
	for _, a := range h.sb.AdSets("act_1") {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no ad set %s in the sandbox", id)
	return metasandbox.AdSet{}
}

func (h *harness) run(t *testing.T) RunResult {
	t.Helper()
	res, err := h.svc.Run(context.Background(), "shop")
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	return res
}

func pauseSmall(mode string) *appconfig.Automation {
	return &appconfig.Automation{Mode: mode, Rules: []appconfig.AutomationRule{{ID: "pause-small", Segment: "cart",
		When: appconfig.RuleCondition{AudienceSizeBelow: 1000}, Then: appconfig.RuleAction{PauseAdSets: true}}}}
}

func history(a ports.AutomationAction) string {
	var steps []string
	for _, e := range a.History {
		steps = append(steps, e.Status+" by "+e.By)
	}
	return strings.Join(steps, ", ")
}

func TestProposeModeRecordsAndAlerts(t *testing.T) {
	h := newHarness(t, 12, pauseSmall(""))
	mine := h.addAdSet(t, metasandbox.AdSet{Name: "carts", DailyBudget: 2000, Included: []string{cartAudience}})
	h.addAdSet(t, metasandbox.AdSet{Name: "prospecting", DailyBudget: 2000, Included: []string{"4242"}}) // not the app's audience

	res := h.run(t)
	if len(res.Actions) != 1 {
		t.Fatalf("actions %+v, want one", res.Actions)
	}
	a := res.Actions[0]
	if a.Status != ports.ActionProposed || a.AdSetID != mine || a.Action != ports.ActionPause || a.Reason != "audience size 12 below 1000" ||
		a.Before.Status != ports.AdSetActive || a.After.Status != ports.AdSetPaused || history(a) != "proposed by rule:pause-small" {
		t.Fatalf("action %+v", a)
	}
	if got := h.adSet(t, mine).Status; got != metasandbox.StatusActive {
		t.Errorf("propose mode changed the ad set: %s", got)
	}
	if !strings.Contains(h.logs.String(), "ALERT: automation proposes pausing ad set "+mine) || h.proposed["shop"] != 1 {
		t.Errorf("alert or metric missing: metric %v, logs\n%s", h.proposed, h.logs)
	}
	today := time.Now().UTC().Format(automation.DateLayout)
	list, err := h.svc.List(context.Background(), "shop", today, today)
	if err != nil || len(list) != 1 || list[0].ID != a.ID || list[0].Status != ports.ActionProposed {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// A second run the same day decides nothing new: the action is the day's.
	if again := h.run(t); len(again.Actions) != 0 {
		t.Errorf("second run recorded %+v", again.Actions)
	}
}

func TestApplyModeApplies(t *testing.T) {
	h := newHarness(t, 12, pauseSmall(appconfig.AutomationApply))
	id := h.addAdSet(t, metasandbox.AdSet{Name: "carts", DailyBudget: 2000, Included: []string{cartAudience}})
	res := h.run(t)
	if len(res.Actions) != 1 || res.Actions[0].Status != ports.ActionApplied ||
		history(res.Actions[0]) != "proposed by rule:pause-small, applied by rule:pause-small" {
		t.Fatalf("actions %+v", res.Actions)
	}
	if got := h.adSet(t, id).Status; got != metasandbox.StatusPaused {
		t.Errorf("ad set status %s, want PAUSED", got)
	}
	stored, _, _ := h.state.Action(context.Background(), "shop", res.Actions[0].ID)
	if stored.Status != ports.ActionApplied || stored.Version != 2 {
		t.Errorf("stored %s v%d, want applied v2", stored.Status, stored.Version)
	}
}

func TestScaleInApplyMode(t *testing.T) {
	au := &appconfig.Automation{Mode: appconfig.AutomationApply, Rules: []appconfig.AutomationRule{{ID: "idle", Segment: "cart",
		When: appconfig.RuleCondition{NoSpendForDays: 3},
		Then: appconfig.RuleAction{ScaleBudget: &appconfig.BudgetScale{Factor: 1.5, Floor: 1000, Cap: 2500}}}}}
	h := newHarness(t, 40, au)
	own := h.addAdSet(t, metasandbox.AdSet{Name: "own budget", DailyBudget: 2000, Included: []string{cartAudience}})
	cbo := h.addAdSet(t, metasandbox.AdSet{Name: "campaign budget", CampaignBudget: true, Included: []string{cartAudience}})
	res := h.run(t)
	if len(res.Actions) != 1 || res.Actions[0].AdSetID != own || res.Actions[0].After.DailyBudget != 2500 || res.Actions[0].Status != ports.ActionApplied {
		t.Fatalf("actions %+v", res.Actions)
	}
	if got := h.adSet(t, own).DailyBudget; got != 2500 {
		t.Errorf("budget %d, want 3000 capped at 2500", got)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].AdSetID != cbo || !strings.Contains(res.Skipped[0].Reason, "no daily budget of its own") {
		t.Errorf("skipped %+v: want the campaign-budget ad set skipped", res.Skipped)
	}
}

func TestRefusedWriteIsRecordedNotRetried(t *testing.T) {
	h := newHarness(t, 12, pauseSmall(appconfig.AutomationApply))
	id := h.addAdSet(t, metasandbox.AdSet{Name: "carts", DailyBudget: 2000, Included: []string{cartAudience}})
	h.sb.FailNextAdSetWrite(metasandbox.CodeUserRequestLimit, 0, "(#17) User request limit reached")
	res := h.run(t)
	if len(res.Actions) != 1 {
		t.Fatalf("actions %+v", res.Actions)
	}
	a := res.Actions[0]
	if a.Status != ports.ActionRefused || !strings.Contains(a.Refusal, "code 17: (#17) User request limit reached") ||
		history(a) != "proposed by rule:pause-small, refused by rule:pause-small" {
		t.Fatalf("action %+v", a)
	}
	if !strings.Contains(h.logs.String(), "ALERT: Meta refused an automation action") {
		t.Errorf("no alert for the refusal:\n%s", h.logs)
	}
	// Not retried: the next run decides nothing, and the ad set is untouched.
	if again := h.run(t); len(again.Actions) != 0 {
		t.Errorf("the next run retried: %+v", again.Actions)
	}
	if got := h.adSet(t, id).Status; got != metasandbox.StatusActive {
		t.Errorf("ad set status %s after a refused write", got)
	}
	// An operator cannot apply a refused action either.
	if _, err := h.svc.Apply(context.Background(), "shop", a.ID, Operator); !errors.Is(err, ErrState) {
		t.Errorf("Apply(refused) = %v, want ErrState", err)
	}
}

func TestOperatorApplyAndUndo(t *testing.T) {
	h := newHarness(t, 12, pauseSmall(""))
	id := h.addAdSet(t, metasandbox.AdSet{Name: "carts", DailyBudget: 2000, Included: []string{cartAudience}})
	prop := h.run(t).Actions[0]
	ctx := context.Background()

	applied, err := h.svc.Apply(ctx, "shop", prop.ID, Operator)
	if err != nil || applied.Status != ports.ActionApplied || history(applied) != "proposed by rule:pause-small, applied by operator" {
		t.Fatalf("Apply = %+v, %v", applied, err)
	}
	if got := h.adSet(t, id).Status; got != metasandbox.StatusPaused {
		t.Fatalf("ad set %s after apply, want PAUSED", got)
	}
	if _, err := h.svc.Apply(ctx, "shop", prop.ID, Operator); !errors.Is(err, ErrState) {
		t.Errorf("second Apply = %v, want ErrState", err)
	}
	undone, err := h.svc.Undo(ctx, "shop", prop.ID)
	if err != nil || undone.Status != ports.ActionUndone || history(undone) != "proposed by rule:pause-small, applied by operator, undone by operator" {
		t.Fatalf("Undo = %+v, %v", undone, err)
	}
	if got := h.adSet(t, id).Status; got != metasandbox.StatusActive {
		t.Fatalf("ad set %s after undo, want ACTIVE", got)
	}
	if _, err := h.svc.Undo(ctx, "shop", prop.ID); !errors.Is(err, ErrState) {
		t.Errorf("second Undo = %v, want ErrState", err)
	}
	if _, err := h.svc.Apply(ctx, "shop", "2020-01-01-0123456789abcdef", Operator); !errors.Is(err, ErrNotFound) {
		t.Errorf("Apply(unknown) = %v, want ErrNotFound", err)
	}
}

func TestApplyRefusesAChangedAdSet(t *testing.T) {
	h := newHarness(t, 12, pauseSmall(""))
	id := h.addAdSet(t, metasandbox.AdSet{Name: "carts", DailyBudget: 2000, Included: []string{cartAudience}})
	prop := h.run(t).Actions[0]
	// Someone changed the budget in Ads Manager since the proposal.
	if err := h.sb.UpdateAdSet(id, func(a *metasandbox.AdSet) { a.DailyBudget = 5000 }); err != nil {
		t.Fatal(err)
	}
	got, err := h.svc.Apply(context.Background(), "shop", prop.ID, Operator)
	if !errors.Is(err, ErrRefused) || got.Status != ports.ActionRefused || !strings.Contains(got.Refusal, "changed since the proposal") {
		t.Fatalf("Apply = %+v, %v; want refused", got, err)
	}
	if a := h.adSet(t, id); a.Status != metasandbox.StatusActive || a.DailyBudget != 5000 {
		t.Errorf("ad set %+v was written", a)
	}
}

func TestUndoRefusesAChangedAdSet(t *testing.T) {
	h := newHarness(t, 12, pauseSmall(appconfig.AutomationApply))
	id := h.addAdSet(t, metasandbox.AdSet{Name: "carts", DailyBudget: 2000, Included: []string{cartAudience}})
	act := h.run(t).Actions[0]
	if err := h.sb.UpdateAdSet(id, func(a *metasandbox.AdSet) { a.DailyBudget = 700 }); err != nil {
		t.Fatal(err)
	}
	got, err := h.svc.Undo(context.Background(), "shop", act.ID)
	if !errors.Is(err, ErrRefused) || got.Status != ports.ActionApplied {
		t.Fatalf("Undo = %+v, %v; want refused, still applied", got, err)
	}
	if a := h.adSet(t, id); a.Status != metasandbox.StatusPaused || a.DailyBudget != 700 {
		t.Errorf("ad set %+v was written", a)
	}
}

func TestConcurrentRunsRecordOnce(t *testing.T) {
	h := newHarness(t, 12, pauseSmall(""))
	h.addAdSet(t, metasandbox.AdSet{Name: "carts", DailyBudget: 2000, Included: []string{cartAudience}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	recorded := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.svc.Run(context.Background(), "shop")
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			recorded += len(res.Actions)
			mu.Unlock()
		}()
	}
	wg.Wait()
	today := time.Now().UTC().Format(automation.DateLayout)
	list, _ := h.svc.List(context.Background(), "shop", today, today)
	if recorded != 1 || len(list) != 1 {
		t.Fatalf("4 concurrent runs recorded %d actions (%d stored), want 1", recorded, len(list))
	}
}

func TestRunWithoutAutomation(t *testing.T) {
	h := newHarness(t, 12, nil)
	if _, err := h.svc.Run(context.Background(), "shop"); !errors.Is(err, ErrOff) {
		t.Fatalf("Run = %v, want ErrOff", err)
	}
}

// Package automation runs an app's automation rules: it reads the facts the rules need (the
// audience sync state, the daily KPI snapshots, the spend rows, the ad sets of the app's ad
// accounts and the actions already decided today), lets the domain decide
// (shared/domain/automation), records every proposal, and in apply mode applies it at once.
// An operator applies a proposal or undoes an applied action through the same service.
//
// Every change of an action is a new version of its record (ports.AutomationStore's
// optimistic lock): two runs that decide the same action (same rule, ad set and day, so the
// same id) record it once, and two writers of one action never both win. Each step is in the
// action's History, with who took it ("rule:<id>" or "operator"). A write Meta refuses (rate
// limits, too many budget changes, a budget the campaign owns) makes the action "refused" with
// Meta's answer: it is never retried blindly.
package automation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/automation"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Operator is who an operator's apply or undo is recorded as.
const Operator = "operator"

// Errors callers branch on.
var (
	// ErrOff: the app has no automation configured.
	ErrOff = errors.New("automation is not configured for the app")
	// ErrNotFound: no action with that id.
	ErrNotFound = errors.New("no such action")
	// ErrState: the action's status does not allow the step (apply a proposal, undo an
	// applied action).
	ErrState = errors.New("action status does not allow this")
	// ErrRefused: the step was refused (by Meta, or because the ad set changed); the action
	// records why.
	ErrRefused = errors.New("refused")
)

// Config wires a Service.
type Config struct {
	Apps   *appconfig.Config
	Sync   ports.AudienceSyncStore
	Spend  ports.SpendStore
	Store  ports.AutomationStore
	Ads    ports.AdsAPI
	Writer ports.AdsWriter
	Logger *slog.Logger
	// Proposed, when set, is told how many proposals each run recorded for an app (the
	// AutomationProposals metric).
	Proposed func(ctx context.Context, app string, n int)
	Now      func() time.Time
}

// Service runs and operates an app's automation.
type Service struct {
	cfg Config
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Apps == nil || cfg.Sync == nil || cfg.Spend == nil || cfg.Store == nil || cfg.Ads == nil || cfg.Writer == nil {
		return nil, errors.New("automation: Apps, Sync, Spend, Store, Ads and Writer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}, nil
}

// RunResult is what one run of an app decided and did.
type RunResult struct {
	App string `json:"app"`
	// Mode is the app's mode (propose or apply).
	Mode string `json:"mode"`
	// Actions are the actions this run recorded, with their status after the run (applied or
	// refused in apply mode).
	Actions []ports.AutomationAction `json:"actions"`
	Skipped []automation.Skip        `json:"skipped,omitempty"`
}

// Run evaluates app's rules now, records each proposal and, in apply mode, applies it.
func (s *Service) Run(ctx context.Context, app string) (RunResult, error) {
	a, err := s.app(app)
	if err != nil {
		return RunResult{}, err
	}
	now := s.cfg.Now()
	today := now.UTC().Format(automation.DateLayout)
	res := RunResult{App: app, Mode: appconfig.AutomationPropose}
	if a.Automation.Apply() {
		res.Mode = appconfig.AutomationApply
	}
	in, err := s.facts(ctx, a, today)
	if err != nil {
		return res, fmt.Errorf("automation of %s: %w", app, err)
	}
	out := automation.Evaluate(in)
	res.Skipped = out.Skipped
	var errs []error
	for _, p := range out.Proposals {
		by := "rule:" + p.Rule
		act := ports.AutomationAction{App: app, ID: p.ID, Rule: p.Rule, Segment: p.Segment, AdAccountID: p.AdAccountID,
			AdSetID: p.AdSetID, AdSetName: p.AdSetName, Action: p.Action, Status: ports.ActionProposed, Before: p.Before, After: p.After,
			Reason: p.Reason, Day: today, CreatedAt: now.Unix(), UpdatedAt: now.Unix(), Version: 1,
			History: []ports.ActionEvent{{At: now.Unix(), Status: ports.ActionProposed, By: by, Note: p.Reason}}}
		if err := s.cfg.Store.PutAction(ctx, act); err != nil {
			if errors.Is(err, ports.ErrVersionConflict) {
				continue // a concurrent run recorded the same action: it is that run's
			}
			errs = append(errs, fmt.Errorf("record %s: %w", act.ID, err))
			continue
		}
		s.cfg.Logger.Error("ALERT: automation proposes "+describe(act), "app", app, "rule", p.Rule, "action_id", act.ID,
			"adset_id", p.AdSetID, "action", p.Action, "reason", p.Reason, "mode", res.Mode)
		if a.Automation.Apply() {
			applied, err := s.write(ctx, act, by)
			if err != nil && !errors.Is(err, ErrRefused) {
				errs = append(errs, fmt.Errorf("apply %s: %w", act.ID, err))
			}
			if applied.Version != 0 {
				act = applied
			}
		}
		res.Actions = append(res.Actions, act)
	}
	if s.cfg.Proposed != nil {
		s.cfg.Proposed(ctx, app, len(res.Actions))
	}
	return res, errors.Join(errs...)
}

// facts reads what the evaluation of a's rules on today needs.
func (s *Service) facts(ctx context.Context, a *appconfig.App, today string) (automation.Input, error) {
	in := automation.Input{App: a, Today: today, Audiences: map[string]automation.AudienceFacts{}, AdSets: map[string][]ports.AdSet{}}
	kpiDays, spendDays := map[string]int{}, 0
	for _, r := range a.Automation.Rules {
		kpiDays[r.Segment] = max(kpiDays[r.Segment], r.When.ForDays)
		spendDays = max(spendDays, r.When.NoSpendForDays)
	}
	var spend []ports.SpendDay
	if spendDays > 0 {
		var err error
		if spend, err = s.cfg.Spend.Spend(ctx, a.ID, automation.FirstDay(today, spendDays), today); err != nil {
			return in, fmt.Errorf("spend: %w", err)
		}
	}
	for seg, days := range kpiDays {
		f := automation.AudienceFacts{Spend: spend}
		for i := range a.Audiences {
			if a.Audiences[i].Segment == seg {
				f.AudienceID = a.Audiences[i].AudienceID
			}
		}
		st, found, err := s.cfg.Sync.GetAudienceState(ctx, a.ID, seg)
		if err != nil {
			return in, fmt.Errorf("audience state of %s: %w", seg, err)
		}
		if found {
			f.Members = st.Size
			if f.AudienceID == "" {
				f.AudienceID = st.AudienceID
			}
		}
		if days > 0 {
			if f.KPIs, err = s.cfg.Store.KPIs(ctx, a.ID, seg, automation.FirstDay(today, days), today); err != nil {
				return in, fmt.Errorf("KPI days of %s: %w", seg, err)
			}
		}
		in.Audiences[seg] = f
	}
	for _, acc := range automation.Accounts(a) {
		sets, err := s.cfg.Ads.AdSets(ctx, acc)
		if err != nil {
			return in, fmt.Errorf("ad sets of %s: %w", acc, err)
		}
		in.AdSets[acc] = sets
	}
	decided, err := s.cfg.Store.Actions(ctx, a.ID, today, today)
	if err != nil {
		return in, fmt.Errorf("today's actions: %w", err)
	}
	in.Decided = decided
	return in, nil
}

// Apply applies a proposal as an operator: the ad set is read again first, and a proposal
// whose ad set changed since (status or budget no longer its "before") is refused rather than
// applied over someone's change.
func (s *Service) Apply(ctx context.Context, app, id, by string) (ports.AutomationAction, error) {
	act, err := s.action(ctx, app, id)
	if err != nil {
		return act, err
	}
	if act.Status != ports.ActionProposed {
		return act, fmt.Errorf("apply %s: %w: it is %s, only a proposed action can be applied", id, ErrState, act.Status)
	}
	if by == "" {
		by = Operator
	}
	cur, err := s.cfg.Writer.AdSet(ctx, act.AdSetID)
	if err != nil {
		return act, fmt.Errorf("apply %s: read ad set %s: %w", id, act.AdSetID, err)
	}
	now := settings(cur)
	switch now {
	case act.Before:
	case act.After:
		// A write whose answer was lost, or someone made the same change: nothing to write.
		return s.step(ctx, act, ports.ActionApplied, by, "the ad set was already in the proposed state")
	default:
		reason := fmt.Sprintf("the ad set changed since the proposal: now %s, proposed from %s", show(now), show(act.Before))
		refused, err := s.refuse(ctx, act, by, reason)
		if err != nil {
			return refused, err
		}
		return refused, fmt.Errorf("apply %s: %w: %s", id, ErrRefused, reason)
	}
	return s.write(ctx, act, by)
}

// write makes act's change at Meta and records the outcome: applied, or refused with Meta's
// answer (ErrRefused). An error without an answer from Meta (the network) leaves the action
// proposed: whether the change was made is unknown, and an operator's apply reads the ad set
// again.
func (s *Service) write(ctx context.Context, act ports.AutomationAction, by string) (ports.AutomationAction, error) {
	err := s.cfg.Writer.UpdateAdSet(ctx, change(act.AdSetID, act.Before, act.After))
	if err != nil {
		reason, answered := metaAnswer(err)
		if !answered {
			return act, fmt.Errorf("write ad set %s: %w", act.AdSetID, err)
		}
		refused, perr := s.refuse(ctx, act, by, reason)
		if perr != nil {
			return refused, perr
		}
		s.cfg.Logger.Error("ALERT: Meta refused an automation action; it is recorded as refused and not retried",
			"app", act.App, "action_id", act.ID, "adset_id", act.AdSetID, "action", act.Action, "refusal", reason)
		return refused, fmt.Errorf("apply %s: %w by Meta: %s", act.ID, ErrRefused, reason)
	}
	return s.step(ctx, act, ports.ActionApplied, by, "")
}

// Undo restores the before state of an applied action, as an operator. The ad set is read
// first: if it is no longer in the action's after state, someone changed it since, and undo
// would overwrite that change, so it is refused (the action stays applied).
func (s *Service) Undo(ctx context.Context, app, id string) (ports.AutomationAction, error) {
	act, err := s.action(ctx, app, id)
	if err != nil {
		return act, err
	}
	if act.Status != ports.ActionApplied {
		return act, fmt.Errorf("undo %s: %w: it is %s, only an applied action can be undone", id, ErrState, act.Status)
	}
	cur, err := s.cfg.Writer.AdSet(ctx, act.AdSetID)
	if err != nil {
		return act, fmt.Errorf("undo %s: read ad set %s: %w", id, act.AdSetID, err)
	}
	if now := settings(cur); now != act.After {
		return act, fmt.Errorf("undo %s: %w: the ad set changed since the action: now %s, the action left it %s; change it in Ads Manager",
			id, ErrRefused, show(now), show(act.After))
	}
	if err := s.cfg.Writer.UpdateAdSet(ctx, change(act.AdSetID, act.After, act.Before)); err != nil {
		reason, answered := metaAnswer(err)
		if !answered {
			return act, fmt.Errorf("undo %s: write ad set %s: %w", id, act.AdSetID, err)
		}
		// Audited, the action stays applied: the ad set is still in its after state.
		noted, perr := s.step(ctx, act, ports.ActionApplied, Operator, "undo refused by Meta: "+reason)
		if perr != nil {
			return noted, perr
		}
		return noted, fmt.Errorf("undo %s: %w by Meta: %s", id, ErrRefused, reason)
	}
	return s.step(ctx, act, ports.ActionUndone, Operator, "")
}

// List returns app's actions decided from fromDay to toDay (UTC, inclusive).
func (s *Service) List(ctx context.Context, app, fromDay, toDay string) ([]ports.AutomationAction, error) {
	if _, ok := s.cfg.Apps.App(app); !ok {
		return nil, fmt.Errorf("automation: app %q is not configured", app)
	}
	return s.cfg.Store.Actions(ctx, app, fromDay, toDay)
}

func (s *Service) app(id string) (*appconfig.App, error) {
	a, ok := s.cfg.Apps.App(id)
	if !ok {
		return nil, fmt.Errorf("automation: app %q is not configured", id)
	}
	if a.Automation == nil {
		return nil, fmt.Errorf("automation: app %q: %w", id, ErrOff)
	}
	return a, nil
}

func (s *Service) action(ctx context.Context, app, id string) (ports.AutomationAction, error) {
	if _, ok := s.cfg.Apps.App(app); !ok {
		return ports.AutomationAction{}, fmt.Errorf("automation: app %q is not configured", app)
	}
	if automation.DayOfID(id) == "" {
		return ports.AutomationAction{}, fmt.Errorf("action %q: %w (ids look like 2026-03-10-0123456789abcdef)", id, ErrNotFound)
	}
	act, ok, err := s.cfg.Store.Action(ctx, app, id)
	if err != nil {
		return act, fmt.Errorf("action %s: %w", id, err)
	}
	if !ok {
		return act, fmt.Errorf("action %s of %s: %w", id, app, ErrNotFound)
	}
	return act, nil
}

func (s *Service) refuse(ctx context.Context, act ports.AutomationAction, by, reason string) (ports.AutomationAction, error) {
	act.Refusal = reason
	return s.step(ctx, act, ports.ActionRefused, by, reason)
}

// step records act's next status as a new version with its history event.
func (s *Service) step(ctx context.Context, act ports.AutomationAction, status, by, note string) (ports.AutomationAction, error) {
	now := s.cfg.Now().Unix()
	next := act
	next.History = append(append([]ports.ActionEvent(nil), act.History...), ports.ActionEvent{At: now, Status: status, By: by, Note: note})
	next.Status, next.UpdatedAt, next.Version = status, now, act.Version+1
	if err := s.cfg.Store.PutAction(ctx, next); err != nil {
		return act, fmt.Errorf("record %s %s: %w", act.ID, status, err)
	}
	return next, nil
}

// change is the write that takes an ad set from one state to another (only what differs).
func change(adSetID string, from, to ports.AdSetSettings) ports.AdSetChange {
	c := ports.AdSetChange{AdSetID: adSetID}
	if to.Status != from.Status {
		c.Status = to.Status
	}
	if to.DailyBudget != from.DailyBudget {
		c.DailyBudget = to.DailyBudget
	}
	return c
}

// metaAnswer returns Meta's answer to a refused write, and whether Meta answered at all.
func metaAnswer(err error) (string, bool) {
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.HTTPStatus == 0 && ce.Meta.Code == 0 {
		return "", false
	}
	msg := fmt.Sprintf("code %d", ce.Meta.Code)
	if ce.Meta.Subcode != 0 {
		msg += fmt.Sprintf("/%d", ce.Meta.Subcode)
	}
	if ce.Meta.Message != "" {
		msg += ": " + ce.Meta.Message
	}
	if ce.Meta.ErrorUserMsg != "" {
		msg += " (" + ce.Meta.ErrorUserMsg + ")"
	}
	if ce.HTTPStatus != 0 {
		msg = fmt.Sprintf("http %d, %s", ce.HTTPStatus, msg)
	}
	return msg, true
}

func settings(a ports.AdSet) ports.AdSetSettings {
	return ports.AdSetSettings{Status: a.Status, DailyBudget: a.DailyBudget}
}

func show(s ports.AdSetSettings) string {
	return fmt.Sprintf("%s with daily budget %d", strings.ToLower(s.Status), s.DailyBudget)
}

// describe says what an action does, for the alert.
func describe(a ports.AutomationAction) string {
	switch a.Action {
	case ports.ActionScale:
		return fmt.Sprintf("scaling the daily budget of ad set %s from %d to %d", a.AdSetID, a.Before.DailyBudget, a.After.DailyBudget)
	case ports.ActionPause:
		return "pausing ad set " + a.AdSetID
	default:
		return "resuming ad set " + a.AdSetID
	}
}

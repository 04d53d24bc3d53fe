package memstate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/statetest"
)

func TestContract(t *testing.T) {
	statetest.Run(t, func(*testing.T) ports.SegmentStore { return New() })
}

func TestSyncContract(t *testing.T) {
	statetest.RunSync(t, func(*testing.T) ports.AudienceSyncStore { return New() })
}

func TestSpendContract(t *testing.T) {
	statetest.RunSpend(t, func(*testing.T) ports.SpendStore { return New() })
}

func TestConsentContract(t *testing.T) {
	statetest.RunConsent(t, func(*testing.T) statetest.ConsentStore { return New() })
}

func TestUserReadContract(t *testing.T) {
	statetest.RunUserRead(t, func(*testing.T) statetest.UserReadStore { return New() })
}

func TestDoneContext(t *testing.T) {
	s := New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"GetUser":       func() error { _, _, err := s.GetUser(ctx, "a", "u"); return err },
		"PutUser":       func() error { return s.PutUser(ctx, ports.UserRecord{App: "a", UserKey: "u", Version: 1}) },
		"RecordChanges": func() error { return s.RecordChanges(ctx, nil) },
		"Update": func() error {
			_, err := s.Update(ctx, "a", "u", func(*ports.UserState) error { return nil })
			return err
		},
		"PendingChanges":   func() error { _, _, err := s.PendingChanges(ctx, "a", "s", "", 1); return err },
		"MarkSynced":       func() error { return s.MarkSynced(ctx, nil) },
		"DueUsers":         func() error { _, _, err := s.DueUsers(ctx, "a", time.Now(), time.Hour, 1, ""); return err },
		"AcquireLease":     func() error { _, err := s.AcquireLease(ctx, "a", "h", time.Now(), time.Now()); return err },
		"ReleaseLease":     func() error { return s.ReleaseLease(ctx, "a", "h") },
		"GetAudienceState": func() error { _, _, err := s.GetAudienceState(ctx, "a", "s"); return err },
		"PutAudienceState": func() error {
			return s.PutAudienceState(ctx, ports.AudienceSyncState{App: "a", Segment: "s", Version: 1})
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v", name, err)
		}
	}
}

func TestOutcomeContract(t *testing.T) {
	statetest.RunOutcomes(t, func(*testing.T) ports.OutcomeStore { return New() })
}

func TestAutomationContract(t *testing.T) {
	statetest.RunAutomation(t, func(*testing.T) ports.AutomationStore { return New() })
}

func TestPublishContract(t *testing.T) {
	statetest.RunPublish(t, func(*testing.T) statetest.PublishStore { return New() })
}

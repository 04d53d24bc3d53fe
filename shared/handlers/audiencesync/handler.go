package audiencesync

import (
	"context"
	"time"
)

// Handle is the Lambda entry point for EventBridge Scheduler. It fails only when no app could
// be synced; the rest resumes at the next run.
func (s *Syncer) Handle(ctx context.Context, _ any) (int, error) {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-10*time.Second)) // time to checkpoint and answer
		defer cancel()
	}
	reports, err := s.Run(ctx)
	synced := 0
	for _, r := range reports {
		synced += r.Synced
	}
	return synced, err
}

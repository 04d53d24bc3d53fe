// Package eventbus is the EventBridge adapter of ports.EventPublisher: each segment event
// becomes one PutEvents entry on the stack's bus (source ports.EventSource, detail-type
// Segment Joined or Segment Left, detail the event as JSON), at most 10 entries a call.
package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/retarget-dev/retarget/shared/ports"
)

// MaxEntries is the most entries one PutEvents call takes.
const MaxEntries = 10

// API is the part of *eventbridge.Client the Bus uses.
type API interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Bus publishes segment events on one event bus.
type Bus struct {
	client API
	name   string
}

var _ ports.EventPublisher = (*Bus)(nil)

// New returns a Bus putting events on the bus named name (its name or ARN).
func New(client API, name string) (*Bus, error) {
	if client == nil || name == "" {
		return nil, errors.New("eventbus: a client and a bus name are required")
	}
	return &Bus{client: client, name: name}, nil
}

// Publish puts events in PutEvents calls of MaxEntries. failed lists the indexes of the
// entries the bus refused (an entry's ErrorCode; throttling, an internal error), to be retried
// later; a call that fails as a whole fails its entries and the calls after it are not made,
// and err says why.
func (b *Bus) Publish(ctx context.Context, events []ports.SegmentEvent) ([]int, error) {
	var failed []int
	for start := 0; start < len(events); start += MaxEntries {
		end := min(start+MaxEntries, len(events))
		entries := make([]types.PutEventsRequestEntry, 0, end-start)
		for i := start; i < end; i++ {
			detail, err := json.Marshal(&events[i])
			if err != nil {
				return nil, fmt.Errorf("put events: encode detail: %w", err)
			}
			entries = append(entries, types.PutEventsRequestEntry{
				EventBusName: aws.String(b.name),
				Source:       aws.String(ports.EventSource),
				DetailType:   aws.String(events[i].DetailType()),
				Detail:       aws.String(string(detail)),
			})
		}
		out, err := b.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		if err != nil {
			for i := start; i < len(events); i++ {
				failed = append(failed, i)
			}
			return failed, fmt.Errorf("put events on %s: %w", b.name, err)
		}
		// Entries answer in request order; one with an ErrorCode was not put. A count
		// without matching entries (a malformed answer) fails the whole call's entries.
		refused := 0
		for k, e := range out.Entries {
			if e.ErrorCode != nil && start+k < end {
				failed = append(failed, start+k)
				refused++
			}
		}
		if n := int(out.FailedEntryCount); n > refused || (n > 0 && len(out.Entries) != end-start) {
			failed = failed[:len(failed)-refused]
			for i := start; i < end; i++ {
				failed = append(failed, i)
			}
		}
	}
	return failed, nil
}

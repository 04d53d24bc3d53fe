package ports

import "context"

// Bus event of a membership change: source and detail-types (the contract consumers match).
const (
	EventSource      = "retarget"
	DetailTypeJoined = "Segment Joined"
	DetailTypeLeft   = "Segment Left"
)

// SegmentEvent is one recorded membership change as published on the bus (the detail of an
// EventBridge event). ChangeID is stable for one change, so consumers deduplicate on it.
type SegmentEvent struct {
	ChangeID string `json:"change_id"`
	App      string `json:"app"`
	Segment  string `json:"segment"`
	UserKey  string `json:"user_key"`
	// AppUserID only for apps with share_app_user_id.
	AppUserID string `json:"app_user_id,omitempty"`
	Joined    bool   `json:"-"`
	// At is the change's time, RFC 3339 with milliseconds (UTC).
	At           string `json:"at"`
	Reason       string `json:"reason"`
	StateVersion int64  `json:"state_version"`
	// Channels are the ids of the app's channels that deliver this event (their segments and
	// events match and the cross-channel cool-down lets it through); empty: none.
	Channels []string `json:"channels"`
}

// DetailType is the event's detail-type.
func (e *SegmentEvent) DetailType() string {
	if e.Joined {
		return DetailTypeJoined
	}
	return DetailTypeLeft
}

// EventPublisher puts segment events on the bus (PutEvents, at most 10 entries a call in AWS).
type EventPublisher interface {
	// Publish puts events; failed lists the indexes of those the bus did not take (retry them
	// later), err a failure of the whole call.
	Publish(ctx context.Context, events []SegmentEvent) (failed []int, err error)
}

// ChangeFeed reads the recorded membership changes not yet published, and marks them
// published: the publisher's source of truth is the same change log the audience sync reads.
type ChangeFeed interface {
	// UnpublishedChanges lists app's unpublished changes in recording order after cursor ("":
	// from the start), at most limit; next is "" when there are no more.
	UnpublishedChanges(ctx context.Context, app, after string, limit int) (changes []PendingChange, next string, err error)
	// MarkPublished takes changes out of the unpublished index, each only if it is still the
	// recording that was read (as MarkSynced).
	MarkPublished(ctx context.Context, changes []PendingChange) error
}

// CooldownStore keeps, per user, when a channel last got one of their changes (unix ms).
type CooldownStore interface {
	LastDeliveries(ctx context.Context, app string, userKeys []string) (map[string]int64, error)
	SetLastDeliveries(ctx context.Context, app string, at map[string]int64) error
}

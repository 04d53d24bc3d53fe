package devenv

// ChannelDeadLettersFile is the dev bus's dead letters in the log folder: one JSON line per
// delivery to a channel given up (the event and the attributes EventBridge sets on a
// dead-lettered message).
const ChannelDeadLettersFile = "channel-dead-letters.jsonl"

// ChannelsTestPath is the dev stack's loopback route that sends a test event to a channel
// through the dev bus (`retarget channels test`): POST a ChannelTestRequest, get a
// ChannelTestResult once the delivery ends.
const ChannelsTestPath = "/_dev/channels/test"

// ChannelTestRequest names the channel a test event goes to.
type ChannelTestRequest struct {
	App     string `json:"app"`
	Channel string `json:"channel"`
}

// ChannelTestResult is the last attempt of the test delivery.
type ChannelTestResult struct {
	EventID    string `json:"event_id"`
	DetailType string `json:"detail_type"`
	Segment    string `json:"segment"`
	Outcome    string `json:"outcome"` // delivered, dead-lettered
	Status     int    `json:"status"`
	Attempt    int    `json:"attempt"`
	Error      string `json:"error,omitempty"`
}

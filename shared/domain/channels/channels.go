// Package channels decides which of an app's channels deliver a segment event, and turns a
// channel's body into what EventBridge needs (an input transformer) and into the request body
// it produces (make dev delivers with the same rendering). Pure: no I/O.
//
// A body is an EventBridge input template written with JSON-path placeholders: <$.detail.segment>
// takes the value at that path of the EventBridge event ({"id", "detail-type", "source", "time",
// "detail": {...}}). Inside a JSON string the value is inserted as text; outside, as JSON.
// <aws.events.event.json> is the whole event. Without a body the request body is the event.
package channels

import (
	"errors"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Transformer is a body as EventBridge's input transformer takes it: named JSON paths and a
// template over the names.
type Transformer struct {
	InputPaths map[string]string // name -> "$.detail.segment"
	Template   string
}

// AppChannels are one app's compiled channels.
type AppChannels struct{}

// Compile checks an app's channels (bodies included) and compiles them.
func Compile(app *appconfig.App) (*AppChannels, error) {
	return nil, errors.New("channels: not implemented yet")
}

// Match returns the ids of the channels whose segments and events match ev, in config order
// (the cool-down is the publisher's business).
func (a *AppChannels) Match(ev *ports.SegmentEvent) []string { return nil }

// InputTransformer converts a body into EventBridge's form.
func InputTransformer(body string) (Transformer, error) {
	return Transformer{}, errors.New("channels: not implemented yet")
}

// Render produces the request body a channel sends for the EventBridge event event (JSON).
func Render(body string, event []byte) ([]byte, error) {
	return nil, errors.New("channels: not implemented yet")
}

// Event builds the EventBridge event (as delivered to targets) of a segment event: what the
// bus's rules see and what a channel without body receives.
func Event(id, time string, ev *ports.SegmentEvent) []byte { return nil }

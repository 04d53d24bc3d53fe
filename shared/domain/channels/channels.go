// Package channels decides which of an app's channels deliver a segment event, and turns a
// channel's body into what EventBridge needs (an input transformer) and into the request body
// it produces (make dev delivers with the same rendering). Pure: no I/O.
//
// A body is an EventBridge input template written with JSON-path placeholders: <$.detail.segment>
// takes the value at that path of the EventBridge event ({"id", "detail-type", "source", "time",
// "detail": {...}}). Inside a JSON string the value is inserted as text; outside, as JSON.
// <aws.events.event.json> is the whole event. Without a body the request body is the event.
//
// The quoting follows EventBridge's input transformation
// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html):
// a placeholder inside quotes takes a string value without its quotes, one outside quotes takes
// the JSON value (a string with its quotes), and <aws.events.event.json> is not escaped, so it
// may only stand as a value. Where EventBridge would copy a string's quotes or backslashes into
// the body unescaped (and so send invalid JSON), Render escapes them: the event's strings here
// are ids, keys and RFC 3339 times, so the two agree on every event this product publishes.
package channels

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/jsonenc"
	"github.com/retarget-dev/retarget/shared/ports"
)

// WholeEvent is EventBridge's predefined variable for the whole event (detail included).
const WholeEvent = "aws.events.event.json"

// Account and region of the events make dev and the tests build (Event): EventBridge sets the
// real ones in AWS.
const (
	DevAccount = "000000000000"
	DevRegion  = "us-east-1"
)

// maxVariables is EventBridge's limit on an input transformer's InputPathsMap.
const maxVariables = 100

// pathPattern is the JSON path a placeholder may use: dot notation over names of letters,
// digits, '_' and '-' (the event's own "detail-type" has a dash). EventBridge accepts more
// (array indexes, wildcards); the events here need none, and a narrow syntax keeps Render
// and EventBridge in agreement.
var pathPattern = regexp.MustCompile(`^\$(\.[A-Za-z0-9_-]+)+$`)

// ErrBody marks a body that is not a valid template; the message says why.
var ErrBody = errors.New("invalid channel body")

// NoAuthHeader is the header a channel without auth sends, with the channel's id as its value:
// an EventBridge connection must have an authorization, and this one carries nothing secret.
// make dev sends the same.
const NoAuthHeader = "X-Retarget-Channel"

// Transformer is a body as EventBridge's input transformer takes it: named JSON paths and a
// template over the names.
type Transformer struct {
	InputPaths map[string]string // name -> "$.detail.segment"
	Template   string
}

// AppChannels are one app's compiled channels.
type AppChannels struct {
	channels []appconfig.Channel
}

// Compile checks an app's channels (bodies included) and compiles them.
func Compile(app *appconfig.App) (*AppChannels, error) {
	a := &AppChannels{channels: slices.Clone(app.Channels)}
	for i := range a.channels {
		c := &a.channels[i]
		if _, err := parse(c.Body); err != nil {
			return nil, fmt.Errorf("app %s: channels[%d] (%s).body: %w", app.ID, i, c.ID, err)
		}
	}
	return a, nil
}

// Channels returns the compiled channels in config order.
func (a *AppChannels) Channels() []appconfig.Channel { return a.channels }

// Channel returns the channel with id, or nil.
func (a *AppChannels) Channel(id string) *appconfig.Channel {
	for i := range a.channels {
		if a.channels[i].ID == id {
			return &a.channels[i]
		}
	}
	return nil
}

// Match returns the ids of the channels whose segments and events match ev, in config order
// (the cool-down is the publisher's business).
func (a *AppChannels) Match(ev *ports.SegmentEvent) []string {
	if a == nil {
		return nil
	}
	kind := appconfig.ChannelLeft
	if ev.Joined {
		kind = appconfig.ChannelJoined
	}
	var ids []string
	for i := range a.channels {
		c := &a.channels[i]
		if slices.Contains(c.Segments, ev.Segment) && slices.Contains(c.EventKinds(), kind) {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// InputTransformer converts a body into EventBridge's form: each distinct path becomes a
// variable p0, p1... in order of first use; <aws.events.event.json> stays as the predefined
// variable.
func InputTransformer(body string) (Transformer, error) {
	parts, err := parse(body)
	if err != nil {
		return Transformer{}, err
	}
	t := Transformer{InputPaths: map[string]string{}}
	names := map[string]string{}
	var b strings.Builder
	for _, p := range parts {
		switch {
		case p.path == "":
			b.WriteString(p.text)
		case p.path == WholeEvent:
			b.WriteString("<" + WholeEvent + ">")
		default:
			name, ok := names[p.path]
			if !ok {
				name = "p" + strconv.Itoa(len(names))
				names[p.path] = name
				t.InputPaths[name] = p.path
			}
			b.WriteString("<" + name + ">")
		}
	}
	t.Template = b.String()
	return t, nil
}

// Render produces the request body a channel sends for the EventBridge event event (JSON).
// An empty body sends the event itself.
func Render(body string, event []byte) ([]byte, error) {
	if body == "" {
		return slices.Clone(event), nil
	}
	parts, err := parse(body)
	if err != nil {
		return nil, err
	}
	return render(parts, event)
}

func render(parts []part, event []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber() // numbers go out as they came in
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("render: the event is not JSON: %w", err)
	}
	var out []byte
	for _, p := range parts {
		switch {
		case p.path == "":
			out = append(out, p.text...)
		case p.path == WholeEvent:
			out = append(out, bytes.TrimSpace(event)...)
		default:
			v, found := lookup(root, p.path)
			switch {
			case p.inString && !found:
				// Nothing to insert: the string keeps its text around the placeholder.
			case p.inString:
				if s, ok := v.(string); ok {
					out = appendEscaped(out, s)
				} else {
					out = appendEscaped(out, string(marshal(v)))
				}
			case !found:
				out = append(out, "null"...)
			default:
				out = append(out, marshal(v)...)
			}
		}
	}
	return out, nil
}

// appendEscaped appends s as the inside of a JSON string.
func appendEscaped(dst []byte, s string) []byte {
	q := jsonenc.AppendStringKeepHTML(nil, s)
	return append(dst, q[1:len(q)-1]...)
}

func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // decoded JSON values always encode
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// lookup walks a dot path ("$.detail.segment") through decoded JSON objects.
func lookup(root any, path string) (any, bool) {
	v := root
	for _, name := range strings.Split(path, ".")[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// part is a run of literal template text (path "") or a placeholder.
type part struct {
	text     string
	path     string // "$.a.b", WholeEvent, or "" for text
	inString bool   // the placeholder stands inside a JSON string
}

// parse splits a body into text and placeholders and checks it: every <...> is a placeholder
// of the supported syntax, <aws.events.event.json> stands outside strings, and the body
// renders to valid JSON for a sample event.
func parse(body string) ([]part, error) {
	if body == "" {
		return nil, nil
	}
	var parts []part
	inString, escaped := false, false
	start := 0
	vars := map[string]bool{}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString && escaped {
			escaped = false
			continue
		}
		switch c {
		case '\\':
			if inString {
				escaped = true
			}
		case '"':
			inString = !inString
		case '<':
			// EventBridge reads every <...> as a placeholder ("<" and ">" cannot be escaped).
			end := strings.IndexByte(body[i:], '>')
			if end < 0 {
				return nil, fmt.Errorf("%w: '<' at byte %d opens no placeholder (EventBridge reserves '<' and '>' for <$.path> placeholders)", ErrBody, i)
			}
			name := body[i+1 : i+end]
			switch {
			case name == WholeEvent:
				if inString {
					return nil, fmt.Errorf("%w: <%s> inside a string (EventBridge inserts the event unescaped: use it as a value, e.g. {\"event\": <%s>})", ErrBody, WholeEvent, WholeEvent)
				}
			case pathPattern.MatchString(name):
				vars[name] = true
			default:
				return nil, fmt.Errorf("%w: <%s> is not a placeholder: use <$.path> with a path of letters, digits, '_', '-' and '.' (e.g. <$.detail.segment>), or <%s>", ErrBody, name, WholeEvent)
			}
			if !inString && strings.HasPrefix(strings.TrimLeft(body[i+end+1:], " \t\r\n"), ":") {
				return nil, fmt.Errorf("%w: <%s> stands as an object key (EventBridge allows placeholders only as values)", ErrBody, name)
			}
			if start < i {
				parts = append(parts, part{text: body[start:i]})
			}
			parts = append(parts, part{path: name, inString: inString})
			i += end
			start = i + 1
		}
	}
	if start < len(body) {
		parts = append(parts, part{text: body[start:]})
	}
	if len(vars) > maxVariables {
		return nil, fmt.Errorf("%w: %d distinct paths, EventBridge takes at most %d", ErrBody, len(vars), maxVariables)
	}
	out, err := render(parts, sampleEvent)
	if err != nil {
		return nil, err
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("%w: it does not render to valid JSON (for a sample event it gives %s)", ErrBody, out)
	}
	return parts, nil
}

// sampleEvent is the event bodies are checked against.
var sampleEvent = Event("00000000-0000-0000-0000-000000000000", "2024-01-01T00:00:00Z", &ports.SegmentEvent{
	ChangeID: "sample", App: "app", Segment: "segment", UserKey: "user-key", AppUserID: "app-user",
	Joined: true, At: "2024-01-01T00:00:00.000Z", Reason: ports.ReasonEvents, StateVersion: 1, Channels: []string{"channel"},
})

// Event builds the EventBridge event (as delivered to targets) of a segment event: what the
// bus's rules see and what a channel without body receives. Account and region are make dev's
// (DevAccount, DevRegion); EventAt sets them.
func Event(id, time string, ev *ports.SegmentEvent) []byte {
	return EventAt(id, time, DevAccount, DevRegion, ev)
}

// eventEnvelope is EventBridge's event shape, in its field order.
type eventEnvelope struct {
	Version    string             `json:"version"`
	ID         string             `json:"id"`
	DetailType string             `json:"detail-type"`
	Source     string             `json:"source"`
	Account    string             `json:"account"`
	Time       string             `json:"time"`
	Region     string             `json:"region"`
	Resources  []string           `json:"resources"`
	Detail     ports.SegmentEvent `json:"detail"`
}

// EventAt is Event with the account and region the bus stamps.
func EventAt(id, time, account, region string, ev *ports.SegmentEvent) []byte {
	d := *ev
	if d.Channels == nil {
		d.Channels = []string{} // "channels": [] rather than null: consumers iterate it
	}
	b, err := json.Marshal(eventEnvelope{
		Version: "0", ID: id, DetailType: ev.DetailType(), Source: ports.EventSource,
		Account: account, Time: time, Region: region, Resources: []string{}, Detail: d,
	})
	if err != nil {
		panic(fmt.Sprintf("channels: encode event: %v", err)) // only strings and ints: cannot fail
	}
	return b
}

// ReasonTest is the reason of the events `retarget channels test` sends.
const ReasonTest = "test"

// TestEvent is the segment event `retarget channels test` sends to ch: a change of ch's first
// segment and first event kind, for a made-up user, routed to ch alone, with reason "test" so
// the receiver can tell it from a real one. at stamps it and its change id.
func TestEvent(app *appconfig.App, ch *appconfig.Channel, at time.Time) ports.SegmentEvent {
	ev := ports.SegmentEvent{
		ChangeID: "test-" + ch.ID + "-" + strconv.FormatInt(at.UnixMilli(), 10), App: app.ID,
		UserKey: "test-user-key", Joined: ch.EventKinds()[0] == appconfig.ChannelJoined,
		At: at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Reason: ReasonTest, Channels: []string{ch.ID},
	}
	if len(ch.Segments) > 0 {
		ev.Segment = ch.Segments[0]
	}
	if app.ShareAppUserID {
		ev.AppUserID = "test-user"
	}
	return ev
}

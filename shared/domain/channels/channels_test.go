package channels

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/ports"
)

func sample() *ports.SegmentEvent {
	return &ports.SegmentEvent{
		ChangeID: "c-1", App: "shop", Segment: "cart_abandoner", UserKey: "k1",
		Joined: true, At: "2024-05-01T10:00:00.000Z", Reason: ports.ReasonTime, StateVersion: 7,
	}
}

func TestEventShape(t *testing.T) {
	got := string(Event("id-1", "2024-05-01T10:00:01Z", sample()))
	want := `{"version":"0","id":"id-1","detail-type":"Segment Joined","source":"retarget","account":"000000000000",` +
		`"time":"2024-05-01T10:00:01Z","region":"us-east-1","resources":[],"detail":{"change_id":"c-1","app":"shop",` +
		`"segment":"cart_abandoner","user_key":"k1","at":"2024-05-01T10:00:00.000Z","reason":"time","state_version":7,"channels":[]}}`
	if got != want {
		t.Fatalf("Event:\n got %s\nwant %s", got, want)
	}
	left := sample()
	left.Joined, left.AppUserID, left.Channels = false, "u-42", []string{"push"}
	var ev map[string]any
	if err := json.Unmarshal(Event("id-2", "t", left), &ev); err != nil {
		t.Fatal(err)
	}
	d := ev["detail"].(map[string]any)
	if ev["detail-type"] != "Segment Left" || d["app_user_id"] != "u-42" || !reflect.DeepEqual(d["channels"], []any{"push"}) {
		t.Fatalf("left event: %v", ev)
	}
}

func TestRenderQuoting(t *testing.T) {
	ev := sample()
	ev.AppUserID = `a"b\c` + "\n<&>"
	event := Event("id-1", "2024-05-01T10:00:01Z", ev)
	tests := []struct{ name, body, want string }{
		{"string inside quotes: raw text", `{"s": "<$.detail.segment>"}`, `{"s": "cart_abandoner"}`},
		{"string outside quotes: JSON string", `{"s": <$.detail.segment>}`, `{"s": "cart_abandoner"}`},
		{"text around a placeholder", `{"m": "user <$.detail.user_key> is <$.detail-type>"}`, `{"m": "user k1 is Segment Joined"}`},
		{"number outside quotes", `{"v": <$.detail.state_version>}`, `{"v": 7}`},
		{"number inside quotes", `{"v": "<$.detail.state_version>"}`, `{"v": "7"}`},
		{"object outside quotes", `{"d": <$.detail.channels>}`, `{"d": []}`},
		{"object inside quotes: its JSON as text", `{"r": "<$.resources>"}`, `{"r": "[]"}`},
		{"quotes, backslashes, controls escaped", `{"u": "<$.detail.app_user_id>"}`, `{"u": "a\"b\\c\n<&>"}`},
		{"same value outside quotes", `{"u": <$.detail.app_user_id>}`, `{"u": "a\"b\\c\n<&>"}`},
		{"missing path outside quotes: null", `{"x": <$.detail.nothing>}`, `{"x": null}`},
		{"missing path inside quotes: nothing", `{"x": "[<$.detail.nothing>]"}`, `{"x": "[]"}`},
		{"path through a string: missing", `{"x": <$.detail.segment.deeper>}`, `{"x": null}`},
		{"escaped quote keeps the string open", `{"x": "say \"<$.detail.segment>\""}`, `{"x": "say \"cart_abandoner\""}`},
		{"whole event", `{"event": <aws.events.event.json>}`, `{"event": ` + string(event) + `}`},
		{"no placeholder", `{"fixed": true}`, `{"fixed": true}`},
		{"empty body: the event", ``, string(event)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.body, event)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Render(%s):\n got %s\nwant %s", tt.body, got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
		})
	}
}

func TestInvalidBodies(t *testing.T) {
	tests := []struct{ name, body, msg string }{
		{"not JSON", `{"a": <$.detail.segment>`, "does not render to valid JSON"},
		{"not JSON without placeholders", `hello`, "does not render to valid JSON"},
		{"unknown placeholder", `{"a": "<segment>"}`, "<segment> is not a placeholder"},
		{"bracket path", `{"a": <$.detail.channels[0]>}`, "is not a placeholder"},
		{"space in path", `{"a": "<$.detail. segment>"}`, "is not a placeholder"},
		{"lone angle bracket", `{"a": "1 < 2"}`, "opens no placeholder"},
		{"whole event inside a string", `{"a": "<aws.events.event.json>"}`, "inside a string"},
		{"other predefined variable", `{"a": "<aws.events.rule-arn>"}`, "is not a placeholder"},
		{"placeholder as a key", `{<$.detail.segment> : true}`, "as an object key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := InputTransformer(tt.body)
			if !errors.Is(err, ErrBody) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("InputTransformer(%s) = %v, want ErrBody mentioning %q", tt.body, err, tt.msg)
			}
			if _, err := Render(tt.body, Event("i", "t", sample())); !errors.Is(err, ErrBody) {
				t.Fatalf("Render(%s) = %v, want ErrBody", tt.body, err)
			}
			app := &appconfig.App{ID: "shop", Channels: []appconfig.Channel{{ID: "push", Body: tt.body}}}
			if _, err := Compile(app); err == nil || !strings.Contains(err.Error(), "channels[0] (push).body") {
				t.Fatalf("Compile = %v, want the channel named", err)
			}
		})
	}
}

func TestInputTransformer(t *testing.T) {
	tr, err := InputTransformer(`{"u": "<$.detail.user_key>", "s": <$.detail.segment>, "again": "<$.detail.user_key>", "e": <aws.events.event.json>}`)
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := map[string]string{"p0": "$.detail.user_key", "p1": "$.detail.segment"}
	if !reflect.DeepEqual(tr.InputPaths, wantPaths) {
		t.Fatalf("paths %v, want %v", tr.InputPaths, wantPaths)
	}
	if want := `{"u": "<p0>", "s": <p1>, "again": "<p0>", "e": <aws.events.event.json>}`; tr.Template != want {
		t.Fatalf("template %s, want %s", tr.Template, want)
	}
}

func TestMatch(t *testing.T) {
	app := &appconfig.App{ID: "shop", Channels: []appconfig.Channel{
		{ID: "push", Segments: []string{"cart_abandoner", "lapsed_7d"}},
		{ID: "crm", Segments: []string{"cart_abandoner"}, Events: []string{"joined", "left"}},
		{ID: "exit", Segments: []string{"lapsed_7d"}, Events: []string{"left"}},
	}}
	a, err := Compile(app)
	if err != nil {
		t.Fatal(err)
	}
	ev := sample()
	if got := a.Match(ev); !reflect.DeepEqual(got, []string{"push", "crm"}) {
		t.Fatalf("joined cart_abandoner: %v", got)
	}
	ev.Joined = false
	if got := a.Match(ev); !reflect.DeepEqual(got, []string{"crm"}) {
		t.Fatalf("left cart_abandoner: %v", got)
	}
	ev.Segment = "lapsed_7d"
	if got := a.Match(ev); !reflect.DeepEqual(got, []string{"exit"}) {
		t.Fatalf("left lapsed_7d: %v", got)
	}
	ev.Segment = "other"
	if got := a.Match(ev); got != nil {
		t.Fatalf("other segment: %v", got)
	}
	if a.Channel("crm") == nil || a.Channel("nope") != nil {
		t.Fatal("Channel lookup")
	}
}

func TestTestEventMatchesItsChannel(t *testing.T) {
	app := &appconfig.App{ID: "shop", ShareAppUserID: true}
	ch := &appconfig.Channel{ID: "crm", Segments: []string{"lapsed_7d", "vip"}, Events: []string{"left"}}
	at := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	got := TestEvent(app, ch, at)
	want := ports.SegmentEvent{ChangeID: "test-crm-1714557600000", App: "shop", Segment: "lapsed_7d", UserKey: "test-user-key",
		AppUserID: "test-user", At: "2024-05-01T10:00:00.000Z", Reason: "test", Channels: []string{"crm"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TestEvent:\n got %+v\nwant %+v", got, want)
	}
	a, _ := Compile(&appconfig.App{ID: "shop", Channels: []appconfig.Channel{*ch}})
	if m := a.Match(&got); !reflect.DeepEqual(m, []string{"crm"}) {
		t.Fatalf("the test event does not match its channel: %v", m)
	}
}

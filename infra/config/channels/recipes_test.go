// Package channels_test checks the channel recipes shipped beside it: each file is a channel
// the loader accepts in an app, and its body renders, for a sample event, to exactly the
// request its receiver expects.
package channels_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/channels"
	"github.com/retarget-dev/retarget/shared/ports"
)

func TestRecipes(t *testing.T) {
	ev := &ports.SegmentEvent{
		ChangeID: "01HX5R8Z9K-7", App: "sample-shop", Segment: "cart_abandoner", UserKey: "Jx3kq9Zt2mPw",
		AppUserID: "user-1042", Joined: true, At: "2024-05-01T10:00:00.000Z", Reason: ports.ReasonTime,
		StateVersion: 12, Channels: []string{"push"},
	}
	event := channels.Event("6a7e8feb-b491-4cf7-a9f1-bf3703467718", "2024-05-01T10:00:01Z", ev)
	tests := []struct{ file, want string }{
		{"braze.json", `{"events": [{"external_id": "user-1042", "name": "retarget Segment Joined", "time": "2024-05-01T10:00:00.000Z", ` +
			`"properties": {"segment": "cart_abandoner", "reason": "time", "change_id": "01HX5R8Z9K-7"}}]}`},
		{"onesignal.json", `{"include_aliases": {"external_id": ["user-1042"]}, "target_channel": "push", ` +
			`"data": {"segment": "cart_abandoner", "event": "Segment Joined", "change_id": "01HX5R8Z9K-7", "at": "2024-05-01T10:00:00.000Z"}}`},
		{"fcm.json", `{"user_id": "user-1042", "message": {"data": {"segment": "cart_abandoner", "event": "Segment Joined", ` +
			`"change_id": "01HX5R8Z9K-7", "at": "2024-05-01T10:00:00.000Z"}, "android": {"collapse_key": "cart_abandoner"}, ` +
			`"apns": {"headers": {"apns-collapse-id": "cart_abandoner"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			var ch appconfig.Channel
			if err := dec.Decode(&ch); err != nil {
				t.Fatalf("%s is not a channel: %v", tt.file, err)
			}
			app := devApp(t, ch)
			compiled, err := channels.Compile(app)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if got := compiled.Match(ev); len(got) != 1 || got[0] != ch.ID {
				t.Fatalf("a cart_abandoner join matches %v, want [%s]", got, ch.ID)
			}
			got, err := channels.Render(ch.Body, event)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("rendered body:\n got %s\nwant %s", got, tt.want)
			}
			if _, err := channels.InputTransformer(ch.Body); err != nil {
				t.Fatalf("input transformer: %v", err)
			}
		})
	}
}

// devApp returns apps.dev.json's first app with ch as its channel (and the app user id shared,
// which the recipes address users by), validated by the loader.
func devApp(t *testing.T, ch appconfig.Channel) *appconfig.App {
	t.Helper()
	raw, err := os.ReadFile("../apps.dev.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	app := doc["apps"].([]any)[0].(map[string]any)
	app["share_app_user_id"] = true
	app["channels"] = []appconfig.Channel{ch}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := appconfig.Parse(out)
	if err != nil {
		t.Fatalf("the loader refuses the recipe: %v", err)
	}
	return &cfg.Apps[0]
}

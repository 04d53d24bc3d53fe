package appconfig

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func channelsDoc(extra string) string { return audiencesDoc(extra) }

func TestChannelsAccepted(t *testing.T) {
	cfg, err := Parse([]byte(channelsDoc(`, "share_app_user_id": true, "channel_cooldown": "1d12h", "channels": [
		{"id": "push", "type": "webhook", "url": "https://push.example.com/hooks/retarget?x=1", "segments": ["a", "b"],
		 "events": ["left", "joined"], "auth": {"header": "Authorization", "secret_name": "retarget/push", "dev_value": "Bearer dev-push-token"},
		 "body": "{\"user\": \"<$.detail.user_key>\"}", "rate_per_second": 300},
		{"id": "dev-1", "type": "webhook", "url": "http://127.0.0.1:8787/hook", "segments": ["c"]},
		{"id": "dev-2", "type": "webhook", "url": "http://localhost:8787/hook", "segments": ["c"]},
		{"id": "dev-3", "type": "webhook", "url": "http://[::1]:8787/hook", "segments": ["c"], "rate_per_second": 1}]`)))
	if err != nil {
		t.Fatal(err)
	}
	app := cfg.Apps[0]
	if !app.ShareAppUserID || app.Cooldown() != 36*time.Hour || len(app.Channels) != 4 {
		t.Fatalf("app: share %v, cooldown %v, %d channels", app.ShareAppUserID, app.Cooldown(), len(app.Channels))
	}
	push, dev := &app.Channels[0], &app.Channels[1]
	if !slices.Equal(push.EventKinds(), []string{ChannelLeft, ChannelJoined}) || push.Rate() != 300 || push.Auth.SecretName != "retarget/push" {
		t.Errorf("push: events %v, rate %d, auth %+v", push.EventKinds(), push.Rate(), push.Auth)
	}
	// The defaults: joined only, 300 per second, no auth, the event as the body.
	if !slices.Equal(dev.EventKinds(), []string{ChannelJoined}) || dev.Rate() != DefaultChannelRate || dev.Auth != nil || dev.Body != "" {
		t.Errorf("defaults: events %v, rate %d, auth %v, body %q", dev.EventKinds(), dev.Rate(), dev.Auth, dev.Body)
	}
	// EventKinds is a copy: a caller appending to it changes no config.
	kinds := push.EventKinds()
	kinds[0] = "x"
	if push.Events[0] != ChannelLeft {
		t.Error("EventKinds shares the config's slice")
	}
	var none App
	if none.Cooldown() != 0 || none.ShareAppUserID {
		t.Error("an app without channel settings has a cool-down or shares its user ids")
	}
	// At the bound.
	if _, err := Parse([]byte(channelsDoc(`, "channel_cooldown": "30d"`))); err != nil {
		t.Errorf("30d: %v", err)
	}
}

func TestChannelsErrors(t *testing.T) {
	p := `apps[0] ("shop").`
	ch := func(fields string) string {
		return `{"id": "push", "type": "webhook", "url": "https://push.example.com/x", "segments": ["a"]` + fields + `}`
	}
	tests := []struct {
		name, extra string
		want        []string
	}{
		{"cool-down not a duration", `, "channel_cooldown": "soon"`, []string{
			p + `channel_cooldown: must be a duration such as "24h" or "3d", at most 30d (got "soon")`}},
		{"cool-down above 30d", `, "channel_cooldown": "30d1s"`, []string{
			p + `channel_cooldown: must be a duration such as "24h" or "3d", at most 30d (got "30d1s")`}},
		{"cool-down zero", `, "channel_cooldown": "0h"`, []string{
			p + `channel_cooldown: must be a duration such as "24h" or "3d", at most 30d (got "0h")`}},
		{"id, type and segments", `, "channels": [{"id": "Push_1", "type": "sms", "url": "https://x.example.com", "segments": []}]`, []string{
			p + `channels[0].id: must be 1-63 lowercase letters, digits or '-' (got "Push_1")`,
			p + `channels[0].type: must be "webhook" (got "sms")`,
			p + `channels[0].segments: list at least one of the app's segments`}},
		{"id twice", `, "channels": [` + ch("") + `, ` + ch("") + `]`, []string{
			p + `channels[1].id: "push" duplicates channels[0]`}},
		{"segments unknown and twice", `, "channels": [{"id": "push", "type": "webhook", "url": "https://x.example.com", "segments": ["a", "z", "a"]}]`, []string{
			p + `channels[0].segments[1]: "z" is not one of the app's segments (a, b, c, d)`,
			p + `channels[0].segments[2]: "a" is listed twice`}},
		{"events unknown and twice", `, "channels": [` + ch(`, "events": ["joined", "churned", "joined"]`) + `]`, []string{
			p + `channels[0].events[1]: must be "joined" or "left" (got "churned")`,
			p + `channels[0].events[2]: "joined" is listed twice`}},
		{"auth", `, "channels": [` + ch(`, "auth": {"header": "Bad Header", "secret_name": "retarget push", "dev_value": "Bearer a\nX-Injected: 1"}`) + `]`, []string{
			p + `channels[0].auth.header: must be an HTTP header name (got "Bad Header")`,
			p + `channels[0].auth.secret_name: must be a Secrets Manager secret name: letters, digits and /_+=.@- (got "retarget push")`,
			p + `channels[0].auth.dev_value: must be one line (it is a header value)`}},
		{"auth empty", `, "channels": [` + ch(`, "auth": {}`) + `]`, []string{
			p + `channels[0].auth.header: must be an HTTP header name (got "")`,
			p + `channels[0].auth.secret_name: must be a Secrets Manager secret name: letters, digits and /_+=.@- (got "")`}},
		{"rate too high", `, "channels": [` + ch(`, "rate_per_second": 301`) + `]`, []string{
			p + `channels[0].rate_per_second: must be 0 (the default, 300) or 1..300 (got 301)`}},
		{"rate negative", `, "channels": [` + ch(`, "rate_per_second": -1`) + `]`, []string{
			p + `channels[0].rate_per_second: must be 0 (the default, 300) or 1..300 (got -1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(channelsDoc(tt.extra)))
			if err == nil {
				t.Fatal("accepted")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestChannelURLErrors(t *testing.T) {
	const field = `apps[0] ("shop").channels[0].url: `
	for url, want := range map[string]string{
		"":                                 `must be an absolute https URL without credentials or fragment (got "")`,
		"push.example.com/hook":            `must be an absolute https URL without credentials or fragment (got "push.example.com/hook")`,
		"https://user:pw@push.example.com": `must be an absolute https URL without credentials or fragment (got "https://user:pw@push.example.com")`,
		"https://push.example.com/#frag":   `must be an absolute https URL without credentials or fragment (got "https://push.example.com/#frag")`,
		"https://push example.com":         `must be an absolute https URL without credentials or fragment (got "https://push example.com")`,
		"http://push.example.com/hook":     `must be https (http only on loopback, for make dev) (got "http://push.example.com/hook")`,
		"http://10.0.0.1/hook":             `must be https (http only on loopback, for make dev) (got "http://10.0.0.1/hook")`,
		"ftp://push.example.com/hook":      `must be https (got "ftp://push.example.com/hook")`,
	} {
		t.Run(url, func(t *testing.T) {
			_, err := Parse([]byte(channelsDoc(`, "channels": [{"id": "push", "type": "webhook", "url": "` + url + `", "segments": ["a"]}]`)))
			if err == nil || err.Error() != field+want {
				t.Errorf("error: %v\nwant: %s%s", err, field, want)
			}
		})
	}
}

// TestForDeploymentStripsChannelDevValues: the deployed config keeps every channel setting but
// the header's dev value (the connection reads the secret), and the original keeps it.
func TestForDeploymentStripsChannelDevValues(t *testing.T) {
	cfg, err := Parse([]byte(channelsDoc(`, "channels": [
		{"id": "push", "type": "webhook", "url": "https://push.example.com/x", "segments": ["a"],
		 "auth": {"header": "Authorization", "secret_name": "retarget/push", "dev_value": "Bearer dev-push-token"}},
		{"id": "open", "type": "webhook", "url": "https://open.example.com/x", "segments": ["b"]}]`)))
	if err != nil {
		t.Fatal(err)
	}
	dep := cfg.ForDeployment()
	got := dep.Apps[0].Channels
	if len(got) != 2 || got[0].Auth == nil || got[0].Auth.DevValue != "" || got[0].Auth.Header != "Authorization" ||
		got[0].Auth.SecretName != "retarget/push" || got[0].URL != "https://push.example.com/x" || got[1].Auth != nil {
		t.Fatalf("deployment channels: %+v / %+v", got[0], got[1])
	}
	if cfg.Apps[0].Channels[0].Auth.DevValue != "Bearer dev-push-token" {
		t.Fatal("ForDeployment changed the original")
	}
	if err := dep.Validate(); err != nil {
		t.Fatalf("deployment config invalid: %v", err)
	}
}

package appconfig

// The channels schema: segment changes delivered to other channels (push, CRM, messaging) the
// moment they happen, through the stack's EventBridge bus.
//
//	"share_app_user_id": false,
//	"channel_cooldown": "24h",
//	"channels": [{"id": "push", "type": "webhook", "url": "https://push.example.com/hooks/retarget",
//	              "segments": ["lapsed_7d", "cart_abandoner"], "events": ["joined"],
//	              "auth": {"header": "Authorization", "secret_name": "retarget/push",
//	                       "dev_value": "Bearer dev-push-token"},
//	              "body": "{\"user\": \"<$.detail.user_key>\", \"segment\": \"<$.detail.segment>\"}"}]
//
// Every membership change is published on the bus (source "retarget", detail-type "Segment
// Joined" or "Segment Left"); a channel is an EventBridge rule and API destination that delivers
// the changes of its segments and events to its url, with the configured header set to the
// secret's value (Secrets Manager; dev_value only in make dev, stripped from deployed configs).
// Without body the request body is the event itself; with it, body is an EventBridge input
// template whose <$.path> placeholders take values from the event (package channels).
//
// share_app_user_id adds the app's own user id to the events (and so keeps it, raw, in the
// stream records and the user's state); off, consumers get the pseudonymous user key only.
// channel_cooldown: a user delivered to one channel is not delivered to another for another
// segment within it (the event is still published, with no channel).

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Channel types.
const ChannelWebhook = "webhook"

// Channel event kinds.
const (
	ChannelJoined = "joined"
	ChannelLeft   = "left"
)

// MaxChannelCooldown bounds channel_cooldown.
const MaxChannelCooldown = 30 * 24 * time.Hour

var (
	channelIDPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	headerNamePattern = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,128}$`)
	// Secrets Manager secret names: letters, digits and /_+=.@- (up to 512).
	secretNamePattern = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
)

// Channel delivers an app's segment changes to a webhook.
type Channel struct {
	ID string `json:"id"`
	// Type is ChannelWebhook.
	Type string `json:"type"`
	// URL is https (http only on loopback, for make dev).
	URL      string   `json:"url"`
	Segments []string `json:"segments"`
	// Events are ChannelJoined and/or ChannelLeft; empty means [ChannelJoined].
	Events []string `json:"events,omitempty"`
	// Auth sets one header from a secret; nil sends none.
	Auth *ChannelAuth `json:"auth,omitempty"`
	// Body is an EventBridge input template; "" sends the event itself.
	Body string `json:"body,omitempty"`
	// RatePerSecond caps the deliveries (the API destination's invocation rate); 0: 300.
	RatePerSecond int `json:"rate_per_second,omitempty"`
}

// ChannelAuth names the header a channel sends and the secret holding its value.
type ChannelAuth struct {
	Header     string `json:"header"`
	SecretName string `json:"secret_name"`
	// DevValue is the header's value in make dev only; stripped from deployed configs.
	DevValue string `json:"dev_value,omitempty"`
}

// DefaultChannelRate is the API destination's default invocations per second.
const DefaultChannelRate = 300

// EventKinds returns the channel's events with the default applied.
func (c *Channel) EventKinds() []string {
	if len(c.Events) == 0 {
		return []string{ChannelJoined}
	}
	return slices.Clone(c.Events)
}

// Rate returns the invocation rate with the default applied.
func (c *Channel) Rate() int {
	if c.RatePerSecond == 0 {
		return DefaultChannelRate
	}
	return c.RatePerSecond
}

// Cooldown returns channel_cooldown (0: none); the config was validated.
func (a *App) Cooldown() time.Duration {
	if a.ChannelCooldown == "" {
		return 0
	}
	d, _ := ParseDuration(a.ChannelCooldown)
	return d
}

// checkChannels validates the app's channels; it reads the segment ids.
func (a *App) checkChannels(bad func(field, format string, args ...any)) {
	if s := a.ChannelCooldown; s != "" {
		if d, err := ParseDuration(s); err != nil || d <= 0 || d > MaxChannelCooldown {
			bad("channel_cooldown", "must be a duration such as \"24h\" or \"3d\", at most 30d (got %q)", s)
		}
	}
	segs := make([]string, 0, len(a.Segments))
	for _, s := range a.Segments {
		segs = append(segs, s.ID)
	}
	ids := map[string]int{}
	for i := range a.Channels {
		c := &a.Channels[i]
		where := fmt.Sprintf("channels[%d]", i)
		if !channelIDPattern.MatchString(c.ID) {
			bad(where+".id", "must be 1-63 lowercase letters, digits or '-' (got %q)", c.ID)
		} else if j, dup := ids[c.ID]; dup {
			bad(where+".id", "%q duplicates channels[%d]", c.ID, j)
		} else {
			ids[c.ID] = i
		}
		if c.Type != ChannelWebhook {
			bad(where+".type", "must be %q (got %q)", ChannelWebhook, c.Type)
		}
		checkChannelURL(c.URL, where+".url", bad)
		if len(c.Segments) == 0 {
			bad(where+".segments", "list at least one of the app's segments")
		}
		for k, s := range c.Segments {
			if !slices.Contains(segs, s) {
				bad(fmt.Sprintf("%s.segments[%d]", where, k), "%q is not one of the app's segments (%s)", s, strings.Join(segs, ", "))
			} else if slices.Contains(c.Segments[:k], s) {
				bad(fmt.Sprintf("%s.segments[%d]", where, k), "%q is listed twice", s)
			}
		}
		for k, e := range c.Events {
			if e != ChannelJoined && e != ChannelLeft {
				bad(fmt.Sprintf("%s.events[%d]", where, k), "must be %q or %q (got %q)", ChannelJoined, ChannelLeft, e)
			} else if slices.Contains(c.Events[:k], e) {
				bad(fmt.Sprintf("%s.events[%d]", where, k), "%q is listed twice", e)
			}
		}
		if au := c.Auth; au != nil {
			if !headerNamePattern.MatchString(au.Header) {
				bad(where+".auth.header", "must be an HTTP header name (got %q)", au.Header)
			}
			if !secretNamePattern.MatchString(au.SecretName) {
				bad(where+".auth.secret_name", "must be a Secrets Manager secret name: letters, digits and /_+=.@- (got %q)", au.SecretName)
			}
			if strings.ContainsAny(au.DevValue, "\r\n") {
				bad(where+".auth.dev_value", "must be one line (it is a header value)")
			}
		}
		if r := c.RatePerSecond; r < 0 || r > 300 {
			bad(where+".rate_per_second", "must be 0 (the default, %d) or 1..300 (got %d)", DefaultChannelRate, r)
		}
	}
}

func checkChannelURL(raw, field string, bad func(field, format string, args ...any)) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		bad(field, "must be an absolute https URL without credentials or fragment (got %q)", raw)
		return
	}
	switch u.Scheme {
	case "https":
	case "http":
		if addr, err := netip.ParseAddr(u.Hostname()); (err != nil || !addr.IsLoopback()) && u.Hostname() != "localhost" {
			bad(field, "must be https (http only on loopback, for make dev) (got %q)", raw)
		}
	default:
		bad(field, "must be https (got %q)", raw)
	}
}

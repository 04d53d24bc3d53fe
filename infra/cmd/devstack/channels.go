package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/adapters/dynamostate"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/publish"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/channels"
	"github.com/retarget-dev/retarget/shared/sandbox/devbus"
)

// segmentChannels is the stack's event bus in make dev: the publisher (run after each sweep,
// as the sweeper's Lambda runs it) puts the recorded membership changes on the dev bus, which
// delivers them to the channels and prints one line per attempt:
//
//	channel push delivered Segment Joined cart_abandoner user=Jx3kq9Zt status=200 attempt=1
type segmentChannels struct {
	apps *appconfig.Config
	bus  *devbus.Bus
	pub  *publish.Publisher
	out  *console
}

// startChannels builds the dev bus and the publisher over the state table.
func startChannels(s settings, apps *appconfig.Config, dynamoCfg aws.Config, logs *logFiles, out *console) (*segmentChannels, error) {
	logger := slog.New(slog.NewMultiHandler(
		observability.NewLogger(logs.segments, s.LogLevel).Handler(),
		slog.NewTextHandler(out.err, &slog.HandlerOptions{Level: slog.LevelWarn}),
	))
	c := &segmentChannels{apps: apps, out: out}
	bus, err := devbus.New(apps, devbus.Options{
		DeadLetters: filepath.Join(s.LogDir, devenv.ChannelDeadLettersFile),
		Report:      func(d devbus.Delivery) { out.Println(deliveryLine(d)) },
	})
	if err != nil {
		return nil, err
	}
	c.bus = bus
	store := dynamostate.New(dynamodb.NewFromConfig(dynamoCfg), stateTable, dynamostate.Options{})
	list := make([]*appconfig.App, len(apps.Apps))
	for i := range apps.Apps {
		list[i] = &apps.Apps[i]
	}
	c.pub, err = publish.New(publish.Config{Apps: list, Feed: store, Cooldowns: store, Bus: bus, Logger: logger})
	if err != nil {
		bus.Close()
		return nil, err
	}
	return c, nil
}

// publish puts the changes recorded since the last run on the bus (after each sweep).
func (c *segmentChannels) publish(ctx context.Context) {
	if _, err := c.pub.Run(ctx); err != nil && ctx.Err() == nil {
		c.out.Errorf("segment events: %v", err)
	}
}

// stop ends the retries and waits for the deliveries in flight.
func (c *segmentChannels) stop() { c.bus.Close() }

// deliveryLine is make dev's line for one delivery attempt; the user key is cut to 8
// characters, as everywhere make dev prints one.
func deliveryLine(d devbus.Delivery) string {
	user := d.UserKey
	if len(user) > 8 {
		user = user[:8]
	}
	line := fmt.Sprintf("channel %s %s %s %s user=%s status=%d attempt=%d", d.Channel, d.Outcome, d.DetailType, d.Segment, user, d.Status, d.Attempt)
	if d.Err != nil {
		line += " error=" + d.Err.Error()
	}
	if d.Outcome == devbus.DeadLettered {
		line += " (see " + devenv.ChannelDeadLettersFile + ")"
	}
	return line
}

// serveTest answers devenv.ChannelsTestPath: a test event (channels.TestEvent) delivered to
// the channel through the bus, with its retries, its line and its dead letter.
func (c *segmentChannels) serveTest(w http.ResponseWriter, r *http.Request) {
	var req devenv.ChannelTestRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		http.Error(w, "body: want {\"app\": ..., \"channel\": ...}", http.StatusBadRequest)
		return
	}
	app, ok := c.apps.App(req.App)
	if !ok {
		http.Error(w, fmt.Sprintf("no app %q in the dev stack's config", req.App), http.StatusNotFound)
		return
	}
	ch := c.bus.Channel(app.ID, req.Channel)
	if ch == nil {
		http.Error(w, fmt.Sprintf("app %s has no channel %q", app.ID, req.Channel), http.StatusNotFound)
		return
	}
	now := time.Now()
	ev := channels.TestEvent(app, ch, now)
	event := channels.Event(fmt.Sprintf("test-%d", now.UnixNano()), now.UTC().Format(time.RFC3339), &ev)
	d := c.bus.Deliver(r.Context(), app.ID, ch, event)
	res := devenv.ChannelTestResult{EventID: d.EventID, DetailType: d.DetailType, Segment: d.Segment,
		Outcome: string(d.Outcome), Status: d.Status, Attempt: d.Attempt}
	if d.Err != nil {
		res.Error = d.Err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/channels"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// The stack's event bus: the output that names it and the variable the CLI reads it from (the
// functions' own name for it).
const (
	outputEventBus      = "EventBusName"
	envEventBus         = env.EventBusName
	serviceEventBridge  = "EVENTBRIDGE"
	channelsTestTimeout = 30 * time.Second // the dev bus retries for up to 15 s
)

var channelsTestCommand = &command{
	name:    "channels test",
	summary: "send a test segment event to a channel (make dev: through the dev bus; --stack: PutEvents on the stack's bus)",
	help: `Sends a test segment event to channel ID: a change of the channel's first segment and first
event kind, for the made-up user key "test-user-key", with reason "test" (so the receiver can
tell it from a real change), routed to ID alone.

Against make dev (the default), the dev stack's bus delivers it as it delivers real changes:
the channel's body, its header with auth.dev_value, the retries and the dead letters; make dev
prints the delivery line and this command prints the outcome (exit 1 unless delivered).

Against a deployed stack (--stack NAME, or --bus / $` + envEventBus + `), it puts the event on the
stack's bus (the output ` + outputEventBus + `) with PutEvents: the channel's rule delivers it through
the API destination; a failure shows in the channel's dead-letter queue and alarm, not here.`,
	example: `  retarget channels test push
  retarget channels test braze --app sample-shop --json
  retarget --stack retarget-prod channels test push`,
	flags: func(fs *flag.FlagSet) any {
		o := &channelsTestOptions{}
		configFlag(fs, &o.config)
		fs.StringVar(&o.app, "app", "", "the `app` whose channel it is (default: the app that has the channel)")
		fs.StringVar(&o.bus, "bus", "", "the stack's event `bus` (default $"+envEventBus+", else the --stack output "+outputEventBus+")")
		fs.BoolVar(&o.json, "json", false, "print JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.channelsTest(ctx, *opts.(*channelsTestOptions), args)
	},
}

type channelsTestOptions struct {
	config, app, bus string
	json             bool
}

// channelsTestView is the JSON output of channels test.
type channelsTestView struct {
	App        string `json:"app"`
	Channel    string `json:"channel"`
	DetailType string `json:"detail_type"`
	Segment    string `json:"segment"`
	// Bus is the deployed bus the event was put on ("" in make dev).
	Bus     string `json:"bus,omitempty"`
	EventID string `json:"event_id,omitempty"`
	// Outcome, Status and Attempt are the dev bus's delivery (make dev only).
	Outcome string `json:"outcome,omitempty"`
	Status  int    `json:"status,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (c *cli) channelsTest(ctx context.Context, o channelsTestOptions, args []string) error {
	if len(args) != 1 {
		return usagef("channels test", "want one channel id (got %q)", args)
	}
	id := args[0]
	cfg, path, err := c.loadConfig(o.config)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	app, ch, err := findChannel(cfg, o.app, id)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	bus := o.bus
	if bus == "" {
		bus = c.getenv(envEventBus)
	}
	var view channelsTestView
	if bus != "" || c.target.stack != "" {
		if bus == "" {
			return fmt.Errorf("no event bus: pass --bus or set %s (the stack output %s; stacks with channels have it), %s", envEventBus, outputEventBus, c.targetHint())
		}
		view, err = c.putTestEvent(ctx, bus, app, ch)
	} else {
		view, err = c.devTestEvent(ctx, app, ch)
	}
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(c.stdout, view)
	}
	if view.Bus != "" {
		fmt.Fprintf(c.stdout, "test event %s (%s %s) put on bus %s for channel %s of app %s: EventBridge delivers it to %s; failures go to the channel's dead-letter queue\n",
			view.EventID, view.DetailType, view.Segment, view.Bus, ch.ID, app.ID, ch.URL)
		return nil
	}
	line := fmt.Sprintf("channel %s %s %s %s status=%d attempt=%d", ch.ID, view.Outcome, view.DetailType, view.Segment, view.Status, view.Attempt)
	if view.Error != "" {
		line += " error=" + view.Error
	}
	fmt.Fprintln(c.stdout, line)
	if view.Outcome != "delivered" {
		return fmt.Errorf("channel %s: the test event was not delivered (%s; see %s in the dev stack's logs)", ch.ID, view.Outcome, devenv.ChannelDeadLettersFile)
	}
	return nil
}

// findChannel finds channel id in app appID or, without one, in the only app that has it.
func findChannel(cfg *appconfig.Config, appID, id string) (*appconfig.App, *appconfig.Channel, error) {
	var found []*appconfig.App
	for i := range cfg.Apps {
		app := &cfg.Apps[i]
		if appID != "" && app.ID != appID {
			continue
		}
		for k := range app.Channels {
			if app.Channels[k].ID == id {
				found = append(found, app)
			}
		}
	}
	switch {
	case len(found) == 1:
		for k := range found[0].Channels {
			if found[0].Channels[k].ID == id {
				return found[0], &found[0].Channels[k], nil
			}
		}
	case len(found) > 1:
		ids := make([]string, len(found))
		for i, a := range found {
			ids[i] = a.ID
		}
		return nil, nil, fmt.Errorf("apps %s all have a channel %q: pass --app", strings.Join(ids, ", "), id)
	case appID != "":
		if _, err := findApp(cfg, appID); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("app %s has no channel %q", appID, id)
	}
	return nil, nil, fmt.Errorf("no app has a channel %q", id)
}

// devTestEvent asks the running dev stack to deliver a test event through its bus.
func (c *cli) devTestEvent(ctx context.Context, app *appconfig.App, ch *appconfig.Channel) (channelsTestView, error) {
	view := channelsTestView{App: app.ID, Channel: ch.ID}
	base := c.getenv(envAPIURL)
	if base == "" || !isLoopbackURL(base) {
		return view, fmt.Errorf("no dev stack to send the test event through: start make dev, or pass --stack NAME or --bus for a deployed stack; %s", c.targetHint())
	}
	body, _ := json.Marshal(devenv.ChannelTestRequest{App: app.ID, Channel: ch.ID})
	ctx, cancel := context.WithTimeout(ctx, channelsTestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+devenv.ChannelsTestPath, bytes.NewReader(body))
	if err != nil {
		return view, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return view, fmt.Errorf("dev stack: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return view, fmt.Errorf("dev stack: %s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	var res devenv.ChannelTestResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return view, fmt.Errorf("dev stack: unexpected answer %q: %w", raw, err)
	}
	view.DetailType, view.Segment, view.EventID = res.DetailType, res.Segment, res.EventID
	view.Outcome, view.Status, view.Attempt, view.Error = res.Outcome, res.Status, res.Attempt, res.Error
	return view, nil
}

// putTestEvent puts a test event on the deployed bus, as the publisher puts real ones.
func (c *cli) putTestEvent(ctx context.Context, bus string, app *appconfig.App, ch *appconfig.Channel) (channelsTestView, error) {
	ev := channels.TestEvent(app, ch, c.now())
	view := channelsTestView{App: app.ID, Channel: ch.ID, DetailType: ev.DetailType(), Segment: ev.Segment, Bus: bus}
	cfg, err := c.awsConfig(ctx, serviceEventBridge)
	if err != nil {
		return view, err
	}
	detail, err := json.Marshal(ev)
	if err != nil {
		return view, err
	}
	out, err := eventbridge.NewFromConfig(cfg).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(bus), Source: aws.String(ports.EventSource), DetailType: aws.String(ev.DetailType()),
		Detail: aws.String(string(detail)), Time: aws.Time(c.now()),
	}}})
	if err != nil {
		return view, fmt.Errorf("put events on %s: %w", bus, err)
	}
	if out.FailedEntryCount > 0 || len(out.Entries) != 1 {
		msg := "no entry in the answer"
		if len(out.Entries) == 1 {
			msg = aws.ToString(out.Entries[0].ErrorCode) + ": " + aws.ToString(out.Entries[0].ErrorMessage)
		}
		return view, fmt.Errorf("put events on %s: the bus refused the test event (%s)", bus, msg)
	}
	view.EventID = aws.ToString(out.Entries[0].EventId)
	return view, nil
}

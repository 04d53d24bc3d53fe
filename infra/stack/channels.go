package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/channels"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Delivery settings of every channel's rule target. Both are the most EventBridge allows
// (RetryPolicy: MaximumEventAgeInSeconds 60..86400, MaximumRetryAttempts 0..185; API
// destinations retry with back-off within them, then dead-letter): a receiver down for most of
// a day still gets its changes.
const (
	ChannelMaxEventAgeHours = 24
	ChannelRetryAttempts    = 185
)

// NoAuthHeader is the header the connection of a channel without auth sends (channels.NoAuthHeader).
const NoAuthHeader = channels.NoAuthHeader

// channelDetailTypes maps a channel's event kinds to the bus event's detail-type.
var channelDetailTypes = map[string]string{
	appconfig.ChannelJoined: ports.DetailTypeJoined,
	appconfig.ChannelLeft:   ports.DetailTypeLeft,
}

// ChannelsProps configures the bus and the channels.
type ChannelsProps struct {
	// Config is the validated app config (each app's channels).
	Config *appconfig.Config
	// Publisher publishes the segment changes (the sweeper): it gets EVENT_BUS_NAME and
	// events:PutEvents on the bus, nothing else of it.
	Publisher awslambda.Function
	// QueueRemovalPolicy of the channels' dead-letter queues; defaults to RETAIN.
	QueueRemovalPolicy awscdk.RemovalPolicy
}

// Channels is the stack's own EventBridge bus, on which every segment membership change is
// published, and one delivery per configured app channel.
type Channels struct {
	constructs.Construct
	// Bus receives the segment events (source ports.EventSource).
	Bus awsevents.EventBus
	// Deliveries in config order (apps, then their channels).
	Deliveries []*ChannelDelivery
}

// ChannelDelivery is one app channel: a rule on the bus matching the channel's events, an API
// destination (with its connection) as its target, and the target's dead-letter queue.
type ChannelDelivery struct {
	// App and Channel are the ids of the app and of the channel.
	App, Channel string
	// Connection sends the channel's auth header (the secret's value).
	Connection awsevents.Connection
	// Destination is the channel's URL (POST) with its rate limit.
	Destination awsevents.ApiDestination
	// Rule matches the app's events for this channel and targets Destination.
	Rule awsevents.Rule
	// DeadLetters receives the events the destination could not take within the retries.
	DeadLetters awssqs.Queue
}

// NewChannels declares the bus, lets the publisher put events on it, and declares every app
// channel's delivery. It panics on a channel that cannot be deployed (see CheckDeployableChannels).
func NewChannels(scope constructs.Construct, id string, props *ChannelsProps) *Channels {
	if props == nil || props.Config == nil || props.Publisher == nil {
		panic(errors.New("channels: Config and Publisher are required"))
	}
	if err := CheckDeployableChannels(props.Config); err != nil {
		panic(fmt.Errorf("channels: %w", err))
	}
	removal := retainByDefault(props.QueueRemovalPolicy)
	c := constructs.NewConstruct(scope, jsii.String(id))
	bus := awsevents.NewEventBus(c, jsii.String("Bus"), &awsevents.EventBusProps{
		Description: jsii.String("retarget: segment membership changes (Segment Joined, Segment Left)"),
	})
	props.Publisher.AddEnvironment(jsii.String(env.EventBusName), bus.EventBusName(), nil)
	bus.GrantPutEventsTo(props.Publisher, nil)

	ch := &Channels{Construct: c, Bus: bus}
	for i := range props.Config.Apps {
		app := &props.Config.Apps[i]
		if len(app.Channels) == 0 {
			continue
		}
		appScope := constructs.NewConstruct(c, jsii.String(app.ID))
		for k := range app.Channels {
			ch.Deliveries = append(ch.Deliveries, newChannelDelivery(appScope, bus, app.ID, &app.Channels[k], removal))
		}
	}
	return ch
}

func newChannelDelivery(scope constructs.Construct, bus awsevents.IEventBus, appID string, cfg *appconfig.Channel, removal awscdk.RemovalPolicy) *ChannelDelivery {
	c := constructs.NewConstruct(scope, jsii.String(cfg.ID))
	where := fmt.Sprintf("channel %s of app %s", cfg.ID, appID)

	// The connection keeps the header's value in a secret of its own (EventBridge manages it);
	// the dynamic reference is resolved at deploy, so the configured secret must exist by then.
	auth := awsevents.Authorization_ApiKey(jsii.String(NoAuthHeader), awscdk.SecretValue_UnsafePlainText(jsii.String(cfg.ID)))
	if a := cfg.Auth; a != nil {
		auth = awsevents.Authorization_ApiKey(jsii.String(a.Header), awscdk.SecretValue_SecretsManager(jsii.String(a.SecretName), nil))
	}
	conn := awsevents.NewConnection(c, jsii.String("Connection"), &awsevents.ConnectionProps{
		Authorization: auth,
		Description:   jsii.String("retarget: " + where),
	})
	dest := awsevents.NewApiDestination(c, jsii.String("Destination"), &awsevents.ApiDestinationProps{
		Connection:         conn,
		Endpoint:           jsii.String(cfg.URL),
		HttpMethod:         awsevents.HttpMethod_POST,
		RateLimitPerSecond: jsii.Number(float64(cfg.Rate())),
		Description:        jsii.String("retarget: " + where),
	})

	kinds := cfg.EventKinds()
	detailTypes := make([]*string, 0, len(kinds))
	for _, k := range kinds {
		detailTypes = append(detailTypes, jsii.String(channelDetailTypes[k]))
	}
	deadLetters := newDeadLetterQueue(c, "DeadLetters", removal)
	rule := awsevents.NewRule(c, jsii.String("Rule"), &awsevents.RuleProps{
		EventBus:    bus,
		Description: jsii.String("retarget: the segment changes delivered by " + where),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings(ports.EventSource),
			DetailType: &detailTypes,
			// detail.channels is an array: a pattern value matches an array when any element
			// matches, so the rule takes the events the publisher routed to this channel
			// (its segments, its events, the cool-down) and no other.
			Detail: &map[string]any{
				"app":      []string{appID},
				"channels": []string{cfg.ID},
			},
		},
	})
	rule.AddTarget(awseventstargets.NewApiDestination(dest, &awseventstargets.ApiDestinationProps{
		DeadLetterQueue: deadLetters,
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(ChannelMaxEventAgeHours)),
		RetryAttempts:   jsii.Number(ChannelRetryAttempts),
	}))
	if cfg.Body != "" {
		tr, err := channels.InputTransformer(cfg.Body)
		if err != nil {
			panic(fmt.Errorf("channels: %s: body: %w", where, err))
		}
		// The L2 target's inputs name their own paths; the domain package already gives
		// EventBridge's form (make dev renders with the same package), so it is set as is.
		paths := make(map[string]any, len(tr.InputPaths))
		for k, v := range tr.InputPaths {
			paths[k] = v
		}
		transformer := map[string]any{"InputTemplate": tr.Template}
		if len(paths) > 0 {
			transformer["InputPathsMap"] = paths
		}
		rule.Node().DefaultChild().(awsevents.CfnRule).AddPropertyOverride(jsii.String("Targets.0.InputTransformer"), transformer)
	}
	return &ChannelDelivery{App: appID, Channel: cfg.ID, Connection: conn, Destination: dest, Rule: rule, DeadLetters: deadLetters}
}

// CheckDeployableChannels refuses what the config allows for make dev only, a channel URL on
// loopback (http://127.0.0.1:..., localhost): EventBridge calls the URL from AWS, where
// loopback is nobody's webhook. It also refuses a body EventBridge would not take (the loader
// does not read bodies; package channels does).
func CheckDeployableChannels(cfg *appconfig.Config) error {
	for k := range cfg.Apps {
		app := &cfg.Apps[k]
		if _, err := channels.Compile(app); err != nil {
			return err
		}
		for i, ch := range app.Channels {
			u, err := url.Parse(ch.URL)
			if err != nil {
				return fmt.Errorf("app %s: channels[%d].url %q: %w", app.ID, i, ch.URL, err)
			}
			host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
			addr, ipErr := netip.ParseAddr(host)
			if host == "localhost" || strings.HasSuffix(host, ".localhost") || (ipErr == nil && addr.Unmap().IsLoopback()) {
				return fmt.Errorf("app %s: channels[%d] (%s): url %q is on loopback, which only make dev can reach: deploy with the receiver's public https URL", app.ID, i, ch.ID, ch.URL)
			}
			if u.Scheme != "https" {
				return fmt.Errorf("app %s: channels[%d] (%s): url %q must be https (EventBridge API destinations call https endpoints only)", app.ID, i, ch.ID, ch.URL)
			}
		}
	}
	return nil
}

// channelsNeedSegments refuses channels in a stack without the segment state: the changes they
// deliver come from it.
func channelsNeedSegments(cfg *appconfig.Config) error {
	for _, app := range cfg.Apps {
		if len(app.Channels) > 0 {
			return fmt.Errorf("app %s has channels: they deliver segment changes, so deploy with the segment state (-c segments=true)", app.ID)
		}
	}
	return nil
}

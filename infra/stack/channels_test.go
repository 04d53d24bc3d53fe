package stack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
)

// cfnID returns the logical id of the L1 resource an L2 construct keeps under child (the
// events L2s name theirs, so it is not their default child).
func cfnID(c constructs.IConstruct, child string) string {
	return *awscdk.Stack_Of(c).GetLogicalId(c.Node().FindChild(jsii.String(child)).(awscdk.CfnElement))
}

// delivery returns the ops stack's delivery of one channel of app shop.
func delivery(t *testing.T, channel string) *ChannelDelivery {
	t.Helper()
	for _, d := range opsStack.Channels.Deliveries {
		if d.App == "shop" && d.Channel == channel {
			return d
		}
	}
	t.Fatalf("no delivery of channel %s of app shop", channel)
	return nil
}

func TestChannels(t *testing.T) {
	ch := opsStack.Channels
	if ch == nil || segStack.Channels == nil {
		t.Fatal("SegmentsEnabled stack has no Channels")
	}
	bus := ref(ch.Bus)
	push, crm := delivery(t, "push"), delivery(t, "crm")

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"one bus of its own per stack, its name an output; none without segments", func(t *testing.T) {
			check(t, func() { opsTemplate.ResourceCountIs(jsii.String("AWS::Events::EventBus"), jsii.Number(1)) })
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::Events::EventBus"), jsii.Number(1)) })
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::Events::EventBus"), jsii.Number(0)) })
			check(t, func() { opsTemplate.HasOutput(jsii.String(OutputEventBusName), map[string]any{"Value": bus}) })
			check(t, func() {
				segTemplate.HasOutput(jsii.String(OutputEventBusName), map[string]any{"Value": ref(segStack.Channels.Bus)})
			})
			if _, ok := templ["Outputs"].(map[string]any)[OutputEventBusName]; ok {
				t.Error("the default stack outputs an event bus")
			}
			// A stack without channels has the bus (consumers add their own rules) and no delivery.
			if n := len(segStack.Channels.Deliveries); n != 0 {
				t.Errorf("%d deliveries without channels", n)
			}
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::Events::Rule"), jsii.Number(0)) })
		}},
		{"only the sweeper may put events, on the bus only", func(t *testing.T) {
			busArn := getAtt(ch.Bus, "Arn")
			for id, p := range resourcesIn(opsTempl, "AWS::IAM::Policy") {
				raw, _ := json.Marshal(p)
				if !strings.Contains(string(raw), "events:PutEvents") {
					continue
				}
				props := p["Properties"].(map[string]any)
				if !sameJSON(props["Roles"], []any{ref(opsStack.Segments.Sweeper.Function.Role())}) {
					t.Errorf("policy %s lets %v put events", id, props["Roles"])
				}
				for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					st := st.(map[string]any)
					if strings.Contains(strings.Join(asStrings(st["Action"]), " "), "events:PutEvents") && !sameJSON(st["Resource"], busArn) {
						t.Errorf("policy %s: PutEvents on %v, want the bus", id, st["Resource"])
					}
				}
			}
			if got := allowedActions(t, opsTempl, opsStack.Segments.Sweeper.Function.Role())["events:PutEvents"]; !sameJSON(got, []any{busArn}) {
				t.Errorf("sweeper PutEvents on %v, want the bus", got)
			}
			if got := functionEnv(t, opsTempl, opsStack.Segments.Sweeper.Function)["EVENT_BUS_NAME"]; !sameJSON(got, bus) {
				t.Errorf("sweeper EVENT_BUS_NAME %v, want the bus", got)
			}
		}},
		{"connection: API key auth, the configured header from the named secret; a placeholder header without auth", func(t *testing.T) {
			check(t, func() { opsTemplate.ResourceCountIs(jsii.String("AWS::Events::Connection"), jsii.Number(2)) })
			check(t, func() {
				opsTemplate.HasResourceProperties(jsii.String("AWS::Events::Connection"), map[string]any{
					"AuthorizationType": "API_KEY",
					"AuthParameters": map[string]any{"ApiKeyAuthParameters": map[string]any{
						"ApiKeyName":  "Authorization",
						"ApiKeyValue": "{{resolve:secretsmanager:retarget/push:SecretString:::}}",
					}},
				})
			})
			check(t, func() {
				opsTemplate.HasResourceProperties(jsii.String("AWS::Events::Connection"), map[string]any{
					"AuthorizationType": "API_KEY",
					"AuthParameters": map[string]any{"ApiKeyAuthParameters": map[string]any{
						"ApiKeyName": NoAuthHeader, "ApiKeyValue": "crm",
					}},
				})
			})
			// The dev value never reaches the template (nor the bundled config: TestConfigAsset).
			raw, _ := json.Marshal(opsTempl)
			if strings.Contains(string(raw), "dev-push-token") {
				t.Error("the template holds the channel's dev_value")
			}
		}},
		{"API destination: the channel's URL, POST, its rate (default 300)", func(t *testing.T) {
			for _, tc := range []struct {
				d    *ChannelDelivery
				url  string
				rate float64
			}{{push, "https://push.example.com/hooks/retarget", 50}, {crm, "https://crm.example.com/in", 300}} {
				res := resourcesIn(opsTempl, "AWS::Events::ApiDestination")[cfnID(tc.d.Destination, "ApiDestination")]
				if res == nil {
					t.Fatalf("destination of %s not in the template", tc.d.Channel)
				}
				want := map[string]any{
					"ConnectionArn":                map[string]any{"Fn::GetAtt": []any{cfnID(tc.d.Connection, "Connection"), "Arn"}},
					"InvocationEndpoint":           tc.url,
					"HttpMethod":                   "POST",
					"InvocationRateLimitPerSecond": tc.rate,
				}
				props := res["Properties"].(map[string]any)
				for k, v := range want {
					if !sameJSON(props[k], v) {
						t.Errorf("%s: %s = %v, want %v", tc.d.Channel, k, props[k], v)
					}
				}
			}
		}},
		{"rule: on the bus, source retarget, the channel's detail-types, its app and id among detail.channels", func(t *testing.T) {
			for _, tc := range []struct {
				d     *ChannelDelivery
				types []any
			}{{push, []any{"Segment Joined", "Segment Left"}}, {crm, []any{"Segment Joined"}}} {
				res := resourcesIn(opsTempl, "AWS::Events::Rule")[logicalID(tc.d.Rule)]
				if res == nil {
					t.Fatalf("rule of %s not in the template", tc.d.Channel)
				}
				props := res["Properties"].(map[string]any)
				if !sameJSON(props["EventBusName"], bus) {
					t.Errorf("%s: rule on %v, want the stack's bus", tc.d.Channel, props["EventBusName"])
				}
				pattern := map[string]any{
					"source":      []any{"retarget"},
					"detail-type": tc.types,
					"detail":      map[string]any{"app": []any{"shop"}, "channels": []any{tc.d.Channel}},
				}
				if !sameJSON(props["EventPattern"], pattern) {
					g, _ := json.Marshal(props["EventPattern"])
					w, _ := json.Marshal(pattern)
					t.Errorf("%s: pattern\n got %s\nwant %s", tc.d.Channel, g, w)
				}
			}
			check(t, func() { opsTemplate.ResourceCountIs(jsii.String("AWS::Events::Rule"), jsii.Number(2)) })
		}},
		{"target: the destination, 24 h and 185 retries, the channel's dead letters; the event itself without body, the input transformer with one", func(t *testing.T) {
			for _, d := range []*ChannelDelivery{push, crm} {
				res := resourcesIn(opsTempl, "AWS::Events::Rule")[logicalID(d.Rule)]
				targets, _ := res["Properties"].(map[string]any)["Targets"].([]any)
				if len(targets) != 1 {
					t.Fatalf("%s: targets %v", d.Channel, targets)
				}
				target := targets[0].(map[string]any)
				want := map[string]any{
					"Arn":              map[string]any{"Fn::GetAtt": []any{cfnID(d.Destination, "ApiDestination"), "Arn"}},
					"RetryPolicy":      map[string]any{"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185},
					"DeadLetterConfig": map[string]any{"Arn": getAtt(d.DeadLetters, "Arn")},
				}
				for k, v := range want {
					if !sameJSON(target[k], v) {
						t.Errorf("%s: target %s = %v, want %v", d.Channel, k, target[k], v)
					}
				}
				for _, k := range []string{"Input", "InputPath"} {
					if v, ok := target[k]; ok {
						t.Errorf("%s: the target sets %s: %v", d.Channel, k, v)
					}
				}
				switch d {
				case push:
					if v, ok := target["InputTransformer"]; ok {
						t.Errorf("push has no body, but its target transforms the event: %v", v)
					}
				case crm:
					// Each distinct path once, in order of first use; the whole event as
					// EventBridge's predefined variable.
					want := map[string]any{
						"InputPathsMap": map[string]any{"p0": "$.detail.user_key", "p1": "$.detail.segment"},
						"InputTemplate": `{"user": "<p0>", "segment": "<p1>", "again": "<p0>", "event": <aws.events.event.json>}`,
					}
					if !sameJSON(target["InputTransformer"], want) {
						g, _ := json.Marshal(target["InputTransformer"])
						w, _ := json.Marshal(want)
						t.Errorf("crm input transformer\n got %s\nwant %s", g, w)
					}
				}
			}
		}},
		{"the rule's role may invoke its destination only", func(t *testing.T) {
			for _, d := range []*ChannelDelivery{push, crm} {
				res := resourcesIn(opsTempl, "AWS::Events::Rule")[logicalID(d.Rule)]
				role, _ := res["Properties"].(map[string]any)["Targets"].([]any)[0].(map[string]any)["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)
				if len(role) != 2 {
					t.Fatalf("%s: target role %v", d.Channel, res)
				}
				roleRef, _ := json.Marshal(map[string]any{"Ref": role[0]})
				n := 0
				for id, p := range resourcesIn(opsTempl, "AWS::IAM::Policy") {
					props := p["Properties"].(map[string]any)
					if roles, _ := json.Marshal(props["Roles"]); !strings.Contains(string(roles), string(roleRef)) {
						continue
					}
					for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
						n++
						st := st.(map[string]any)
						if !sameJSON(st["Action"], "events:InvokeApiDestination") || !sameJSON(st["Resource"], map[string]any{"Fn::GetAtt": []any{cfnID(d.Destination, "ApiDestination"), "Arn"}}) {
							t.Errorf("policy %s of %s's rule role: %v", id, d.Channel, st)
						}
					}
				}
				if n == 0 {
					t.Errorf("%s: the rule's role may do nothing", d.Channel)
				}
			}
		}},
		{"dead letters: a queue per channel, SSE, TLS only, EventBridge may send from its rule only", func(t *testing.T) {
			if logicalID(push.DeadLetters) == logicalID(crm.DeadLetters) {
				t.Fatal("channels share a dead-letter queue")
			}
			for _, d := range []*ChannelDelivery{push, crm} {
				res := resourcesIn(opsTempl, "AWS::SQS::Queue")[logicalID(d.DeadLetters)]
				if res == nil {
					t.Fatalf("%s: queue not in the template", d.Channel)
				}
				props := res["Properties"].(map[string]any)
				if props["SqsManagedSseEnabled"] != true || props["MessageRetentionPeriod"] != float64(14*24*3600) {
					t.Errorf("%s: queue %v, want SSE and 14 days", d.Channel, props)
				}
				check(t, func() {
					opsTemplate.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
						"Queues": []any{ref(d.DeadLetters)},
						"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
							map[string]any{
								"Effect": "Deny", "Action": "sqs:*", "Principal": map[string]any{"AWS": "*"},
								"Resource":  getAtt(d.DeadLetters, "Arn"),
								"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
							},
							assertions.Match_ObjectLike(&map[string]any{
								"Effect": "Allow", "Action": "sqs:SendMessage",
								"Principal": map[string]any{"Service": "events.amazonaws.com"},
								"Resource":  getAtt(d.DeadLetters, "Arn"),
								"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": getAtt(d.Rule, "Arn")}},
							}),
						})},
					})
				})
			}
		}},
		{"an alarm on each channel's dead letters", func(t *testing.T) {
			for _, d := range []*ChannelDelivery{push, crm} {
				name := "ChannelDeadLetters-shop-" + d.Channel + "Depth"
				alarm := opsStack.Alarms.Alarms[name]
				if alarm == nil {
					t.Fatalf("no alarm %s", name)
				}
				props := resourcesIn(opsTempl, "AWS::CloudWatch::Alarm")[logicalID(alarm)]["Properties"].(map[string]any)
				want := map[string]any{
					"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS",
					"Dimensions": []any{map[string]any{"Name": "QueueName", "Value": getAtt(d.DeadLetters, "QueueName")}},
					"Threshold":  0, "ComparisonOperator": "GreaterThanThreshold",
				}
				for k, v := range want {
					if !sameJSON(props[k], v) {
						t.Errorf("%s: %s = %v, want %v", name, k, props[k], v)
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestChannelsRefusedAtSynth: what the config allows for make dev only, and channels without
// the segment state, fail before any construct exists, with a message saying what to do.
func TestChannelsRefusedAtSynth(t *testing.T) {
	withChannelURL := func(t *testing.T, url string) *appconfig.Config {
		t.Helper()
		cfg, err := appconfig.Parse([]byte(`{"version": 1, "apps": [
		  {"id": "shop", "platforms": ["ios"], "api_key": {"name": "k"}, "meta": {"dataset_id": "1", "ad_account_id": "act_1"},
		   "segments": [{"id": "vip", "when": [{"count": {"events": ["Purchase"], "within": "30d", "at_least": 3}}]}],
		   "channels": [{"id": "push", "type": "webhook", "url": "` + url + `", "segments": ["vip"]}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, url := range []string{"http://127.0.0.1:8787/hook", "http://localhost:8787/hook", "http://[::1]:8787/hook",
		"https://localhost/hook", "https://127.0.0.2/hook", "https://LOCALHOST./hook", "https://hooks.localhost/x"} {
		t.Run(url, func(t *testing.T) {
			_, err := resolveProps(&RetargetStackProps{Config: withChannelURL(t, url), SegmentsEnabled: true})
			want := `retarget stack: app shop: channels[0] (push): url "` + url + `" is on loopback, which only make dev can reach: deploy with the receiver's public https URL`
			if err == nil || err.Error() != want {
				t.Errorf("resolveProps: %v\nwant %s", err, want)
			}
		})
	}
	t.Run("a public https URL passes", func(t *testing.T) {
		if _, err := resolveProps(&RetargetStackProps{Config: withChannelURL(t, "https://hooks.example.com/x"), SegmentsEnabled: true}); err != nil {
			t.Error(err)
		}
	})
	t.Run("channels without the segment state", func(t *testing.T) {
		_, err := resolveProps(&RetargetStackProps{Config: withChannelURL(t, "https://hooks.example.com/x")})
		want := "retarget stack: app shop has channels: they deliver segment changes, so deploy with the segment state (-c segments=true)"
		if err == nil || err.Error() != want {
			t.Errorf("resolveProps: %v\nwant %s", err, want)
		}
	})
	t.Run("a body EventBridge would not take", func(t *testing.T) {
		cfg := withChannelURL(t, "https://hooks.example.com/x")
		cfg.Apps[0].Channels[0].Body = `{"segment": "<segment>"}`
		_, err := resolveProps(&RetargetStackProps{Config: cfg, SegmentsEnabled: true})
		want := "retarget stack: app shop: channels[0] (push).body: invalid channel body: <segment> is not a placeholder: use <$.path> with a path of letters, digits, '_', '-' and '.' (e.g. <$.detail.segment>), or <aws.events.event.json>"
		if err == nil || err.Error() != want {
			t.Errorf("resolveProps: %v\nwant %s", err, want)
		}
	})
	t.Run("the construct refuses it too", func(t *testing.T) {
		defer func() {
			err, _ := recover().(error)
			if err == nil || !strings.Contains(err.Error(), "channels: app shop: channels[0] (push)") {
				t.Errorf("panic %v, want the loopback error", err)
			}
		}()
		NewChannels(testApp, "LoopbackChannels", &ChannelsProps{Config: withChannelURL(t, "http://127.0.0.1:1/x"), Publisher: opsStack.Segments.Sweeper.Function})
	})
}

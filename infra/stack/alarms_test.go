package stack

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// alarmsOf returns the template's alarms by logical id.
func alarmsOf(tpl map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range resourcesIn(tpl, "AWS::CloudWatch::Alarm") {
		out[id] = r["Properties"].(map[string]any)
	}
	return out
}

func TestAlarms(t *testing.T) {
	a := opsStack.Alarms
	topic := ref(a.Topic)
	alarms := alarmsOf(opsTempl)

	t.Run("topic: own KMS key with rotation, TLS only, e-mail subscription from context", func(t *testing.T) {
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::SNS::Topic"), map[string]any{"KmsMasterKeyId": getAtt(a.Key, "Arn")})
		})
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
		})
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), map[string]any{
				"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
					"Effect": "Deny", "Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				})})},
			})
		})
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
				"Protocol": "email", "Endpoint": opsAlarmEmail, "TopicArn": topic,
			})
		})
		check(t, func() { template.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(0)) })
		// CloudWatch may use the key, for this account only.
		key := resourcesIn(opsTempl, "AWS::KMS::Key")[logicalID(a.Key)]
		doc, _ := json.Marshal(key["Properties"].(map[string]any)["KeyPolicy"])
		for _, want := range []string{`"Service":"cloudwatch.amazonaws.com"`, `"kms:GenerateDataKey*"`, `"aws:SourceAccount":{"Ref":"AWS::AccountId"}`} {
			if !strings.Contains(string(doc), want) {
				t.Errorf("key policy lacks %s: %s", want, doc)
			}
		}
	})

	t.Run("every alarm notifies the topic, on alarm and on OK", func(t *testing.T) {
		if len(alarms) == 0 {
			t.Fatal("no alarms")
		}
		for id, p := range alarms {
			if !sameJSON(p["AlarmActions"], []any{topic}) || !sameJSON(p["OKActions"], []any{topic}) {
				t.Errorf("alarm %s: actions %v / %v, want the topic", id, p["AlarmActions"], p["OKActions"])
			}
		}
	})

	// byMetric finds the alarms on a metric name (plain metric alarms).
	byMetric := func(metric string) []map[string]any {
		var out []map[string]any
		for _, p := range alarms {
			if p["MetricName"] == metric {
				out = append(out, p)
			}
		}
		return out
	}
	fnRef := func(g *GoFunction) map[string]any { return ref(g.Function) }
	dims := func(p map[string]any) string { j, _ := json.Marshal(p["Dimensions"]); return string(j) }

	t.Run("errors and throttles of every function, iterator age of both consumers", func(t *testing.T) {
		s := opsStack.Segments
		fns := []*GoFunction{opsStack.Ingest.Ingest, opsStack.Forwarder.Function, s.Updater, s.Sweeper, s.Reader, opsStack.AudienceSync.Function,
			opsStack.Insights.Function}
		for _, metric := range []string{"Errors", "Throttles"} {
			got := byMetric(metric)
			for _, fn := range fns {
				want, _ := json.Marshal(fnRef(fn))
				found := false
				for _, p := range got {
					if strings.Contains(dims(p), string(want)) && p["Threshold"] == 0.0 && p["ComparisonOperator"] == "GreaterThanThreshold" &&
						p["Namespace"] == "AWS/Lambda" && p["TreatMissingData"] == "notBreaching" {
						found = true
					}
				}
				if !found {
					t.Errorf("no %s alarm (> 0) on %s", metric, want)
				}
			}
			if len(got) != len(fns) {
				t.Errorf("%d %s alarms, want %d", len(got), metric, len(fns))
			}
		}
		ages := byMetric("IteratorAge")
		if len(ages) != 2 {
			t.Fatalf("%d iterator age alarms, want 2 (forwarder, updater)", len(ages))
		}
		for _, p := range ages {
			if p["Threshold"] != float64(IteratorAgeAlarmMinutes*60_000) || p["Statistic"] != "Maximum" || p["EvaluationPeriods"] != 3.0 {
				t.Errorf("iterator age alarm %v", p)
			}
		}
	})

	t.Run("stream writes throttled for 15 minutes", func(t *testing.T) {
		got := byMetric("PutRecords.ThrottledRecords")
		stream, _ := json.Marshal(ref(opsStack.Events.Stream))
		if len(got) != 1 || got[0]["EvaluationPeriods"] != 3.0 || got[0]["Threshold"] != 0.0 || got[0]["Statistic"] != "Sum" ||
			!strings.Contains(dims(got[0]), string(stream)) {
			t.Errorf("throttled-records alarms = %v, want one on the stream, Sum > 0 for 3 periods", got)
		}
	})

	t.Run("every dead-letter queue alarms on its first message", func(t *testing.T) {
		depth := byMetric("ApproximateNumberOfMessagesVisible")
		queues := []any{getAtt(opsStack.Forwarder.DeadLetters, "QueueName"), getAtt(opsStack.Forwarder.EsmFailures, "QueueName"),
			getAtt(opsStack.Segments.EsmFailures, "QueueName"), getAtt(opsStack.Segments.SweepDeadLetters, "QueueName"),
			getAtt(opsStack.AudienceSync.DeadLetters, "QueueName"), getAtt(opsStack.Insights.DeadLetters, "QueueName")}
		for _, d := range opsStack.Channels.Deliveries {
			queues = append(queues, getAtt(d.DeadLetters, "QueueName"))
		}
		if len(depth) != len(queues) {
			t.Fatalf("%d queue alarms, want %d", len(depth), len(queues))
		}
		for _, q := range queues {
			want, _ := json.Marshal(q)
			found := false
			for _, p := range depth {
				found = found || (strings.Contains(dims(p), string(want)) && p["Threshold"] == 0.0)
			}
			if !found {
				t.Errorf("no depth alarm on %s", want)
			}
		}
	})

	t.Run("CAPI failure rate over 5% for 15 minutes", func(t *testing.T) {
		var rate map[string]any
		for _, p := range alarms {
			if strings.Contains(fmt.Sprint(p["AlarmDescription"]), "Conversions API failed") {
				rate = p
			}
		}
		if rate == nil {
			t.Fatal("no CAPI failure rate alarm")
		}
		j, _ := json.Marshal(rate["Metrics"])
		for _, want := range []string{`"Expression":"100 * (retry + dead) / MAX([ok + retry + dead, 1])"`, `"MetricName":"EventsForwarded"`,
			`"MetricName":"EventsToRetry"`, `"MetricName":"EventsDeadLettered"`, `"Namespace":"Retarget"`, `{"Name":"Function","Value":"capi-forwarder"}`} {
			if !strings.Contains(string(j), want) {
				t.Errorf("failure rate metrics lack %s: %s", want, j)
			}
		}
		if rate["Threshold"] != float64(CapiFailureAlarmPercent) || rate["EvaluationPeriods"] != 3.0 {
			t.Errorf("failure rate alarm %v", rate)
		}
	})

	t.Run("audience staleness per configured audience, and a stopped sync", func(t *testing.T) {
		stale := byMetric("AudienceSecondsSinceSync")
		if len(stale) != 2 {
			t.Fatalf("%d staleness alarms, want one per audience (2)", len(stale))
		}
		for _, seg := range []string{"cart_abandoner", "vip"} {
			found := false
			for _, p := range stale {
				found = found || (strings.Contains(dims(p), `{"Name":"Audience","Value":"`+seg+`"}`) &&
					strings.Contains(dims(p), `{"Name":"App","Value":"shop"}`) && p["Threshold"] == float64(AudienceStaleAlarmSeconds))
			}
			if !found {
				t.Errorf("no staleness alarm for %s", seg)
			}
		}
		runs := byMetric("Invocations")
		if len(runs) != 1 || runs[0]["ComparisonOperator"] != "LessThanThreshold" || runs[0]["TreatMissingData"] != "breaching" ||
			!strings.Contains(dims(runs[0]), func() string { j, _ := json.Marshal(fnRef(opsStack.AudienceSync.Function)); return string(j) }()) {
			t.Errorf("sync-not-running alarm %v", runs)
		}
	})

	t.Run("Meta API version: under 30 days left, per function calling Meta", func(t *testing.T) {
		days := byMetric(MetaVersionDaysLeftMetric)
		if len(days) != 2 {
			t.Fatalf("%d version alarms, want 2 (forwarder, audience sync)", len(days))
		}
		for _, want := range [][2]string{{"capi-forwarder", "conversions"}, {"audience-sync", "marketing"}} {
			found := false
			for _, p := range days {
				found = found || (strings.Contains(dims(p), `{"Name":"Function","Value":"`+want[0]+`"}`) &&
					strings.Contains(dims(p), `{"Name":"API","Value":"`+want[1]+`"}`) && len(p["Dimensions"].([]any)) == 2 && p["Threshold"] == 30.0 && p["ComparisonOperator"] == "LessThanThreshold" &&
					p["Statistic"] == "Minimum" && p["TreatMissingData"] == "ignore" && p["Namespace"] == MetricsNamespace)
			}
			if !found {
				t.Errorf("no version alarm on %s: %v", want, days)
			}
		}
	})

	t.Run("ingest volume anomaly band per app", func(t *testing.T) {
		n := 0
		for _, p := range alarms {
			if p["ThresholdMetricId"] == nil {
				continue
			}
			n++
			j, _ := json.Marshal(p["Metrics"])
			if !strings.Contains(string(j), "ANOMALY_DETECTION_BAND") || !strings.Contains(string(j), `"MetricName":"EventsAccepted"`) ||
				p["ComparisonOperator"] != "LessThanLowerOrGreaterThanUpperThreshold" {
				t.Errorf("anomaly alarm %s", j)
			}
		}
		if n != len(opsConfig.Apps) {
			t.Errorf("%d anomaly alarms, want one per app (%d)", n, len(opsConfig.Apps))
		}
	})

	t.Run("dashboard shows the pipeline end to end", func(t *testing.T) {
		d := resourcesIn(opsTempl, "AWS::CloudWatch::Dashboard")[logicalID(a.Dashboard)]
		if d == nil {
			t.Fatal("no dashboard")
		}
		body, _ := json.Marshal(d["Properties"].(map[string]any)["DashboardBody"])
		for _, want := range []string{"EventsAccepted", "EventsRejected", "EventsForwarded", "EventsDeadLettered", "SegmentChanges",
			"AudienceRowsAdded", "AudienceRowsRemoved", "PendingChanges", "IteratorAge", "Latency", "p99", "alarm"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("dashboard lacks %s", want)
			}
		}
	})
}

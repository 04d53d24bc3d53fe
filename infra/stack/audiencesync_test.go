package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func TestAudienceSync(t *testing.T) {
	a := segStack.AudienceSync
	if a == nil {
		t.Fatal("SegmentsEnabled stack has no AudienceSync")
	}
	s := segStack.Segments
	meta := segStack.Meta.Secret
	fnArn := getAtt(a.Function.Function, "Arn")

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"function: provided.al2023 arm64, 512 MB, 10 min, reserved concurrency 1, environment contract", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::Lambda::Function")[logicalID(a.Function.Function)]
			if res == nil {
				t.Fatal("audience sync not in the template")
			}
			props := res["Properties"].(map[string]any)
			want := map[string]any{
				"Runtime": "provided.al2023", "Architectures": []any{"arm64"}, "Handler": "bootstrap",
				"MemorySize": 512, "Timeout": 600, "ReservedConcurrentExecutions": 1,
				"TracingConfig": map[string]any{"Mode": "Active"},
				"LoggingConfig": map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "LogGroup": ref(a.Function.LogGroup)},
			}
			for k, v := range want {
				if !sameJSON(props[k], v) {
					t.Errorf("%s = %v, want %v", k, props[k], v)
				}
			}
			wantEnv := map[string]any{
				"STATE_TABLE_NAME":       ref(s.Table),
				"APP_CONFIG_FILE":        "/var/task/config.json",
				"META_GRAPH_URL":         "https://graph.facebook.com",
				"META_MARKETING_VERSION": "v27.0",
				"META_SECRET_ID":         ref(meta),
				"LOG_LEVEL":              "info",
				"METRICS_NAMESPACE":      "Retarget",
			}
			if vars := functionEnv(t, segTempl, a.Function.Function); !sameJSON(vars, wantEnv) {
				g, _ := json.Marshal(vars)
				w, _ := json.Marshal(wantEnv)
				t.Errorf("environment\n got %s\nwant %s", g, w)
			}
			// Same secret as the forwarder's.
			if fwd := functionEnv(t, segTempl, segStack.Forwarder.Function.Function)[env.MetaSecretID]; !sameJSON(fwd, ref(meta)) {
				t.Errorf("forwarder META_SECRET_ID %v, want the same secret", fwd)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(a.Function.AssetDir), AudienceSyncFunctionName, bootstrapFile)); err != nil {
				t.Error(err)
			}
		}},
		{"schedule: every 5 minutes, retries, dead letters, input", func(t *testing.T) {
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
					"ScheduleExpression":         "rate(5 minutes)",
					"ScheduleExpressionTimezone": "Etc/UTC",
					"State":                      "ENABLED",
					"FlexibleTimeWindow":         map[string]any{"Mode": "OFF"},
					"Target": map[string]any{
						"Arn":              fnArn,
						"RoleArn":          assertions.Match_AnyValue(),
						"Input":            `{"source":"schedule","scheduled_time":"<aws.scheduler.scheduled-time>"}`,
						"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
						"DeadLetterConfig": map[string]any{"Arn": getAtt(a.DeadLetters, "Arn")},
					},
				})
			})
			res := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(a.Schedule)]
			if target, _ := res["Properties"].(map[string]any)["Target"].(map[string]any); !sameJSON(target["Arn"], fnArn) {
				t.Errorf("the sync schedule targets %v", target["Arn"])
			}
		}},
		{"scheduler role may invoke the sync and send to its dead letters, nothing else", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(a.Schedule)]
			roleArn, _ := res["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)
			if len(roleArn) != 2 {
				t.Fatalf("schedule role %v", res)
			}
			sweepRes := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(s.SweepSchedule)]
			if sameJSON(sweepRes["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"], res["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"]) {
				t.Error("the sync and the sweep share a scheduler role")
			}
			roleRef, _ := json.Marshal(map[string]any{"Ref": roleArn[0]})
			seen := map[string]bool{}
			for id, p := range resourcesIn(segTempl, "AWS::IAM::Policy") {
				props := p["Properties"].(map[string]any)
				roles, _ := json.Marshal(props["Roles"])
				if !strings.Contains(string(roles), string(roleRef)) {
					continue
				}
				for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					st := st.(map[string]any)
					res, ok := st["Resource"].([]any)
					if !ok {
						res = []any{st["Resource"]}
					}
					act := fmt.Sprint(st["Action"])
					seen[act] = true
					switch act {
					case "lambda:InvokeFunction":
						want := []any{fnArn, map[string]any{"Fn::Join": []any{"", []any{fnArn, ":*"}}}}
						if !sameJSON(res, want) {
							t.Errorf("policy %s: invoke on %v, want the sync (and its versions)", id, res)
						}
					case "sqs:SendMessage":
						if !sameJSON(res, []any{getAtt(a.DeadLetters, "Arn")}) {
							t.Errorf("policy %s: send to %v, want the sync dead letters", id, res)
						}
					default:
						t.Errorf("policy %s: the scheduler may %s", id, act)
					}
				}
			}
			if !seen["lambda:InvokeFunction"] || !seen["sqs:SendMessage"] {
				t.Errorf("the scheduler role may only %v", seen)
			}
		}},
		{"dead letters: SSE, TLS only, 14 days, deleted with a dev stack", func(t *testing.T) {
			id := logicalID(a.DeadLetters)
			res := resourcesIn(segTempl, "AWS::SQS::Queue")[id]
			if res == nil {
				t.Fatalf("queue %s not in the template", id)
			}
			props := res["Properties"].(map[string]any)
			if props["SqsManagedSseEnabled"] != true {
				t.Errorf("queue %s is not encrypted at rest: %v", id, props)
			}
			if props["MessageRetentionPeriod"] != float64(14*24*3600) {
				t.Errorf("queue %s keeps messages %v s, want 14 days", id, props["MessageRetentionPeriod"])
			}
			if res["DeletionPolicy"] != "Delete" {
				t.Errorf("dev queue %s has DeletionPolicy %v", id, res["DeletionPolicy"])
			}
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
					"Queues": []any{ref(a.DeadLetters)},
					"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{map[string]any{
						"Effect":    "Deny",
						"Action":    "sqs:*",
						"Principal": map[string]any{"AWS": "*"},
						"Resource":  getAtt(a.DeadLetters, "Arn"),
						"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
					}})},
				})
			})
		}},
		{"permissions: Query the table and the pending index (not the due index), item actions on the table, read the Meta secret", func(t *testing.T) {
			got := allowedActions(t, segTempl, a.Function.Function.Role())
			pendingIndexArn := map[string]any{"Fn::Join": []any{"", []any{segTableArn(s), "/index/pending"}}}
			want := map[string][]any{
				"dynamodb:Query":                {segTableArn(s), pendingIndexArn},
				"dynamodb:GetItem":              {segTableArn(s)},
				"dynamodb:PutItem":              {segTableArn(s)},
				"dynamodb:DeleteItem":           {segTableArn(s)},
				"dynamodb:UpdateItem":           {segTableArn(s)},
				"dynamodb:BatchWriteItem":       {segTableArn(s)},
				"sqs:SendMessage":               {getAtt(a.DeadLetters, "Arn")}, // failed async runs
				"secretsmanager:GetSecretValue": {ref(meta)},
				"xray:PutTraceSegments":         {"*"},
				"xray:PutTelemetryRecords":      {"*"},
			}
			if !sameJSON(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("audience sync permissions\n got %s\nwant %s", g, w)
			}
			if got["dynamodb:Scan"] != nil {
				t.Error("the audience sync may Scan")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

package stack

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func TestCapiForwarder(t *testing.T) {
	f := testStack.Forwarder
	fn := f.Function.Function
	meta := testStack.Meta.Secret
	stream := testStack.Events.Stream

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"function is provided.al2023 arm64, 512 MB, 60 s, no reserved concurrency", func(t *testing.T) {
			// The dead-letter queue URL in the environment pins the match to the forwarder.
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Runtime":                      "provided.al2023",
					"Architectures":                []any{"arm64"},
					"Handler":                      "bootstrap",
					"MemorySize":                   ForwarderMemoryMiB,
					"Timeout":                      ForwarderTimeoutSeconds,
					"TracingConfig":                map[string]any{"Mode": "Active"},
					"ReservedConcurrentExecutions": assertions.Match_Absent(),
					"LoggingConfig": map[string]any{
						"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "LogGroup": ref(f.Function.LogGroup),
					},
					"Environment": map[string]any{"Variables": map[string]any{env.DeadLetterQueueURL: ref(f.DeadLetters)}},
				})
			})
		}},
		{"environment is the contract, without secret values", func(t *testing.T) {
			vars := functionEnv(t, templ, fn)
			want := map[string]any{
				env.ConfigFile:         "/var/task/config.json",
				env.LogLevel:           "info",
				env.MetricsNamespace:   "Retarget",
				env.GraphURL:           "https://graph.facebook.com",
				env.CAPIVersion:        "v26.0",
				env.MetaSecretID:       ref(meta), // Ref of a secret is its ARN
				env.DeadLetterQueueURL: ref(f.DeadLetters),
			}
			if !sameJSON(vars, want) {
				got, _ := json.Marshal(vars)
				w, _ := json.Marshal(want)
				t.Errorf("environment\n got %s\nwant %s", got, w)
			}
			raw, _ := json.Marshal(vars)
			for _, leak := range []string{"resolve:secretsmanager", "SecretString", "access_token", MetaAccessTokenPlaceholder} {
				if strings.Contains(string(raw), leak) {
					t.Errorf("environment carries %q: %s", leak, raw)
				}
			}
		}},
		{"defaults match the function's", func(t *testing.T) {
			pairs := [][2]string{
				{DefaultMetaGraphURL, metagraph.DefaultBaseURL},
				{DefaultMetaCAPIVersion, metagraph.DefaultVersion},
				{MetaVersionDaysLeftMetric, metagraph.MetricVersionDaysLeft},
			}
			for _, p := range pairs {
				if p[0] != p[1] {
					t.Errorf("stack sets %q, the forwarder expects %q", p[0], p[1])
				}
			}
			var doc map[string]string
			raw, _ := json.Marshal(runtime.Credentials{AccessToken: "t", AppSecret: "s"})
			if err := json.Unmarshal(raw, &doc); err != nil || doc[MetaAccessTokenKey] != "t" || doc[MetaAppSecretKey] != "s" {
				t.Errorf("secret keys %s/%s do not match the forwarder's document %s", MetaAccessTokenKey, MetaAppSecretKey, raw)
			}
			if DeadLetterMaxMessageBytes != deadletters.MaxMessageBytes {
				t.Errorf("queues take %d bytes, the dead-letter writer sends up to %d", DeadLetterMaxMessageBytes, deadletters.MaxMessageBytes)
			}
		}},
		{"event source mapping: partial failures, bisection, bounded retries and age", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(1)) })
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
					"FunctionName":                   ref(fn),
					"EventSourceArn":                 getAtt(stream, "Arn"),
					"StartingPosition":               "TRIM_HORIZON",
					"BatchSize":                      1000,
					"MaximumBatchingWindowInSeconds": 5,
					"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
					"BisectBatchOnFunctionError":     true,
					"MaximumRetryAttempts":           10000,
					"MaximumRecordAgeInSeconds":      21600,
					"ParallelizationFactor":          1,
					"DestinationConfig": map[string]any{
						"OnFailure": map[string]any{"Destination": getAtt(f.EsmFailures, "Arn")},
					},
				})
			})
		}},
		{"two queues, SSE and TLS only, kept 14 days, deleted with a dev stack", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(2)) })
			if logicalID(f.DeadLetters) == logicalID(f.EsmFailures) {
				t.Fatal("dead letters and mapping failures share a queue")
			}
			for _, q := range []constructs.IConstruct{f.DeadLetters, f.EsmFailures} {
				id := logicalID(q)
				res := resources("AWS::SQS::Queue")[id]
				if res == nil {
					t.Fatalf("queue %s not in the template", id)
				}
				props := res["Properties"].(map[string]any)
				if props["SqsManagedSseEnabled"] != true && props["KmsMasterKeyId"] == nil {
					t.Errorf("queue %s is not encrypted at rest: %v", id, props)
				}
				if props["MessageRetentionPeriod"] != float64(14*24*3600) {
					t.Errorf("queue %s keeps messages %v s, want 14 days", id, props["MessageRetentionPeriod"])
				}
				if props["MaximumMessageSize"] != float64(deadletters.MaxMessageBytes) {
					t.Errorf("queue %s takes %v bytes, want %d", id, props["MaximumMessageSize"], deadletters.MaxMessageBytes)
				}
				if res["DeletionPolicy"] != "Delete" {
					t.Errorf("dev queue %s has DeletionPolicy %v", id, res["DeletionPolicy"])
				}
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
						"Queues": []any{ref(q)},
						"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{map[string]any{
							"Effect":    "Deny",
							"Action":    "sqs:*",
							"Principal": map[string]any{"AWS": "*"},
							"Resource":  getAtt(q, "Arn"),
							"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
						}})},
					})
				})
			}
		}},
		{"function may read the stream, the Meta secret and send to its queues, nothing else", func(t *testing.T) {
			queues := []any{getAtt(f.DeadLetters, "Arn"), getAtt(f.EsmFailures, "Arn")}
			seen := map[string]bool{}
			for _, st := range roleStatements(templ, fn.Role()) {
				if st.raw["Effect"] != "Allow" {
					continue
				}
				for _, a := range st.actions {
					seen[a] = true
					service, _, _ := strings.Cut(a, ":")
					if strings.Contains(a, "*") {
						t.Errorf("policy %s: wildcard action %s", st.policy, a)
					}
					switch service {
					case "xray": // tracing: PutTraceSegments and PutTelemetryRecords take no resource
						if a != "xray:PutTraceSegments" && a != "xray:PutTelemetryRecords" {
							t.Errorf("policy %s: unexpected %s", st.policy, a)
						}
					case "kinesis":
						if !strings.HasPrefix(a, "kinesis:Get") && !strings.HasPrefix(a, "kinesis:Describe") &&
							!strings.HasPrefix(a, "kinesis:List") && a != "kinesis:SubscribeToShard" {
							t.Errorf("policy %s: consumer may %s", st.policy, a)
						}
						if !sameJSON(st.resources, []any{getAtt(stream, "Arn")}) {
							t.Errorf("policy %s: %s on %v, want the stream only", st.policy, a, st.resources)
						}
					case "secretsmanager":
						if a != "secretsmanager:GetSecretValue" && a != "secretsmanager:DescribeSecret" {
							t.Errorf("policy %s: secret access %s beyond reading", st.policy, a)
						}
						if !sameJSON(st.resources, []any{ref(meta)}) {
							t.Errorf("policy %s: %s on %v, want the Meta secret only", st.policy, a, st.resources)
						}
					case "sqs":
						if a != "sqs:SendMessage" && a != "sqs:GetQueueAttributes" && a != "sqs:GetQueueUrl" {
							t.Errorf("policy %s: queue access %s beyond sending", st.policy, a)
						}
						// The mapping's on-failure destination is written with the function's role.
						for _, r := range st.resources {
							if !sameJSON(r, queues[0]) && !sameJSON(r, queues[1]) {
								t.Errorf("policy %s: %s on %v, want the dead-letter or mapping-failure queue", st.policy, a, r)
							}
						}
					default:
						t.Errorf("policy %s: the forwarder may not %s", st.policy, a)
					}
				}
			}
			for _, a := range []string{"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream",
				"kinesis:ListShards", "secretsmanager:GetSecretValue", "sqs:SendMessage"} {
				if !seen[a] {
					t.Errorf("the forwarder may not %s", a)
				}
			}
			sendsToDLQ := false
			for _, st := range roleStatements(templ, fn.Role()) {
				if slices.Contains(st.actions, "sqs:SendMessage") && slices.ContainsFunc(st.resources, func(r any) bool { return sameJSON(r, queues[0]) }) {
					sendsToDLQ = true
				}
			}
			if !sendsToDLQ {
				t.Error("the forwarder may not send to its dead-letter queue")
			}
			// Nothing else reads the Meta credentials or writes to the queues.
			for _, st := range roleStatements(templ, testStack.Ingest.Ingest.Function.Role()) {
				for _, r := range st.resources {
					if sameJSON(r, ref(meta)) || sameJSON(r, queues[0]) || sameJSON(r, queues[1]) {
						t.Errorf("ingest policy %s reaches %v", st.policy, r)
					}
				}
			}
		}},
		{"code asset holds the forwarder bootstrap and the validated config", func(t *testing.T) {
			if !strings.HasSuffix(f.Function.AssetDir, string(filepath.Separator)+CapiForwarderFunctionName) {
				t.Errorf("asset dir %s", f.Function.AssetDir)
			}
			for _, name := range []string{bootstrapFile, configFile} {
				if _, err := os.Stat(filepath.Join(f.Function.AssetDir, name)); err != nil {
					t.Error(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestProdForwarderWithExistingSecret checks the prod stack: imported Meta secret, pinned API
// version, reserved concurrency, queues retained.
func TestProdForwarderWithExistingSecret(t *testing.T) {
	const secretArn = prodMetaSecretArn
	tpl, doc, fn := prodTemplate, prodTempl, prodStack.Forwarder.Function.Function
	vars := functionEnv(t, doc, fn)
	if vars[env.MetaSecretID] != secretArn || vars[env.CAPIVersion] != "v25.0" || vars[env.MarketingVersion] != nil {
		t.Errorf("%s=%v %s=%v, want the imported ARN and v25.0 (the CAPI version alone)", env.MetaSecretID, vars[env.MetaSecretID], env.CAPIVersion, vars[env.CAPIVersion])
	}
	check(t, func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"ReservedConcurrentExecutions": 4, "Timeout": ForwarderTimeoutSeconds,
		})
	})
	// Only the pepper is created; the Meta secret is imported.
	check(t, func() { tpl.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(1)) })
	readsSecret := false
	for _, st := range roleStatements(doc, fn.Role()) {
		if slices.Contains(st.actions, "secretsmanager:GetSecretValue") {
			readsSecret = sameJSON(st.resources, []any{secretArn})
		}
	}
	if !readsSecret {
		t.Errorf("the forwarder may not read %s", secretArn)
	}
	check(t, func() {
		tpl.AllResources(jsii.String("AWS::SQS::Queue"), map[string]any{"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
	})
	check(t, func() {
		tpl.HasOutput(jsii.String(OutputMetaSecretArn), map[string]any{"Value": secretArn})
	})
}

// TestForwarderReadsConsents: with the segment state, the forwarder reads the users' explicit
// consent decisions from the table (STATE_TABLE_NAME, BatchGetItem only); without it, neither.
func TestForwarderReadsConsents(t *testing.T) {
	fwd := segStack.Forwarder.Function
	if env := functionEnv(t, segTempl, fwd.Function); !sameJSON(env["STATE_TABLE_NAME"], ref(segStack.Segments.Table)) {
		t.Errorf("forwarder STATE_TABLE_NAME = %v", env["STATE_TABLE_NAME"])
	}
	got := allowedActions(t, segTempl, fwd.Function.Role())
	for a, res := range got {
		if strings.HasPrefix(a, "dynamodb:") && (a != "dynamodb:BatchGetItem" || !sameJSON(res, []any{segTableArn(segStack.Segments)})) {
			t.Errorf("forwarder may %s on %v", a, res)
		}
	}
	if got["dynamodb:BatchGetItem"] == nil {
		t.Error("forwarder may not read the consent decisions")
	}
	if env := functionEnv(t, templ, testStack.Forwarder.Function.Function); env["STATE_TABLE_NAME"] != nil {
		t.Errorf("forwarder without segment state has STATE_TABLE_NAME %v", env["STATE_TABLE_NAME"])
	}
}

package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// segTableArn is the state table's ARN and dueIndexArn its due index's, as the templates
// write them.
func segTableArn(s *SegmentState) any { return getAtt(s.Table, "Arn") }

func dueIndexArn(s *SegmentState) any {
	return map[string]any{"Fn::Join": []any{"", []any{segTableArn(s), "/index/due"}}}
}

func TestSegmentState(t *testing.T) {
	s := segStack.Segments
	if s == nil {
		t.Fatal("SegmentsEnabled stack has no Segments")
	}
	stream := segStack.Events.Stream
	pepper := segStack.Pepper.Secret
	tableName := ref(s.Table)

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"table: pk/sk, pending, unpublished and due indexes, TTL, on-demand, PITR, AWS-managed key", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::DynamoDB::GlobalTable"), jsii.Number(1)) })
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(0)) })
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::DynamoDB::GlobalTable"), map[string]any{
					"KeySchema": []any{
						map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
						map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
					},
					"AttributeDefinitions": []any{
						map[string]any{"AttributeName": "pk", "AttributeType": "S"},
						map[string]any{"AttributeName": "sk", "AttributeType": "S"},
						map[string]any{"AttributeName": "pendingPk", "AttributeType": "S"},
						map[string]any{"AttributeName": "unpubPk", "AttributeType": "S"},
						map[string]any{"AttributeName": "dueBucket", "AttributeType": "S"},
						map[string]any{"AttributeName": "dueAt", "AttributeType": "N"},
					},
					"GlobalSecondaryIndexes": []any{
						map[string]any{
							"IndexName": "pending",
							"KeySchema": []any{
								map[string]any{"AttributeName": "pendingPk", "KeyType": "HASH"},
								map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
							},
							"Projection": map[string]any{"ProjectionType": "ALL"},
						},
						map[string]any{
							// The publisher's change feed reads whole changes from it.
							"IndexName": "unpublished",
							"KeySchema": []any{
								map[string]any{"AttributeName": "unpubPk", "KeyType": "HASH"},
								map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
							},
							"Projection": map[string]any{"ProjectionType": "ALL"},
						},
						map[string]any{
							"IndexName": "due",
							"KeySchema": []any{
								map[string]any{"AttributeName": "dueBucket", "KeyType": "HASH"},
								map[string]any{"AttributeName": "dueAt", "KeyType": "RANGE"},
							},
							"Projection": map[string]any{"ProjectionType": "KEYS_ONLY"},
						},
					},
					"BillingMode":                        "PAY_PER_REQUEST",
					"WriteProvisionedThroughputSettings": assertions.Match_Absent(),
					"TimeToLiveSpecification":            map[string]any{"AttributeName": "expiresAt", "Enabled": true},
					"SSESpecification":                   map[string]any{"SSEEnabled": true, "SSEType": "KMS"},
					"TableName":                          assertions.Match_Absent(),
					"Replicas": []any{assertions.Match_ObjectLike(&map[string]any{
						"Region":                           map[string]any{"Ref": "AWS::Region"},
						"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
						"DeletionProtectionEnabled":        false,
						"SSESpecification":                 assertions.Match_Absent(), // AWS-managed: no key per replica
					})},
				})
			})
			// The adapter spells these names too: a rename here is a rename there.
			names := []string{StateTablePartitionKey, StateTableSortKey, StateTableTTLAttribute, PendingIndexName,
				PendingIndexPartitionKey, PendingIndexSortKey, DueIndexName, DueIndexPartitionKey, DueIndexSortKey,
				UnpublishedIndexName, UnpublishedIndexPartitionKey, UnpublishedIndexSortKey}
			if got := strings.Join(names, " "); got != "pk sk expiresAt pending pendingPk sk due dueBucket dueAt unpublished unpubPk sk" {
				t.Errorf("schema names %s", got)
			}
		}},
		{"dev table is deleted with the stack", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::DynamoDB::GlobalTable")[logicalID(s.Table)]
			if res["DeletionPolicy"] != "Delete" || res["UpdateReplacePolicy"] != "Delete" {
				t.Errorf("dev table policies %v/%v, want Delete", res["DeletionPolicy"], res["UpdateReplacePolicy"])
			}
		}},
		{"functions: provided.al2023 arm64, sizes, environment contract", func(t *testing.T) {
			common := map[string]any{env.ConfigFile: "/var/task/config.json", env.LogLevel: "info", env.MetricsNamespace: "Retarget"}
			with := func(extra map[string]any) map[string]any {
				m := map[string]any{}
				for k, v := range common {
					m[k] = v
				}
				for k, v := range extra {
					m[k] = v
				}
				return m
			}
			ingestKeys := functionEnv(t, segTempl, segStack.Ingest.Ingest.Function)[env.APIKeyAppIDs]
			fns := []struct {
				name            string
				fn              *GoFunction
				memory, timeout float64
				env             map[string]any
			}{
				{"updater", s.Updater, 512, 60, with(map[string]any{
					"STATE_TABLE_NAME": tableName, "USER_TTL_DAYS": "400",
				})},
				{"sweeper", s.Sweeper, 256, 300, with(map[string]any{
					"STATE_TABLE_NAME": tableName, "SWEEP_LOOKBACK_HOURS": "48", "USER_TTL_DAYS": "400",
					"EVENT_BUS_NAME": ref(segStack.Channels.Bus), // it publishes the changes
				})},
				{"read", s.Reader, 256, 10, with(map[string]any{
					"STATE_TABLE_NAME": tableName, "PEPPER_SECRET_ID": ref(pepper), "API_KEY_APP_IDS": ingestKeys,
					"USER_TTL_DAYS": "400", "ERASURE_TOMBSTONE_DAYS": "30", "ERASURE_AUDIT_DAYS": "1095",
				})},
			}
			for _, f := range fns {
				t.Run(f.name, func(t *testing.T) {
					res := resourcesIn(segTempl, "AWS::Lambda::Function")[logicalID(f.fn.Function)]
					if res == nil {
						t.Fatalf("%s not in the template", f.name)
					}
					props := res["Properties"].(map[string]any)
					want := map[string]any{
						"Runtime": "provided.al2023", "Architectures": []any{"arm64"}, "Handler": "bootstrap",
						"MemorySize": f.memory, "Timeout": f.timeout, "TracingConfig": map[string]any{"Mode": "Active"},
						"LoggingConfig": map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "LogGroup": ref(f.fn.LogGroup)},
					}
					for k, v := range want {
						if !sameJSON(props[k], v) {
							t.Errorf("%s = %v, want %v", k, props[k], v)
						}
					}
					if _, ok := props["ReservedConcurrentExecutions"]; ok {
						t.Error("reserved concurrency set")
					}
					if vars := functionEnv(t, segTempl, f.fn.Function); !sameJSON(vars, f.env) {
						got, _ := json.Marshal(vars)
						w, _ := json.Marshal(f.env)
						t.Errorf("environment\n got %s\nwant %s", got, w)
					}
				})
			}
			if ingestKeys == nil {
				t.Error("the ingest function has no API_KEY_APP_IDS to share")
			}
			for _, name := range []string{SegmentUpdaterFunctionName, SegmentSweeperFunctionName, UsersAPIFunctionName} {
				if _, err := os.Stat(filepath.Join(filepath.Dir(s.Updater.AssetDir), name, bootstrapFile)); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}},
		{"updater mapping: the forwarder's safety settings, batches of 500", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::Lambda::EventSourceMapping"), jsii.Number(2)) })
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), map[string]any{
					"FunctionName":                   ref(s.Updater.Function),
					"EventSourceArn":                 getAtt(stream, "Arn"),
					"StartingPosition":               "TRIM_HORIZON",
					"BatchSize":                      500,
					"MaximumBatchingWindowInSeconds": 5,
					"FunctionResponseTypes":          []any{"ReportBatchItemFailures"},
					"BisectBatchOnFunctionError":     true,
					"MaximumRetryAttempts":           10000,
					"MaximumRecordAgeInSeconds":      21600,
					"ParallelizationFactor":          1,
					"DestinationConfig": map[string]any{
						"OnFailure": map[string]any{"Destination": getAtt(s.EsmFailures, "Arn")},
					},
				})
			})
		}},
		{"queues of their own: SSE, TLS only, deleted with a dev stack", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(6)) })
			f := segStack.Forwarder
			ids := map[string]bool{}
			for _, q := range []constructs.IConstruct{f.DeadLetters, f.EsmFailures, s.EsmFailures, s.SweepDeadLetters, segStack.AudienceSync.DeadLetters,
				segStack.Insights.DeadLetters} {
				ids[logicalID(q)] = true
			}
			if len(ids) != 6 {
				t.Fatalf("segment queues shared with the forwarder or each other: %v", ids)
			}
			for _, q := range []constructs.IConstruct{s.EsmFailures, s.SweepDeadLetters, segStack.AudienceSync.DeadLetters, segStack.Insights.DeadLetters} {
				id := logicalID(q)
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
		{"sweep schedule: every 5 minutes, retries, dead letters, input", func(t *testing.T) {
			check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::Scheduler::Schedule"), jsii.Number(3)) })
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
					"ScheduleExpression":         "rate(5 minutes)",
					"ScheduleExpressionTimezone": "Etc/UTC",
					"State":                      "ENABLED",
					"FlexibleTimeWindow":         map[string]any{"Mode": "OFF"},
					"Target": map[string]any{
						"Arn":              getAtt(s.Sweeper.Function, "Arn"),
						"RoleArn":          assertions.Match_AnyValue(),
						"Input":            `{"source":"schedule","scheduled_time":"<aws.scheduler.scheduled-time>"}`,
						"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
						"DeadLetterConfig": map[string]any{"Arn": getAtt(s.SweepDeadLetters, "Arn")},
					},
				})
			})
			var doc map[string]any
			if err := json.Unmarshal([]byte(SweepInput), &doc); err != nil || doc["source"] != "schedule" {
				t.Errorf("sweep input %s: %v", SweepInput, err)
			}
		}},
		{"scheduler role may invoke the sweeper and send to its dead letters, nothing else", func(t *testing.T) {
			res := resourcesIn(segTempl, "AWS::Scheduler::Schedule")[logicalID(s.SweepSchedule)]
			roleArn, _ := res["Properties"].(map[string]any)["Target"].(map[string]any)["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)
			if len(roleArn) != 2 {
				t.Fatalf("schedule role %v", res)
			}
			roleRef, _ := json.Marshal(map[string]any{"Ref": roleArn[0]})
			fnArn := getAtt(s.Sweeper.Function, "Arn")
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
					a := fmt.Sprint(st["Action"])
					seen[a] = true
					switch a {
					case "lambda:InvokeFunction":
						want := []any{fnArn, map[string]any{"Fn::Join": []any{"", []any{fnArn, ":*"}}}}
						if !sameJSON(res, want) {
							t.Errorf("policy %s: invoke on %v, want the sweeper (and its versions)", id, res)
						}
					case "sqs:SendMessage":
						if !sameJSON(res, []any{getAtt(s.SweepDeadLetters, "Arn")}) {
							t.Errorf("policy %s: send to %v, want the sweep dead letters", id, res)
						}
					default:
						t.Errorf("policy %s: the scheduler may %s", id, a)
					}
				}
			}
			if !seen["lambda:InvokeFunction"] || !seen["sqs:SendMessage"] {
				t.Errorf("the scheduler role may only %v", seen)
			}
		}},
		{"updater: read the stream, Query/Get/Put/BatchWrite the table (no index), send mapping failures; no Scan", func(t *testing.T) {
			got := allowedActions(t, segTempl, s.Updater.Function.Role())
			if _, ok := got["dynamodb:Query"]; !ok {
				t.Error("the updater may not Query the table: it reads each user's state and consent with one Query")
			}
			for a, res := range got {
				service, _, _ := strings.Cut(a, ":")
				switch {
				case strings.Contains(a, "*"):
					t.Errorf("wildcard action %s", a)
				case service == "xray":
				case service == "dynamodb":
					if a != "dynamodb:Query" && a != "dynamodb:GetItem" && a != "dynamodb:PutItem" && a != "dynamodb:BatchWriteItem" && a != "dynamodb:UpdateItem" {
						t.Errorf("the updater may %s", a)
					}
					if !sameJSON(res, []any{segTableArn(s)}) {
						t.Errorf("%s on %v, want the table only", a, res)
					}
				case service == "kinesis":
					if !strings.HasPrefix(a, "kinesis:Get") && !strings.HasPrefix(a, "kinesis:Describe") &&
						!strings.HasPrefix(a, "kinesis:List") && a != "kinesis:SubscribeToShard" {
						t.Errorf("consumer may %s", a)
					}
					if !sameJSON(res, []any{getAtt(stream, "Arn")}) {
						t.Errorf("%s on %v, want the stream only", a, res)
					}
				case service == "sqs":
					if a != "sqs:SendMessage" && a != "sqs:GetQueueAttributes" && a != "sqs:GetQueueUrl" {
						t.Errorf("queue access %s beyond sending", a)
					}
					if !sameJSON(res, []any{getAtt(s.EsmFailures, "Arn")}) {
						t.Errorf("%s on %v, want the mapping's failure queue only", a, res)
					}
				default:
					t.Errorf("the updater may %s", a)
				}
			}
			for _, a := range []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem", "kinesis:GetRecords", "sqs:SendMessage"} {
				if got[a] == nil {
					t.Errorf("the updater may not %s", a)
				}
			}
		}},
		{"sweeper: Query the due and unpublished indexes only, Get/Put/BatchWrite/BatchGet the table, PutEvents on the bus", func(t *testing.T) {
			got := allowedActions(t, segTempl, s.Sweeper.Function.Role())
			want := map[string][]any{
				"dynamodb:Query": {dueIndexArn(s), map[string]any{"Fn::Join": []any{"", []any{segTableArn(s), "/index/unpublished"}}}},
				// The publisher: the users' last channel deliveries (cool-down), the bus.
				"dynamodb:BatchGetItem":    {segTableArn(s)},
				"events:PutEvents":         {getAtt(segStack.Channels.Bus, "Arn")},
				"dynamodb:GetItem":         {segTableArn(s)},
				"dynamodb:PutItem":         {segTableArn(s)},
				"dynamodb:BatchWriteItem":  {segTableArn(s)},
				"dynamodb:UpdateItem":      {segTableArn(s)},                    // outcome counters
				"sqs:SendMessage":          {getAtt(s.SweepDeadLetters, "Arn")}, // failed async runs
				"xray:PutTraceSegments":    {"*"},
				"xray:PutTelemetryRecords": {"*"},
			}
			if !sameJSON(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("sweeper permissions\n got %s\nwant %s", g, w)
			}
		}},
		{"users function: item reads and writes on the table, Query on the table for reports (no index, no Scan, no delete) and read the pepper", func(t *testing.T) {
			got := allowedActions(t, segTempl, s.Reader.Function.Role())
			want := map[string][]any{
				"dynamodb:GetItem":              {segTableArn(s)},
				"dynamodb:Query":                {segTableArn(s)}, // report: cohort counters, spend rows
				"dynamodb:PutItem":              {segTableArn(s)},
				"dynamodb:BatchWriteItem":       {segTableArn(s)},
				"dynamodb:BatchGetItem":         {segTableArn(s)},
				"secretsmanager:GetSecretValue": {ref(pepper)},
				"secretsmanager:DescribeSecret": {ref(pepper)},
				"xray:PutTraceSegments":         {"*"},
				"xray:PutTelemetryRecords":      {"*"},
			}
			if !sameJSON(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("read permissions\n got %s\nwant %s", g, w)
			}
		}},
		{"no role reaches the table but the segment functions', the sync's, the insights run's and the forwarder's (consent reads), none may Scan", func(t *testing.T) {
			mine := map[string]bool{}
			for _, g := range []*GoFunction{s.Updater, s.Sweeper, s.Reader, segStack.AudienceSync.Function, segStack.Insights.Function, segStack.Forwarder.Function} {
				mine[logicalID(g.Function.Role())] = true
			}
			tableID := logicalID(s.Table)
			for id, p := range resourcesIn(segTempl, "AWS::IAM::Policy") {
				raw, _ := json.Marshal(p)
				if strings.Contains(string(raw), "dynamodb:Scan") || strings.Contains(string(raw), `"dynamodb:*"`) {
					t.Errorf("policy %s allows a scan", id)
				}
				if !strings.Contains(string(raw), `"`+tableID+`"`) {
					continue
				}
				roles, _ := p["Properties"].(map[string]any)["Roles"].([]any)
				for _, r := range roles {
					if !mine[fmt.Sprint(r.(map[string]any)["Ref"])] {
						t.Errorf("policy %s gives %v access to the table", id, r)
					}
				}
			}
		}},
		{"output StateTableName", func(t *testing.T) {
			check(t, func() { segTemplate.HasOutput(jsii.String(OutputStateTableName), map[string]any{"Value": tableName}) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestSegmentStateDisabledByDefault: without SegmentsEnabled the template holds nothing of it.
func TestSegmentStateDisabledByDefault(t *testing.T) {
	if testStack.Segments != nil || testStack.AudienceSync != nil {
		t.Fatal("default stack has Segments or AudienceSync")
	}
	for typ, n := range map[string]float64{
		"AWS::DynamoDB::GlobalTable":      0,
		"AWS::DynamoDB::Table":            0,
		"AWS::Scheduler::Schedule":        0,
		"AWS::Scheduler::ScheduleGroup":   0,
		"AWS::Lambda::EventSourceMapping": 1,
		"AWS::SQS::Queue":                 2,
		"AWS::ApiGateway::Method":         4,
		"AWS::Lambda::Function":           2,
	} {
		check(t, func() { template.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
	}
	raw, _ := json.Marshal(templ)
	for _, s := range []string{`"Segments`, `"AudienceSync`, "STATE_TABLE_NAME", "dynamodb:", "scheduler.amazonaws.com", OutputStateTableName} {
		if i := strings.Index(string(raw), s); i >= 0 {
			t.Errorf("default template mentions %q: ...%s...", s, raw[max(0, i-80):min(len(raw), i+80)])
		}
	}
}

// TestProdSegmentState checks the prod stack's table protection and the overridden settings.
func TestProdSegmentState(t *testing.T) {
	s := prodStack.Segments
	if s == nil {
		t.Fatal("prod stack has no Segments")
	}
	check(t, func() {
		prodTemplate.HasResource(jsii.String("AWS::DynamoDB::GlobalTable"), map[string]any{
			"DeletionPolicy":      "Retain",
			"UpdateReplacePolicy": "Retain",
			"Properties": map[string]any{"Replicas": []any{assertions.Match_ObjectLike(&map[string]any{
				"DeletionProtectionEnabled":        true,
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			})}},
		})
	})
	check(t, func() {
		prodTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
			"ScheduleExpression": fmt.Sprintf("rate(%d minutes)", prodSweepIntervalMinutes),
		})
	})
	for _, fn := range []*GoFunction{s.Updater, s.Sweeper} {
		if v := functionEnv(t, prodTempl, fn.Function)[env.UserTTLDays]; v != fmt.Sprint(prodUserTTLDays) {
			t.Errorf("%s = %v, want %d", env.UserTTLDays, v, prodUserTTLDays)
		}
	}
	check(t, func() {
		prodTemplate.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
			"ScheduleExpression": fmt.Sprintf("rate(%d minutes)", prodAudienceSyncIntervalMinutes),
			"Target":             assertions.Match_ObjectLike(&map[string]any{"Arn": getAtt(prodStack.AudienceSync.Function.Function, "Arn")}),
		})
	})
	// The imported Meta secret reaches the sync as it reaches the forwarder; the sync gets the
	// Marketing API version, not the forwarder's.
	syncEnv := functionEnv(t, prodTempl, prodStack.AudienceSync.Function.Function)
	if syncEnv[env.MetaSecretID] != prodMetaSecretArn || syncEnv[env.MarketingVersion] != "v27.0" || syncEnv[env.CAPIVersion] != nil {
		t.Errorf("prod audience sync env %v", syncEnv)
	}
	for _, q := range []constructs.IConstruct{s.EsmFailures, s.SweepDeadLetters, prodStack.AudienceSync.DeadLetters} {
		res := resourcesIn(prodTempl, "AWS::SQS::Queue")[*prodStack.GetLogicalId(q.Node().DefaultChild().(awscdk.CfnElement))]
		if res["DeletionPolicy"] != "Retain" {
			t.Errorf("prod queue %s has DeletionPolicy %v", *q.Node().Path(), res["DeletionPolicy"])
		}
	}
}

// TestErasureRetention: the users function gets the erasure settings, defaults or the stack's.
func TestErasureRetention(t *testing.T) {
	for _, c := range []struct {
		tpl              map[string]any
		st               *RetargetStack
		tombstone, audit string
	}{{segTempl, segStack, "30", "1095"}, {prodTempl, prodStack, "30", "365"}} {
		env := functionEnv(t, c.tpl, c.st.Segments.Reader.Function)
		if env["ERASURE_TOMBSTONE_DAYS"] != c.tombstone || env["ERASURE_AUDIT_DAYS"] != c.audit {
			t.Errorf("%s: ERASURE_TOMBSTONE_DAYS %v, ERASURE_AUDIT_DAYS %v; want %s, %s", *c.st.StackName(),
				env["ERASURE_TOMBSTONE_DAYS"], env["ERASURE_AUDIT_DAYS"], c.tombstone, c.audit)
		}
	}
	if _, err := resolveProps(&RetargetStackProps{Config: testConfig, ErasureAuditDays: -1}); err == nil || !strings.Contains(err.Error(), "erasure audit days") {
		t.Errorf("negative audit days: %v", err)
	}
}

package stack

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// The stack with both the segment state and the archive, built on first use in its own app
// (as archiveStack) without an expiry: the lookback is then the Glue table's ten years.
var purgeOnce struct {
	sync.Once
	stack *RetargetStack
	tmpl  assertions.Template
	plain map[string]any
	err   error
}

func purgeStack(t *testing.T) (*RetargetStack, assertions.Template, map[string]any) {
	t.Helper()
	purgeOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				purgeOnce.err = fmt.Errorf("%v", r)
			}
		}()
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(t.TempDir(), "cdk.out")), Context: &testFlags})
		st := NewRetargetStack(app, "Purged", &RetargetStackProps{
			Config:          testConfig,
			FunctionsDir:    testFunctionsDir,
			SegmentsEnabled: true,
			ArchiveEnabled:  true,
		})
		AddNagChecks(app)
		purgeOnce.stack, purgeOnce.tmpl = st, assertions.Template_FromStack(st.Stack, nil)
		purgeOnce.plain, purgeOnce.err = plainTemplate(purgeOnce.tmpl)
	})
	if purgeOnce.err != nil {
		t.Fatalf("purge stack: %v", purgeOnce.err)
	}
	return purgeOnce.stack, purgeOnce.tmpl, purgeOnce.plain
}

func TestArchivePurge(t *testing.T) {
	st, tmpl, plain := purgeStack(t)
	p := st.ArchivePurge
	if p == nil {
		t.Fatal("a stack with segments and the archive has no archive purge")
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"function: 2 GB, 15 min, reserved concurrency 1, table, bucket, settle, lookback", func(t *testing.T) {
			props := resourcesIn(plain, "AWS::Lambda::Function")[logicalID(p.Function.Function)]["Properties"].(map[string]any)
			for k, v := range map[string]any{"MemorySize": 2048, "Timeout": 900, "ReservedConcurrentExecutions": 1} {
				if !sameJSON(props[k], v) {
					t.Errorf("%s = %v, want %v", k, props[k], v)
				}
			}
			want := map[string]any{
				"STATE_TABLE_NAME": ref(st.Segments.Table), "ARCHIVE_BUCKET_NAME": ref(st.Archive.Bucket),
				"ARCHIVE_PURGE_SETTLE": "1800s", "ARCHIVE_PURGE_LOOKBACK_DAYS": "3650",
				"APP_CONFIG_FILE": "/var/task/config.json", "LOG_LEVEL": "info", "METRICS_NAMESPACE": "Retarget",
			}
			if vars := functionEnv(t, plain, p.Function.Function); !sameJSON(vars, want) {
				g, _ := json.Marshal(vars)
				w, _ := json.Marshal(want)
				t.Errorf("environment\n got %s\nwant %s", g, w)
			}
		}},
		{"schedule: hourly, retries, dead letters, input", func(t *testing.T) {
			check(t, func() {
				tmpl.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
					"ScheduleExpression": "rate(1 hour)",
					"State":              "ENABLED",
					"Target": map[string]any{
						"Arn":              getAtt(p.Function.Function, "Arn"),
						"RoleArn":          assertions.Match_AnyValue(),
						"Input":            ArchivePurgeInput,
						"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
						"DeadLetterConfig": map[string]any{"Arn": getAtt(p.DeadLetters, "Arn")},
					},
				})
			})
		}},
		{"grants: the purge items' actions on the table, the bucket's objects, the archive key", func(t *testing.T) {
			roleRef, _ := json.Marshal(ref(p.Function.Function.Role()))
			bucketArn := getAtt(st.Archive.Bucket, "Arn")
			objects := map[string]any{"Fn::Join": []any{"", []any{bucketArn, "/*"}}}
			got := map[string]any{}
			for id, pol := range resourcesIn(plain, "AWS::IAM::Policy") {
				props := pol["Properties"].(map[string]any)
				if roles, _ := json.Marshal(props["Roles"]); !strings.Contains(string(roles), string(roleRef)) {
					continue
				}
				for _, s := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					s := s.(map[string]any)
					acts, ok := s["Action"].([]any)
					if !ok {
						acts = []any{s["Action"]}
					}
					for _, a := range acts {
						a := a.(string)
						if _, dup := got[a]; dup {
							t.Errorf("policy %s: %s granted twice", id, a)
						}
						got[a] = s["Resource"]
					}
				}
			}
			want := map[string]any{
				"dynamodb:Query": getAtt(st.Segments.Table, "Arn"), "dynamodb:DeleteItem": getAtt(st.Segments.Table, "Arn"),
				"s3:GetObject": objects, "s3:PutObject": objects, "s3:DeleteObject": objects, "s3:ListBucket": bucketArn,
				"kms:Decrypt": getAtt(st.Archive.Key, "Arn"), "kms:GenerateDataKey": getAtt(st.Archive.Key, "Arn"),
			}
			for a, r := range got {
				if strings.HasPrefix(a, "sqs:") || strings.HasPrefix(a, "logs:") || strings.HasPrefix(a, "xray:") {
					continue // the dead-letter queue, the log group and tracing, as for every function
				}
				if w, ok := want[a]; !ok {
					t.Errorf("unexpected grant %s on %v", a, r)
				} else if !sameJSON(r, w) {
					g, _ := json.Marshal(r)
					ws, _ := json.Marshal(w)
					t.Errorf("%s on %s, want %s", a, g, ws)
				}
			}
			for a := range want {
				if _, ok := got[a]; !ok {
					t.Errorf("%s not granted", a)
				}
			}
		}},
		{"alarms: errors, throttles, dead letters", func(t *testing.T) {
			for _, name := range []string{"ArchivePurgeErrors", "ArchivePurgeThrottles", "ArchivePurgeDeadLettersDepth"} {
				if st.Alarms.Alarms[name] == nil {
					t.Errorf("no alarm %s", name)
				}
			}
		}},
		{"no cdk-nag finding", func(t *testing.T) {
			ann := assertions.Annotations_FromStack(st.Stack)
			check(t, func() { ann.HasNoError(jsii.String("*"), assertions.Match_AnyValue()) })
			check(t, func() { ann.HasNoWarning(jsii.String("*"), assertions.Match_AnyValue()) })
		}},
		{"only with both the archive and the segment state", func(t *testing.T) {
			archived, _, _ := archiveStack(t)
			for name, s := range map[string]*RetargetStack{"default": testStack, "segments": segStack, "archive without segments": archived} {
				if s.ArchivePurge != nil {
					t.Errorf("%s stack declares the archive purge", name)
				}
			}
		}},
		{"lookback follows the archive's expiry", func(t *testing.T) {
			if got := slices.Index([]int{archivePurgeLookback(0), archivePurgeLookback(730)}, 730); got != 1 || archivePurgeLookback(0) != ArchivePurgeDefaultLookbackDays {
				t.Errorf("lookback(0) = %d, lookback(730) = %d", archivePurgeLookback(0), archivePurgeLookback(730))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

package stack

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestNoNagFindings: the cdk-nag packs (AddNagChecks) report no unsuppressed error or warning
// on any stack under test: default, prod (imported secret, segments), dev with segments, ops
// (WAF, alarm e-mail, the API Gateway CloudWatch role). An error also fails the synth in
// TestMain, with cdk-nag's report.
func TestNoNagFindings(t *testing.T) {
	for name, st := range map[string]*RetargetStack{"default": testStack, "prod": prodStack, "segments": segStack, "ops": opsStack} {
		t.Run(name, func(t *testing.T) {
			a := assertions.Annotations_FromStack(st.Stack)
			check(t, func() { a.HasNoError(jsii.String("*"), assertions.Match_AnyValue()) })
			check(t, func() { a.HasNoWarning(jsii.String("*"), assertions.Match_AnyValue()) })
		})
	}
}

// TestFunctionRoles: every function has its own role without managed policies, writes logs to
// its own log group only, and the scheduled functions dead-letter their failed asynchronous
// runs into their schedule's queue.
func TestFunctionRoles(t *testing.T) {
	fns := map[string]*GoFunction{
		"ingest": segStack.Ingest.Ingest, "forwarder": segStack.Forwarder.Function, "updater": segStack.Segments.Updater,
		"sweeper": segStack.Segments.Sweeper, "reader": segStack.Segments.Reader, "sync": segStack.AudienceSync.Function,
	}
	dlq := map[string]any{"sweeper": getAtt(segStack.Segments.SweepDeadLetters, "Arn"), "sync": getAtt(segStack.AudienceSync.DeadLetters, "Arn")}
	roles := map[string]bool{}
	for name, fn := range fns {
		t.Run(name, func(t *testing.T) {
			roleID := logicalID(fn.Role)
			if roles[roleID] {
				t.Fatalf("role %s shared", roleID)
			}
			roles[roleID] = true
			role := resourcesIn(segTempl, "AWS::IAM::Role")[roleID]
			if role == nil {
				t.Fatalf("role %s not in the template", roleID)
			}
			if mp := role["Properties"].(map[string]any)["ManagedPolicyArns"]; mp != nil {
				t.Errorf("managed policies %v", mp)
			}
			fnRes := resourcesIn(segTempl, "AWS::Lambda::Function")[logicalID(fn.Function)]
			props := fnRes["Properties"].(map[string]any)
			// Created after its role's policy, so the grants are in place; the role itself is
			// not repeated (the Role GetAtt orders it already, cfn-lint W3005).
			policyID := logicalID(fn.Role.Node().FindChild(jsii.String("DefaultPolicy")))
			if deps := asStrings(fnRes["DependsOn"]); !slices.Contains(deps, policyID) || slices.Contains(deps, roleID) {
				t.Errorf("DependsOn %v, want the role's policy %s and not the role %s", deps, policyID, roleID)
			}
			if !sameJSON(props["Role"], getAtt(fn.Role, "Arn")) {
				t.Errorf("function role %v, want %s", props["Role"], roleID)
			}
			logGroup := logicalID(fn.LogGroup)
			writes := 0
			roleRef, _ := json.Marshal(map[string]any{"Ref": roleID})
			for id, p := range resourcesIn(segTempl, "AWS::IAM::Policy") {
				pp := p["Properties"].(map[string]any)
				if r, _ := json.Marshal(pp["Roles"]); !strings.Contains(string(r), string(roleRef)) {
					continue
				}
				for _, st := range pp["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					st := st.(map[string]any)
					if !ownLogWrites(asStrings(st["Action"])) {
						continue
					}
					writes++
					res, ok := st["Resource"].([]any)
					if !ok {
						res = []any{st["Resource"]}
					}
					for _, r := range res {
						if j, _ := json.Marshal(r); !strings.Contains(string(j), `"`+logGroup+`"`) {
							t.Errorf("policy %s: log writes on %s, want the function's log group %s", id, j, logGroup)
						}
					}
				}
			}
			if writes == 0 {
				t.Error("the role may not write the function's logs")
			}
			got := props["DeadLetterConfig"]
			if want, ok := dlq[name]; ok {
				if !sameJSON(got, map[string]any{"TargetArn": want}) {
					t.Errorf("DeadLetterConfig %v, want the schedule's queue", got)
				}
			} else if got != nil {
				t.Errorf("DeadLetterConfig %v on a function never invoked asynchronously", got)
			}
		})
	}
}

// TestEveryFunctionArm64AL2023: every Lambda function of every stack under test, including
// any a construct adds behind our back, runs provided.al2023 on arm64 with JSON logs, active
// tracing and its own log group.
func TestEveryFunctionArm64AL2023(t *testing.T) {
	for name, tpl := range map[string]map[string]any{"default": templ, "prod": prodTempl, "segments": segTempl, "ops": opsTempl} {
		fns := resourcesIn(tpl, "AWS::Lambda::Function")
		if len(fns) == 0 {
			t.Fatalf("%s: no functions", name)
		}
		for id, r := range fns {
			p := r["Properties"].(map[string]any)
			if p["Runtime"] != "provided.al2023" || !sameJSON(p["Architectures"], []any{"arm64"}) {
				t.Errorf("%s/%s: runtime %v on %v, want provided.al2023 on arm64", name, id, p["Runtime"], p["Architectures"])
			}
			lc, _ := p["LoggingConfig"].(map[string]any)
			if lc["LogFormat"] != "JSON" || lc["LogGroup"] == nil {
				t.Errorf("%s/%s: logging %v, want JSON into its own log group", name, id, lc)
			}
			if !sameJSON(p["TracingConfig"], map[string]any{"Mode": "Active"}) {
				t.Errorf("%s/%s: tracing %v", name, id, p["TracingConfig"])
			}
		}
	}
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

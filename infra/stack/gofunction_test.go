package stack

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// TestGoFunction: the code asset synth stages for a function.
func TestGoFunction(t *testing.T) {
	ingest := testStack.Ingest
	t.Run("code asset holds the bootstrap and the validated config", func(t *testing.T) {
		dir := ingest.Ingest.AssetDir
		info, err := os.Stat(filepath.Join(dir, bootstrapFile))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o111 == 0 {
			t.Errorf("bootstrap mode %v is not executable", info.Mode())
		}
		staged, err := env.LoadApps(filepath.Join(dir, configFile))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(staged, testConfig.ForDeployment()) {
			t.Errorf("staged config %+v, want %+v", staged, testConfig.ForDeployment())
		}
		for _, a := range staged.Apps {
			if a.APIKey.DevValue != "" {
				t.Errorf("app %s: dev API key shipped to the deployed function", a.ID)
			}
		}
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
				"Code": map[string]any{"S3Key": assertions.Match_StringLikeRegexp(jsii.String(`^[0-9a-f]{64}\.zip$`))},
			})
		})
	})
}

func TestStageFunctionAssetWithoutBuild(t *testing.T) {
	dir := t.TempDir()
	err := StageFunctionAsset(filepath.Join(dir, "nothing-built"), IngestFunctionName, testConfig, filepath.Join(dir, "stage"))
	if !errors.Is(err, ErrBootstrapMissing) {
		t.Fatalf("err = %v, want ErrBootstrapMissing", err)
	}
	if !regexp.MustCompile("run `make build` first.*nothing-built/ingest/bootstrap").MatchString(err.Error()) {
		t.Errorf("error %q should tell to run make build and name the missing file", err)
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

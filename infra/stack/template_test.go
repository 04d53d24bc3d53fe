// Reading the synthesised templates: resources, environments and IAM statements as plain Go
// values, and jsii assertions that fail a test instead of the binary.

package stack

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
)

// check runs a jsii assertion: a failed one panics, which would stop the whole test binary.
func check(t *testing.T, assertion func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%v", r)
		}
	}()
	assertion()
}

// logicalID returns the template id of an L2 construct's main resource (in its own stack).
func logicalID(c constructs.IConstruct) string {
	return *awscdk.Stack_Of(c).GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

func ref(c constructs.IConstruct) map[string]any {
	return map[string]any{"Ref": logicalID(c)}
}

func getAtt(c constructs.IConstruct, attr string) map[string]any {
	return map[string]any{"Fn::GetAtt": []any{logicalID(c), attr}}
}

// resources returns the template's resources of one type, by logical id.
func resources(typ string) map[string]map[string]any {
	return resourcesIn(templ, typ)
}

// resourcesIn returns tpl's resources of one type, by logical id.
func resourcesIn(tpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	all, _ := tpl["Resources"].(map[string]any)
	for id, r := range all {
		if r, ok := r.(map[string]any); ok && r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

// functionEnv returns the environment variables of a function in a template.
func functionEnv(t *testing.T, tpl map[string]any, fn awslambda.IFunction) map[string]any {
	t.Helper()
	id := *awscdk.Stack_Of(fn).GetLogicalId(fn.Node().DefaultChild().(awscdk.CfnElement))
	res, ok := tpl["Resources"].(map[string]any)[id].(map[string]any)
	if !ok {
		t.Fatalf("function %s not in the template", id)
	}
	vars, ok := res["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if !ok {
		t.Fatalf("function %s has no environment variables", id)
	}
	return vars
}

// statement is one IAM policy statement of a template, with its policy's logical id.
type statement struct {
	policy    string
	actions   []string
	resources []any
	raw       map[string]any
}

// roleStatements returns the statements of every AWS::IAM::Policy of tpl attached to role.
func roleStatements(tpl map[string]any, role awsiam.IRole) []statement {
	roleRef, _ := json.Marshal(map[string]any{"Ref": *awscdk.Stack_Of(role).GetLogicalId(role.Node().DefaultChild().(awscdk.CfnElement))})
	var out []statement
	all, _ := tpl["Resources"].(map[string]any)
	for id, r := range all {
		r, _ := r.(map[string]any)
		if r["Type"] != "AWS::IAM::Policy" {
			continue
		}
		props := r["Properties"].(map[string]any)
		roles, _ := json.Marshal(props["Roles"])
		if !strings.Contains(string(roles), string(roleRef)) {
			continue
		}
		for _, s := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := s.(map[string]any)
			res, ok := st["Resource"].([]any)
			if !ok {
				res = []any{st["Resource"]}
			}
			actions := asStrings(st["Action"])
			if ownLogWrites(actions) {
				continue // every function writes its own logs: TestFunctionRoles checks these
			}
			out = append(out, statement{policy: id, actions: actions, resources: res, raw: st})
		}
	}
	return out
}

// ownLogWrites reports whether actions are a function's log writes (GoFunction's role).
func ownLogWrites(actions []string) bool {
	for _, a := range actions {
		if a != "logs:CreateLogStream" && a != "logs:PutLogEvents" {
			return false
		}
	}
	return len(actions) > 0
}

// sameJSON compares two template values by their JSON form.
func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// allowedActions maps each action a role may perform in tpl to the resources it may perform
// it on; it fails the test on Deny statements and conditions, which these roles never carry.
func allowedActions(t *testing.T, tpl map[string]any, role awsiam.IRole) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, st := range roleStatements(tpl, role) {
		if st.raw["Effect"] != "Allow" || st.raw["Condition"] != nil {
			t.Errorf("policy %s: unexpected statement %v", st.policy, st.raw)
			continue
		}
		for _, a := range st.actions {
			out[a] = append(out[a], st.resources...)
		}
	}
	return out
}

// renderJoin turns a resolved {"Fn::Join": ["", [...]]} into a string, writing each Ref as
// <LogicalId>.
func renderJoin(t *testing.T, v any) string {
	t.Helper()
	if s, ok := v.(string); ok {
		return s
	}
	join, ok := v.(map[string]any)["Fn::Join"].([]any)
	if !ok || len(join) != 2 || join[0] != "" {
		t.Fatalf("not an Fn::Join with an empty separator: %v", v)
	}
	var b strings.Builder
	for _, part := range join[1].([]any) {
		switch p := part.(type) {
		case string:
			b.WriteString(p)
		case map[string]any:
			r, ok := p["Ref"].(string)
			if !ok {
				t.Fatalf("unexpected part %v", p)
			}
			b.WriteString("<" + r + ">")
		default:
			t.Fatalf("unexpected part %v", p)
		}
	}
	return b.String()
}

func asStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
		return out
	}
	return nil
}

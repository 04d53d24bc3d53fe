package stack

import (
	"testing"
)

// TestCfnLintIgnores: the one cfn-lint rule skipped in the templates, E3002 (a property its
// schema does not know), is skipped on the dashboard only, in every stack under test.
func TestCfnLintIgnores(t *testing.T) {
	for name, tc := range map[string]struct {
		st  *RetargetStack
		tpl map[string]any
	}{"default": {testStack, templ}, "prod": {prodStack, prodTempl}, "segments": {segStack, segTempl}, "ops": {opsStack, opsTempl}, "http": {httpStack, httpTempl}} {
		t.Run(name, func(t *testing.T) {
			dashboard := logicalID(tc.st.Alarms.Dashboard)
			found := false
			for id, r := range tc.tpl["Resources"].(map[string]any) {
				md, _ := r.(map[string]any)["Metadata"].(map[string]any)
				got, ok := md[cfnLintMetadataKey]
				if !ok {
					continue
				}
				if id != dashboard {
					t.Errorf("%s: cfn-lint settings %v on a resource other than the dashboard", id, got)
					continue
				}
				found = true
				if want := map[string]any{"config": map[string]any{"ignore_checks": []any{"E3002"}}}; !sameJSON(got, want) {
					t.Errorf("dashboard cfn-lint settings %v, want %v", got, want)
				}
			}
			if !found {
				t.Errorf("dashboard %s: no cfn-lint ignore of E3002 (its Tags)", dashboard)
			}
		})
	}
}

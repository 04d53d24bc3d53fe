package stack

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestSecrets: the generated pepper and the Meta credentials secret, both retained.
func TestSecrets(t *testing.T) {
	meta := testStack.Meta.Secret

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"pepper secret is generated and retained", func(t *testing.T) {
			check(t, func() {
				template.HasResource(jsii.String("AWS::SecretsManager::Secret"), map[string]any{
					"DeletionPolicy":      "Retain",
					"UpdateReplacePolicy": "Retain",
					"Properties": map[string]any{
						"GenerateSecretString": map[string]any{"PasswordLength": PepperLength, "ExcludePunctuation": true},
						"SecretString":         assertions.Match_Absent(),
					},
				})
			})
		}},
		{"Meta secret is retained and holds no token in the template", func(t *testing.T) {
			id := logicalID(meta)
			res := resources("AWS::SecretsManager::Secret")[id]
			if res == nil {
				t.Fatalf("Meta secret %s not in the template", id)
			}
			if res["DeletionPolicy"] != "Retain" || res["UpdateReplacePolicy"] != "Retain" {
				t.Errorf("Meta secret policies %v/%v, want Retain", res["DeletionPolicy"], res["UpdateReplacePolicy"])
			}
			props := res["Properties"].(map[string]any)
			if _, ok := props["SecretString"]; ok {
				t.Error("Meta secret has a literal SecretString")
			}
			gen, _ := props["GenerateSecretString"].(map[string]any)
			if gen["GenerateStringKey"] != MetaAppSecretKey {
				t.Errorf("generated key %v, want %s", gen["GenerateStringKey"], MetaAppSecretKey)
			}
			var tmpl map[string]string
			if err := json.Unmarshal([]byte(fmt.Sprint(gen["SecretStringTemplate"])), &tmpl); err != nil ||
				!reflect.DeepEqual(tmpl, map[string]string{MetaAccessTokenKey: MetaAccessTokenPlaceholder}) {
				t.Errorf("secret template %v, want only the placeholder token", gen["SecretStringTemplate"])
			}
			// Meta access tokens start with EAA and run to ~200 characters.
			raw, _ := json.Marshal(templ)
			if m := regexp.MustCompile(`EAA[A-Za-z0-9]{30,}`).Find(raw); m != nil {
				t.Errorf("template carries something like a Meta token: %.12s...", m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

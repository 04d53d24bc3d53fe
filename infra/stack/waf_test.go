package stack

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestWAF: the web ACL in front of the ops stack's API stage.
func TestWAF(t *testing.T) {
	t.Run("WAF: rate limit per IP and known bad inputs, associated with the stage; none by default", func(t *testing.T) {
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::WAFv2::WebACL"), map[string]any{
				"Scope": "REGIONAL", "DefaultAction": map[string]any{"Allow": map[string]any{}},
				"Rules": []any{
					assertions.Match_ObjectLike(&map[string]any{"Name": "RateLimitPerIp", "Action": map[string]any{"Block": map[string]any{}},
						"Statement": map[string]any{"RateBasedStatement": map[string]any{"Limit": opsWafRateLimit, "AggregateKeyType": "IP"}}}),
					assertions.Match_ObjectLike(&map[string]any{"Name": "KnownBadInputs",
						"Statement": map[string]any{"ManagedRuleGroupStatement": map[string]any{"VendorName": "AWS", "Name": "AWSManagedRulesKnownBadInputsRuleSet"}}}),
				},
			})
		})
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::WAFv2::WebACLAssociation"), map[string]any{
				"ResourceArn": assertions.Match_AnyValue(), "WebACLArn": assertions.Match_AnyValue(),
			})
		})
		check(t, func() { template.ResourceCountIs(jsii.String("AWS::WAFv2::WebACL"), jsii.Number(0)) })
	})
}

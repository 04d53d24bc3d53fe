package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awswafv2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// WAF rate limit bounds (requests per client IP in 5 minutes), as WAF accepts them.
const (
	MinWafRateLimit = 10
	MaxWafRateLimit = 2_000_000_000
)

// newWebACL puts a regional WAF web ACL in front of the API stage: it blocks a client IP that
// sends more than rateLimit requests in 5 minutes, and requests matching AWS's known-bad-inputs
// rules (exploit payloads in paths, headers and bodies). AWS's common rule set is left out on
// purpose: its SizeRestrictions_BODY rule blocks bodies over 8 KB, and a batch of events is
// up to 1 MiB. Mobile carriers put many users behind one IP (carrier-grade NAT): set the limit
// well above one device's rate.
func newWebACL(scope constructs.Construct, id string, stage awsapigateway.Stage, rateLimit float64) awswafv2.CfnWebACL {
	visibility := func(name string) *awswafv2.CfnWebACL_VisibilityConfigProperty {
		return &awswafv2.CfnWebACL_VisibilityConfigProperty{
			CloudWatchMetricsEnabled: jsii.Bool(true),
			MetricName:               jsii.String(name),
			SampledRequestsEnabled:   jsii.Bool(true),
		}
	}
	acl := awswafv2.NewCfnWebACL(scope, jsii.String(id), &awswafv2.CfnWebACLProps{
		Scope:            jsii.String("REGIONAL"),
		DefaultAction:    &awswafv2.CfnWebACL_DefaultActionProperty{Allow: &awswafv2.CfnWebACL_AllowActionProperty{}},
		Description:      jsii.String("retarget ingest API: per-IP rate limit and known bad inputs"),
		VisibilityConfig: visibility("RetargetIngestAcl"),
		Rules: &[]any{
			&awswafv2.CfnWebACL_RuleProperty{
				Name:     jsii.String("RateLimitPerIp"),
				Priority: jsii.Number(0),
				Action:   &awswafv2.CfnWebACL_RuleActionProperty{Block: &awswafv2.CfnWebACL_BlockActionProperty{}},
				Statement: &awswafv2.CfnWebACL_StatementProperty{
					RateBasedStatement: &awswafv2.CfnWebACL_RateBasedStatementProperty{
						Limit:            jsii.Number(rateLimit),
						AggregateKeyType: jsii.String("IP"),
					},
				},
				VisibilityConfig: visibility("RetargetRateLimitPerIp"),
			},
			&awswafv2.CfnWebACL_RuleProperty{
				Name:           jsii.String("KnownBadInputs"),
				Priority:       jsii.Number(1),
				OverrideAction: &awswafv2.CfnWebACL_OverrideActionProperty{None: map[string]any{}},
				Statement: &awswafv2.CfnWebACL_StatementProperty{
					ManagedRuleGroupStatement: &awswafv2.CfnWebACL_ManagedRuleGroupStatementProperty{
						VendorName: jsii.String("AWS"),
						Name:       jsii.String("AWSManagedRulesKnownBadInputsRuleSet"),
					},
				},
				VisibilityConfig: visibility("RetargetKnownBadInputs"),
			},
		},
	})
	awswafv2.NewCfnWebACLAssociation(scope, jsii.String(id+"Association"), &awswafv2.CfnWebACLAssociationProps{
		ResourceArn: stage.StageArn(),
		WebAclArn:   acl.AttrArn(),
	})
	return acl
}

package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// cfnLintMetadataKey is the resource metadata cfn-lint reads its per-resource configuration
// from (`make cfn-lint` runs it over every synthesised template).
const cfnLintMetadataKey = "cfn-lint"

// ignoreCfnLint makes cfn-lint skip the given rules on c's CloudFormation resource, and on no
// other. Only for a finding cfn-lint gets wrong (its resource schemas lag CloudFormation); the
// caller says why in a comment next to the call.
func ignoreCfnLint(c constructs.IConstruct, rules ...string) {
	c.Node().DefaultChild().(awscdk.CfnResource).AddMetadata(jsii.String(cfnLintMetadataKey),
		map[string]any{"config": map[string]any{"ignore_checks": rules}})
}

package stack

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestNoNagFindings: the cdk-nag packs (AddNagChecks) report no unsuppressed error or warning
// on any stack under test: default, prod (imported secret, segments), dev with segments, ops
// (WAF, alarm e-mail, the API Gateway CloudWatch role). An error also fails the synth in
// TestMain, with cdk-nag's report.
func TestNoNagFindings(t *testing.T) {
	for name, st := range map[string]*RetargetStack{"default": testStack, "prod": prodStack, "segments": segStack, "ops": opsStack, "http": httpStack} {
		t.Run(name, func(t *testing.T) {
			a := assertions.Annotations_FromStack(st.Stack)
			check(t, func() { a.HasNoError(jsii.String("*"), assertions.Match_AnyValue()) })
			check(t, func() { a.HasNoWarning(jsii.String("*"), assertions.Match_AnyValue()) })
		})
	}
}

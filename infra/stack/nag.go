package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// AddNagChecks runs the cdk-nag rule packs AwsSolutionsChecks and ServerlessChecks on every
// resource under scope at synth: a finding is an error or warning annotation (errors fail
// `cdk synth`). The infra tests and the CDK app both call it; every suppression is declared
// next to the resource it concerns (see suppress), narrowed to the rule and, where the rule
// allows it, the finding, and carries its reason.
func AddNagChecks(scope constructs.IConstruct) {
	props := &cdknag.NagPackProps{Verbose: jsii.Bool(true), Reports: jsii.Bool(false)}
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(props), nil)
	awscdk.Aspects_Of(scope).Add(cdknag.NewServerlessChecks(props), nil)
}

// nagRule is one suppressed cdk-nag rule: its id, the findings it covers (appliesTo, each a
// literal finding or a /regex/; nil = the whole rule on that resource) and why.
type nagRule struct {
	id        string
	appliesTo []string
	reason    string
}

// suppress records rule suppressions on one construct (its children excluded unless children).
func suppress(c constructs.IConstruct, children bool, rules ...nagRule) {
	out := make([]*cdknag.NagPackSuppression, 0, len(rules))
	for _, r := range rules {
		s := &cdknag.NagPackSuppression{Id: jsii.String(r.id), Reason: jsii.String(r.reason)}
		if r.appliesTo != nil {
			applies := make([]any, len(r.appliesTo))
			for i, a := range r.appliesTo {
				applies[i] = a
				if strings.HasPrefix(a, "/") { // an ECMA-262 regex, as cdk-nag takes it
					applies[i] = &cdknag.RegexAppliesTo{Regex: jsii.String(a)}
				}
			}
			s.AppliesTo = &applies
		}
		out = append(out, s)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &out, jsii.Bool(children))
}

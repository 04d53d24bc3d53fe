package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Where the CLI finds the pipeline it talks to. Each setting is taken from the first of:
//
//  1. the command's flag (--table, --stream, --url, ...);
//  2. the environment (AWS_ENDPOINT_URL_<SERVICE>, STATE_TABLE_NAME, RETARGET_API_URL, ...);
//  3. with --stack NAME, the outputs of that deployed CloudFormation stack;
//  4. else the running dev stack's endpoints file: --dev-dir DIR/endpoints.json, or
//     .dev/endpoints.json found from the working directory up to the module root.
//
// Sources 3 and 4 are alternatives, never mixed: --stack means a deployed stack. Both are
// turned into the variables of source 2 (see devSettings and stackSettings) and consulted
// after the real environment, so every command reads its settings in one way, c.getenv.

// serviceCloudFormation is the service id of AWS_ENDPOINT_URL_CLOUDFORMATION.
const serviceCloudFormation = "CLOUDFORMATION"

// Output names of the stack (infra/stack, Output*): the contract --stack reads. The CLI does
// not import infra/stack, which would compile the CDK into it; TestStackOutputNamesMatchTheStack
// keeps the names equal.
const (
	outputAPIURL         = "ApiUrl"
	outputStream         = "EventStreamName"
	outputPepperSecret   = "PepperSecretArn"
	outputMetaSecret     = "MetaSecretArn"
	outputDeadLetterURL  = "DeadLetterQueueUrl"
	outputStateTableName = "StateTableName"
	// Outputs of stacks deployed with two Meta version settings.
	outputMetaCapiVersion      = "MetaCapiVersion"
	outputMetaMarketingVersion = "MetaMarketingVersion"
	// The event archive's bucket, on stacks deployed with the archive.
	outputArchiveBucket = "ArchiveBucketName"
)

// stackOutputs maps the stack outputs to the CLI's settings. Required outputs are on every
// stack; the state table only on one deployed with segments.
var stackOutputs = []struct {
	output, env string
	required    bool
}{
	{outputAPIURL, envAPIURL, true},
	{outputStream, env.StreamName, true},
	{outputPepperSecret, env.PepperSecretID, true},
	{outputMetaSecret, env.MetaSecretID, true},
	{outputDeadLetterURL, env.DeadLetterQueueURL, true},
	{outputStateTableName, env.StateTableName, false},
	{outputMetaCapiVersion, env.CAPIVersion, false},
	{outputMetaMarketingVersion, env.MarketingVersion, false},
	{outputEventBus, envEventBus, false},                // stacks with channels
	{outputArchiveBucket, env.ArchiveBucketName, false}, // stacks with the archive
}

// target is where the settings that neither a flag nor the environment gives come from.
type target struct {
	// stack and devDir are the --stack and --dev-dir flags.
	stack, devDir string
	// wd is where the search for .dev/endpoints.json starts; "" searches nowhere (the tests'
	// in-process CLI, so a developer's running make dev cannot change what they see).
	wd string

	settings map[string]string // by environment variable name
	// missing says why settings is empty or lacks something, for the errors that need one
	// of them; "" when a source was found.
	missing string
}

// registerTargetFlags registers --stack and --dev-dir on a command's flags.
func (t *target) registerTargetFlags(fs *flag.FlagSet) {
	// StringVar stores the default: keep what leadingTargetFlags took.
	stack, devDir := t.stack, t.devDir
	defer func() { t.stack, t.devDir = stack, devDir }()
	fs.StringVar(&t.stack, "stack", "", "talk to the deployed CloudFormation stack `name` (its outputs; AWS credentials and region from the environment)")
	fs.StringVar(&t.devDir, "dev-dir", "", "the running dev stack's state `folder` holding "+devenv.EndpointsFile+" (default: "+devenv.Dir+" found from here up to the module root)")
}

// leadingTargetFlags takes --stack and --dev-dir given before the command name
// ("retarget --stack prod audiences status") off args.
func (t *target) leadingTargetFlags(args []string) ([]string, error) {
	for len(args) > 0 {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || (name != "stack" && name != "dev-dir") {
			return args, nil
		}
		args = args[1:]
		if !hasValue {
			if len(args) == 0 {
				return nil, usagef("", "flag needs an argument: -%s", name)
			}
			value, args = args[0], args[1:]
		}
		if name == "stack" {
			t.stack = value
		} else {
			t.devDir = value
		}
	}
	return args, nil
}

// resolveTarget reads the stack outputs (--stack) or the dev stack's endpoints file and puts
// them behind c.getenv. An explicit source that fails (--stack, --dev-dir) is an error; a
// dev stack that is simply not found is not, since many commands need none of it: the commands
// that do say so with targetHint.
func (c *cli) resolveTarget(ctx context.Context) error {
	t := &c.target
	switch {
	case t.stack != "":
		settings, err := c.stackSettings(ctx, t.stack)
		if err != nil {
			return err
		}
		t.settings = settings
	case t.devDir != "":
		e, err := devenv.ReadEndpoints(t.devDir)
		if err != nil {
			return err
		}
		t.settings = devSettings(e)
	case t.wd != "":
		e, err := devenv.FindEndpoints(t.wd)
		if err != nil {
			t.missing = err.Error()
			return nil
		}
		t.settings = devSettings(e)
	default:
		t.missing = "no dev stack endpoints file was looked for"
	}
	if len(t.settings) == 0 {
		return nil
	}
	environ := c.getenv
	c.getenv = func(k string) string {
		if v := environ(k); v != "" {
			return v
		}
		// AWS_ENDPOINT_URL sends every service somewhere: the found target must not override it.
		if strings.HasPrefix(k, "AWS_ENDPOINT_URL_") && environ("AWS_ENDPOINT_URL") != "" {
			return ""
		}
		return t.settings[k]
	}
	return nil
}

// targetHint completes an error about a setting nothing gave: how to point the CLI at a
// pipeline, and why the dev stack was not used if it was looked for.
func (c *cli) targetHint() string {
	t := &c.target
	switch {
	case t.stack != "":
		return fmt.Sprintf("stack %s does not give it", t.stack)
	case len(t.settings) > 0:
		return "the running dev stack does not give it"
	}
	hint := "or start make dev (the CLI then reads its " + filepath.Join(devenv.Dir, devenv.EndpointsFile) + ") or pass --stack NAME for a deployed stack"
	if t.missing != "" && t.wd != "" {
		hint += " (" + t.missing + ")"
	}
	return hint
}

// devSettings are the settings of a running dev stack, under the variables the CLI reads.
func devSettings(e *devenv.Endpoints) map[string]string {
	m := map[string]string{
		"AWS_ENDPOINT_URL_" + serviceKinesis:  e.Kinesis.Endpoint,
		"AWS_ENDPOINT_URL_" + serviceDynamoDB: e.DynamoDB.Endpoint,
		env.StreamName:                        e.Stream,
		env.StateTableName:                    e.Table,
		env.ConfigFile:                        e.ConfigFile,
		env.DeadLetterFile:                    e.DeadLetters,
		envAPIURL:                             e.APIURL,
		envAPIKey:                             e.APIKey,
		env.GraphURL:                          e.MetaSandboxURL,
		env.CAPIVersion:                       e.MetaCAPIVersion,
		env.MarketingVersion:                  e.MetaMarketingVersion,
		env.AccessToken:                       e.Credentials.MetaAccessToken,
		env.AppSecret:                         e.Credentials.MetaAppSecret,
		env.Pepper:                            e.Credentials.Pepper,
		devenv.EnvAdminAccessKeyID:            e.Credentials.AdminAccessKeyID,
		devenv.EnvAdminSecretAccessKey:        e.Credentials.AdminSecretAccessKey,
	}
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// stackSettings reads the outputs of the deployed stack name with DescribeStacks and returns
// them under the variables the CLI reads.
func (c *cli) stackSettings(ctx context.Context, name string) (map[string]string, error) {
	cfg, err := c.awsConfig(ctx, serviceCloudFormation)
	if err != nil {
		return nil, fmt.Errorf("--stack %s: %w", name, err)
	}
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationError" && strings.Contains(apiErr.ErrorMessage(), "does not exist") {
		return nil, fmt.Errorf("--stack %s: no such stack in region %s (check the name cdk deploy printed, and AWS_REGION / AWS_PROFILE)", name, cfg.Region)
	}
	if err != nil {
		return nil, fmt.Errorf("--stack %s: describe stack: %w", name, err)
	}
	if len(out.Stacks) == 0 {
		return nil, fmt.Errorf("--stack %s: no such stack in region %s", name, cfg.Region)
	}
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	settings := map[string]string{}
	var missing []string
	for _, so := range stackOutputs {
		v := outputs[so.output]
		switch {
		case v != "":
			settings[so.env] = v
		case so.required:
			missing = append(missing, so.output)
		}
	}
	if len(missing) > 0 {
		have := slices.Sorted(maps.Keys(outputs))
		return nil, fmt.Errorf("--stack %s (%s): no output %s: is it a Retarget stack (infra/stack), deployed with this version? Its outputs: %s",
			name, out.Stacks[0].StackStatus, strings.Join(missing, ", "), orNone(have))
	}
	return settings, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// workingDir is where main starts the search for the dev stack's endpoints file.
func workingDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	return wd
}

package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// Fixed values of the common environment.
const (
	// AppConfigPath is where the staged config.json lands in the function: Lambda unpacks the
	// code asset into /var/task.
	AppConfigPath = "/var/task/config.json"
	// MetricsNamespace is the CloudWatch namespace of the functions' EMF metrics.
	MetricsNamespace = "Retarget"
	defaultLogLevel  = "info"
	bootstrapFile    = "bootstrap"
	configFile       = "config.json"
)

// ErrBootstrapMissing means the prebuilt function binary is not where synth expects it.
var ErrBootstrapMissing = errors.New("function bootstrap not found: run `make build` first")

// GoFunctionProps configures a Go Lambda function built by `make build`.
type GoFunctionProps struct {
	// FunctionsDir holds one folder per function with its linux/arm64 `bootstrap`.
	FunctionsDir string
	// Name is the function's folder under FunctionsDir (and under functions/ in the repo).
	Name string
	// Config is the validated app config, staged next to the bootstrap as config.json.
	Config *appconfig.Config
	// Description of the function in the console.
	Description string
	// Environment is added to the common environment (APP_CONFIG_FILE, LOG_LEVEL,
	// METRICS_NAMESPACE); a key here overrides a common one.
	Environment map[string]*string
	// MemoryMiB defaults to 256.
	MemoryMiB float64
	// Timeout defaults to 10 seconds.
	Timeout awscdk.Duration
	// ReservedConcurrency caps the function's concurrent executions (and sets them aside from
	// the account's pool); 0 leaves it unset.
	ReservedConcurrency float64
	// LogRetention of the function's log group; defaults to one month.
	LogRetention awslogs.RetentionDays
	// LogRemovalPolicy of the function's log group; defaults to RETAIN.
	LogRemovalPolicy awscdk.RemovalPolicy
	// DeadLetterQueue receives asynchronous invocations that failed after Lambda's retries
	// (scheduled functions). Without it the function is invoked synchronously only (API,
	// event source mappings with their own on-failure destination): NoAsyncDeadLetters says
	// why, for the cdk-nag finding it answers.
	DeadLetterQueue    awssqs.IQueue
	NoAsyncDeadLetters string
}

// GoFunction is a provided.al2023 arm64 Lambda function running a prebuilt Go bootstrap, with
// JSON logs into its own log group and active X-Ray tracing.
type GoFunction struct {
	constructs.Construct
	// Function is the Lambda function; grant to it and wire event sources to it.
	Function awslambda.Function
	// LogGroup receives the function's logs.
	LogGroup awslogs.LogGroup
	// AssetDir is the staging directory synth zipped: the bootstrap plus config.json.
	AssetDir string
	// Role is the execution role: the function's log group, tracing, then what is granted.
	Role awsiam.Role
}

// NewGoFunction stages the function's code and declares the function. It panics with an error
// wrapping ErrBootstrapMissing when `make build` has not run.
func NewGoFunction(scope constructs.Construct, id string, props *GoFunctionProps) *GoFunction {
	if props == nil || props.Name == "" || props.FunctionsDir == "" || props.Config == nil {
		panic(errors.New("go function: Name, FunctionsDir and Config are required"))
	}
	c := constructs.NewConstruct(scope, jsii.String(id))
	// Staging under the app's output directory (cdk.out for `cdk synth`) keeps it next to the
	// asset.<hash> copy CDK makes of it, and out of the source tree.
	stagingDir := filepath.Join(*awscdk.Stage_Of(c).Outdir(), "staging", *awscdk.Stack_Of(c).ArtifactId(), props.Name)
	if err := StageFunctionAsset(props.FunctionsDir, props.Name, props.Config, stagingDir); err != nil {
		panic(err)
	}

	memory := props.MemoryMiB
	if memory == 0 {
		memory = 256
	}
	timeout := props.Timeout
	if timeout == nil {
		timeout = awscdk.Duration_Seconds(jsii.Number(10))
	}
	retention, removal := logDefaults(props.LogRetention, props.LogRemovalPolicy)

	logGroup := awslogs.NewLogGroup(c, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     retention,
		RemovalPolicy: removal,
	})
	env := map[string]*string{
		env.ConfigFile:       jsii.String(AppConfigPath),
		env.LogLevel:         jsii.String(defaultLogLevel),
		env.MetricsNamespace: jsii.String(MetricsNamespace),
	}
	for k, v := range props.Environment {
		env[k] = v
	}
	// The role is declared here rather than left to the function, which would attach the
	// managed AWSLambdaBasicExecutionRole (logs on every log group of the account): this one may
	// write to the function's own log group and nothing else until grants are added.
	role := awsiam.NewRole(c, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Execution role of the " + props.Name + " function"),
	})
	logGroup.Grant(role, jsii.String("logs:CreateLogStream"), jsii.String("logs:PutLogEvents"))
	fn := awslambda.NewFunction(c, jsii.String("Function"), &awslambda.FunctionProps{
		Role:                  role,
		Description:           optional(props.Description),
		Runtime:               awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:          awslambda.Architecture_ARM_64(),
		Handler:               jsii.String(bootstrapFile),
		Code:                  awslambda.Code_FromAsset(jsii.String(stagingDir), nil),
		MemorySize:            jsii.Number(memory),
		Timeout:               timeout,
		Environment:           &env,
		LoggingFormat:         awslambda.LoggingFormat_JSON,
		ApplicationLogLevelV2: awslambda.ApplicationLogLevel_INFO,
		LogGroup:              logGroup,
		Tracing:               awslambda.Tracing_ACTIVE,
		DeadLetterQueue:       props.DeadLetterQueue,
		// Left out of the template when unset: 0 would mean "never run".
		ReservedConcurrentExecutions: optionalNumber(props.ReservedConcurrency),
	})
	dropRoleFromDependsOn(fn, role)
	// Active tracing adds xray:PutTraceSegments and xray:PutTelemetryRecords on "*": X-Ray has
	// no resource-level permissions for them. The role's only "*" (the tests check the rest).
	suppress(role, true, nagRule{id: "AwsSolutions-IAM5", appliesTo: []string{"Resource::*"},
		reason: "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions; every other statement names its resources"})
	if props.DeadLetterQueue == nil {
		if props.NoAsyncDeadLetters == "" {
			panic(fmt.Errorf("go function %s: DeadLetterQueue or NoAsyncDeadLetters is required", props.Name))
		}
		suppress(fn, false, nagRule{id: "Serverless-LambdaDLQ", reason: props.NoAsyncDeadLetters})
	}
	return &GoFunction{Construct: c, Function: fn, LogGroup: logGroup, AssetDir: stagingDir, Role: role}
}

// dropRoleFromDependsOn keeps the function's DependsOn to what it adds: CDK makes a function
// depend on everything under its role, so that the role's policy (the grants) exists before
// the function and its event source mappings are created; the entry for the role itself only
// repeats the Role: GetAtt (cfn-lint W3005). The list is computed when the template is
// rendered, after every grant and dependency is known.
func dropRoleFromDependsOn(fn awslambda.Function, role awsiam.Role) {
	res := fn.Node().DefaultChild().(awscdk.CfnResource)
	roleRes := role.Node().DefaultChild().(awscdk.CfnResource)
	res.AddOverride(jsii.String("DependsOn"), awscdk.Lazy_UncachedAny(&dependsOnWithout{res: res, drop: roleRes}, nil))
}

// dependsOnWithout renders res's DependsOn as CDK does (logical ids ordered by construct path),
// less drop.
type dependsOnWithout struct {
	res, drop awscdk.CfnResource
}

// Produce implements awscdk.IAnyProducer. The list is never empty: the role always has its
// policy (the log grant).
func (d *dependsOnWithout) Produce(awscdk.IResolveContext) any {
	dropPath := *d.drop.Node().Path()
	var deps []awscdk.CfnResource
	for _, dep := range *d.res.ObtainDependencies() {
		// Dependencies on other stacks are not DependsOn entries.
		r, ok := dep.(awscdk.CfnResource)
		if !ok || *r.Node().Path() == dropPath || *awscdk.Stack_Of(r).Node().Path() != *awscdk.Stack_Of(d.res).Node().Path() {
			continue
		}
		deps = append(deps, r)
	}
	slices.SortFunc(deps, func(a, b awscdk.CfnResource) int { return strings.Compare(*a.Node().Path(), *b.Node().Path()) })
	ids := make([]*string, len(deps))
	for i, r := range deps {
		ids[i] = r.LogicalId()
	}
	return ids
}

// StageFunctionAsset fills dir (emptied first) with a copy of <functionsDir>/<name>/bootstrap
// and config.json, the validated config re-marshalled without its dev API key values
// (appconfig.Config.ForDeployment): the deployed function reads exactly the config that synth
// validated, and no key that API Gateway did not issue. The re-marshalled document is parsed again so a field that does
// not survive the round trip fails synth rather than the function's cold start.
func StageFunctionAsset(functionsDir, name string, cfg *appconfig.Config, dir string) error {
	src := filepath.Join(functionsDir, name, bootstrapFile)
	info, err := os.Stat(src)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w (missing %s)", ErrBootstrapMissing, src)
	case err != nil:
		return fmt.Errorf("stage %s: %w", name, err)
	case !info.Mode().IsRegular():
		return fmt.Errorf("%w (%s is not a regular file)", ErrBootstrapMissing, src)
	}
	data, err := json.MarshalIndent(cfg.ForDeployment(), "", "  ")
	if err != nil {
		return fmt.Errorf("stage %s: marshal config: %w", name, err)
	}
	if _, err := appconfig.Parse(data); err != nil {
		return fmt.Errorf("stage %s: config does not survive re-marshalling: %w", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	// Lambda runs bootstrap as an executable: the zip keeps the mode bits of the staged copy.
	if err := copyFile(src, filepath.Join(dir, bootstrapFile), 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, configFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// OpenFile's mode is filtered by the umask; the asset must be executable regardless.
	return os.Chmod(dst, mode)
}

// optional returns nil for "" so CDK leaves the property out of the template.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return jsii.String(s)
}

// optionalNumber returns nil for 0 so CDK leaves the property out of the template.
func optionalNumber(n float64) *float64 {
	if n == 0 {
		return nil
	}
	return jsii.Number(n)
}

// logDefaults fills in the log settings every log group of the stack shares: one month of
// retention and RETAIN unless the stage says otherwise.
func logDefaults(r awslogs.RetentionDays, p awscdk.RemovalPolicy) (awslogs.RetentionDays, awscdk.RemovalPolicy) {
	if r == "" {
		r = awslogs.RetentionDays_ONE_MONTH
	}
	if p == "" {
		p = awscdk.RemovalPolicy_RETAIN
	}
	return r, p
}

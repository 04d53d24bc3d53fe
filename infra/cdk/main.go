// Command infra is the retarget CDK app. Run it through the CDK CLI from the repository root
// (`make synth`, `make deploy`); cdk.json sets its context:
//
//	config           app config file (default infra/config/apps.json), validated before synth;
//	                 on the prod stage, an app with meta.test_event_code is warned about
//	stage            deployment stage and API Gateway stage name (default dev)
//	stackName        CloudFormation stack name (default Retarget)
//	functionsDir     prebuilt functions, <fn>/bootstrap (default build/lambda)
//	pepperSecretArn  reuse a retained pepper secret instead of creating one
//	apiGatewayCloudWatchRole  "true" to let the stack set the account's API Gateway logging role
//	metaSecretArn    reuse an existing Meta credentials secret instead of creating one
//	metaGraphUrl     Graph API base URL of the CAPI forwarder (default https://graph.facebook.com)
//	metaCapiVersion  Graph API version of the Conversions API calls (default v26.0)
//	metaMarketingVersion  Marketing API version of the Custom Audiences calls (default v27.0)
//	metaApiVersion   deprecated: the version of both where the two above are unset
//	forwarderReservedConcurrency  cap on concurrent CAPI forwarder invocations (default unset)
//	segments         "true" to declare the segment state (table, updater, sweeper, read route)
//	                 and the audience sync
//	userTtlDays      days an inactive user's segment state is kept (default 400)
//	sweepIntervalMinutes  minutes between segment sweeps (default 5)
//	audienceSyncIntervalMinutes  minutes between audience syncs (default 5)
//	api              front door: "rest" (default: REST API, API keys, usage plans, optional WAF)
//	                 or "http" (HTTP API: key authorizer, IAM, JWT authorizer, per-app limit in
//	                 the ingest function; infra/docs/front-door.md)
//	wafRateLimit     put a WAF web ACL in front of the API, blocking an IP above this many
//	                 requests per 5 minutes (default: no WAF)
//	alarmEmail       e-mail address subscribed to the alarm topic (default: none)
//	erasureTombstoneDays  days an erased user's hashed identifiers are kept for the audience
//	                 removals (default 30)
//	erasureAuditDays days erasure audit records are kept (default 1095)
//	streamShards     a provisioned event stream with this many shards (default: on-demand)
//	archive          "true" to declare the event archive (Firehose to Parquet in S3, the Glue
//	                 table; default: the value of segments)
//	archiveExpiryDays  days archive files are kept (default 730; 0: never deleted)
//
// Every synth runs the cdk-nag packs AwsSolutions and Serverless (stack.AddNagChecks): a finding
// fails it.
package main

import (
	"cmp"
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/infra/stack"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// stackID is the construct id, which also names the template: cdk.out/Retarget.template.json.
const stackID = "Retarget"

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		jsii.Close()
		os.Exit(1)
	}
}

func run() (err error) {
	// Constructs panic on invalid input (CDK's convention); report those like any other error.
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
				return
			}
			err = fmt.Errorf("%v", r)
		}
	}()

	app := awscdk.NewApp(nil)
	cfgPath := contextString(app, "config", "infra/config/apps.json")
	cfg, err := env.LoadApps(cfgPath)
	if err != nil {
		return err
	}

	reserved, err := contextInt(app, "forwarderReservedConcurrency")
	if err != nil {
		return err
	}
	ttlDays, err := contextInt(app, "userTtlDays")
	if err != nil {
		return err
	}
	sweepInterval, err := contextInt(app, "sweepIntervalMinutes")
	if err != nil {
		return err
	}
	syncInterval, err := contextInt(app, "audienceSyncIntervalMinutes")
	if err != nil {
		return err
	}
	wafRateLimit, err := contextInt(app, "wafRateLimit")
	if err != nil {
		return err
	}
	tombstoneDays, err := contextInt(app, "erasureTombstoneDays")
	if err != nil {
		return err
	}
	auditDays, err := contextInt(app, "erasureAuditDays")
	if err != nil {
		return err
	}
	shards, err := contextInt(app, "streamShards")
	if err != nil {
		return err
	}
	// The archive goes with the full product (segments on) unless set on its own.
	archive := contextString(app, "archive", contextString(app, "segments", "false")) == "true"
	archiveExpiry, err := strconv.Atoi(contextString(app, "archiveExpiryDays", strconv.Itoa(stack.DefaultArchiveExpiryDays)))
	if err != nil {
		return fmt.Errorf("context archiveExpiryDays: %w", err)
	}
	props := &stack.RetargetStackProps{
		StackProps: awscdk.StackProps{
			StackName: jsii.String(contextString(app, "stackName", stackID)),
			Env:       deployEnv(),
		},
		Config:                   cfg,
		FunctionsDir:             contextString(app, "functionsDir", stack.DefaultFunctionsDir),
		Stage:                    contextString(app, "stage", stack.DefaultStage),
		PepperSecretArn:          contextString(app, "pepperSecretArn", ""),
		ApiGatewayCloudWatchRole: contextString(app, "apiGatewayCloudWatchRole", "false") == "true",
		MetaSecretArn:            contextString(app, "metaSecretArn", ""),
		MetaGraphURL:             contextString(app, "metaGraphUrl", stack.DefaultMetaGraphURL),
		// -c metaApiVersion is the deprecated single setting: the version of both APIs unless
		// one is set on its own.
		MetaCAPIVersion:              cmp.Or(contextString(app, "metaCapiVersion", ""), contextString(app, "metaApiVersion", "")),
		MetaMarketingVersion:         cmp.Or(contextString(app, "metaMarketingVersion", ""), contextString(app, "metaApiVersion", "")),
		ForwarderReservedConcurrency: float64(reserved),
		SegmentsEnabled:              contextString(app, "segments", "false") == "true",
		UserTTLDays:                  float64(ttlDays),
		SweepIntervalMinutes:         float64(sweepInterval),
		AudienceSyncIntervalMinutes:  float64(syncInterval),
		WafRateLimit:                 float64(wafRateLimit),
		Api:                          contextString(app, "api", stack.ApiRest),
		SystemLogLevel:               contextString(app, "systemLogLevel", ""),
		ErasureTombstoneDays:         float64(tombstoneDays),
		ErasureAuditDays:             float64(auditDays),
		AlarmEmail:                   contextString(app, "alarmEmail", ""),
		StreamShards:                 float64(shards),
		ArchiveEnabled:               archive,
		ArchiveExpiryDays:            float64(archiveExpiry),
	}
	st := stack.NewRetargetStack(app, stackID, props)
	// A warning, not an error: a prod stack deliberately sending to Test Events for a while is
	// the operator's call. The CDK CLI prints annotation warnings; stderr says it once more for
	// `make synth`, which runs the CLI with --quiet.
	for _, w := range testCodeWarnings(st.Stage, cfg) {
		fmt.Fprintln(os.Stderr, "warning:", w)
		awscdk.Annotations_Of(st.Stack).AddWarningV2(jsii.String("retarget:testEventCodeInProd"), jsii.String(w), nil)
	}
	stack.AddNagChecks(app)
	app.Synth(nil)
	return nil
}

// contextString reads a string context value (`-c key=value` or cdk.json), or def if unset.
func contextString(app awscdk.App, key, def string) string {
	v := app.Node().TryGetContext(jsii.String(key))
	switch v := v.(type) {
	case nil:
		return def
	case string:
		if v == "" {
			return def
		}
		return v
	default:
		// cdk.json may hold a JSON bool or number (e.g. "apiGatewayCloudWatchRole": true).
		return fmt.Sprint(v)
	}
}

// contextInt reads a whole-number context value, or 0 if unset.
func contextInt(app awscdk.App, key string) (int, error) {
	s := contextString(app, key, "")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("context %s: %q is not a whole number", key, s)
	}
	return n, nil
}

// deployEnv pins account and region when the CLI knows them (credentials configured), and leaves
// the stack environment-agnostic otherwise, so synth works offline.
func deployEnv() *awscdk.Environment {
	account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION")
	if account == "" && region == "" {
		return nil
	}
	e := &awscdk.Environment{}
	if account != "" {
		e.Account = jsii.String(account)
	}
	if region != "" {
		e.Region = jsii.String(region)
	}
	return e
}

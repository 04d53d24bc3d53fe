package stack

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func ingestEnv(t *testing.T) map[string]any {
	t.Helper()
	return functionEnv(t, templ, testStack.Ingest.Ingest.Function)
}

// TestIngestAPI: the ingest function, its routes, the REST API and one key and usage plan per app,
// in the default stack; TestApiOperations checks the operational options of the ops stack.
func TestIngestAPI(t *testing.T) {
	stream := testStack.Events.Stream
	secret := testStack.Pepper.Secret
	ingest := testStack.Ingest
	fn := ingest.Ingest.Function

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"ingest function is provided.al2023 arm64 with JSON logs and tracing", func(t *testing.T) {
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Runtime":       "provided.al2023",
					"Architectures": []any{"arm64"},
					"Handler":       "bootstrap",
					"MemorySize":    256,
					"Timeout":       10,
					"TracingConfig": map[string]any{"Mode": "Active"},
					"LoggingConfig": map[string]any{
						"LogFormat":           "JSON",
						"ApplicationLogLevel": "INFO",
						"LogGroup":            ref(ingest.Ingest.LogGroup),
					},
				})
			})
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 30})
			})
		}},
		{"ingest environment is the contract", func(t *testing.T) {
			vars := ingestEnv(t)
			want := map[string]any{
				env.StreamName:       ref(stream),
				env.PepperSecretID:   ref(secret), // Ref of a secret is its ARN, never its value
				env.ConfigFile:       "/var/task/config.json",
				env.LogLevel:         "info",
				env.MetricsNamespace: "Retarget",
				env.APIKeyAppIDs:     vars[env.APIKeyAppIDs],
			}
			if _, ok := vars[env.APIKeyAppIDs]; !ok {
				t.Errorf("%s missing", env.APIKeyAppIDs)
			}
			gotJSON, _ := json.Marshal(vars)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("environment\n got %s\nwant %s", gotJSON, wantJSON)
			}
			if strings.Contains(string(gotJSON), "resolve:secretsmanager") || strings.Contains(string(gotJSON), "SecretString") {
				t.Errorf("environment carries a secret value: %s", gotJSON)
			}
		}},
		{"API_KEY_APP_IDS maps each key id to its app", func(t *testing.T) {
			got := renderJoin(t, ingestEnv(t)[env.APIKeyAppIDs])
			var mapping map[string]string
			if err := json.Unmarshal([]byte(got), &mapping); err != nil {
				t.Fatalf("%s is not a JSON object once resolved: %v\n%s", env.APIKeyAppIDs, err, got)
			}
			want := map[string]string{}
			for _, app := range testConfig.Apps {
				want["<"+logicalID(ingest.ApiKeys[app.ID])+">"] = app.ID
			}
			if fmt.Sprint(mapping) != fmt.Sprint(want) {
				t.Errorf("%s = %v, want %v", env.APIKeyAppIDs, mapping, want)
			}
		}},
		{"function may put records on the stream only and read the pepper", func(t *testing.T) {
			streamArn := getAtt(stream, "Arn")
			var putRecords, readSecret bool
			for _, st := range roleStatements(templ, fn.Role()) {
				id := st.policy
				actions := strings.Join(st.actions, " ")
				if strings.HasPrefix(actions, "xray:") {
					continue // tracing: PutTraceSegments and PutTelemetryRecords take no resource
				}
				if !strings.Contains(actions, "kinesis:") && !strings.Contains(actions, "secretsmanager:") {
					t.Errorf("policy %s: the ingest function may not %v", id, actions)
					continue
				}
				if fmt.Sprint(st.raw["Resource"]) == "*" || strings.Contains(actions, "*") {
					t.Errorf("policy %s: wildcard in %v", id, st.raw)
				}
				if strings.Contains(actions, "kinesis:GetRecords") || strings.Contains(actions, "kinesis:Delete") {
					t.Errorf("policy %s: producer can do more than write: %v", id, actions)
				}
				if strings.Contains(actions, "kinesis:PutRecords") {
					putRecords = true
					if fmt.Sprint(st.raw["Resource"]) != fmt.Sprint(streamArn) {
						t.Errorf("policy %s: PutRecords on %v, want %v", id, st.raw["Resource"], streamArn)
					}
				}
				if strings.Contains(actions, "secretsmanager:GetSecretValue") {
					readSecret = true
					if fmt.Sprint(st.raw["Resource"]) != fmt.Sprint(ref(secret)) {
						t.Errorf("policy %s: GetSecretValue on %v, want %v", id, st.raw["Resource"], ref(secret))
					}
				}
			}
			if !putRecords {
				t.Error("no policy allows kinesis:PutRecords")
			}
			if !readSecret {
				t.Error("no policy allows secretsmanager:GetSecretValue")
			}
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
					"Roles": []any{ref(fn.Role())},
				})
			})
		}},
		{"API: regional, compressed, traced, access logs without IPs, no account role", func(t *testing.T) {
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::RestApi"), map[string]any{
					"EndpointConfiguration":  map[string]any{"Types": []any{"REGIONAL"}},
					"MinimumCompressionSize": 1024,
					"BinaryMediaTypes":       assertions.Match_Absent(),
				})
			})
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::ApiGateway::Stage"), map[string]any{
					"StageName":      "dev",
					"TracingEnabled": true,
					"AccessLogSetting": map[string]any{
						"DestinationArn": assertions.Match_AnyValue(),
						"Format":         assertions.Match_StringLikeRegexp(jsii.String(`apiKeyId`)),
					},
				})
			})
			for id, st := range resources("AWS::ApiGateway::Stage") {
				dest, _ := json.Marshal(st["Properties"].(map[string]any)["AccessLogSetting"].(map[string]any)["DestinationArn"])
				if !strings.Contains(string(dest), `"`+logicalID(ingest.AccessLogs)+`"`) {
					t.Errorf("stage %s logs to %s, not the access log group", id, dest)
				}
			}
			if strings.Contains(accessLogFormat, "sourceIp") || strings.Contains(accessLogFormat, "userAgent") {
				t.Error("access log format carries personal data")
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(strings.ReplaceAll(accessLogFormat, "$context.error.messageString", `"x"`)), &line); err != nil {
				t.Errorf("access log format is not JSON: %v", err)
			}
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::Account"), jsii.Number(0)) })
		}},
		{"one key, usage plan and plan key per app", func(t *testing.T) {
			n := jsii.Number(float64(len(testConfig.Apps)))
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::ApiKey"), n) })
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::UsagePlan"), n) })
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::UsagePlanKey"), n) })
			for _, app := range testConfig.Apps {
				key, plan := ingest.ApiKeys[app.ID], ingest.UsagePlans[app.ID]
				if key == nil || plan == nil {
					t.Fatalf("app %s: no key or plan", app.ID)
				}
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::ApiGateway::ApiKey"), map[string]any{
						"Name": app.APIKey.Name, "Enabled": true, "Value": assertions.Match_Absent(),
					})
				})
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
						"Throttle":  map[string]any{"RateLimit": DefaultRateLimit, "BurstLimit": DefaultBurstLimit},
						"ApiStages": []any{map[string]any{"ApiId": ref(ingest.Api), "Stage": ref(ingest.Api.DeploymentStage())}},
					})
				})
				check(t, func() {
					template.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlanKey"), map[string]any{
						"KeyId": ref(key), "UsagePlanId": ref(plan), "KeyType": "API_KEY",
					})
				})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestApiOperations(t *testing.T) {
	api := opsStack.Ingest
	t.Run("usage plans: each app's throttle and quota from the config, defaults otherwise", func(t *testing.T) {
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
				"UsagePlanName": "shop-key", "Throttle": map[string]any{"RateLimit": 50, "BurstLimit": 100},
				"Quota": map[string]any{"Limit": 200000, "Period": "DAY"},
			})
		})
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
				"UsagePlanName": "game-key", "Throttle": map[string]any{"RateLimit": DefaultRateLimit, "BurstLimit": DefaultBurstLimit},
				"Quota": assertions.Match_Absent(),
			})
		})
	})
	t.Run("stage: throttled at the sum of the plans, X-Ray, execution logs (errors, no bodies) with the CloudWatch role", func(t *testing.T) {
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Stage"), map[string]any{
				"TracingEnabled": true,
				"MethodSettings": []any{map[string]any{
					"HttpMethod": "*", "ResourcePath": "/*", "DataTraceEnabled": false, "LoggingLevel": "ERROR",
					"ThrottlingRateLimit": 50 + DefaultRateLimit, "ThrottlingBurstLimit": 100 + DefaultBurstLimit,
				}},
			})
		})
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::ApiGateway::Stage"), map[string]any{
				"MethodSettings": []any{assertions.Match_ObjectLike(&map[string]any{"LoggingLevel": "OFF", "DataTraceEnabled": false})},
			})
		})
	})
	t.Run("POST /v1/events validates the body's shape and answers in the API's error shape", func(t *testing.T) {
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::RequestValidator"), map[string]any{
				"RestApiId": ref(api.Api), "ValidateRequestBody": true, "ValidateRequestParameters": true,
			})
		})
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Model"), map[string]any{
				"ContentType": "application/json",
				"Schema": map[string]any{
					"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "required": []any{"events"},
					"properties": map[string]any{"events": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}},
				},
			})
		})
		check(t, func() {
			opsTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
				"HttpMethod": "POST", "ApiKeyRequired": true, "RequestValidatorId": assertions.Match_AnyValue(),
				"RequestModels": map[string]any{"application/json": assertions.Match_AnyValue()},
			})
		})
		var body string
		for _, r := range resourcesIn(opsTempl, "AWS::ApiGateway::GatewayResponse") {
			p := r["Properties"].(map[string]any)
			if p["ResponseType"] == "BAD_REQUEST_BODY" && p["StatusCode"] == "400" {
				body = fmt.Sprint(p["ResponseTemplates"].(map[string]any)["application/json"])
			}
		}
		var doc map[string]string
		if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["error"] != appevent.BodyShapeMessage {
			t.Errorf("BAD_REQUEST_BODY template %q: want 400 {\"error\": ...}", body)
		}
	})
}

func TestAPIKeyAppIDsFitLambdaEnvironment(t *testing.T) {
	cfg := &appconfig.Config{Version: 1}
	for i := 0; i < 200; i++ {
		cfg.Apps = append(cfg.Apps, appconfig.App{ID: fmt.Sprintf("app-number-%03d", i)})
	}
	if n := apiKeyAppIDsSize(cfg); n <= maxAPIKeyAppIDsSize {
		t.Errorf("200 apps estimated at %d bytes, want above the %d limit", n, maxAPIKeyAppIDsSize)
	}
	if n, want := apiKeyAppIDsSize(testConfig), len(`{"0123456789":"shop-ios","0123456789":"game"}`); n < want {
		t.Errorf("estimate %d below the real size %d", n, want)
	}
}

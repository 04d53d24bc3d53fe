package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/access"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/handlers/keyauthorizer"
)

// wantHTTPAuthorization is a route's AuthorizationType on the HTTP door, by credential (the
// stack under test has one end-user issuer, so the native JWT authorizer).
var wantHTTPAuthorization = map[access.Credential]string{
	access.Public: "NONE", access.AppKey: "CUSTOM", access.EndUser: "JWT", access.IAM: "AWS_IAM",
}

// TestHttpRoutesFollowTheAccessTable: the HTTP door's authorization matrix. Every route of the
// access table is a route of the HTTP API with the authorization its credential takes (the
// key authorizer, the JWT authorizer, IAM, none), on the function the table names, with
// payload format 1.0; no other route exists.
func TestHttpRoutesFollowTheAccessTable(t *testing.T) {
	door := httpStack.HTTP
	keyAuth, jwtAuth := "", ""
	for id, a := range resourcesIn(httpTempl, "AWS::ApiGatewayV2::Authorizer") {
		switch a["Properties"].(map[string]any)["AuthorizerType"] {
		case "REQUEST":
			keyAuth = id
		case "JWT":
			jwtAuth = id
		}
	}
	if keyAuth == "" || jwtAuth == "" {
		t.Fatalf("authorizers: key %q, jwt %q", keyAuth, jwtAuth)
	}
	integrations := resourcesIn(httpTempl, "AWS::ApiGatewayV2::Integration")
	fns := map[string]string{access.FunctionIngest: logicalID(httpStack.Ingest.Ingest.Function),
		access.FunctionUsersAPI: logicalID(httpStack.Segments.Reader.Function)}
	routes := map[string]map[string]any{}
	for id, r := range resourcesIn(httpTempl, "AWS::ApiGatewayV2::Route") {
		p := r["Properties"].(map[string]any)
		key := fmt.Sprint(p["RouteKey"])
		if _, dup := routes[key]; dup {
			t.Errorf("%s declared twice", key)
		}
		routes[key] = p
		method, path, _ := strings.Cut(key, " ")
		route, ok := access.Find(method, path)
		if !ok {
			t.Errorf("route %s (%s) is not in the access table", key, id)
			continue
		}
		if got, want := p["AuthorizationType"], wantHTTPAuthorization[route.Credential]; got != want {
			t.Errorf("%s (%s): AuthorizationType %v, want %s", key, route.Credential, got, want)
		}
		wantAuthorizer := map[access.Credential]string{access.AppKey: keyAuth, access.EndUser: jwtAuth}[route.Credential]
		gotAuthorizer := ""
		if m, ok := p["AuthorizerId"].(map[string]any); ok {
			gotAuthorizer, _ = m["Ref"].(string)
		}
		if gotAuthorizer != wantAuthorizer {
			t.Errorf("%s: authorizer %v, want %q", key, p["AuthorizerId"], wantAuthorizer)
		}
		var integ map[string]any
		for id, in := range integrations {
			if target, _ := json.Marshal(p["Target"]); strings.Contains(string(target), `"`+id+`"`) {
				integ = in["Properties"].(map[string]any)
			}
		}
		if integ == nil {
			t.Errorf("%s: target %v is no integration of the template", key, p["Target"])
			continue
		}
		if integ["PayloadFormatVersion"] != "1.0" || integ["IntegrationType"] != "AWS_PROXY" {
			t.Errorf("%s: integration %v, want a Lambda proxy with payload 1.0", key, integ)
		}
		uri, _ := json.Marshal(integ["IntegrationUri"])
		if !strings.Contains(string(uri), `"`+fns[route.Function]+`"`) {
			t.Errorf("%s: integration %s, want function %s", key, uri, route.Function)
		}
		if door.Routes[key] == nil {
			t.Errorf("HttpFrontDoor.Routes[%q] missing", key)
		}
	}
	for _, r := range access.Routes {
		if _, ok := routes[RouteKey(r.Method, r.Path)]; !ok {
			t.Errorf("%s %s: no route", r.Method, r.Path)
		}
	}
	if len(routes) != len(access.Routes) {
		t.Errorf("%d routes, want %d", len(routes), len(access.Routes))
	}
}

// TestHttpAuthorizers: the key authorizer is cached by API Gateway on the key header alone for
// 300 s and answers in the simple format; the JWT authorizer takes the apps' one issuer and the
// union of their audiences.
func TestHttpAuthorizers(t *testing.T) {
	for _, a := range resourcesIn(httpTempl, "AWS::ApiGatewayV2::Authorizer") {
		p := a["Properties"].(map[string]any)
		switch p["AuthorizerType"] {
		case "REQUEST":
			want := map[string]any{"IdentitySource": []any{keyauthorizer.IdentitySource}, "AuthorizerResultTtlInSeconds": float64(keyauthorizer.CacheTTLSeconds),
				"EnableSimpleResponses": true, "AuthorizerPayloadFormatVersion": "2.0"}
			for k, v := range want {
				if !sameJSON(p[k], v) {
					t.Errorf("key authorizer %s = %v, want %v", k, p[k], v)
				}
			}
			uri, _ := json.Marshal(p["AuthorizerUri"])
			if !strings.Contains(string(uri), logicalID(httpStack.HTTP.KeyAuthorizer.Function)) {
				t.Errorf("key authorizer runs %s", uri)
			}
		case "JWT":
			want := map[string]any{"Issuer": "https://securetoken.google.com/acme", "Audience": []any{"acme-game", "acme-shop"}}
			if !sameJSON(p["JwtConfiguration"], want) || !sameJSON(p["IdentitySource"], []any{"$request.header.Authorization"}) {
				t.Errorf("JWT authorizer %v", p)
			}
		default:
			t.Errorf("unexpected authorizer %v", p)
		}
	}
	if KeyAuthorizerIdentitySource != keyauthorizer.IdentitySource || KeyAuthorizerCacheSeconds != keyauthorizer.CacheTTLSeconds {
		t.Error("the stack and the handler disagree on the authorizer's settings")
	}
}

// TestHttpDoorResources: no REST API, key or plan; the key secrets are generated (no value in
// the template) and readable by exactly the functions that map keys; the ingest function may
// only add to the rate table; the stage is throttled at the sum of the apps' limits.
func TestHttpDoorResources(t *testing.T) {
	for id, r := range httpTempl["Resources"].(map[string]any) {
		typ := fmt.Sprint(r.(map[string]any)["Type"])
		if strings.HasPrefix(typ, "AWS::ApiGateway::") || strings.HasPrefix(typ, "AWS::WAFv2::") {
			t.Errorf("%s: %s on the HTTP door", id, typ)
		}
	}
	secrets := resourcesIn(httpTempl, "AWS::SecretsManager::Secret")
	keySecrets := 0
	for _, s := range secrets {
		p := s["Properties"].(map[string]any)
		gen, _ := p["GenerateSecretString"].(map[string]any)
		if gen["GenerateStringKey"] != "key" {
			continue
		}
		keySecrets++
		if p["SecretString"] != nil || s["DeletionPolicy"] != "Retain" {
			t.Errorf("key secret %v", s)
		}
	}
	if keySecrets != len(httpConfig.Apps) {
		t.Errorf("%d key secrets, want one per app (%d)", keySecrets, len(httpConfig.Apps))
	}
	raw, _ := json.Marshal(httpTempl)
	for _, app := range httpConfig.Apps {
		if v := app.APIKey.DevValue; v != "" && strings.Contains(string(raw), v) {
			t.Errorf("the template holds app %s's dev key", app.ID)
		}
	}
	door := httpStack.HTTP
	for name, fn := range map[string]*GoFunction{"key authorizer": door.KeyAuthorizer, "ingest": httpStack.Ingest.Ingest} {
		vars := functionEnv(t, httpTempl, fn.Function)
		if vars["APP_KEY_SECRETS"] == nil {
			t.Errorf("%s: no APP_KEY_SECRETS", name)
		}
		reads := allowedActions(t, httpTempl, fn.Function.Role())["secretsmanager:GetSecretValue"]
		for _, app := range httpConfig.Apps {
			if !slices.ContainsFunc(reads, func(r any) bool { return sameJSON(r, ref(door.KeySecrets[app.ID])) }) {
				t.Errorf("%s cannot read %s's key secret: %v", name, app.ID, reads)
			}
		}
	}
	if functionEnv(t, httpTempl, httpStack.Segments.Reader.Function)["APP_KEY_SECRETS"] == nil {
		t.Error("users function: no APP_KEY_SECRETS")
	}
	ingestActions := allowedActions(t, httpTempl, httpStack.Ingest.Ingest.Function.Role())
	if got := ingestActions["dynamodb:UpdateItem"]; len(got) != 1 || !sameJSON(got[0], getAtt(door.RateTable, "Arn")) {
		t.Errorf("ingest UpdateItem on %v, want the rate table only", got)
	}
	for a := range ingestActions {
		if strings.HasPrefix(a, "dynamodb:") && a != "dynamodb:UpdateItem" {
			t.Errorf("ingest may %s", a)
		}
	}
	if v := functionEnv(t, httpTempl, httpStack.Ingest.Ingest.Function)["RATE_TABLE_NAME"]; !sameJSON(v, ref(door.RateTable)) {
		t.Errorf("RATE_TABLE_NAME = %v", v)
	}
	for _, s := range resourcesIn(httpTempl, "AWS::ApiGatewayV2::Stage") {
		p := s["Properties"].(map[string]any)
		// shop 50/100, game and tool the defaults 500/1000.
		want := map[string]any{"ThrottlingRateLimit": 1050.0, "ThrottlingBurstLimit": 2100.0}
		if !sameJSON(p["DefaultRouteSettings"], want) || p["StageName"] != DefaultStage || p["AccessLogSettings"] == nil {
			t.Errorf("stage %v", p)
		}
	}
	check(t, func() {
		httpTemplate.HasOutput(jsii.String(OutputApiUrl), map[string]any{})
		httpTemplate.HasOutput(jsii.String(OutputAppKeySecrets), map[string]any{})
		httpTemplate.HasOutput(jsii.String(OutputBackendPolicyArn), map[string]any{"Value": ref(door.BackendPolicy)})
	})
}

// TestHttpBackendPolicy: execute-api:Invoke on exactly the IAM routes of the HTTP API's stage.
func TestHttpBackendPolicy(t *testing.T) {
	p := resourcesIn(httpTempl, "AWS::IAM::ManagedPolicy")[logicalID(httpStack.HTTP.BackendPolicy)]
	if p == nil {
		t.Fatal("no backend policy")
	}
	var got, want []string
	for _, s := range p["Properties"].(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
		for _, r := range s.(map[string]any)["Resource"].([]any) {
			got = append(got, renderJoin(t, r))
		}
	}
	for _, r := range access.Routes {
		if r.Credential == access.IAM {
			want = append(want, fmt.Sprintf("arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<%s>/%s/%s%s",
				logicalID(httpStack.HTTP.Api), DefaultStage, r.Method, executeApiPath(r.Path)))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("backend policy\n got %q\nwant %q", got, want)
	}
}

func TestEndUserJWTFor(t *testing.T) {
	eu := func(iss string, algs ...string) appconfig.Auth {
		return appconfig.Auth{EndUser: &appconfig.EndUserAuth{Issuer: iss, Audiences: []string{iss + "-aud"}, Algorithms: algs}}
	}
	for name, tt := range map[string]struct {
		auths  []appconfig.Auth
		native bool
		why    string
	}{
		"one issuer":         {[]appconfig.Auth{eu("https://a"), {}, eu("https://a", "RS512")}, true, ""},
		"two issuers":        {[]appconfig.Auth{eu("https://a"), eu("https://b")}, false, "different end-user issuers"},
		"elliptic curve":     {[]appconfig.Auth{eu("https://a", "ES256")}, false, "ES256"},
		"no end-user tokens": {[]appconfig.Auth{{}, {}}, false, "no app has end-user tokens"},
	} {
		cfg := &appconfig.Config{}
		for i, a := range tt.auths {
			cfg.Apps = append(cfg.Apps, appconfig.App{ID: fmt.Sprintf("app%d", i), Auth: a})
		}
		got := EndUserJWTFor(cfg)
		if got.Native != tt.native || !strings.Contains(got.Why, tt.why) {
			t.Errorf("%s: %+v, want native %v, why %q", name, got, tt.native, tt.why)
		}
		if got.Native && (got.Issuer != "https://a" || !slices.Equal(got.Audiences, []string{"https://a-aud"})) {
			t.Errorf("%s: issuer %q audiences %q", name, got.Issuer, got.Audiences)
		}
	}
}

// TestHttpTemplateCfnLint runs AWS's CloudFormation linter over the HTTP door's template, as
// `make cfn-lint` does over the default synth: errors and warnings fail. Skipped where cfn-lint
// is not installed (CI installs it).
func TestHttpTemplateCfnLint(t *testing.T) {
	if out := os.Getenv("RETARGET_DUMP_HTTP_TEMPLATE"); out != "" {
		raw, _ := json.MarshalIndent(httpTemplate.ToJSON(), "", " ")
		_ = os.WriteFile(out, raw, 0o644)
	}
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint not on PATH")
	}
	raw, err := json.Marshal(httpTemplate.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "Http.template.json")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, file).CombinedOutput(); err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}

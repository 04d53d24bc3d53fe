package stack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/access"
)

// templateMethod is one AWS::ApiGateway::Method of a template with the path of its resource.
type templateMethod struct {
	id    string
	path  string
	props map[string]any
}

// templateMethods returns every method of tpl by "METHOD /path", the path rebuilt from the
// resources' PathPart and ParentId up to the API's root.
func templateMethods(t *testing.T, tpl map[string]any) map[string]templateMethod {
	t.Helper()
	all := tpl["Resources"].(map[string]any)
	var pathOf func(id string) string
	pathOf = func(id string) string {
		r, ok := all[id].(map[string]any)
		if !ok || r["Type"] != "AWS::ApiGateway::Resource" {
			t.Fatalf("%s is not an API Gateway resource of the template", id)
		}
		p := r["Properties"].(map[string]any)
		part := fmt.Sprint(p["PathPart"])
		parent := p["ParentId"].(map[string]any)
		if ga, ok := parent["Fn::GetAtt"].([]any); ok && ga[1] == "RootResourceId" {
			return "/" + part
		}
		return pathOf(fmt.Sprint(parent["Ref"])) + "/" + part
	}
	out := map[string]templateMethod{}
	for id, r := range resourcesIn(tpl, "AWS::ApiGateway::Method") {
		p := r["Properties"].(map[string]any)
		resID, ok := p["ResourceId"].(map[string]any)["Ref"].(string)
		if !ok {
			t.Fatalf("method %s is on the API's root: %v", id, p["ResourceId"])
		}
		key := RouteKey(fmt.Sprint(p["HttpMethod"]), pathOf(resID))
		if prev, dup := out[key]; dup {
			t.Errorf("%s declared twice: %s and %s", key, prev.id, id)
		}
		out[key] = templateMethod{id: id, path: pathOf(resID), props: p}
	}
	return out
}

// wantAuthorizationType is the method's AuthorizationType in the template for a credential.
func wantAuthorizationType(c access.Credential) string {
	if c == access.IAM {
		return "AWS_IAM"
	}
	return "NONE"
}

// executeApiPath is an IAM route's resource path in an execute-api ARN: each path parameter
// becomes "*".
func executeApiPath(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, "/")
}

// routeStacks are the stacks under test with their templates and whether they declare the
// segment state (the users-api routes).
func routeStacks() map[string]routeStack {
	return map[string]routeStack{
		"default":  {testStack, template, templ, false},
		"prod":     {prodStack, prodTemplate, prodTempl, true},
		"segments": {segStack, segTemplate, segTempl, true},
		"ops":      {opsStack, opsTemplate, opsTempl, true},
	}
}

type routeStack struct {
	st       *RetargetStack
	template assertions.Template
	tpl      map[string]any
	users    bool
}

// TestApiRoutesFollowTheAccessTable: in every stack under test, each method has the
// authorization type, API key requirement and function the access table gives its route, and
// each route of the table is there (the users-api ones only with the segment state).
func TestApiRoutesFollowTheAccessTable(t *testing.T) {
	for name, tc := range routeStacks() {
		t.Run(name, func(t *testing.T) {
			methods := templateMethods(t, tc.tpl)
			fns := map[string]awslambda.IFunction{access.FunctionIngest: tc.st.Ingest.Ingest.Function}
			if tc.users {
				fns[access.FunctionUsersAPI] = tc.st.Segments.Reader.Function
			}
			for key, m := range methods {
				route, ok := access.Find(fmt.Sprint(m.props["HttpMethod"]), m.path)
				if !ok {
					t.Errorf("%s (%s) is not in the access table", key, m.id)
					continue
				}
				if got, want := m.props["AuthorizationType"], wantAuthorizationType(route.Credential); got != want {
					t.Errorf("%s (%s): AuthorizationType %v, want %s", key, route.Credential, got, want)
				}
				if got, want := m.props["ApiKeyRequired"], route.Credential.NeedsAppKey(); got != want {
					t.Errorf("%s (%s): ApiKeyRequired %v, want %v", key, route.Credential, got, want)
				}
				if m.props["AuthorizerId"] != nil {
					t.Errorf("%s: authorizer %v; no route has one", key, m.props["AuthorizerId"])
				}
				integ := m.props["Integration"].(map[string]any)
				if integ["Type"] != "AWS_PROXY" || integ["IntegrationHttpMethod"] != "POST" {
					t.Errorf("%s: integration %v, want a Lambda proxy", key, integ)
				}
				fn, ok := fns[route.Function]
				if !ok {
					t.Errorf("%s is declared although its function %s is not", key, route.Function)
					continue
				}
				uri, _ := json.Marshal(integ["Uri"])
				want, _ := json.Marshal(getAtt(fn, "Arn"))
				if !strings.Contains(string(uri), string(want)) {
					t.Errorf("%s: integration %s, want function %s (%s)", key, uri, route.Function, want)
				}
			}
			for _, route := range access.Routes {
				key := RouteKey(route.Method, route.Path)
				_, declared := methods[key]
				_, ok := fns[route.Function]
				if declared != ok {
					t.Errorf("%s (function %s): declared %v, want %v", key, route.Function, declared, ok)
				}
				if m, inMap := tc.st.Routes.Methods[key]; inMap != ok {
					t.Errorf("ApiRoutes.Methods[%q] present %v, want %v", key, inMap, ok)
				} else if inMap && *m.Resource().Path() != route.Path {
					t.Errorf("ApiRoutes.Methods[%q] is on %s", key, *m.Resource().Path())
				}
			}
		})
	}
}

// TestApiRoutesResources: the resource tree and the functions' invoke permissions, the body
// check on both event routes, and the keys opening every route.
func TestApiRoutesResources(t *testing.T) {
	ingest := testStack.Ingest
	methods := testStack.Routes.Methods
	events, health := methods[RouteKey("POST", access.PathEvents)], methods[RouteKey("GET", access.PathHealth)]

	t.Run("routes: POST /v1/events with key, GET /v1/health and GET /v1/openapi.json without", func(t *testing.T) {
		// POST events (key), POST server/events (IAM), GET health, GET openapi.json.
		check(t, func() { template.ResourceCountIs(jsii.String("AWS::ApiGateway::Method"), jsii.Number(4)) })
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{"PathPart": "openapi.json"})
		})
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
				"HttpMethod": "GET", "ApiKeyRequired": false,
				"Integration": map[string]any{"Uri": map[string]any{"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{getAtt(ingest.Ingest.Function, "Arn")})}}},
			})
		})
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{
				"PathPart": "events", "ParentId": ref(events.Resource().ParentResource()),
			})
		})
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{
				"PathPart": "v1", "ParentId": getAtt(ingest.Api, "RootResourceId"),
			})
		})
		if v1 := logicalID(ingest.V1Resource); logicalID(events.Resource().ParentResource()) != v1 {
			t.Errorf("/v1/events is not under IngestApi.V1Resource %s", v1)
		}
		proxy := map[string]any{"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST"}
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
				"HttpMethod": "POST", "ResourceId": ref(events.Resource()),
				"ApiKeyRequired": true, "Integration": proxy,
			})
		})
		check(t, func() {
			template.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
				"HttpMethod": "GET", "ResourceId": ref(health.Resource()),
				"ApiKeyRequired": false, "Integration": proxy,
			})
		})
	})

	t.Run("both event routes validate the body against the events model", func(t *testing.T) {
		for _, tc := range routeStacks() {
			for _, path := range []string{access.PathEvents, access.PathServerEvents} {
				m := tc.st.Routes.Methods[RouteKey("POST", path)]
				api := tc.st.Ingest
				check(t, func() {
					tc.template.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
						"HttpMethod": "POST", "ResourceId": ref(m.Resource()),
						"RequestValidatorId": ref(api.BodyValidator),
						"RequestModels":      map[string]any{"application/json": ref(api.EventsBodyModel)},
					})
				})
			}
		}
		// The other routes take no body model.
		for key, m := range templateMethods(t, segTempl) {
			if eventsBodyRoutes[key] {
				continue
			}
			if m.props["RequestModels"] != nil || m.props["RequestValidatorId"] != nil {
				t.Errorf("%s validates a body: %v %v", key, m.props["RequestValidatorId"], m.props["RequestModels"])
			}
		}
	})

	t.Run("segment state: the users and me routes on the users function, with its invoke permission", func(t *testing.T) {
		s := segStack.Segments
		seg := segStack.Routes.Methods
		// POST events, POST server/events, GET health, GET openapi.json, and the users-api
		// routes: three under /v1/users (IAM), three under /v1/me (end user), the report (IAM).
		check(t, func() { segTemplate.ResourceCountIs(jsii.String("AWS::ApiGateway::Method"), jsii.Number(11)) })
		check(t, func() {
			segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
				"HttpMethod": "GET", "ResourceId": ref(seg[RouteKey("GET", access.PathReportsAudiences)].Resource()),
				"ApiKeyRequired": true, "AuthorizationType": "AWS_IAM",
				"Integration": map[string]any{"Uri": map[string]any{"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{getAtt(s.Reader.Function, "Arn")})}}},
			})
		})
		for _, p := range []string{access.PathUserSegments, access.PathMeSegments} {
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Method"), map[string]any{
					"HttpMethod": "GET", "ResourceId": ref(seg[RouteKey("GET", p)].Resource()), "ApiKeyRequired": true,
					"Integration": map[string]any{
						"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST",
						"Uri": map[string]any{"Fn::Join": []any{"", assertions.Match_ArrayWith(&[]any{getAtt(s.Reader.Function, "Arn")})}},
					},
				})
			})
		}
		check(t, func() {
			segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{
				"PathPart": "{app_user_id}", "ParentId": ref(seg[RouteKey("GET", access.PathUserSegments)].Resource().ParentResource().ParentResource()),
			})
		})
		check(t, func() {
			segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::Resource"), map[string]any{
				"PathPart": "me", "ParentId": ref(segStack.Ingest.V1Resource),
			})
		})
		check(t, func() {
			segTemplate.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), map[string]any{
				"Action": "lambda:InvokeFunction", "FunctionName": getAtt(s.Reader.Function, "Arn"),
				"Principal": "apigateway.amazonaws.com",
			})
		})
		// The apps' usage plans cover the stage, so the same keys open every route.
		ingest := segStack.Ingest
		for _, app := range testConfig.Apps {
			check(t, func() {
				segTemplate.HasResourceProperties(jsii.String("AWS::ApiGateway::UsagePlan"), map[string]any{
					"UsagePlanName": app.APIKey.Name,
					"ApiStages":     []any{map[string]any{"ApiId": ref(ingest.Api), "Stage": ref(ingest.Api.DeploymentStage())}},
				})
			})
		}
		check(t, func() {
			segTemplate.ResourceCountIs(jsii.String("AWS::ApiGateway::ApiKey"), jsii.Number(float64(len(testConfig.Apps))))
		})
	})

	t.Run("no segment state: no /v1/users, /v1/me or /v1/reports resource", func(t *testing.T) {
		for id, r := range resources("AWS::ApiGateway::Resource") {
			if part := r["Properties"].(map[string]any)["PathPart"]; part == "users" || part == "me" || part == "reports" {
				t.Errorf("default stack has resource %s (%v)", id, part)
			}
		}
	})
}

// TestBackendPolicy: the managed policy allows execute-api:Invoke on exactly the IAM routes of
// the stage, is attached to nothing (users attach it to their backend's role) and is output.
func TestBackendPolicy(t *testing.T) {
	for name, tc := range routeStacks() {
		t.Run(name, func(t *testing.T) {
			policies := resourcesIn(tc.tpl, "AWS::IAM::ManagedPolicy")
			id := logicalID(tc.st.Routes.BackendPolicy)
			p, ok := policies[id]
			if !ok {
				t.Fatalf("no managed policy %s among %d", id, len(policies))
			}
			props := p["Properties"].(map[string]any)
			for _, k := range []string{"Roles", "Users", "Groups"} {
				if props[k] != nil {
					t.Errorf("backend policy attached to %s %v", k, props[k])
				}
			}
			var want []string
			for _, r := range access.Routes {
				if r.Credential != access.IAM {
					continue
				}
				if r.Function == access.FunctionUsersAPI && tc.st.Segments == nil {
					continue
				}
				// A stack with a literal region (ops) gets it, and the partition, in its ARNs.
				partition, region := "<AWS::Partition>", "<AWS::Region>"
				if rg := *tc.st.Region(); !strings.HasPrefix(rg, "${Token") {
					partition, region = "aws", rg
				}
				want = append(want, fmt.Sprintf("arn:%s:execute-api:%s:<AWS::AccountId>:<%s>/%s/%s%s",
					partition, region, logicalID(tc.st.Ingest.Api), tc.st.Stage, r.Method, executeApiPath(r.Path)))
			}
			stmts := props["PolicyDocument"].(map[string]any)["Statement"].([]any)
			var got []string
			for _, s := range stmts {
				st := s.(map[string]any)
				if st["Effect"] != "Allow" || st["Condition"] != nil || !sameJSON(st["Action"], "execute-api:Invoke") {
					t.Errorf("statement %v: want Allow execute-api:Invoke, no condition", st)
				}
				res, isList := st["Resource"].([]any)
				if !isList {
					res = []any{st["Resource"]}
				}
				for _, r := range res {
					got = append(got, renderJoin(t, r))
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("backend policy resources\n got %q\nwant %q", got, want)
			}
			check(t, func() {
				tc.template.HasOutput(jsii.String(OutputBackendPolicyArn), map[string]any{"Value": ref(tc.st.Routes.BackendPolicy)})
			})
		})
	}
}

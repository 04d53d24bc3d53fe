package samlocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/infra/stack"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// What this file reads of a synthesised template, the way SAM CLI reads it.

// cfnTemplate is the part of a CloudFormation template the test reads.
type cfnTemplate struct {
	Resources map[string]cfnResource `json:"Resources"`
}

// cfnResource is one resource of a template.
type cfnResource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Metadata   map[string]any `json:"Metadata"`
}

// Template metadata the CDK writes when aws:cdk:enable-asset-metadata is on (the CDK CLI's
// default): SAM CLI replaces the property named by assetPropertyKey with the local folder named
// by assetPathKey, relative to the template's folder.
const (
	assetPathKey     = "aws:asset:path"
	assetPropertyKey = "aws:asset:property"
	lambdaType       = "AWS::Lambda::Function"
	// lambdaTaskRoot is where Lambda, and SAM's container, puts the function's code.
	lambdaTaskRoot = "/var/task"
)

// lambdaFunction is one AWS::Lambda::Function of the template, resolved for a local run.
type lambdaFunction struct {
	// LogicalID is the resource's id in the template, which `sam local invoke` accepts.
	LogicalID string
	// Name is the function's folder under functions/ and events/.
	Name string
	// AssetDir is the code folder (aws:asset:path): what SAM mounts at /var/task.
	AssetDir string
	// Runtime and Handler as the template declares them.
	Runtime, Handler string
	// MemoryMiB and TimeoutSeconds as the template declares them (0 when absent).
	MemoryMiB, TimeoutSeconds int
	// Variables are Environment.Variables as they appear in the template: strings, or
	// intrinsic functions ({"Ref": ...}, {"Fn::Join": ...}).
	Variables map[string]any
}

// Bootstrap is the executable the provided.* runtimes start: <code>/bootstrap.
func (f lambdaFunction) Bootstrap() string { return filepath.Join(f.AssetDir, "bootstrap") }

// readTemplate reads a template file.
func readTemplate(path string) (*cfnTemplate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tpl cfnTemplate
	if err := json.Unmarshal(raw, &tpl); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &tpl, nil
}

// lambdaFunctions returns every AWS::Lambda::Function of tpl (in logical id order), with its
// code resolved through aws:asset:path against templateDir as SAM CLI does, and its name from
// names (logical id -> folder under functions/). A function without asset metadata, with a
// runtime other than a custom one (bootstrap), or missing from names is an error: the test
// could not run it as SAM would.
func lambdaFunctions(tpl *cfnTemplate, templateDir string, names map[string]string) ([]lambdaFunction, error) {
	ids := make([]string, 0, len(tpl.Resources))
	for id, r := range tpl.Resources {
		if r.Type == lambdaType {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var out []lambdaFunction
	var errs []error
	for _, id := range ids {
		fn, err := resolveFunction(id, tpl.Resources[id], templateDir, names)
		if err != nil {
			errs = append(errs, fmt.Errorf("function %s: %w", id, err))
			continue
		}
		out = append(out, fn)
	}
	return out, errors.Join(errs...)
}

func resolveFunction(id string, r cfnResource, templateDir string, names map[string]string) (lambdaFunction, error) {
	fn := lambdaFunction{LogicalID: id}
	path, _ := r.Metadata[assetPathKey].(string)
	if path == "" {
		return fn, fmt.Errorf("no %q metadata: SAM could not find its code (synthesise with aws:cdk:enable-asset-metadata)", assetPathKey)
	}
	if prop, _ := r.Metadata[assetPropertyKey].(string); prop != "Code" {
		return fn, fmt.Errorf("%s is %q, want \"Code\"", assetPropertyKey, prop)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(templateDir, path)
	}
	if info, err := os.Stat(path); err != nil || !info.IsDir() {
		return fn, fmt.Errorf("asset %s is not a folder (%v)", path, err)
	}
	fn.AssetDir = path

	name, ok := names[id]
	if !ok {
		return fn, errors.New("no function folder is mapped to this logical id: add it to goFunctions in samlocal_test.go, with fixtures under events/")
	}
	fn.Name = name
	fn.Runtime, _ = r.Properties["Runtime"].(string)
	fn.Handler, _ = r.Properties["Handler"].(string)
	if !strings.HasPrefix(fn.Runtime, "provided") {
		return fn, fmt.Errorf("runtime %q: only custom runtimes (a bootstrap executable) run here", fn.Runtime)
	}
	if mem, ok := r.Properties["MemorySize"].(float64); ok {
		fn.MemoryMiB = int(mem)
	}
	if timeout, ok := r.Properties["Timeout"].(float64); ok {
		fn.TimeoutSeconds = int(timeout)
	}
	if env, ok := r.Properties["Environment"].(map[string]any); ok {
		fn.Variables, _ = env["Variables"].(map[string]any)
	}
	return fn, nil
}

// runtimeEnv is what SAM's container sets for every function besides the template's variables
// (the emulator reads the AWS_LAMBDA_FUNCTION_* ones for the context and deadline it hands the
// runtime).
func runtimeEnv(fn lambdaFunction) []string {
	env := []string{
		"AWS_LAMBDA_FUNCTION_NAME=" + fn.LogicalID,
		"AWS_LAMBDA_FUNCTION_HANDLER=" + fn.Handler,
		"_HANDLER=" + fn.Handler,
		"LAMBDA_TASK_ROOT=" + fn.AssetDir,
	}
	if fn.MemoryMiB > 0 {
		env = append(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(fn.MemoryMiB))
	}
	if fn.TimeoutSeconds > 0 {
		env = append(env, "AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(fn.TimeoutSeconds))
	}
	return env
}

// standIns turns a function's template environment into a local one, as a developer does with
// `sam local invoke --env-vars`: SAM passes the template's plain values and cannot resolve
// intrinsic functions. Plain values pass unchanged except the few in overrides; intrinsics are
// resolved with local values of the resources they reference; anything without a stand-in is
// an error, so that a new variable cannot slip through unmapped.
type standIns struct {
	tpl *cfnTemplate
	// refs gives the local value of {"Ref": id} by the type of the resource id.
	refs map[string]func(id string, r cfnResource) (string, error)
	// replaced are variables naming a resource of a service with no local emulator here (a
	// secret, a queue): the function's local fallback variables take their place.
	replaced map[string]replacement
	// overrides replace plain values that cannot work locally, from the template value.
	overrides map[string]func(fn lambdaFunction, v string) (string, error)
}

// replacement stands in for a variable whose value is {"Ref": <a resource of RefType>}.
type replacement struct {
	RefType string
	// Vars are the variables (NAME=value) the function reads instead, locally.
	Vars []string
}

// environment returns fn's template variables made local, as NAME=value sorted by name.
func (s *standIns) environment(fn lambdaFunction) ([]string, error) {
	names := make([]string, 0, len(fn.Variables))
	for name := range fn.Variables {
		names = append(names, name)
	}
	sort.Strings(names)
	var env []string
	var errs []error
	for _, name := range names {
		vars, err := s.variable(fn, name, fn.Variables[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("variable %s of %s (%s): %w", name, fn.Name, fn.LogicalID, err))
			continue
		}
		env = append(env, vars...)
	}
	slices.Sort(env)
	return env, errors.Join(errs...)
}

func (s *standIns) variable(fn lambdaFunction, name string, v any) ([]string, error) {
	if rep, ok := s.replaced[name]; ok {
		id, r, err := s.refTarget(v)
		if err != nil {
			return nil, err
		}
		if r.Type != rep.RefType {
			return nil, fmt.Errorf("references %s of type %s; the local stand-in expects a %s", id, r.Type, rep.RefType)
		}
		return rep.Vars, nil
	}
	if plain, ok := v.(string); ok {
		if override, ok := s.overrides[name]; ok {
			local, err := override(fn, plain)
			if err != nil {
				return nil, err
			}
			return []string{name + "=" + local}, nil
		}
		return []string{name + "=" + plain}, nil
	}
	local, err := s.resolve(v)
	if err != nil {
		return nil, err
	}
	return []string{name + "=" + local}, nil
}

// resolve evaluates an intrinsic function with local values: Ref (by resource type) and
// Fn::Join. Anything else is an error naming it.
func (s *standIns) resolve(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case map[string]any:
		if len(v) != 1 {
			return "", fmt.Errorf("%s is not an intrinsic function", compact(v))
		}
		if _, ok := v["Ref"]; ok {
			id, r, err := s.refTarget(v)
			if err != nil {
				return "", err
			}
			local, ok := s.refs[r.Type]
			if !ok {
				return "", fmt.Errorf("no local stand-in for {\"Ref\": %q} (a %s): add one to the test's stand-ins", id, r.Type)
			}
			return local(id, r)
		}
		if args, ok := v["Fn::Join"].([]any); ok && len(args) == 2 {
			sep, okSep := args[0].(string)
			parts, okParts := args[1].([]any)
			if !okSep || !okParts {
				return "", fmt.Errorf("malformed Fn::Join %s", compact(v))
			}
			out := make([]string, 0, len(parts))
			for _, p := range parts {
				local, err := s.resolve(p)
				if err != nil {
					return "", err
				}
				out = append(out, local)
			}
			return strings.Join(out, sep), nil
		}
		for fn := range v { // the one key: Fn::GetAtt, Fn::Sub, Fn::ImportValue, ...
			return "", fmt.Errorf("no local stand-in for %s in %s: add one to the test's stand-ins", fn, compact(v))
		}
	}
	return "", fmt.Errorf("unexpected value %s", compact(v))
}

// refTarget returns the resource a {"Ref": id} names; a parameter or pseudo parameter
// (AWS::Region, ...) is an error.
func (s *standIns) refTarget(v any) (string, cfnResource, error) {
	m, _ := v.(map[string]any)
	id, ok := m["Ref"].(string)
	if !ok || len(m) != 1 {
		return "", cfnResource{}, fmt.Errorf("%s: want {\"Ref\": <resource>}", compact(v))
	}
	r, ok := s.tpl.Resources[id]
	if !ok {
		return id, r, fmt.Errorf("{\"Ref\": %q} names no resource of the template (a parameter or pseudo parameter has no local stand-in)", id)
	}
	return id, r, nil
}

// taskRootPath maps a path under /var/task, where SAM mounts the function's code, to the same
// file in the asset folder (APP_CONFIG_FILE=/var/task/config.json).
func taskRootPath(fn lambdaFunction, v string) (string, error) {
	rest, ok := strings.CutPrefix(v, lambdaTaskRoot+"/")
	if !ok {
		return "", fmt.Errorf("%q is not under %s, where the code is mounted", v, lambdaTaskRoot)
	}
	local := filepath.Join(fn.AssetDir, filepath.FromSlash(rest))
	if _, err := os.Stat(local); err != nil {
		return "", fmt.Errorf("%q: not in the function's asset: %w", v, err)
	}
	return local, nil
}

// graphURLOverride replaces the Graph API base URL (an https URL in the template) by a local
// one: the Meta sandbox.
func graphURLOverride(local string) func(lambdaFunction, string) (string, error) {
	return func(_ lambdaFunction, v string) (string, error) {
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return "", fmt.Errorf("%q: want the https URL of the Graph API (%s)", v, stack.DefaultMetaGraphURL)
		}
		return local, nil
	}
}

// compact renders v as one line of JSON, for messages.
func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// envVarsFile is SAM's --env-vars file of a function's fixture folder, not an event.
const envVarsFile = "env.json"

// fixtures lists the event files of dir (*.json but the env-vars file), sorted.
func fixtures(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && e.Name() != envVarsFile {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// The template reading and the stand-ins, on a small template: no emulator, no synth.

func TestLambdaFunctionsNeedAssetMetadataAndAName(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "asset.abc"), 0o755); err != nil {
		t.Fatal(err)
	}
	fn := func(meta map[string]any) cfnResource {
		return cfnResource{Type: lambdaType, Metadata: meta, Properties: map[string]any{
			"Runtime": "provided.al2023", "Handler": "bootstrap", "MemorySize": 256.0, "Timeout": 10.0,
			"Environment": map[string]any{"Variables": map[string]any{"LOG_LEVEL": "info"}},
		}}
	}
	withAsset := map[string]any{assetPathKey: "asset.abc", assetPropertyKey: "Code"}
	tpl := &cfnTemplate{Resources: map[string]cfnResource{
		"Good":      fn(withAsset),
		"NoAsset":   fn(map[string]any{"aws:cdk:path": "Retarget/NoAsset/Resource"}),
		"Unmapped":  fn(withAsset),
		"SomeQueue": {Type: "AWS::SQS::Queue"},
	}}
	got, err := lambdaFunctions(tpl, dir, map[string]string{"Good": "ingest", "NoAsset": "capi-forwarder"})
	if err == nil || !strings.Contains(err.Error(), "function NoAsset: no \"aws:asset:path\"") ||
		!strings.Contains(err.Error(), "function Unmapped: no function folder") {
		t.Errorf("error %v, want one for NoAsset (metadata) and one for Unmapped (no folder)", err)
	}
	want := lambdaFunction{LogicalID: "Good", Name: "ingest", AssetDir: filepath.Join(dir, "asset.abc"), Runtime: "provided.al2023",
		Handler: "bootstrap", MemoryMiB: 256, TimeoutSeconds: 10, Variables: map[string]any{"LOG_LEVEL": "info"}}
	if len(got) != 1 || got[0].LogicalID != want.LogicalID || got[0].Name != want.Name || got[0].AssetDir != want.AssetDir ||
		got[0].MemoryMiB != 256 || got[0].TimeoutSeconds != 10 || got[0].Variables["LOG_LEVEL"] != "info" {
		t.Errorf("functions %+v, want only %+v", got, want)
	}
}

func TestStandIns(t *testing.T) {
	asset := t.TempDir()
	if err := os.WriteFile(filepath.Join(asset, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &standIns{
		tpl: &cfnTemplate{Resources: map[string]cfnResource{
			"Stream": {Type: "AWS::Kinesis::Stream"},
			"Key":    {Type: "AWS::ApiGateway::ApiKey", Properties: map[string]any{"Name": "sample-shop"}},
			"Pepper": {Type: "AWS::SecretsManager::Secret"},
			"Queue":  {Type: "AWS::SQS::Queue"},
		}},
		refs: map[string]func(string, cfnResource) (string, error){
			"AWS::Kinesis::Stream":    func(id string, _ cfnResource) (string, error) { return "local-" + id, nil },
			"AWS::ApiGateway::ApiKey": func(_ string, r cfnResource) (string, error) { return r.Properties["Name"].(string) + "-key-id", nil },
		},
		replaced: map[string]replacement{
			"PEPPER_SECRET_ID": {RefType: "AWS::SecretsManager::Secret", Vars: []string{"PSEUDONYM_PEPPER=p"}},
		},
		overrides: map[string]func(lambdaFunction, string) (string, error){
			env.ConfigFile: taskRootPath,
			env.GraphURL:   graphURLOverride("http://127.0.0.1:9"),
		},
	}
	ref := func(id string) map[string]any { return map[string]any{"Ref": id} }
	fn := func(vars map[string]any) lambdaFunction {
		return lambdaFunction{LogicalID: "Fn", Name: "ingest", AssetDir: asset, Variables: vars}
	}

	env, err := s.environment(fn(map[string]any{
		"LOG_LEVEL":        "info",
		"STREAM":           ref("Stream"),
		"KEYS":             map[string]any{"Fn::Join": []any{"", []any{`{"`, ref("Key"), `":"sample-shop"}`}}},
		"PEPPER_SECRET_ID": ref("Pepper"),
		"APP_CONFIG_FILE":  "/var/task/config.json",
		"META_GRAPH_URL":   "https://graph.facebook.com",
		"META_API_VERSION": "v26.0",
		"USER_TTL_DAYS":    "400",
		"OTHER_PATH":       "/var/task/elsewhere", // plain values pass unchanged
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"APP_CONFIG_FILE=" + filepath.Join(asset, "config.json"),
		`KEYS={"sample-shop-key-id":"sample-shop"}`,
		"LOG_LEVEL=info",
		"META_API_VERSION=v26.0",
		"META_GRAPH_URL=http://127.0.0.1:9",
		"OTHER_PATH=/var/task/elsewhere",
		"PSEUDONYM_PEPPER=p",
		"STREAM=local-Stream",
		"USER_TTL_DAYS=400",
	}
	if !slices.Equal(env, want) {
		t.Errorf("environment\n%q\nwant\n%q", env, want)
	}

	for _, tc := range []struct {
		name    string
		value   any
		wantErr string
	}{
		{"DLQ", ref("Queue"), `no local stand-in for {"Ref": "Queue"} (a AWS::SQS::Queue)`},
		{"PEPPER_SECRET_ID", ref("Stream"), "references Stream of type AWS::Kinesis::Stream; the local stand-in expects a AWS::SecretsManager::Secret"},
		{"REGION", ref("AWS::Region"), "names no resource of the template"},
		{"ARN", map[string]any{"Fn::GetAtt": []any{"Stream", "Arn"}}, "no local stand-in for Fn::GetAtt"},
		{"URL", map[string]any{"Fn::Sub": "https://${Api}.example.com"}, "no local stand-in for Fn::Sub"},
		{"JOINED", map[string]any{"Fn::Join": []any{"", []any{map[string]any{"Fn::ImportValue": "x"}}}}, "no local stand-in for Fn::ImportValue"},
		{"APP_CONFIG_FILE", "/opt/config.json", "not under /var/task"},
		{"APP_CONFIG_FILE", "/var/task/missing.json", "not in the function's asset"},
		{"META_GRAPH_URL", "http://graph.example.com", "want the https URL of the Graph API"},
	} {
		_, err := s.environment(fn(map[string]any{tc.name: tc.value}))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "variable "+tc.name+" of ingest (Fn)") {
			t.Errorf("%s=%s: error %v, want one naming the variable and %q", tc.name, compact(tc.value), err, tc.wantErr)
		}
	}
}

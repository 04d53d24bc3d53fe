package layers_test

// The import rules between the layers, checked against what `go list` says the
// packages import. The rules are data (the layers table below); the code only
// matches patterns and walks the import graph.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A layer is a group of packages and the imports its non-test code must not have.
//
// Patterns: module packages are written relative to the module root
// ("shared/handlers/..."), other packages by import path ("github.com/aws/...").
// "x/..." matches x and everything below it, "*" one path element, "..." any
// package, and "std" any standard-library package.
type layer struct {
	name     string
	packages []string // patterns of the packages in the layer
	// links applies the rules to everything the package links (go list -deps,
	// non-test), not only to its direct imports.
	links bool
	rules []rule
}

// A rule forbids imports matching forbid unless they match except. A package
// always may import its own unit: the path the layer pattern matches up to its
// trailing "/..." (shared/handlers/usersapi and anything below it, for example).
type rule struct {
	forbid []string
	except []string
	// unlessLinksNone allows a forbidden package that itself links nothing
	// matching these patterns (a runtime package of env names only, say).
	unlessLinksNone []string
	reason          string
}

var (
	noTestkit = rule{forbid: []string{"shared/testkit/..."}, reason: "production code never imports test code"}
	noSandbox = rule{forbid: []string{"shared/sandbox/..."}, reason: "production code never imports local stand-ins"}
)

// layers is the table of import rules; ARCHITECTURE.md explains the layers.
var layers = []layer{
	{
		name:     "domain",
		packages: []string{"shared/domain/*/..."},
		rules: []rule{
			{forbid: []string{"github.com/aws/..."}, reason: "the domain imports no AWS package"},
			{
				forbid: []string{"os", "os/...", "net", "net/...", "io/ioutil", "syscall"},
				// netip and url hold values and do no I/O (appevent validates client IPs,
				// appconfig the identity providers' URLs).
				except: []string{"net/netip", "net/url"},
				reason: "the domain does no I/O",
			},
			{
				forbid: []string{"..."},
				// ports: domain/audiences builds ports.NewAudience.
				except: []string{"std", "golang.org/x/text/...", "shared/domain/...", "shared/ports/..."},
				reason: "the domain imports only the standard library, x/text, other domain packages and ports",
			},
		},
	},
	{
		name:     "ports",
		packages: []string{"shared/ports/..."},
		rules: []rule{
			{forbid: []string{"..."}, except: []string{"std", "shared/domain/..."}, reason: "ports import only the standard library and the domain"},
		},
	},
	{
		name:     "app",
		packages: []string{"shared/app/*/..."},
		rules: []rule{
			{forbid: []string{"github.com/aws/..."}, reason: "use cases reach AWS only through ports"},
			{forbid: []string{"..."}, except: []string{"std", "shared/domain/...", "shared/ports/..."}, reason: "use cases import only the standard library, the domain and ports"},
		},
	},
	{
		name:     "adapters",
		packages: []string{"shared/adapters/*/..."},
		rules: []rule{
			{forbid: []string{"shared/app/..."}, reason: "adapters implement ports and never import use cases (a type both need belongs in ports)"},
			{forbid: []string{"shared/handlers/..."}, reason: "adapters never import handlers"},
			{forbid: []string{"shared/runtime/..."}, reason: "adapters never import the runtime (it builds them)"},
			noSandbox,
			noTestkit,
			{
				forbid: []string{"..."},
				except: []string{"std", "shared/domain/...", "shared/ports/...", "shared/adapters/...", "github.com/aws/aws-sdk-go-v2/...", "github.com/aws/smithy-go/...", "github.com/aws/aws-lambda-go/events",
					// The end-user token verifier (jwtverify) and its JWKS cache.
					"github.com/golang-jwt/jwt/v5", "github.com/MicahParks/keyfunc/v3", "github.com/MicahParks/jwkset", "golang.org/x/time/rate",
					// The event archive's Parquet files (shared/adapters/archive).
					"github.com/parquet-go/parquet-go"},
				reason: "adapters import only the standard library, the domain, ports, other adapters, the AWS SDK, the Lambda event types, the JWT libraries and the Parquet library",
			},
		},
	},
	{
		name:     "handlers",
		packages: []string{"shared/handlers/*/..."},
		rules: []rule{
			{forbid: []string{"shared/handlers/..."}, reason: "handlers never import other handlers"},
			{forbid: []string{"shared/runtime/..."}, reason: "handlers never import the runtime (it wires them)"},
			noSandbox,
			noTestkit,
			{
				forbid: []string{"..."},
				except: []string{"std", "shared/domain/...", "shared/ports/...", "shared/app/...", "shared/adapters/...", "github.com/aws/aws-lambda-go/..."},
				// SDK clients are built in the runtime and reach handlers as adapters.
				reason: "handlers import only the standard library, the domain, ports, use cases, adapters and aws-lambda-go",
			},
		},
	},
	{
		name:     "runtime",
		packages: []string{"shared/runtime/..."},
		rules:    []rule{noSandbox, noTestkit},
	},
	{
		name:     "sandbox",
		packages: []string{"shared/sandbox/*/..."},
		rules:    []rule{{forbid: []string{"shared/testkit/..."}, reason: "the dev stack links the sandbox, so it never imports test code"}},
	},
	{
		name:     "testkit",
		packages: []string{"shared/testkit/*/..."},
	},
	{
		name:     "functions",
		packages: []string{"functions/*/..."},
		links:    true,
		rules: []rule{
			{forbid: []string{"shared/sandbox/..."}, reason: "a Lambda binary links no local stand-ins"},
			{forbid: []string{"shared/testkit/...", "testing"}, reason: "a Lambda binary links no test code"},
		},
	},
	{
		name:     "CDK app",
		packages: []string{"infra/cdk/...", "infra/stack/..."},
		links:    true,
		rules: []rule{
			{forbid: []string{"shared/handlers/..."}, reason: "the CDK app links no handler"},
			{
				forbid:          []string{"shared/runtime/..."},
				unlessLinksNone: []string{"github.com/aws/aws-sdk-go-v2/service/..."},
				reason:          "the CDK app links no runtime package that builds clients",
			},
			{forbid: []string{"github.com/aws/aws-sdk-go-v2/service/..."}, reason: "the CDK app links no AWS SDK service client"},
			{forbid: []string{"github.com/aws/aws-lambda-go/..."}, reason: "the CDK app links no Lambda runtime code"},
		},
	},
}

// layeredTree is where every package must belong to exactly one layer.
var layeredTree = []string{"shared/...", "functions/..."}

// TestImportRules checks every module package against the layers table.
func TestImportRules(t *testing.T) {
	root, modPath := moduleRoot(t)
	// Direct imports as the host builds them.
	direct := goList(t, root, nil, "-e", "-json", "./...")
	// What is linked, as `make build` builds the Lambda binaries; the rules of
	// the CDK app concern packages that build on every platform.
	linked := goList(t, root, []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}, "-e", "-deps", "-json", "-tags", "lambda.norpc", "./...")

	g := &graph{mod: modPath, imports: map[string][]string{}}
	for _, p := range linked {
		g.imports[p.ImportPath] = p.Imports
	}
	var modPkgs []string // module packages with non-test Go files
	for _, p := range direct {
		if len(p.GoFiles) > 0 {
			modPkgs = append(modPkgs, p.ImportPath)
		}
	}

	t.Run("layers match the tree", func(t *testing.T) {
		universe := slices.Clone(modPkgs)
		for p := range g.imports {
			universe = append(universe, p)
		}
		for _, msg := range checkTable(g, modPkgs, universe, stdSrcDir(linked)) {
			t.Error(msg)
		}
	})
	t.Run("imports", func(t *testing.T) {
		var found []string
		for _, p := range direct {
			if len(p.GoFiles) == 0 {
				continue
			}
			l := layerOf(g, p.ImportPath)
			if l == nil || l.links {
				continue
			}
			for _, imp := range p.Imports {
				if r := l.violation(g, p.ImportPath, imp); r != nil {
					found = append(found, fmt.Sprintf("%s imports %s: %s", g.rel(p.ImportPath), g.rel(imp), r.reason))
				}
			}
		}
		report(t, found)
	})
	t.Run("links", func(t *testing.T) {
		var found []string
		for _, p := range modPkgs {
			if l := layerOf(g, p); l != nil && l.links {
				found = append(found, linkViolations(g, l, p)...)
			}
		}
		report(t, found)
	})
}

func report(t *testing.T, found []string) {
	t.Helper()
	slices.Sort(found)
	for _, v := range slices.Compact(found) {
		t.Error(v)
	}
}

// linkViolations walks what root links, breadth first so the path shown is a
// shortest one. It stops at a forbidden package (what that package pulls in is
// the same violation) and at packages of root's own layer (they are checked as
// roots themselves).
func linkViolations(g *graph, l *layer, root string) []string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	var found []string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range g.imports[p] {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = p
			if layerOf(g, imp) == l {
				continue
			}
			if r := l.violation(g, root, imp); r != nil {
				var via []string
				for q := p; q != root; q = parent[q] {
					via = append(via, g.rel(q))
				}
				slices.Reverse(via)
				msg := fmt.Sprintf("%s links %s", g.rel(root), g.rel(imp))
				if len(via) > 0 {
					msg += " (via " + strings.Join(via, " -> ") + ")"
				}
				found = append(found, msg+": "+r.reason)
				continue
			}
			queue = append(queue, imp)
		}
	}
	return found
}

// checkTable returns what makes the table unable to protect the tree: a layer
// pattern that matches no package, a package of the layered tree in no layer
// or in two, a rule pattern that names nothing that exists.
func checkTable(g *graph, modPkgs, universe []string, stdSrc string) []string {
	var bad []string
	for _, l := range layers {
		for _, pat := range l.packages {
			if !slices.ContainsFunc(modPkgs, func(p string) bool { return g.ref(p).matches(pat) }) {
				bad = append(bad, fmt.Sprintf("layer %s: %s matches no package (renamed or moved?)", l.name, pat))
			}
		}
		for _, r := range l.rules {
			for _, pat := range slices.Concat(r.forbid, r.except, r.unlessLinksNone) {
				if !patternNamesSomething(g, pat, universe, stdSrc) {
					bad = append(bad, fmt.Sprintf("layer %s, rule %q: %s matches no package (renamed or moved?)", l.name, r.reason, pat))
				}
			}
		}
	}
	for _, p := range modPkgs {
		if !slices.ContainsFunc(layeredTree, g.ref(p).matches) {
			continue
		}
		var in []string
		for _, l := range layers {
			if slices.ContainsFunc(l.packages, g.ref(p).matches) {
				in = append(in, l.name)
			}
		}
		if len(in) != 1 {
			bad = append(bad, fmt.Sprintf("%s is in %d layers %v, want exactly one", g.rel(p), len(in), in))
		}
	}
	return bad
}

// patternNamesSomething reports whether a rule pattern can match a package
// that exists: a typo or a renamed folder would otherwise leave the rule
// matching nothing.
func patternNamesSomething(g *graph, pat string, universe []string, stdSrc string) bool {
	if pat == "std" || pat == "..." {
		return true
	}
	if slices.ContainsFunc(universe, func(p string) bool { return g.ref(p).matches(pat) }) {
		return true
	}
	dir := strings.TrimSuffix(pat, "/...")
	// A standard-library package nothing links today (io/ioutil, say) still exists.
	if stdSrc != "" && !isModulePattern(pat) && !strings.Contains(dir, "*") {
		if fi, err := os.Stat(filepath.Join(stdSrc, filepath.FromSlash(dir))); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// layerOf returns the layer of a module package, nil for packages outside the
// layers (tools under infra/, the standard library, dependencies).
func layerOf(g *graph, path string) *layer {
	r := g.ref(path)
	if !r.inModule {
		return nil
	}
	for i := range layers {
		if slices.ContainsFunc(layers[i].packages, r.matches) {
			return &layers[i]
		}
	}
	return nil
}

// violation returns the first rule of l that importing imported from importer
// breaks, nil when the import is allowed.
func (l *layer) violation(g *graph, importer, imported string) *rule {
	imp := g.ref(imported)
	if imp.inModule {
		if unit := l.unit(g.rel(importer)); unit != "" && matchPath(unit+"/...", imp.rel) {
			return nil
		}
	}
	for i, r := range l.rules {
		if !slices.ContainsFunc(r.forbid, imp.matches) || slices.ContainsFunc(r.except, imp.matches) {
			continue
		}
		if len(r.unlessLinksNone) > 0 && !slices.ContainsFunc(g.closure(imported), func(p string) bool {
			return slices.ContainsFunc(r.unlessLinksNone, g.ref(p).matches)
		}) {
			continue
		}
		return &l.rules[i]
	}
	return nil
}

// unit is the part of rel the matching layer pattern names before its "/...":
// shared/handlers/usersapi for shared/handlers/usersapi/x and shared/handlers/*/....
func (l *layer) unit(rel string) string {
	for _, pat := range l.packages {
		if !matchPath(pat, rel) {
			continue
		}
		n := len(strings.Split(strings.TrimSuffix(pat, "/..."), "/"))
		return strings.Join(strings.Split(rel, "/")[:n], "/")
	}
	return ""
}

// graph is the non-test import graph by full import path.
type graph struct {
	mod     string
	imports map[string][]string
}

// pkgRef is a package as the patterns see it.
type pkgRef struct {
	rel      string // module-relative for module packages, the import path otherwise
	inModule bool
	std      bool
}

func (g *graph) rel(path string) string {
	if path == g.mod {
		return "."
	}
	if rest, ok := strings.CutPrefix(path, g.mod+"/"); ok {
		return rest
	}
	return path
}

func (g *graph) ref(path string) pkgRef {
	inModule := path == g.mod || strings.HasPrefix(path, g.mod+"/")
	first, _, _ := strings.Cut(path, "/")
	return pkgRef{rel: g.rel(path), inModule: inModule, std: !inModule && !strings.Contains(first, ".")}
}

func (r pkgRef) matches(pat string) bool {
	if pat == "std" {
		return r.std
	}
	// Module patterns never match other packages, nor the reverse, even where
	// the relative path would spell the same thing.
	if isModulePattern(pat) != r.inModule && pat != "..." {
		return false
	}
	return matchPath(pat, r.rel)
}

// isModulePattern tells module-relative patterns from import paths: only the
// module's layered folders and infra/ appear in the table.
func isModulePattern(pat string) bool {
	first, _, _ := strings.Cut(pat, "/")
	return first == "shared" || first == "functions" || first == "infra"
}

// matchPath matches a slash-separated path against a pattern of path elements,
// "*" for any one element, and a trailing "..." for zero or more elements.
func matchPath(pat, path string) bool {
	if pat == "..." {
		return true
	}
	pe, xe := strings.Split(pat, "/"), strings.Split(path, "/")
	if pe[len(pe)-1] == "..." {
		pe = pe[:len(pe)-1]
		if len(xe) < len(pe) {
			return false
		}
		xe = xe[:len(pe)]
	}
	if len(pe) != len(xe) {
		return false
	}
	for i := range pe {
		if pe[i] != "*" && pe[i] != xe[i] {
			return false
		}
	}
	return true
}

// closure is everything path links, itself excluded.
func (g *graph) closure(path string) []string {
	seen := map[string]bool{path: true}
	var out []string
	stack := []string{path}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, imp := range g.imports[p] {
			if !seen[imp] {
				seen[imp] = true
				out = append(out, imp)
				stack = append(stack, imp)
			}
		}
	}
	return out
}

// listedPackage holds the fields of `go list -json` the rules need.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	Imports    []string
	Error      *struct{ Err string }
}

func goList(t *testing.T, root string, env []string, args ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatalf("decode go list %s: %v", strings.Join(args, " "), err)
		}
		if p.Error != nil {
			// The graph misses what this package imports: say so, check the rest.
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
}

// stdSrcDir is GOROOT/src as go list reports it (the Dir of a standard package
// without its import path), "" if nothing standard was listed.
func stdSrcDir(pkgs []listedPackage) string {
	for _, p := range pkgs {
		if p.Standard && p.Dir != "" {
			if src, ok := strings.CutSuffix(p.Dir, string(filepath.Separator)+filepath.FromSlash(p.ImportPath)); ok {
				return src
			}
		}
	}
	return ""
}

// moduleRoot walks up from the test's directory to go.mod and returns that
// directory and the module path.
func moduleRoot(t *testing.T) (dir, modPath string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(rest), `"`)
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// testModule is the module path the unit tests build import paths with.
const testModule = "github.com/retarget-dev/retarget"

// TestImportRuleMatcher pins what the table allows and which rule fires, and
// fails if a rule of the table fires in no case (a rule that matches nothing
// protects nothing).
func TestImportRuleMatcher(t *testing.T) {
	m := func(rel string) string { return testModule + "/" + rel }
	g := &graph{mod: testModule, imports: map[string][]string{
		m("shared/runtime/envnames"): {"os", "strings"},
		m("shared/runtime/ingest"):   {m("shared/adapters/kinesisstream"), "github.com/aws/aws-sdk-go-v2/service/kinesis"},
	}}
	const (
		domainIO      = "the domain does no I/O"
		domainOnly    = "the domain imports only the standard library, x/text, other domain packages and ports"
		appOnly       = "use cases import only the standard library, the domain and ports"
		adaptersOnly  = "adapters import only the standard library, the domain, ports, other adapters, the AWS SDK, the Lambda event types, the JWT libraries and the Parquet library"
		handlersOnly  = "handlers import only the standard library, the domain, ports, use cases, adapters and aws-lambda-go"
		noTest        = "production code never imports test code"
		noStandIns    = "production code never imports local stand-ins"
		lambdaNoTest  = "a Lambda binary links no test code"
		cdkNoHandlers = "the CDK app links no handler"
	)
	cases := []struct {
		importer, imported, want string
	}{
		{"shared/domain/appconfig", "os", domainIO},
		{"shared/domain/appconfig", "os/exec", domainIO},
		{"shared/domain/appconfig", "net/http", domainIO},
		{"shared/domain/appconfig", "net", domainIO},
		{"shared/domain/appconfig", "io/ioutil", domainIO},
		{"shared/domain/appconfig", "syscall", domainIO},
		{"shared/domain/appevent", "net/netip", ""},
		{"shared/domain/appconfig", "net/url", ""},
		{"shared/domain/appconfig", "io", ""},
		{"shared/domain/appconfig", "io/fs", ""},
		{"shared/domain/appconfig", "embed", ""},
		{"shared/domain/identity", "golang.org/x/text/unicode/norm", ""},
		{"shared/domain/segments", m("shared/domain/appconfig"), ""},
		{"shared/domain/audiences", m("shared/ports"), ""},
		{"shared/domain/capi", "github.com/aws/aws-sdk-go-v2/aws", "the domain imports no AWS package"},
		{"shared/domain/capi", "github.com/aws/aws-lambda-go/events", "the domain imports no AWS package"},
		{"shared/domain/capi", m("shared/adapters/metagraph"), domainOnly},
		{"shared/domain/capi", "golang.org/x/sync/errgroup", domainOnly},
		{"shared/ports", m("shared/domain/envelope"), ""},
		{"shared/ports", m("shared/app/stream"), "ports import only the standard library and the domain"},
		{"shared/app/stream", m("shared/ports"), ""},
		{"shared/app/stream", "github.com/aws/aws-sdk-go-v2/service/kinesis", "use cases reach AWS only through ports"},
		{"shared/app/forward", m("shared/app/stream"), appOnly},
		{"shared/app/forward/batch", m("shared/app/forward"), ""},
		{"shared/adapters/deadletters", m("shared/app/stream"), "adapters implement ports and never import use cases (a type both need belongs in ports)"},
		{"shared/adapters/dynamostate", m("shared/adapters/storecheck"), ""},
		{"shared/adapters/dynamostate", "github.com/aws/aws-sdk-go-v2/service/dynamodb", ""},
		{"shared/adapters/dynamostate", "github.com/aws/smithy-go", ""},
		{"shared/adapters/metagraph", "net/http", ""},
		{"shared/adapters/secrets", m("shared/handlers/ingestapi"), "adapters never import handlers"},
		{"shared/adapters/secrets", m("shared/runtime/ingest"), "adapters never import the runtime (it builds them)"},
		{"shared/adapters/secrets", m("shared/sandbox/emulators"), noStandIns},
		{"shared/adapters/secrets", m("shared/testkit/memstate"), noTest},
		{"shared/adapters/secrets", "github.com/aws/aws-lambda-go/lambda", adaptersOnly},
		{"shared/adapters/apigw", "github.com/aws/aws-lambda-go/events", ""},
		{"shared/adapters/jwtverify", "github.com/golang-jwt/jwt/v5", ""},
		{"shared/adapters/jwtverify", "github.com/MicahParks/keyfunc/v3", ""},
		{"shared/adapters/jwtverify", "github.com/golang-jwt/jwt/v4", adaptersOnly},
		{"shared/handlers/usersapi", m("shared/handlers/ingestapi"), "handlers never import other handlers"},
		{"shared/handlers/usersapi/consent", m("shared/handlers/usersapi"), ""},
		{"shared/handlers/usersapi", "github.com/aws/aws-lambda-go/events", ""},
		{"shared/handlers/usersapi", m("shared/app/stream"), ""},
		{"shared/handlers/usersapi", m("shared/adapters/metagraph"), ""},
		{"shared/handlers/usersapi", "github.com/aws/aws-sdk-go-v2/service/dynamodb", handlersOnly},
		{"shared/handlers/usersapi", m("shared/runtime/usersapi"), "handlers never import the runtime (it wires them)"},
		{"shared/handlers/usersapi", m("shared/sandbox/metasandbox"), noStandIns},
		{"shared/handlers/usersapi", m("shared/testkit/ingesttest"), noTest},
		{"shared/runtime/ingest", m("shared/handlers/ingestapi"), ""},
		{"shared/runtime/ingest", "github.com/aws/aws-sdk-go-v2/config", ""},
		{"shared/runtime/ingest", m("shared/sandbox/emulators"), noStandIns},
		{"shared/runtime/ingest", m("shared/testkit/memstream"), noTest},
		{"shared/sandbox/streampoller", m("shared/handlers/ingestapi"), ""},
		{"shared/sandbox/streampoller", m("shared/testkit/memstream"), "the dev stack links the sandbox, so it never imports test code"},
		{"shared/testkit/ingesttest", m("shared/sandbox/emulators"), ""},
		{"functions/ingest", m("shared/handlers/ingestapi"), ""},
		{"functions/ingest", m("shared/sandbox/emulators"), "a Lambda binary links no local stand-ins"},
		{"functions/ingest", m("shared/testkit/lambdatest"), lambdaNoTest},
		{"functions/ingest", "testing", lambdaNoTest},
		{"infra/stack", m("shared/handlers/ingestapi"), cdkNoHandlers},
		{"infra/cdk", m("shared/handlers/usersapi"), cdkNoHandlers},
		{"infra/stack", m("shared/runtime/envnames"), ""},
		{"infra/stack", m("shared/runtime/ingest"), "the CDK app links no runtime package that builds clients"},
		{"infra/stack", "github.com/aws/aws-sdk-go-v2/service/kinesis", "the CDK app links no AWS SDK service client"},
		{"infra/stack", "github.com/aws/aws-lambda-go/lambda", "the CDK app links no Lambda runtime code"},
		{"infra/stack", "github.com/aws/aws-cdk-go/awscdk/v2/awslambda", ""},
		{"infra/stack", m("shared/domain/appconfig"), ""},
		{"infra/cmd/devstack", m("shared/sandbox/emulators"), ""}, // tools are in no layer
	}
	fired := map[*rule]bool{}
	for _, c := range cases {
		t.Run(c.importer+" "+c.imported, func(t *testing.T) {
			got := ""
			if l := layerOf(g, m(c.importer)); l != nil {
				if r := l.violation(g, m(c.importer), c.imported); r != nil {
					got = r.reason
					fired[r] = true
				}
			}
			if got != c.want {
				t.Errorf("%s importing %s: got rule %q, want %q", c.importer, g.rel(c.imported), got, c.want)
			}
		})
	}
	for i := range layers {
		for j := range layers[i].rules {
			if r := &layers[i].rules[j]; !fired[r] {
				t.Errorf("layer %s: rule %q fired in no case", layers[i].name, r.reason)
			}
		}
	}
}

// TestLinkWalk shows a linked violation once, at the first forbidden package
// on the shortest path, and leaves a root's own layer to that layer's roots.
func TestLinkWalk(t *testing.T) {
	m := func(rel string) string { return testModule + "/" + rel }
	g := &graph{mod: testModule, imports: map[string][]string{
		m("functions/ingest"):          {m("shared/handlers/ingestapi")},
		m("shared/handlers/ingestapi"): {m("shared/domain/appevent"), m("shared/sandbox/emulators")},
		m("shared/sandbox/emulators"):  {"testing", "os"},
		m("infra/cdk"):                 {m("infra/stack")},
		m("infra/stack"):               {m("shared/handlers/ingestapi"), "github.com/aws/aws-cdk-go/awscdk/v2"},
	}}
	for _, c := range []struct {
		root string
		want []string
	}{
		{"functions/ingest", []string{"functions/ingest links shared/sandbox/emulators (via shared/handlers/ingestapi): a Lambda binary links no local stand-ins"}},
		{"infra/cdk", nil},
		{"infra/stack", []string{"infra/stack links shared/handlers/ingestapi: the CDK app links no handler"}},
	} {
		if got := linkViolations(g, layerOf(g, m(c.root)), m(c.root)); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.root, got, c.want)
		}
	}
}

// TestTableNoticesRenames shows that renaming a layer's folder fails the
// check instead of switching the layer's rules off.
func TestTableNoticesRenames(t *testing.T) {
	g := &graph{mod: testModule}
	var pkgs []string
	for _, rel := range []string{
		"shared/domain/appconfig", "shared/port", "shared/app/stream", "shared/adapters/secrets",
		"shared/handlers/ingestapi", "shared/runtime", "shared/sandbox/emulators", "shared/testkit/memstate",
		"functions/ingest", "infra/cdk", "infra/stack",
	} {
		pkgs = append(pkgs, testModule+"/"+rel)
	}
	universe := slices.Concat(pkgs, []string{
		"github.com/aws/aws-sdk-go-v2/service/kinesis", "github.com/aws/smithy-go", "github.com/aws/aws-lambda-go/events",
		"golang.org/x/text/unicode/norm", "os", "os/exec", "net", "net/netip", "net/url", "io/ioutil", "syscall", "testing",
		"github.com/golang-jwt/jwt/v5", "github.com/MicahParks/keyfunc/v3", "github.com/MicahParks/jwkset", "golang.org/x/time/rate",
		"github.com/parquet-go/parquet-go",
	})
	got := checkTable(g, pkgs, universe, "")
	for _, w := range []string{
		"layer ports: shared/ports/... matches no package (renamed or moved?)",
		`layer app, rule "use cases import only the standard library, the domain and ports": shared/ports/... matches no package (renamed or moved?)`,
		"shared/port is in 0 layers [], want exactly one",
	} {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	for _, msg := range got {
		if !strings.Contains(msg, "shared/port") {
			t.Errorf("unexpected complaint: %s", msg)
		}
	}
}

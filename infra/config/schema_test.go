// Package config_test keeps apps.schema.json, the JSON Schema editors use for the app config,
// in step with the loader (package appconfig), which stays the authority: the schema must
// accept every config the loader accepts here, and reject what the loader rejects except for
// the checks listed in its description.
package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

const (
	schemaFile = "apps.schema.json"
	sampleFile = "apps.json"
	devFile    = "apps.dev.json"
	draft2020  = "https://json-schema.org/draft/2020-12/schema"
)

// compileSchema compiles apps.schema.json; the compiler validates it against its metaschema.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	sch, err := c.Compile(schemaFile)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaFile, err)
	}
	return sch
}

// readJSON decodes a document the way the schema library expects (numbers as json.Number).
func readJSON(t *testing.T, data []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return v
}

func TestSchemaIsValidDraft2020_12(t *testing.T) {
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := readJSON(t, data)
	if got := doc.(map[string]any)["$schema"]; got != draft2020 {
		t.Fatalf("$schema %v, want %s", got, draft2020)
	}
	// Checked explicitly as well as by Compile, so that a library that stopped validating
	// schemas on compile would not let a broken schema through.
	meta, err := jsonschema.NewCompiler().Compile(draft2020)
	if err != nil {
		t.Fatalf("compile the 2020-12 metaschema: %v", err)
	}
	if err := meta.Validate(doc); err != nil {
		t.Fatalf("%s is not a valid 2020-12 schema: %v", schemaFile, err)
	}
	compileSchema(t)
	if desc, _ := doc.(map[string]any)["description"].(string); desc == "" {
		t.Error("the schema has no top-level description (it lists the loader-only checks)")
	}
}

// TestSchemaAcceptsSampleConfigs: every config file here (apps.json, which cdk.json deploys by
// default, and apps.dev.json, which make dev runs), which the loader must accept, the schema
// accepts too, so an editor never flags a config that deploys. (The other tests build their
// configs inline or load one of these.)
func TestSchemaAcceptsSampleConfigs(t *testing.T) {
	sch := compileSchema(t)
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, ".schema.json") })
	for _, want := range []string{sampleFile, devFile} {
		if !slices.Contains(files, want) {
			t.Fatalf("configs %v: want %s among them", files, want)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := env.LoadApps(f); err != nil {
				t.Fatalf("the loader rejects a sample config: %v", err)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(readJSON(t, data)); err != nil {
				t.Errorf("the loader accepts %s, the schema does not: %v", f, err)
			}
			if !bytes.HasPrefix(bytes.TrimSpace(data), []byte(`{`+"\n"+`  "$schema": "./`+schemaFile+`"`)) {
				t.Errorf(`%s: "$schema": "./%s" should be its first key, so editors find the schema`, f, schemaFile)
			}
		})
	}
}

// edit changes the sample config at path ("apps/0/api_key/name"; a last element "-" appends
// to an array): it sets value there, or with remove deletes the key.
type edit struct {
	path   string
	value  any
	remove bool
}

func set(path string, value any) edit { return edit{path: path, value: value} }
func del(path string) edit            { return edit{path: path, remove: true} }

// variant is the sample config with edits applied, re-encoded.
func variant(t *testing.T, edits ...edit) []byte {
	t.Helper()
	data, err := os.ReadFile(sampleFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		parts := strings.Split(e.path, "/")
		parent, last := doc, parts[len(parts)-1]
		for _, p := range parts[:len(parts)-1] {
			parent = child(t, parent, p, e.path)
		}
		switch p := parent.(type) {
		case map[string]any:
			if e.remove {
				delete(p, last)
			} else {
				p[last] = e.value
			}
		case []any:
			if last != "-" {
				i, err := strconv.Atoi(last)
				if err != nil || i >= len(p) || e.remove {
					t.Fatalf("edit %s: cannot set or remove element %q", e.path, last)
				}
				p[i] = e.value
				continue
			}
			// Appending reallocates: store the longer slice in the grandparent.
			gp := doc
			for _, q := range parts[:len(parts)-2] {
				gp = child(t, gp, q, e.path)
			}
			key := parts[len(parts)-2]
			switch g := gp.(type) {
			case map[string]any:
				g[key] = append(p, e.value)
			case []any:
				i, _ := strconv.Atoi(key)
				g[i] = append(p, e.value)
			}
		default:
			t.Fatalf("edit %s: parent is %T", e.path, parent)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func child(t *testing.T, v any, key, path string) any {
	t.Helper()
	switch c := v.(type) {
	case map[string]any:
		if next, ok := c[key]; ok {
			return next
		}
	case []any:
		if i, err := strconv.Atoi(key); err == nil && i < len(c) {
			return c[i]
		}
	}
	t.Fatalf("edit %s: no %q", path, key)
	return nil
}

// copyOf returns a deep copy of the sample config's value at path, to build edits from.
func copyOf(t *testing.T, path string) any {
	t.Helper()
	var doc any
	if err := json.Unmarshal(variant(t), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Split(path, "/") {
		doc = child(t, doc, p, path)
	}
	return doc
}

// locations lists where a validation error's failures are: their instance locations
// ("/apps/0/id") and keywords ("propertyNames"). The outermost error, which always sits at "/"
// and only says that validation failed, is left out.
func locations(err error) []string {
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return nil
	}
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		out = append(out, "/"+strings.Join(e.InstanceLocation, "/"))
		if kw := e.ErrorKind.KeywordPath(); len(kw) > 0 {
			out = append(out, kw[len(kw)-1])
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	for _, c := range ve.Causes {
		walk(c)
	}
	return out
}

// Edits that isolate one currency rule: without them the sample's value-based audience and
// its lifetime_value segment need reporting_currency too.
var (
	vipByCount     = set("apps/0/segments/4/when/0/value/attribute", "purchase_count")
	vipNotValued   = del("apps/0/audiences/3/value_based")
	noCurrency     = del("apps/0/reporting_currency")
	noCurrencyRate = del("apps/0/currency_rates")
)

// channel is a valid channel of the sample app with fields changed (a nil value removes one).
func channel(fields map[string]any) []any {
	c := map[string]any{"id": "push", "type": "webhook", "url": "https://push.example.com/hooks/retarget", "segments": []any{"cart_abandoner"},
		"auth": map[string]any{"header": "Authorization", "secret_name": "retarget/push", "dev_value": "Bearer dev-push-token"}}
	for k, v := range fields {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return []any{c}
}

// TestSchemaRejectsWhatTheLoaderRejects: each invalid config is rejected by appconfig.Parse
// (with the message in loader) and by the schema (with an error at the instance location at).
func TestSchemaRejectsWhatTheLoaderRejects(t *testing.T) {
	sch := compileSchema(t)
	const app = "/apps/0"
	tests := []struct {
		name   string
		edits  []edit
		loader string // part of the loader's message
		at     string // where the schema reports a problem, or the keyword that fails
	}{
		// The document.
		{"version missing", []edit{del("version")}, "version: must be 1", "/"},
		{"version unsupported", []edit{set("version", 2)}, "version: must be 1", "/version"},
		{"version not a number", []edit{set("version", "1")}, "version: must be int", "/version"},
		{"no apps", []edit{set("apps", []any{})}, "at least one app", "/apps"},
		{"apps missing", []edit{del("apps")}, "at least one app", "/"},
		{"unknown top-level key", []edit{set("segmnts", []any{})}, `unknown field "segmnts"`, "/"},
		{"$schema not a string", []edit{set("$schema", 1)}, "$schema: must be string", "/$schema"},
		// The app.
		{"app not an object", []edit{set("apps/0", "sample-shop")}, "apps: must be appconfig.App", app},
		{"app id missing", []edit{del("apps/0/id")}, "id: is required", app},
		{"app id bad pattern", []edit{set("apps/0/id", "Sample_Shop")}, "id: must be 1-63 lowercase", app + "/id"},
		{"unknown app field", []edit{set("apps/0/colour", "blue")}, `unknown field "colour"`, app},
		{"platforms missing", []edit{del("apps/0/platforms")}, "platforms: list at least one", app},
		{"platforms empty", []edit{set("apps/0/platforms", []any{})}, "platforms: list at least one", app + "/platforms"},
		{"platform unknown", []edit{set("apps/0/platforms/-", "web")}, `"web" is not a platform`, app + "/platforms/2"},
		{"platform twice", []edit{set("apps/0/platforms/-", "ios")}, `"ios" is listed twice`, app + "/platforms"},
		{"platforms not a list", []edit{set("apps/0/platforms", "ios")}, "platforms: must be []appconfig.Platform", app + "/platforms"},
		{"api_key missing", []edit{del("apps/0/api_key")}, "api_key.name: is required", app},
		{"api_key name missing", []edit{del("apps/0/api_key/name")}, "api_key.name: is required", app + "/api_key"},
		{"api_key name bad pattern", []edit{set("apps/0/api_key/name", "sample shop")}, "api_key.name: must be 1-128", app + "/api_key/name"},
		{"api_key unknown field", []edit{set("apps/0/api_key/value", "x")}, `unknown field "value"`, app + "/api_key"},
		{"dev key too short", []edit{set("apps/0/api_key/dev_value", "short")}, "dev_value: must be at least 8", app + "/api_key/dev_value"},
		{"dev key with spaces", []edit{set("apps/0/api_key/dev_value", " dev-api-key")}, "without surrounding spaces", app + "/api_key/dev_value"},
		{"rate limit too high", []edit{set("apps/0/api_key/rate_limit", 10001)}, "rate_limit: must be 0", app + "/api_key/rate_limit"},
		{"rate limit not whole", []edit{set("apps/0/api_key/rate_limit", 1.5)}, "rate_limit: must be int", app + "/api_key/rate_limit"},
		{"burst limit negative", []edit{set("apps/0/api_key/burst_limit", -1)}, "burst_limit: must be 0", app + "/api_key/burst_limit"},
		{"burst limit too high", []edit{set("apps/0/api_key/burst_limit", 5001)}, "burst_limit: must be 0", app + "/api_key/burst_limit"},
		{"quota negative", []edit{set("apps/0/api_key/quota_per_day", -5)}, "quota_per_day: must be 0", app + "/api_key/quota_per_day"},
		// End-user tokens and trusted values.
		{"trusted_values unknown", []edit{set("apps/0/trusted_values", "client")}, "trusted_values: must be", app + "/trusted_values"},
		// The archive.
		{"archive_raw_fields not a boolean", []edit{set("apps/0/archive_raw_fields", "true")}, "archive_raw_fields: must be bool", app + "/archive_raw_fields"},
		{"end_user issuer missing", []edit{del("apps/0/auth/end_user/issuer")}, "auth.end_user.issuer: must be the issuer URL", app + "/auth/end_user"},
		{"end_user audiences empty", []edit{set("apps/0/auth/end_user/audiences", []any{})}, "auth.end_user.audiences: list", app + "/auth/end_user/audiences"},
		{"end_user jwks over plain http", []edit{set("apps/0/auth/end_user/jwks_url", "http://idp.example.com/jwks.json")}, "auth.end_user.jwks_url: must be an https URL", app + "/auth/end_user/jwks_url"},
		{"end_user HMAC algorithm", []edit{set("apps/0/auth/end_user/algorithms", []any{"HS256"})}, `"HS256" is not accepted`, app + "/auth/end_user/algorithms/0"},
		{"end_user alg none", []edit{set("apps/0/auth/end_user/algorithms", []any{"none"})}, `"none" is not accepted`, app + "/auth/end_user/algorithms/0"},
		{"end_user unknown field", []edit{set("apps/0/auth/end_user/jwks", "x")}, `unknown field "jwks"`, app + "/auth/end_user"},
		{"meta missing", []edit{del("apps/0/meta")}, "meta.dataset_id", app},
		{"dataset id missing", []edit{del("apps/0/meta/dataset_id")}, "meta.dataset_id", app + "/meta"},
		{"dataset id not digits", []edit{set("apps/0/meta/dataset_id", "x1")}, "meta.dataset_id: must be the dataset's numeric id", app + "/meta/dataset_id"},
		{"dataset id a number", []edit{set("apps/0/meta/dataset_id", 123)}, "dataset_id: must be string", app + "/meta/dataset_id"},
		{"ad account bad pattern", []edit{set("apps/0/meta/ad_account_id", "1234")}, "meta.ad_account_id: must look like act_", app + "/meta/ad_account_id"},
		{"test event code bad pattern", []edit{set("apps/0/meta/test_event_code", "TEST 1")}, "meta.test_event_code", app + "/meta/test_event_code"},
		{"access tier unknown", []edit{set("apps/0/meta/access_tier", "advanced")}, "meta.access_tier: must be", app + "/meta/access_tier"},
		{"meta unknown field", []edit{set("apps/0/meta/pixel_id", "1")}, `unknown field "pixel_id"`, app + "/meta"},
		// Currencies.
		{"reporting currency lowercase", []edit{set("apps/0/reporting_currency", "usd")}, `"usd" is not an ISO 4217 code`, app + "/reporting_currency"},
		// The library reports a propertyNames failure at a wrong instance location (it keeps a
		// slice it goes on reusing), so this case looks for the keyword instead.
		{"rate key lowercase", []edit{set("apps/0/currency_rates/eur", 1.1)}, `"eur" is not an ISO 4217 code`, "propertyNames"},
		{"rate zero", []edit{set("apps/0/currency_rates/EUR", 0)}, "currency_rates.EUR: must be a positive number", app + "/currency_rates/EUR"},
		{"rate negative", []edit{set("apps/0/currency_rates/GBP", -2)}, "currency_rates.GBP: must be a positive number", app + "/currency_rates/GBP"},
		{"rates without reporting currency", []edit{noCurrency, vipByCount, vipNotValued}, "currency_rates: needs reporting_currency", app},
		// Segments.
		{"segment not an object", []edit{set("apps/0/segments/0", "vip")}, "segments[0]: must be an object", app + "/segments/0"},
		{"segment id missing", []edit{del("apps/0/segments/0/id")}, "segments[0].id: is required", app + "/segments/0"},
		{"segment id bad pattern", []edit{set("apps/0/segments/0/id", "New-Installer")}, `.id: must match ^[a-z][a-z0-9_]{0,62}$`, app + "/segments/0/id"},
		{"segment unknown field", []edit{set("apps/0/segments/0/whn", []any{})}, `unknown field "whn"`, app + "/segments/0"},
		{"segment when missing", []edit{del("apps/0/segments/0/when")}, ".when: list at least one condition", app + "/segments/0"},
		{"segment when empty", []edit{set("apps/0/segments/0/when", []any{})}, ".when: list at least one condition", app + "/segments/0/when"},
		{"condition not an object", []edit{set("apps/0/segments/0/when/0", "count")}, "must be an object with one primitive", app + "/segments/0/when/0"},
		{"condition empty", []edit{set("apps/0/segments/0/when/0", map[string]any{})}, "names no primitive", app + "/segments/0/when/0"},
		{"condition unknown primitive", []edit{set("apps/0/segments/0/when/0/cnt", map[string]any{})}, `unknown primitive "cnt"`, app + "/segments/0/when/0"},
		{"condition with two primitives", []edit{set("apps/0/segments/1/when/0/value", map[string]any{"attribute": "purchase_count", "at_least": 1})},
			"names 2 primitives", app + "/segments/1/when/0"},
		{"count at_least zero", []edit{set("apps/0/segments/1/when/0/count/at_least", 0)}, "count.at_least: must be at least 1", app + "/segments/1/when/0/count/at_least"},
		{"count at_least a string", []edit{set("apps/0/segments/1/when/0/count/at_least", "3")}, "at_least: must be int64, not string", app + "/segments/1/when/0/count/at_least"},
		{"count at_least missing", []edit{del("apps/0/segments/1/when/0/count/at_least")}, "count.at_least: must be at least 1", app + "/segments/1/when/0/count"},
		{"count window zero", []edit{set("apps/0/segments/1/when/0/count/within", "0d")}, "must be a whole number of days, at least 1d", app + "/segments/1/when/0/count/within"},
		{"count window missing", []edit{del("apps/0/segments/1/when/0/count/within")}, "count.within: is required", app + "/segments/1/when/0/count"},
		{"count events empty", []edit{set("apps/0/segments/1/when/0/count/events", []any{})}, "count.events: list at least one event name", app + "/segments/1/when/0/count/events"},
		{"count unknown field", []edit{set("apps/0/segments/1/when/0/count/at_most", 9)}, `count: unknown field "at_most"`, app + "/segments/1/when/0/count"},
		{"fb_mobile name in a rule", []edit{set("apps/0/segments/1/when/0/count/events/0", "fb_mobile_activate_app")}, "use the Conversions API name", app + "/segments/1/when/0/count/events/0"},
		{"event name bad pattern", []edit{set("apps/0/segments/1/when/0/count/events/0", "add to cart!")}, "is not an event name", app + "/segments/1/when/0/count/events/0"},
		{"event listed twice", []edit{set("apps/0/segments/1/when/0/count/events/-", "ActivateApp")}, `"ActivateApp" is listed twice`, app + "/segments/1/when/0/count/events"},
		{"since with events and attribute", []edit{set("apps/0/segments/0/when/0/since/events", []any{"Purchase"})}, "set events or attribute, not both", app + "/segments/0/when/0/since"},
		{"since without subject", []edit{del("apps/0/segments/0/when/0/since/attribute")}, "set events (the latest of them) or attribute", app + "/segments/0/when/0/since"},
		{"since without bounds", []edit{del("apps/0/segments/0/when/0/since/within")}, "set at_least, within or both", app + "/segments/0/when/0/since"},
		{"since attribute unknown", []edit{set("apps/0/segments/0/when/0/since/attribute", "registered")}, `"registered" is not a time attribute`, app + "/segments/0/when/0/since/attribute"},
		{"since duration bad", []edit{set("apps/0/segments/3/when/0/since/at_least", "7 days")}, `"7 days" is not a duration`, app + "/segments/3/when/0/since/at_least"},
		{"since within zero", []edit{set("apps/0/segments/0/when/0/since/within", "0s")}, "within: must be longer than 0s", app + "/segments/0/when/0/since/within"},
		{"not_followed after negative", []edit{set("apps/0/segments/2/when/0/not_followed/after", "-1h")}, "must not be negative", app + "/segments/2/when/0/not_followed/after"},
		{"not_followed after missing", []edit{del("apps/0/segments/2/when/0/not_followed/after")}, "not_followed.after: is required", app + "/segments/2/when/0/not_followed"},
		{"not_followed event missing", []edit{del("apps/0/segments/2/when/0/not_followed/event")}, "not_followed.event: is required", app + "/segments/2/when/0/not_followed"},
		{"not_followed by missing", []edit{del("apps/0/segments/2/when/0/not_followed/by")}, "not_followed.by: list at least one event name", app + "/segments/2/when/0/not_followed"},
		{"not_followed misspelt key", []edit{set("apps/0/segments/2/when/0/not_followed/afer", "1h")}, `unknown field "afer"`, app + "/segments/2/when/0/not_followed"},
		{"value attribute unknown", []edit{set("apps/0/segments/4/when/0/value/attribute", "ltv")}, `"ltv" is not a numeric attribute`, app + "/segments/4/when/0/value/attribute"},
		{"value without bounds", []edit{del("apps/0/segments/4/when/0/value/at_least")}, "value: set at_least, below or both", app + "/segments/4/when/0/value"},
		{"value bound a string", []edit{set("apps/0/segments/4/when/0/value/at_least", "200")}, "at_least: must be float64, not string", app + "/segments/4/when/0/value/at_least"},
		{"lifetime value without reporting currency", []edit{noCurrency, noCurrencyRate, vipNotValued}, "lifetime_value needs the app's reporting_currency", app},
		// Audiences.
		{"audience segment missing", []edit{del("apps/0/audiences/0/segment")}, ".segment: is required", app + "/audiences/0"},
		{"audience segment bad pattern", []edit{set("apps/0/audiences/0/segment", "Cart-Abandoner")}, "is not one of the app's segments", app + "/audiences/0/segment"},
		{"audience name missing", []edit{del("apps/0/audiences/0/name")}, ".name: is required", app + "/audiences/0"},
		{"audience name with spaces around", []edit{set("apps/0/audiences/0/name", " Cart abandoners")}, "must not start or end with spaces", app + "/audiences/0/name"},
		{"audience name with a control character", []edit{set("apps/0/audiences/0/name", "Cart\tabandoners")}, "without control characters", app + "/audiences/0/name"},
		{"audience with id and create", []edit{set("apps/0/audiences/0/audience_id", "23850000000000001")}, "set audience_id or \"create\": true, not both", app + "/audiences/0"},
		{"audience with neither id nor create", []edit{set("apps/0/audiences/0/create", false)}, "set audience_id (an existing audience's numeric id) or \"create\": true", app + "/audiences/0"},
		{"audience create not a boolean", []edit{set("apps/0/audiences/0/create", "yes")}, "create: must be bool", app + "/audiences/0/create"},
		{"audience id not digits", []edit{del("apps/0/audiences/0/create"), set("apps/0/audiences/0/audience_id", "abc")}, "audience_id: must be the audience's numeric id", app + "/audiences/0/audience_id"},
		{"audience ad account bad pattern", []edit{set("apps/0/audiences/0/ad_account_id", "987")}, "ad_account_id: must look like act_", app + "/audiences/0/ad_account_id"},
		{"audience unknown field", []edit{set("apps/0/audiences/0/create_if_missing", true)}, `unknown field "create_if_missing"`, app + "/audiences/0"},
		{"columns without EXTERN_ID", []edit{set("apps/0/audiences/0/columns", []any{"EMAIL"})}, "must include EXTERN_ID", app + "/audiences/0/columns"},
		{"columns with EXTERN_ID only", []edit{set("apps/0/audiences/0/columns", []any{"EXTERN_ID"})}, "list at least one of EMAIL, PHONE, MADID", app + "/audiences/0/columns"},
		{"columns listing LOOKALIKE_VALUE", []edit{set("apps/0/audiences/0/columns", []any{"EXTERN_ID", "EMAIL", "LOOKALIKE_VALUE"})}, "is added automatically", app + "/audiences/0/columns/2"},
		{"column unknown", []edit{set("apps/0/audiences/0/columns", []any{"EXTERN_ID", "IDFA"})}, `"IDFA" is not a column`, app + "/audiences/0/columns/1"},
		{"column twice", []edit{set("apps/0/audiences/0/columns", []any{"EXTERN_ID", "EMAIL", "EMAIL"})}, `"EMAIL" is listed twice`, app + "/audiences/0/columns"},
		{"value-based audience without reporting currency", []edit{noCurrency, noCurrencyRate, vipByCount}, "value_based: needs the app's reporting_currency", app},
		{"exclusive group of one", []edit{set("apps/0/exclusive_groups/0", []any{"cart_abandoner"})}, "list at least two segments", app + "/exclusive_groups/0"},
		{"exclusive group member twice", []edit{set("apps/0/exclusive_groups/0/-", "cart_abandoner")}, `"cart_abandoner" is listed twice`, app + "/exclusive_groups/0"},
		{"removal fraction above 1", []edit{set("apps/0/audience_sync/max_removal_fraction", 1.5)}, "max_removal_fraction: must be between 0 and 1", app + "/audience_sync/max_removal_fraction"},
		{"removal fraction negative", []edit{set("apps/0/audience_sync/max_removal_fraction", -0.1)}, "max_removal_fraction: must be between 0 and 1", app + "/audience_sync/max_removal_fraction"},
		{"full refresh too often", []edit{set("apps/0/audience_sync/full_refresh_hours", 12)}, "full_refresh_hours: must be 0 (off) or 24..8760", app + "/audience_sync/full_refresh_hours"},
		{"full refresh too rare", []edit{set("apps/0/audience_sync/full_refresh_hours", 8761)}, "full_refresh_hours: must be 0 (off) or 24..8760", app + "/audience_sync/full_refresh_hours"},
		{"full refresh with a value-based audience", []edit{set("apps/0/audience_sync/full_refresh_hours", 168)}, `full_refresh_hours: must be 0 (off) while audiences[3] ("vip") is value_based`, app + "/audience_sync/full_refresh_hours"},
		{"payload cap too small", []edit{set("apps/0/audience_sync/max_payload_bytes", 100)}, "max_payload_bytes: must be 0 (the default) or at least 1024", app + "/audience_sync/max_payload_bytes"},
		{"audience_sync unknown field", []edit{set("apps/0/audience_sync/max_removals", 5)}, `unknown field "max_removals"`, app + "/audience_sync"},
		{"audience_sync not an object", []edit{set("apps/0/audience_sync", "daily")}, "audience_sync: must be an object", app + "/audience_sync"},
		// Channels.
		{"share_app_user_id not a boolean", []edit{set("apps/0/share_app_user_id", "yes")}, "share_app_user_id: must be bool", app + "/share_app_user_id"},
		{"cool-down not a duration", []edit{set("apps/0/channel_cooldown", "a day")}, `channel_cooldown: must be a duration such as "24h"`, app + "/channel_cooldown"},
		{"cool-down zero", []edit{set("apps/0/channel_cooldown", "0h")}, `channel_cooldown: must be a duration such as "24h"`, app + "/channel_cooldown"},
		{"channel id bad pattern", []edit{set("apps/0/channels", channel(map[string]any{"id": "Push_1"}))}, "channels[0].id: must be 1-63 lowercase", app + "/channels/0/id"},
		{"channel id missing", []edit{set("apps/0/channels", channel(map[string]any{"id": nil}))}, "channels[0].id: must be 1-63 lowercase", app + "/channels/0"},
		{"channel type unknown", []edit{set("apps/0/channels", channel(map[string]any{"type": "sms"}))}, `channels[0].type: must be "webhook"`, app + "/channels/0/type"},
		{"channel unknown field", []edit{set("apps/0/channels", channel(map[string]any{"headers": map[string]any{}}))}, `unknown field "headers"`, app + "/channels/0"},
		{"channel url over plain http", []edit{set("apps/0/channels", channel(map[string]any{"url": "http://push.example.com/x"}))}, "channels[0].url: must be https (http only on loopback", app + "/channels/0/url"},
		{"channel url with credentials", []edit{set("apps/0/channels", channel(map[string]any{"url": "https://me:pw@push.example.com/x"}))}, "channels[0].url: must be an absolute https URL without credentials", app + "/channels/0/url"},
		{"channel url with fragment", []edit{set("apps/0/channels", channel(map[string]any{"url": "https://push.example.com/x#y"}))}, "channels[0].url: must be an absolute https URL without credentials or fragment", app + "/channels/0/url"},
		{"channel url not a URL", []edit{set("apps/0/channels", channel(map[string]any{"url": "push.example.com"}))}, "channels[0].url: must be an absolute https URL", app + "/channels/0/url"},
		{"channel url other scheme", []edit{set("apps/0/channels", channel(map[string]any{"url": "ftp://push.example.com/x"}))}, `channels[0].url: must be https (got "ftp://`, app + "/channels/0/url"},
		{"channel segments missing", []edit{set("apps/0/channels", channel(map[string]any{"segments": nil}))}, "channels[0].segments: list at least one", app + "/channels/0"},
		{"channel segments empty", []edit{set("apps/0/channels", channel(map[string]any{"segments": []any{}}))}, "channels[0].segments: list at least one", app + "/channels/0/segments"},
		{"channel segment bad pattern", []edit{set("apps/0/channels", channel(map[string]any{"segments": []any{"Cart-Abandoner"}}))}, "is not one of the app's segments", app + "/channels/0/segments/0"},
		{"channel segment twice", []edit{set("apps/0/channels", channel(map[string]any{"segments": []any{"vip", "vip"}}))}, `"vip" is listed twice`, app + "/channels/0/segments"},
		{"channel event unknown", []edit{set("apps/0/channels", channel(map[string]any{"events": []any{"churned"}}))}, `channels[0].events[0]: must be "joined" or "left"`, app + "/channels/0/events/0"},
		{"channel event twice", []edit{set("apps/0/channels", channel(map[string]any{"events": []any{"left", "left"}}))}, `"left" is listed twice`, app + "/channels/0/events"},
		{"channel auth header bad", []edit{set("apps/0/channels", channel(map[string]any{"auth": map[string]any{"header": "Bad Header", "secret_name": "s"}}))}, "auth.header: must be an HTTP header name", app + "/channels/0/auth/header"},
		{"channel auth header missing", []edit{set("apps/0/channels", channel(map[string]any{"auth": map[string]any{"secret_name": "s"}}))}, "auth.header: must be an HTTP header name", app + "/channels/0/auth"},
		{"channel auth secret bad", []edit{set("apps/0/channels", channel(map[string]any{"auth": map[string]any{"header": "Authorization", "secret_name": "retarget push"}}))}, "auth.secret_name: must be a Secrets Manager secret name", app + "/channels/0/auth/secret_name"},
		{"channel auth secret missing", []edit{set("apps/0/channels", channel(map[string]any{"auth": map[string]any{"header": "Authorization"}}))}, "auth.secret_name: must be a Secrets Manager secret name", app + "/channels/0/auth"},
		{"channel dev value two lines", []edit{set("apps/0/channels", channel(map[string]any{"auth": map[string]any{"header": "Authorization", "secret_name": "s", "dev_value": "Bearer a\r\nX: 1"}}))}, "auth.dev_value: must be one line", app + "/channels/0/auth/dev_value"},
		{"channel auth unknown field", []edit{set("apps/0/channels", channel(map[string]any{"auth": map[string]any{"header": "Authorization", "secret_name": "s", "value": "x"}}))}, `unknown field "value"`, app + "/channels/0/auth"},
		{"channel rate too high", []edit{set("apps/0/channels", channel(map[string]any{"rate_per_second": 301}))}, "rate_per_second: must be 0 (the default, 300) or 1..300", app + "/channels/0/rate_per_second"},
		{"channel rate negative", []edit{set("apps/0/channels", channel(map[string]any{"rate_per_second": -1}))}, "rate_per_second: must be 0 (the default, 300) or 1..300", app + "/channels/0/rate_per_second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := variant(t, tt.edits...)
			_, err := appconfig.Parse(doc)
			if err == nil {
				t.Errorf("the loader accepts it")
			} else if !strings.Contains(err.Error(), tt.loader) {
				t.Errorf("the loader rejects it for another reason: %v\nwant a message with %q", err, tt.loader)
			}
			err = sch.Validate(readJSON(t, doc))
			if err == nil {
				t.Fatalf("the schema accepts it")
			}
			if !slices.Contains(locations(err), tt.at) {
				t.Errorf("the schema reports no problem at %s:\n%v", tt.at, err)
			}
		})
	}
}

// TestSchemaAcceptsWhatTheLoaderAccepts: variants of the sample using the optional fields and
// the other branches of each rule pass both.
func TestSchemaAcceptsWhatTheLoaderAccepts(t *testing.T) {
	sch := compileSchema(t)
	minimal := map[string]any{"id": "shop", "platforms": []any{"android"}, "api_key": map[string]any{"name": "shop"},
		"meta": map[string]any{"dataset_id": "1", "ad_account_id": "act_1"}}
	tests := map[string][]edit{
		"without $schema":  {del("$schema")},
		"a minimal app":    {set("apps/-", minimal)},
		"usage plan edges": {set("apps/0/api_key/rate_limit", 10000), set("apps/0/api_key/burst_limit", 5000), set("apps/0/api_key/quota_per_day", 0)},
		"an existing audience in another account": {del("apps/0/audiences/3/create"), set("apps/0/audiences/3/audience_id", "23850000000000001"),
			set("apps/0/audiences/3/ad_account_id", "act_789"), set("apps/0/audiences/3/create", false), set("apps/0/audiences/3/columns", []any{"EXTERN_ID", "MADID"})},
		"since the latest of events, both bounds": {set("apps/0/segments/0/when/0/since", map[string]any{"events": []any{"Purchase", "Subscribe"}, "at_least": "1d", "within": "30d"})},
		"value below only":                        {set("apps/0/segments/4/when/0/value", map[string]any{"attribute": "purchase_count", "below": 1})},
		"two conditions":                          {set("apps/0/segments/4/when/-", map[string]any{"since": map[string]any{"attribute": "last_seen", "within": "30d"}})},
		"count window in hours":                   {set("apps/0/segments/1/when/0/count/within", "48h")},
		"sync tuned":                              {vipNotValued, set("apps/0/audience_sync", map[string]any{"max_removal_fraction": 0, "full_refresh_hours": 168, "max_payload_bytes": 60000})},
		"sync at its bounds":                      {vipNotValued, set("apps/0/audience_sync", map[string]any{"max_removal_fraction": 1, "full_refresh_hours": 24, "max_payload_bytes": 1024})},
		"value-based audience, refresh off":       {set("apps/0/audience_sync/full_refresh_hours", 0)},
		"no currency at all":                      {noCurrency, noCurrencyRate, vipByCount, vipNotValued},
		"a second app":                            {set("apps/-", otherApp(t))},
		"audience name with inner spaces":         {set("apps/0/audiences/0/name", "Accredited sellers,  Sloane St")},
		"no exclusive groups":                     {set("apps/0/exclusive_groups", []any{})},
		"archive keeps the raw fields":            {set("apps/0/archive_raw_fields", true)},
		"a channel with every field": {set("apps/0/share_app_user_id", true), set("apps/0/channel_cooldown", "24h"), set("apps/0/channels", channel(map[string]any{
			"url": "https://push.example.com:8443/hooks/retarget?app=shop", "segments": []any{"cart_abandoner", "vip"}, "events": []any{"joined", "left"},
			"body": `{"segment": "<$.detail.segment>"}`, "rate_per_second": 300}))},
		"a channel with the defaults, no auth": {set("apps/0/channels", channel(map[string]any{"auth": nil})), set("apps/0/share_app_user_id", false)},
		"channels on loopback for make dev": {set("apps/0/channels", append(append(
			channel(map[string]any{"id": "a", "url": "http://127.0.0.1:8787/hook"}),
			channel(map[string]any{"id": "b", "url": "http://localhost:8787"})...),
			channel(map[string]any{"id": "c", "url": "http://[::1]:8787/x?y=1"})...))},
	}
	for name, edits := range tests {
		t.Run(name, func(t *testing.T) {
			doc := variant(t, edits...)
			if _, err := appconfig.Parse(doc); err != nil {
				t.Fatalf("the loader rejects it: %v", err)
			}
			if err := sch.Validate(readJSON(t, doc)); err != nil {
				t.Errorf("the loader accepts it, the schema does not: %v", err)
			}
		})
	}
}

// otherApp is the sample app under other ids, so the two do not clash.
func otherApp(t *testing.T) any {
	t.Helper()
	a := copyOf(t, "apps/0").(map[string]any)
	a["id"] = "other-shop"
	a["api_key"] = map[string]any{"name": "other-shop", "dev_value": "other-dev-key"}
	return a
}

// TestLoaderOnlyChecks: what the loader rejects and the schema cannot express (comparisons
// between fields, uniqueness of a field across list items, references between sections, the
// loader's word list of sensitive audience names). The schema's top-level description lists
// them; each case names the phrase there, and fails once the schema catches it too, so that the
// list and the schema stay honest:
//
//   - ids unique across apps: apps[].id, api_key.name, api_key.dev_value
//   - segment ids unique within an app
//   - an audience's segment is one of the app's segments, and mapped by one audience only
//   - audience names unique per ad account, without words suggesting health or financial status
//   - audience_id unique within an app
//   - exclusive_groups members are mapped segments, each in one group only
//   - a currency_rates key is not the reporting_currency
//   - not_followed.by does not list not_followed.event
//   - durations at most 3650d; count.within whole days; since.at_least < since.within;
//     not_followed.until > not_followed.after; value.at_least < value.below
func TestLoaderOnlyChecks(t *testing.T) {
	sch := compileSchema(t)
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		Description string `json:"description"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	sameID := otherApp(t).(map[string]any)
	sameID["id"] = "sample-shop"
	sameKey := otherApp(t).(map[string]any)
	sameKey["api_key"].(map[string]any)["name"] = "sample-shop"
	sameDevKey := otherApp(t).(map[string]any)
	sameDevKey["api_key"].(map[string]any)["dev_value"] = "dev-api-key"
	tests := []struct {
		name   string
		edits  []edit
		loader string // part of the loader's message
		listed string // where the schema's description lists the check
	}{
		{"app id twice", []edit{set("apps/-", sameID)}, "id: duplicates apps[0]", "ids unique across apps (apps[].id"},
		{"API key name twice", []edit{set("apps/-", sameKey)}, "api_key.name: duplicates apps[0]", "api_key.name"},
		{"dev key twice", []edit{set("apps/-", sameDevKey)}, "api_key.dev_value: duplicates apps[0]", "api_key.dev_value"},
		{"segment id twice", []edit{set("apps/0/segments/1/id", "new_installer")}, "duplicates segments[0]", "segment ids unique within an app"},
		{"audience of an unknown segment", []edit{set("apps/0/audiences/0/segment", "cart_abandoners")}, `"cart_abandoners" is not one of the app's segments`,
			"an audience's segment must be one of the app's segments"},
		{"segment mapped twice", []edit{set("apps/0/audiences/1/segment", "cart_abandoner")}, "is already mapped by audiences[0]", "mapped by one audience only"},
		{"audience name twice in an account", []edit{set("apps/0/audiences/1/name", "Cart abandoners")}, `"Cart abandoners" duplicates audiences[0]`, "audience names unique per ad account"},
		{"audience name suggesting income", []edit{set("apps/0/audiences/3/name", "High income")}, `contains "income", which suggests financial status`, "health or financial status"},
		{"audience id twice", []edit{
			del("apps/0/audiences/0/create"), set("apps/0/audiences/0/audience_id", "1"),
			del("apps/0/audiences/1/create"), set("apps/0/audiences/1/audience_id", "1")}, "audience_id: duplicates audiences[0]", "audience_id unique within an app"},
		{"exclusive group of an unmapped segment", []edit{set("apps/0/exclusive_groups/0/-", "subscription_expired")}, "is not mapped to an audience", "exclusive_groups members must be mapped segments"},
		{"segment in two groups", []edit{set("apps/0/exclusive_groups/-", []any{"cart_abandoner", "vip"})}, "is already in exclusive_groups[0]", "each in one group only"},
		{"rate of the reporting currency", []edit{set("apps/0/currency_rates/USD", 1)}, "is the reporting currency", "a currency_rates key must not be the reporting_currency"},
		{"not_followed by itself", []edit{set("apps/0/segments/2/when/0/not_followed/by/-", "AddToCart")}, "lists the event itself", "not_followed.by must not list not_followed.event"},
		{"duration too long", []edit{set("apps/0/segments/3/when/0/since/at_least", "3651d")}, "longer than 3650d", "durations at most 3650d"},
		{"count window not whole days", []edit{set("apps/0/segments/1/when/0/count/within", "36h")}, "must be a whole number of days", "count.within a whole number of days"},
		{"since bounds crossed", []edit{set("apps/0/segments/0/when/0/since/at_least", "3d")}, "must be shorter than within", "since.at_least shorter than since.within"},
		{"not_followed window crossed", []edit{set("apps/0/segments/2/when/0/not_followed/until", "1h")}, "must be longer than after", "not_followed.until longer than not_followed.after"},
		{"value bounds crossed", []edit{set("apps/0/segments/4/when/0/value/below", 200)}, "must be less than below", "value.at_least below value.below"},
		{"channel id twice", []edit{set("apps/0/channels", append(channel(nil), channel(nil)...))}, `channels[1].id: "push" duplicates channels[0]`, "channel ids unique within an app"},
		{"channel of an unknown segment", []edit{set("apps/0/channels", channel(map[string]any{"segments": []any{"lapsed"}}))}, `"lapsed" is not one of the app's segments`,
			"a channel's segments must be the app's segments"},
		{"cool-down above 30d", []edit{set("apps/0/channel_cooldown", "31d")}, "at most 30d", "channel_cooldown at most 30d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := variant(t, tt.edits...)
			_, err := appconfig.Parse(doc)
			if err == nil {
				t.Errorf("the loader accepts it")
			} else if !strings.Contains(err.Error(), tt.loader) {
				t.Errorf("the loader rejects it for another reason: %v\nwant a message with %q", err, tt.loader)
			}
			if err := sch.Validate(readJSON(t, doc)); err != nil {
				t.Errorf("the schema rejects it now: move the case to TestSchemaRejectsWhatTheLoaderRejects and the check out of the schema's description:\n%v", err)
			}
			if !strings.Contains(top.Description, tt.listed) {
				t.Errorf("the schema's description does not list %q", tt.listed)
			}
		})
	}
}

// TestSchemaAsksToLeaveUnsetFieldsOut: the one way the schema is stricter than the loader, as
// its description says. The loader reads null, "" or [] in an optional field as "not set"; the
// schema, which editors show as you type, wants the field left out.
func TestSchemaAsksToLeaveUnsetFieldsOut(t *testing.T) {
	sch := compileSchema(t)
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "this schema asks you to leave the field out instead") {
		t.Fatal("the schema's description does not say that it wants unset fields left out")
	}
	for name, e := range map[string]edit{
		"empty test event code": set("apps/0/meta/test_event_code", ""),
		"empty access tier":     set("apps/0/meta/access_tier", ""),
		"null audience_sync":    set("apps/0/audience_sync", nil),
		"null columns":          set("apps/0/audiences/0/columns", nil),
		"empty event list":      set("apps/0/segments/0/when/0/since/events", []any{}),
		"empty channel body":    set("apps/0/channels", channel(map[string]any{"body": ""})),
		"empty channel events":  set("apps/0/channels", channel(map[string]any{"events": []any{}})),
		"empty header dev value": set("apps/0/channels", channel(map[string]any{
			"auth": map[string]any{"header": "Authorization", "secret_name": "s", "dev_value": ""}})),
	} {
		t.Run(name, func(t *testing.T) {
			doc := variant(t, e)
			if _, err := appconfig.Parse(doc); err != nil {
				t.Fatalf("the loader rejects it: %v", err)
			}
			if err := sch.Validate(readJSON(t, doc)); err == nil {
				t.Errorf("the schema accepts it: drop the sentence from its description if that is now intended")
			}
		})
	}
}

// TestDeployableSampleHasNoTestCode: the config cdk.json deploys by default sets no
// test_event_code (Meta would send every event to Test Events only, never to ads), and the dev
// config make dev runs is that config plus test codes, so the two never drift apart.
func TestDeployableSampleHasNoTestCode(t *testing.T) {
	sample, err := env.LoadApps(sampleFile)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := env.LoadApps(devFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range sample.Apps {
		if a.Meta.TestEventCode != "" {
			t.Errorf("%s: app %q sets meta.test_event_code: keep test codes in %s", sampleFile, a.ID, devFile)
		}
	}
	withCode := 0
	for _, a := range dev.Apps {
		if a.Meta.TestEventCode != "" {
			withCode++
		}
	}
	if withCode == 0 {
		t.Errorf("%s sets no test_event_code: make dev would send to Meta's live dataset if pointed at the Graph API", devFile)
	}
	// The dev config without its test codes is the sample, field for field.
	var a, b any
	for _, x := range []struct {
		file string
		dst  *any
	}{{sampleFile, &a}, {devFile, &b}} {
		data, err := os.ReadFile(x.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, x.dst); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range b.(map[string]any)["apps"].([]any) {
		delete(app.(map[string]any)["meta"].(map[string]any), "test_event_code")
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Errorf("%s differs from %s by more than test_event_code: keep them in step", devFile, sampleFile)
	}
}

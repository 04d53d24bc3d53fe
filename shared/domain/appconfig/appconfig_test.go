package appconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const validApp = `{"id": "shop", "platforms": ["ios"], "api_key": {"name": "shop", "dev_value": "dev-shop-key"},
  "meta": {"dataset_id": "123", "ad_account_id": "act_456"}}`

func TestSampleConfigIsValid(t *testing.T) {
	cfg, err := load(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	app, ok := cfg.App("sample-shop")
	if !ok || !app.Supports(PlatformIOS) || !app.Supports(PlatformAndroid) || app.APIKey.DevValue != "dev-api-key" {
		t.Fatalf("sample app: %+v", app)
	}
}

func TestParseErrorsNameTheEntryAndField(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"wrong version", `{"version": 2, "apps": [` + validApp + `]}`, []string{"version: must be 1"}},
		{"no apps", `{"version": 1, "apps": []}`, []string{"at least one app"}},
		{"unknown key", `{"version": 1, "apps": [` + validApp + `], "segmnts": []}`, []string{`unknown field "segmnts"`}},
		{"wrong type with line", "{\"version\": 1,\n \"apps\": \"shop\"}", []string{"line 2", "apps"}},
		{"not JSON", `{"version": 1,`, []string{"invalid JSON"}},
		{"trailing document", `{"version": 1, "apps": [` + validApp + `]} {}`, []string{"after the JSON document"}},
		{"bad app id", `{"version": 1, "apps": [{"id": "Shop_1", "platforms": ["ios"], "api_key": {"name": "k"}, "meta": {"dataset_id": "1", "ad_account_id": "act_1"}}]}`,
			[]string{`apps[0] ("Shop_1").id: must be 1-63 lowercase`}},
		{"every problem at once", `{"version": 1, "apps": [{"id": "a", "platforms": ["web", "ios", "ios"], "api_key": {"name": ""},
			"meta": {"dataset_id": "x1", "ad_account_id": "1234", "test_event_code": "TEST 1"}}]}`,
			[]string{`platforms[0]: "web" is not a platform`, `platforms[2]: "ios" is listed twice`, "api_key.name: is required",
				"meta.dataset_id: must be the dataset's numeric id", "meta.ad_account_id: must look like act_<digits>", "meta.test_event_code"}},
		{"unknown access tier", `{"version": 1, "apps": [{"id": "a", "platforms": ["ios"], "api_key": {"name": "k"}, "meta": {"dataset_id": "1", "ad_account_id": "act_1", "access_tier": "Standard"}}]}`,
			[]string{`meta.access_tier: must be "standard" or "development" (got "Standard")`}},
		{"duplicates", `{"version": 1, "apps": [` + validApp + `,` + validApp + `]}`,
			[]string{`apps[1] ("shop").id: duplicates apps[0]`, "api_key.name: duplicates apps[0]", "api_key.dev_value: duplicates apps[0]"}},
		{"short dev key", `{"version": 1, "apps": [{"id": "a", "platforms": ["ios"], "api_key": {"name": "k", "dev_value": "short"}, "meta": {"dataset_id": "1", "ad_account_id": "act_1"}}]}`,
			[]string{"api_key.dev_value: must be at least 8 characters"}},
		{"usage plan out of range", `{"version": 1, "apps": [{"id": "a", "platforms": ["ios"], "api_key": {"name": "k", "rate_limit": 10001, "burst_limit": -1, "quota_per_day": -5}, "meta": {"dataset_id": "1", "ad_account_id": "act_1"}}]}`,
			[]string{"api_key.rate_limit: must be 0 (the default) or 1..10000 requests per second (got 10001)",
				"api_key.burst_limit: must be 0 (the default) or 1..5000 requests (got -1)",
				"api_key.quota_per_day: must be 0 (no quota) or a positive number of requests per day (got -5)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestSchemaKeyIsAcceptedAndIgnored: the file may name its JSON Schema for editors with
// "$schema"; any other unknown top-level key is still an error.
func TestSchemaKeyIsAcceptedAndIgnored(t *testing.T) {
	plain, err := Parse([]byte(`{"version": 1, "apps": [` + validApp + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	named, err := Parse([]byte(`{"$schema": "./apps.schema.json", "version": 1, "apps": [` + validApp + `]}`))
	if err != nil {
		t.Fatalf("$schema rejected: %v", err)
	}
	if !slices.EqualFunc(named.Apps, plain.Apps, func(a, b App) bool { return a.ID == b.ID && a.APIKey == b.APIKey && reflect.DeepEqual(a.Meta, b.Meta) }) ||
		named.Version != plain.Version {
		t.Errorf("$schema changed the config: %+v, want %+v", named, plain)
	}
	for doc, want := range map[string]string{
		`{"$schema2": "x", "version": 1, "apps": [` + validApp + `]}`: `unknown field "$schema2"`,
		`{"schema": "x", "version": 1, "apps": [` + validApp + `]}`:   `unknown field "schema"`,
		`{"$schema": 1, "version": 1, "apps": [` + validApp + `]}`:    "$schema: must be string",
	} {
		if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", doc, err, want)
		}
	}
}

// load reads a config file for the tests (the package itself does no I/O).
func load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

func TestForDeploymentDropsDevKeysOnly(t *testing.T) {
	cfg, err := Parse([]byte(`{"$schema": "./apps.schema.json", "version": 1, "apps": [` + validApp + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	dep := cfg.ForDeployment()
	if dep.Schema != "" || cfg.Schema == "" {
		t.Errorf("deployment config keeps $schema %q (editor help, meaningless next to the bundled copy)", dep.Schema)
	}
	if dep.Apps[0].APIKey.DevValue != "" || dep.Apps[0].APIKey.Name != "shop" || dep.Apps[0].Meta.DatasetID != "123" {
		t.Fatalf("deployment config: %+v", dep.Apps[0])
	}
	if cfg.Apps[0].APIKey.DevValue != "dev-shop-key" {
		t.Fatal("ForDeployment changed the original")
	}
	if err := dep.Validate(); err != nil {
		t.Fatalf("deployment config invalid: %v", err)
	}
}

func TestMetaIDs(t *testing.T) {
	c := &Config{Apps: []App{
		{ID: "a", Meta: Meta{DatasetID: "1", AdAccountID: "act_1"}, Audiences: []Audience{{AdAccountID: "act_2"}, {}, {AdAccountID: "act_1"}}},
		{ID: "b", Meta: Meta{DatasetID: "2", AdAccountID: "act_2"}},
		{ID: "c", Meta: Meta{DatasetID: "1", AdAccountID: "act_3"}},
	}}
	datasets, accounts := c.MetaIDs()
	if !slices.Equal(datasets, []string{"1", "2"}) || !slices.Equal(accounts, []string{"act_1", "act_2", "act_3"}) {
		t.Errorf("MetaIDs() = %v, %v; want [1 2], [act_1 act_2 act_3]", datasets, accounts)
	}
}

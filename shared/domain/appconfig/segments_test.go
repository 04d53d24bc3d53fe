package appconfig

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// appWith returns a config document with one app carrying the given extra keys.
func appWith(extra string) string {
	return `{"version": 1, "apps": [{"id": "shop", "platforms": ["ios"], "api_key": {"name": "shop"},
	  "meta": {"dataset_id": "123", "ad_account_id": "act_456"}` + extra + `}]}`
}

func segmentsDoc(segs string) string {
	return appWith(`, "reporting_currency": "USD", "segments": [` + segs + `]`)
}

func TestSampleConfigShipsTheDefaultSegmentPack(t *testing.T) {
	cfg, err := load(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	app, _ := cfg.App("sample-shop")
	var ids []string
	for _, s := range app.Segments {
		ids = append(ids, s.ID)
	}
	want := []string{"new_installer", "engaged", "cart_abandoner", "lapsed_7d", "vip", "onboarding_incomplete", "subscription_expired"}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("segments %v, want %v", ids, want)
	}
	if app.ReportingCurrency != "USD" || app.CurrencyRates["EUR"] <= 0 {
		t.Fatalf("currency settings: %q %v", app.ReportingCurrency, app.CurrencyRates)
	}
	// The deployed functions read a re-encoded copy (infra stages ForDeployment as JSON): it
	// must decode to the same config.
	data, err := json.MarshalIndent(cfg.ForDeployment(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(data)
	if err != nil {
		t.Fatalf("re-encoded config: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(again, cfg.ForDeployment()) {
		t.Fatalf("round trip changed the config:\n%s", data)
	}
}

func TestSegmentRuleErrorsAreExact(t *testing.T) {
	const p = `apps[0] ("shop").`
	tests := []struct {
		name, doc string
		want      []string // every line of the error, in order
	}{
		{"unknown primitive",
			segmentsDoc(`{"id": "a", "when": [{"cnt": {"events": ["AddToCart"]}}]}`),
			[]string{p + `segments[0] ("a").when[0]: unknown primitive "cnt" (use one of count, since, not_followed, value)`}},
		{"two primitives in one condition",
			segmentsDoc(`{"id": "a", "when": [{"value": {"attribute": "purchase_count", "at_least": 1}, "since": {"attribute": "last_seen", "within": "1d"}}]}`),
			[]string{p + `segments[0] ("a").when[0]: names 2 primitives: write one per condition (all conditions of a segment must hold)`}},
		{"empty condition",
			segmentsDoc(`{"id": "a", "when": [{}]}`),
			[]string{p + `segments[0] ("a").when[0]: names no primitive (use one of count, since, not_followed, value)`}},
		{"condition not an object",
			segmentsDoc(`{"id": "a", "when": ["count"]}`),
			[]string{p + `segments[0] ("a").when[0]: must be an object with one primitive (count, since, not_followed, value), e.g. {"count": {...}}`}},
		{"no conditions",
			segmentsDoc(`{"id": "a", "when": []}`),
			[]string{p + `segments[0] ("a").when: list at least one condition (count, since, not_followed, value)`}},
		{"segment not an object",
			segmentsDoc(`"vip"`),
			[]string{
				p + `segments[0]: must be an object: {"id": ..., "description": ..., "when": [...]}`,
				p + `segments[0].id: is required`,
			}},
		{"misspelt segment key",
			segmentsDoc(`{"id": "a", "whn": []}`),
			[]string{p + `segments[0] ("a"): unknown field "whn" (check the spelling; unknown keys are not ignored)`}},
		{"misspelt primitive key",
			segmentsDoc(`{"id": "a", "when": [{"not_followed": {"event": "AddToCart", "by": ["Purchase"], "afer": "1h"}}]}`),
			[]string{
				p + `segments[0] ("a").when[0]: not_followed: unknown field "afer" (check the spelling; unknown keys are not ignored)`,
				p + `segments[0] ("a").when[0].not_followed.after: is required (e.g. "24h", "7d")`,
			}},
		{"wrong type in a primitive",
			segmentsDoc(`{"id": "a", "when": [{"count": {"events": ["ActivateApp"], "within": "7d", "at_least": "3"}}]}`),
			[]string{
				p + `segments[0] ("a").when[0]: count: at_least: must be int64, not string`,
				p + `segments[0] ("a").when[0].count.at_least: must be at least 1 (got 0)`,
			}},
		{"negative duration",
			segmentsDoc(`{"id": "a", "when": [{"not_followed": {"event": "AddToCart", "by": ["Purchase"], "after": "-1h"}}]}`),
			[]string{p + `segments[0] ("a").when[0].not_followed.after: "-1h": must not be negative`}},
		{"not a duration",
			segmentsDoc(`{"id": "a", "when": [{"since": {"attribute": "last_seen", "at_least": "7 days"}}]}`),
			[]string{p + `segments[0] ("a").when[0].since.at_least: "7 days" is not a duration (use a whole number and a unit, e.g. "90m", "24h", "7d"; units d, h, m, s)`}},
		{"duration too long",
			segmentsDoc(`{"id": "a", "when": [{"since": {"attribute": "last_seen", "at_least": "3651d"}}]}`),
			[]string{p + `segments[0] ("a").when[0].since.at_least: "3651d": longer than 3650d`}},
		{"count window not whole days",
			segmentsDoc(`{"id": "a", "when": [{"count": {"events": ["ActivateApp"], "within": "36h", "at_least": 3}}]}`),
			[]string{p + `segments[0] ("a").when[0].count.within: "36h": must be a whole number of days, at least 1d (counts are kept per UTC day)`}},
		{"count without events or threshold",
			segmentsDoc(`{"id": "a", "when": [{"count": {"events": [], "within": "7d", "at_least": 0}}]}`),
			[]string{
				p + `segments[0] ("a").when[0].count.events: list at least one event name`,
				p + `segments[0] ("a").when[0].count.at_least: must be at least 1 (got 0)`,
			}},
		{"fb_mobile name in a rule",
			segmentsDoc(`{"id": "a", "when": [{"count": {"events": ["fb_mobile_activate_app"], "within": "7d", "at_least": 3}}]}`),
			[]string{p + `segments[0] ("a").when[0].count.events[0]: "fb_mobile_activate_app": use the Conversions API name (e.g. AddToCart for fb_mobile_add_to_cart, ActivateApp for fb_mobile_activate_app); app events named fb_mobile_* are matched to it`}},
		{"bad event name shape and duplicate",
			segmentsDoc(`{"id": "a", "when": [{"since": {"events": ["add to cart!", "Purchase", "Purchase"], "within": "1d"}}]}`),
			[]string{
				p + `segments[0] ("a").when[0].since.events[0]: "add to cart!" is not an event name (must match ^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$)`,
				p + `segments[0] ("a").when[0].since.events[2]: "Purchase" is listed twice`,
			}},
		{"since with events and attribute, no bounds",
			segmentsDoc(`{"id": "a", "when": [{"since": {"events": ["Purchase"], "attribute": "last_seen"}}]}`),
			[]string{
				p + `segments[0] ("a").when[0].since: set events or attribute, not both`,
				p + `segments[0] ("a").when[0].since: set at_least, within or both`,
			}},
		{"since without subject",
			segmentsDoc(`{"id": "a", "when": [{"since": {"within": "1d"}}]}`),
			[]string{p + `segments[0] ("a").when[0].since: set events (the latest of them) or attribute (one of installed, first_seen, last_seen, subscription_expires_at)`}},
		{"unknown attribute",
			segmentsDoc(`{"id": "a", "when": [{"since": {"attribute": "registered", "within": "1d"}}, {"value": {"attribute": "ltv", "at_least": 1}}]}`),
			[]string{
				p + `segments[0] ("a").when[0].since.attribute: "registered" is not a time attribute (use one of installed, first_seen, last_seen, subscription_expires_at)`,
				p + `segments[0] ("a").when[1].value.attribute: "ltv" is not a numeric attribute (use one of lifetime_value, purchase_count)`,
			}},
		{"empty intervals",
			segmentsDoc(`{"id": "a", "when": [{"since": {"attribute": "last_seen", "at_least": "7d", "within": "1d"}},
				{"not_followed": {"event": "AddToCart", "by": ["Purchase"], "after": "2h", "until": "1h"}},
				{"value": {"attribute": "lifetime_value", "at_least": 100, "below": 50}}, {"since": {"attribute": "last_seen", "within": "0s"}}]}`),
			[]string{
				p + `segments[0] ("a").when[0].since: at_least (7d) must be shorter than within (1d), or the condition never holds`,
				p + `segments[0] ("a").when[1].not_followed.until: (1h) must be longer than after (2h), or the condition never holds`,
				p + `segments[0] ("a").when[2].value: at_least (100) must be less than below (50), or the condition never holds`,
				p + `segments[0] ("a").when[3].since.within: must be longer than 0s`,
			}},
		{"not_followed by itself",
			segmentsDoc(`{"id": "a", "when": [{"not_followed": {"event": "AddToCart", "by": ["AddToCart"], "after": "1h"}}]}`),
			[]string{p + `segments[0] ("a").when[0].not_followed.by: lists the event itself ("AddToCart"): the condition measures from its latest occurrence`}},
		{"value without bounds",
			segmentsDoc(`{"id": "a", "when": [{"value": {"attribute": "purchase_count"}}]}`),
			[]string{p + `segments[0] ("a").when[0].value: set at_least, below or both`}},
		{"bad and duplicate segment ids",
			segmentsDoc(`{"id": "Cart-Abandoner", "when": [{"value": {"attribute": "purchase_count", "at_least": 1}}]},
				{"when": [{"value": {"attribute": "purchase_count", "at_least": 1}}]},
				{"id": "vip", "when": [{"value": {"attribute": "purchase_count", "at_least": 1}}]},
				{"id": "vip", "when": [{"value": {"attribute": "purchase_count", "at_least": 2}}]}`),
			[]string{
				p + `segments[0] ("Cart-Abandoner").id: must match ^[a-z][a-z0-9_]{0,62}$ (lowercase letter first, then lowercase letters, digits or '_')`,
				p + `segments[1].id: is required`,
				p + `segments[3] ("vip").id: duplicates segments[2]`,
			}},
		{"lifetime value without reporting currency",
			appWith(`, "segments": [{"id": "vip", "when": [{"value": {"attribute": "lifetime_value", "at_least": 200}}]}]`),
			[]string{p + `segments[0] ("vip").when[0].value: lifetime_value needs the app's reporting_currency`}},
		{"currency settings",
			appWith(`, "reporting_currency": "usd", "currency_rates": {"EUR": 0, "usd": 1, "GBP": -2}`),
			[]string{
				p + `reporting_currency: "usd" is not an ISO 4217 code (three capital letters, e.g. USD)`,
				p + `currency_rates.EUR: must be a positive number of usd per EUR (got 0)`,
				p + `currency_rates.GBP: must be a positive number of usd per GBP (got -2)`,
				p + `currency_rates: "usd" is not an ISO 4217 code (three capital letters, e.g. EUR)`,
			}},
		{"rates without reporting currency",
			appWith(`, "currency_rates": {"EUR": 1.1}`),
			[]string{p + `currency_rates: needs reporting_currency (the currency the rates convert to)`}},
		{"rate for the reporting currency",
			appWith(`, "reporting_currency": "USD", "currency_rates": {"USD": 1}`),
			[]string{p + `currency_rates.USD: is the reporting currency (its rate is 1 by definition)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestValidateSegmentsNamesTheApp(t *testing.T) {
	app := App{ID: "shop", Segments: []Segment{{ID: "x"}}}
	err := app.ValidateSegments()
	if err == nil || err.Error() != `app "shop".segments[0] ("x").when: list at least one condition (count, since, not_followed, value)` {
		t.Fatalf("error: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"0s", 0, ""},
		{"90m", 90 * time.Minute, ""},
		{"24h", 24 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"1d12h30m15s", 36*time.Hour + 30*time.Minute + 15*time.Second, ""},
		{"3650d", MaxDuration, ""},
		{"", 0, "is not a duration"},
		{"1", 0, "is not a duration"},
		{"1.5h", 0, "is not a duration"},
		{"1w", 0, "is not a duration"},
		{"-3d", 0, "must not be negative"},
		{"3651d", 0, "longer than 3650d"},
		{"9999999d", 0, "longer than 3650d"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseDuration(%q) error %v, want %q", tt.in, err, tt.err)
		}
	}
}

package appconfig

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// audiencesDoc returns a config with four segments (a, b, c, d) and the given audience keys.
func audiencesDoc(extra string) string {
	seg := func(id string) string {
		return `{"id": "` + id + `", "when": [{"value": {"attribute": "purchase_count", "at_least": 1}}]}`
	}
	return appWith(`, "reporting_currency": "USD", "segments": [` + seg("a") + `,` + seg("b") + `,` + seg("c") + `,` + seg("d") + `]` + extra)
}

func TestSampleConfigMapsAudiences(t *testing.T) {
	cfg, err := load(filepath.Join("..", "..", "..", "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	app, _ := cfg.App("sample-shop")
	var segs []string
	for _, a := range app.Audiences {
		segs = append(segs, a.Segment)
		if !a.Create || a.AudienceID != "" || a.AccountID(app) != app.Meta.AdAccountID || len(a.Columns) != 0 {
			t.Errorf("audience %+v: want create, the app's account, default columns", a)
		}
		if a.ValueBased != (a.Segment == "vip") {
			t.Errorf("%s: value_based %v", a.Segment, a.ValueBased)
		}
	}
	if want := []string{"cart_abandoner", "onboarding_incomplete", "lapsed_7d", "vip", "engaged", "new_installer"}; !reflect.DeepEqual(segs, want) {
		t.Fatalf("audiences %v, want %v", segs, want)
	}
	if want := [][]string{{"cart_abandoner", "onboarding_incomplete", "lapsed_7d"}}; !reflect.DeepEqual(app.ExclusiveGroups, want) {
		t.Fatalf("exclusive groups %v, want %v", app.ExclusiveGroups, want)
	}
	if f := app.AudienceSync.MaxRemovalFraction; f == nil || *f != 0.2 || app.AudienceSync.FullRefreshHours != 0 {
		t.Fatalf("audience_sync %+v", app.AudienceSync)
	}
	if got := app.Audiences[0].IdentifierColumns(); !reflect.DeepEqual(got, DefaultAudienceColumns) {
		t.Fatalf("default columns %v", got)
	}
}

func TestAudienceConfigAccepted(t *testing.T) {
	cfg, err := Parse([]byte(audiencesDoc(`, "audiences": [
		{"segment": "a", "name": "Cart abandoners (app)", "create": true, "columns": ["EXTERN_ID", "EMAIL"]},
		{"segment": "b", "name": "Top spenders", "audience_id": "23850000000000001", "ad_account_id": "act_789"},
		{"segment": "c", "name": "Cart abandoners (app)", "ad_account_id": "act_789", "create": true},
		{"segment": "d", "name": "Accredited sellers, Sloane St", "create": true}],
	  "exclusive_groups": [["a", "c"]],
	  "audience_sync": {"max_removal_fraction": 0, "full_refresh_hours": 168, "max_payload_bytes": 60000}`)))
	if err != nil {
		t.Fatal(err)
	}
	app := &cfg.Apps[0]
	if got := app.Audiences[0].IdentifierColumns(); !reflect.DeepEqual(got, []string{"EXTERN_ID", "EMAIL"}) {
		t.Fatalf("columns %v", got)
	}
	if app.Audiences[1].AccountID(app) != "act_789" || app.Audiences[0].AccountID(app) != "act_456" {
		t.Fatal("ad account default")
	}
	if s := app.AudienceSync; s.MaxRemovalFraction == nil || *s.MaxRemovalFraction != 0 || s.FullRefreshHours != 168 || s.MaxPayloadBytes != 60000 {
		t.Fatalf("audience_sync %+v", s)
	}
}

func TestAudienceErrorsAreExact(t *testing.T) {
	const p = `apps[0] ("shop").`
	tests := []struct {
		name, extra string
		want        []string // every line of the error, in order
	}{
		{"unknown segment",
			`, "audiences": [{"segment": "vipp", "name": "V", "create": true}]`,
			[]string{p + `audiences[0] ("vipp").segment: "vipp" is not one of the app's segments (a, b, c, d)`}},
		{"missing segment and name",
			`, "audiences": [{"create": true}]`,
			[]string{
				p + `audiences[0].segment: is required (the id of one of the app's segments)`,
				p + `audiences[0].name: is required (the audience name shown in Ads Manager)`,
			}},
		{"duplicate segment mapping",
			`, "audiences": [{"segment": "a", "name": "A", "create": true}, {"segment": "a", "name": "A2", "create": true}]`,
			[]string{p + `audiences[1] ("a").segment: is already mapped by audiences[0] (one audience per segment)`}},
		{"neither id nor create",
			`, "audiences": [{"segment": "a", "name": "A"}, {"segment": "b", "name": "B", "create": false}]`,
			[]string{
				p + `audiences[0] ("a"): set audience_id (an existing audience's numeric id) or "create": true`,
				p + `audiences[1] ("b"): set audience_id (an existing audience's numeric id) or "create": true`,
			}},
		{"both id and create",
			`, "audiences": [{"segment": "a", "name": "A", "audience_id": "123", "create": true}]`,
			[]string{p + `audiences[0] ("a"): set audience_id or "create": true, not both`}},
		{"bad ids",
			`, "audiences": [{"segment": "a", "name": "A", "audience_id": "act_123", "ad_account_id": "456"}]`,
			[]string{
				p + `audiences[0] ("a").ad_account_id: must look like act_<digits> (got "456")`,
				p + `audiences[0] ("a").audience_id: must be the audience's numeric id (got "act_123")`,
			}},
		{"one audience for two segments",
			`, "audiences": [{"segment": "a", "name": "A", "audience_id": "123"}, {"segment": "b", "name": "B", "audience_id": "123"}]`,
			[]string{p + `audiences[1] ("b").audience_id: duplicates audiences[0] (each segment needs an audience of its own)`}},
		{"duplicate name in one ad account",
			`, "audiences": [{"segment": "a", "name": "Buyers", "create": true}, {"segment": "b", "name": "Buyers", "create": true, "ad_account_id": "act_456"},
				{"segment": "c", "name": "Buyers", "create": true, "ad_account_id": "act_9"}]`,
			[]string{p + `audiences[1] ("b").name: "Buyers" duplicates audiences[0] in ad account act_456`}},
		{"columns",
			`, "audiences": [{"segment": "a", "name": "A", "create": true, "columns": ["EMAIL", "EMAIL_SHA256", "EMAIL", "LOOKALIKE_VALUE"]}]`,
			[]string{
				p + `audiences[0] ("a").columns[1]: "EMAIL_SHA256" is not a column (use EXTERN_ID, EMAIL, PHONE, MADID)`,
				p + `audiences[0] ("a").columns[2]: "EMAIL" is listed twice`,
				p + `audiences[0] ("a").columns[3]: "LOOKALIKE_VALUE" is added automatically when value_based is true; do not list it`,
				p + `audiences[0] ("a").columns: must include EXTERN_ID (a removal must match the add even after the user's email, phone or advertising id changed)`,
			}},
		{"EXTERN_ID alone",
			`, "audiences": [{"segment": "a", "name": "A", "create": true, "columns": ["EXTERN_ID"]}]`,
			[]string{p + `audiences[0] ("a").columns: list at least one of EMAIL, PHONE, MADID besides EXTERN_ID (a first upload matches nobody by EXTERN_ID alone)`}},
		{"empty column list",
			`, "audiences": [{"segment": "a", "name": "A", "create": true, "columns": []}]`,
			[]string{
				p + `audiences[0] ("a").columns: must include EXTERN_ID (a removal must match the add even after the user's email, phone or advertising id changed)`,
				p + `audiences[0] ("a").columns: list at least one of EMAIL, PHONE, MADID besides EXTERN_ID (a first upload matches nobody by EXTERN_ID alone)`,
			}},
		{"financial name",
			`, "audiences": [{"segment": "a", "name": "High income buyers", "create": true}]`,
			[]string{p + `audiences[0] ("a").name: "High income buyers" contains "income", which suggests financial status: Meta flags such audiences and blocks uploads to them; name audiences by behaviour (e.g. "Top spenders", "Cart abandoners")`}},
		{"health name, stem and camel case",
			`, "audiences": [{"segment": "a", "name": "Pregnancy app users", "create": true}, {"segment": "b", "name": "shopHealthFans", "create": true},
				{"segment": "c", "name": "credit_card_users", "create": true}, {"segment": "d", "name": "Debt-free savers", "create": true}]`,
			[]string{
				p + `audiences[0] ("a").name: "Pregnancy app users" contains "pregnan", which suggests health: Meta flags such audiences and blocks uploads to them; name audiences by behaviour (e.g. "Top spenders", "Cart abandoners")`,
				p + `audiences[1] ("b").name: "shopHealthFans" contains "health", which suggests health: Meta flags such audiences and blocks uploads to them; name audiences by behaviour (e.g. "Top spenders", "Cart abandoners")`,
				p + `audiences[2] ("c").name: "credit_card_users" contains "credit", which suggests financial status: Meta flags such audiences and blocks uploads to them; name audiences by behaviour (e.g. "Top spenders", "Cart abandoners")`,
				p + `audiences[3] ("d").name: "Debt-free savers" contains "debt", which suggests financial status: Meta flags such audiences and blocks uploads to them; name audiences by behaviour (e.g. "Top spenders", "Cart abandoners")`,
			}},
		{"name with spaces or control characters",
			`, "audiences": [{"segment": "a", "name": " A", "create": true}, {"segment": "b", "name": "B\u0007", "create": true}]`,
			[]string{
				p + `audiences[0] ("a").name: " A": must not start or end with spaces`,
				p + `audiences[1] ("b").name: "B\a": must be valid UTF-8 without control characters`,
			}},
		{"misspelt and mistyped keys",
			`, "audiences": [{"segment": "a", "name": "A", "create": "yes", "colums": []}, "b"]`,
			[]string{
				p + `audiences[0] ("a"): create: must be bool, not string`,
				p + `audiences[0] ("a"): set audience_id (an existing audience's numeric id) or "create": true`,
				p + `audiences[1]: must be an object: {"segment": ..., "name": ..., "create": true}`,
				p + `audiences[1].segment: is required (the id of one of the app's segments)`,
				p + `audiences[1].name: is required (the audience name shown in Ads Manager)`,
				p + `audiences[1]: set audience_id (an existing audience's numeric id) or "create": true`,
			}},
		{"exclusive groups",
			`, "audiences": [{"segment": "a", "name": "A", "create": true}, {"segment": "b", "name": "B", "create": true}, {"segment": "c", "name": "C", "create": true}],
			  "exclusive_groups": [["a", "b", "a"], ["b", "c", "d", "zz"], ["c"], []]`,
			[]string{
				p + `exclusive_groups[0][2]: "a" is listed twice`,
				p + `exclusive_groups[1][0]: "b" is already in exclusive_groups[0] (a segment belongs to at most one group)`,
				p + `exclusive_groups[1][2]: "d" is not mapped to an audience (groups hold segments listed in audiences)`,
				p + `exclusive_groups[1][3]: "zz" is not mapped to an audience (groups hold segments listed in audiences)`,
				p + `exclusive_groups[2]: list at least two segments, highest priority first (a group of one excludes nothing)`,
				p + `exclusive_groups[2][0]: "c" is already in exclusive_groups[1] (a segment belongs to at most one group)`,
				p + `exclusive_groups[3]: list at least two segments, highest priority first (a group of one excludes nothing)`,
			}},
		{"sync settings out of range",
			`, "audience_sync": {"max_removal_fraction": 1.5, "full_refresh_hours": 6, "max_payload_bytes": 100}`,
			[]string{
				p + `audience_sync.max_removal_fraction: must be between 0 and 1 (got 1.5)`,
				p + `audience_sync.full_refresh_hours: must be 0 (off) or 24..8760: Meta takes up to 24 hours to apply an upload, so a refresh every few hours only churns (got 6)`,
				p + `audience_sync.max_payload_bytes: must be 0 (the default) or at least 1024 (got 100)`,
			}},
		{"sync settings negative and misspelt",
			`, "audience_sync": {"max_removal_fractoin": 0.1, "max_removal_fraction": -0.1, "full_refresh_hours": -24}`,
			[]string{
				p + `audience_sync: unknown field "max_removal_fractoin" (check the spelling; unknown keys are not ignored)`,
				p + `audience_sync.max_removal_fraction: must be between 0 and 1 (got -0.1)`,
				p + `audience_sync.full_refresh_hours: must be 0 (off) or 24..8760: Meta takes up to 24 hours to apply an upload, so a refresh every few hours only churns (got -24)`,
			}},
		{"sync settings not an object",
			`, "audience_sync": 0.2`,
			[]string{p + `audience_sync: must be an object: {"max_removal_fraction": 0.2, "full_refresh_hours": 0}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(audiencesDoc(tt.extra)))
			if err == nil {
				t.Fatal("accepted")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestValueBasedNeedsReportingCurrency(t *testing.T) {
	_, err := Parse([]byte(appWith(`, "segments": [{"id": "a", "when": [{"value": {"attribute": "purchase_count", "at_least": 1}}]}],
	  "audiences": [{"segment": "a", "name": "A", "create": true, "value_based": true}]`)))
	want := `apps[0] ("shop").audiences[0] ("a").value_based: needs the app's reporting_currency (LOOKALIKE_VALUE is the lifetime value in it)`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

// TestFullRefreshRefusesValueBasedAudiences: usersreplace documents no LOOKALIKE_VALUE key, so
// a full refresh of a value-based audience is refused at load, naming every such audience; the
// same audiences load with the refresh off.
func TestFullRefreshRefusesValueBasedAudiences(t *testing.T) {
	const p = `apps[0] ("shop").`
	audiences := `, "audiences": [
		{"segment": "a", "name": "A", "create": true},
		{"segment": "b", "name": "B", "create": true, "value_based": true},
		{"segment": "c", "name": "C", "audience_id": "23850000000000001", "value_based": true}]`
	_, err := Parse([]byte(audiencesDoc(audiences + `, "audience_sync": {"full_refresh_hours": 168}`)))
	want := []string{
		p + `audience_sync.full_refresh_hours: must be 0 (off) while audiences[1] ("b") is value_based: the full refresh replaces an audience through usersreplace, whose documented schema keys do not include LOOKALIKE_VALUE, so the replace could be refused or lose the values; drop value_based or turn the refresh off`,
		p + `audience_sync.full_refresh_hours: must be 0 (off) while audiences[2] ("c") is value_based: the full refresh replaces an audience through usersreplace, whose documented schema keys do not include LOOKALIKE_VALUE, so the replace could be refused or lose the values; drop value_based or turn the refresh off`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("error:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	for _, sync := range []string{``, `, "audience_sync": {"full_refresh_hours": 0}`} {
		if _, err := Parse([]byte(audiencesDoc(audiences + sync))); err != nil {
			t.Errorf("refresh off (%q): %v", sync, err)
		}
	}
}

func TestSensitiveStemMatchesWordStarts(t *testing.T) {
	tests := []struct {
		name, stem string
	}{
		{"Top spenders", ""},
		{"Accredited buyers", ""},          // "credit" inside a word
		{"Sloane Square shoppers", ""},     // "loan" inside a word
		{"Stealth mode fans", ""},          // "health" inside a word
		{"Incomers", "income"},             // a stem starts the word: refused, names are cheap to change
		{"HIGH INCOME", "income"},          // case-insensitive
		{"lowIncome", "income"},            // camel case
		{"vip-credit-card", "credit"},      // separators
		{"Net worth over 1M", "net worth"}, // a two-word stem
		{"Médical", ""},                    // the stems are ASCII; accented spellings pass
		{"Therapy app users", "therap"},
	}
	for _, tt := range tests {
		stem, ok := sensitiveStem(tt.name)
		if stem != tt.stem || ok != (tt.stem != "") {
			t.Errorf("sensitiveStem(%q) = %q, %v; want %q", tt.name, stem, ok, tt.stem)
		}
	}
}

func TestValidateAudiencesNamesTheApp(t *testing.T) {
	app := App{ID: "shop", Audiences: []Audience{{Segment: "x", Name: "X", Create: true}}}
	err := app.ValidateAudiences()
	if err == nil || err.Error() != `app "shop".audiences[0] ("x").segment: "x" is not one of the app's segments ()` {
		t.Fatalf("error: %v", err)
	}
}

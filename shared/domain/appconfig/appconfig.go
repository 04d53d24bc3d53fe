// Package appconfig loads and validates the declarative app configuration: which apps exist,
// which platforms they ship on, which API key belongs to each, where their events go at Meta,
// which segments their users fall into and which Custom Audiences those segments feed. The same
// file is validated by `make test`, at `cdk synth` and when a function starts, so a bad config
// fails early with a message that names the entry and the problem.
package appconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// CurrentVersion is the config schema version this code reads.
const CurrentVersion = 1

// Platform is a mobile platform an app ships on.
type Platform string

// Supported platforms.
const (
	PlatformIOS     Platform = "ios"
	PlatformAndroid Platform = "android"
)

// Config is the whole configuration file.
type Config struct {
	// Schema is the "$schema" key editors read to find infra/config/apps.schema.json and
	// offer completion; the loader accepts it so the file can name its schema, and ignores it.
	Schema string `json:"$schema,omitempty"`
	// Version is the schema version of the file; must equal CurrentVersion.
	Version int `json:"version"`
	// Apps are the mobile apps whose events this deployment ingests.
	Apps []App `json:"apps"`
}

// App is one mobile app.
type App struct {
	// ID is the stable app id used in stream records and state keys (lowercase, digits, '-').
	ID string `json:"id"`
	// Name is a human-readable name.
	Name string `json:"name,omitempty"`
	// Platforms the app ships on; events from other platforms are rejected.
	Platforms []Platform `json:"platforms"`
	// APIKey says which API key authenticates this app.
	APIKey APIKey `json:"api_key"`
	// Meta holds the app's Meta identifiers.
	Meta Meta `json:"meta"`
	// ReportingCurrency is the ISO 4217 code lifetime value is kept in (e.g. "USD").
	ReportingCurrency string `json:"reporting_currency,omitempty"`
	// CurrencyRates converts purchase values: one unit of the key currency is worth this many
	// units of ReportingCurrency. Values in other currencies are kept apart, never guessed.
	CurrencyRates map[string]float64 `json:"currency_rates,omitempty"`
	// Segments are the app's declarative segment rules (schema in segments.go).
	Segments []Segment `json:"segments,omitempty"`
	// Audiences map segments to Meta Custom Audiences (schema in audiences.go).
	Audiences []Audience `json:"audiences,omitempty"`
	// ExclusiveGroups are lists of mapped segments, highest priority first: a user is put in
	// the audience of at most one segment of each group.
	ExclusiveGroups [][]string `json:"exclusive_groups,omitempty"`
	// AudienceSync tunes the audience sync (removal guard, full refresh, request size).
	AudienceSync AudienceSync `json:"audience_sync,omitzero"`
	// Measurement tunes holdout outcomes and their alarms (measurement.go).
	Measurement Measurement `json:"measurement,omitzero"`
	// Automation adjusts the app's ad sets by rules; nil: off (automation.go).
	Automation *Automation `json:"automation,omitempty"`
	// Channels deliver segment changes to webhooks; ChannelCooldown spaces one user's
	// deliveries across channels; ShareAppUserID puts the app's user id in the events
	// (channels.go).
	Channels        []Channel `json:"channels,omitempty"`
	ChannelCooldown string    `json:"channel_cooldown,omitempty"`
	ShareAppUserID  bool      `json:"share_app_user_id,omitempty"`
	// ArchiveRawFields keeps the raw client IP, user agent, advertising id and install id in
	// the event archive (archive.go).
	ArchiveRawFields bool `json:"archive_raw_fields,omitempty"`
	// Auth enables end-user tokens on the /v1/me routes (auth.go).
	Auth Auth `json:"auth,omitzero"`
	// TrustedValues "server" counts only server-sent purchases and subscriptions toward value
	// rules; "any" (the default) counts the app's too.
	TrustedValues string `json:"trusted_values,omitempty"`
}

// APIKey names the API Gateway key of an app. The deployed stack creates one key per app with
// this name and maps its key id back to the app; DevValue is the literal key accepted by the
// local dev stack and by local invokes only (never by a deployed API).
type APIKey struct {
	Name     string `json:"name"`
	DevValue string `json:"dev_value,omitempty"`
	// RateLimit (requests per second, steady) and BurstLimit of the app's API Gateway usage
	// plan; 0 = the stack's defaults (500 and 1,000). QuotaPerDay caps the requests of one
	// UTC day; 0 = no quota. One request carries up to 500 events.
	RateLimit   int `json:"rate_limit,omitempty"`
	BurstLimit  int `json:"burst_limit,omitempty"`
	QuotaPerDay int `json:"quota_per_day,omitempty"`
}

// Bounds of an app's usage plan: API Gateway's default account limits (10,000 requests per
// second, bursts of 5,000) bound what one plan can use.
const (
	MaxRateLimit  = 10000
	MaxBurstLimit = 5000
)

// Meta holds where an app's events and audiences go at Meta.
type Meta struct {
	// DatasetID is the Events Manager dataset (pixel) linked to the app, digits only.
	DatasetID string `json:"dataset_id"`
	// AdAccountID is the ad account holding the app's custom audiences, as "act_<digits>".
	AdAccountID string `json:"ad_account_id"`
	// TestEventCode routes CAPI events to Events Manager > Test Events. Never set in production.
	TestEventCode string `json:"test_event_code,omitempty"`
	// AccessTier is the Meta app's Marketing API access tier, TierStandard ("" means it) or
	// TierDevelopment: it sizes the audience sync's calls (tier.go).
	AccessTier string `json:"access_tier,omitempty"`
	// AllowedCampaigns, when set, are the only campaigns whose ad sets may include the app's
	// audiences: an ad set elsewhere that does is a misuse finding, and automation never
	// touches it.
	AllowedCampaigns []string `json:"allowed_campaigns,omitempty"`
}

var (
	appIDPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	keyNamePattern    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	digitsPattern     = regexp.MustCompile(`^[0-9]{1,20}$`)
	adAccountPattern  = regexp.MustCompile(`^act_[0-9]{1,20}$`)
	testEventPattern  = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)
	devKeyMinLength   = 8
	errNoApps         = errors.New("apps: at least one app is required")
	errUnsupportedVer = fmt.Errorf("version: must be %d", CurrentVersion)
)

// Parse decodes and validates a config document. Unknown fields are errors: a typo in a config
// key must not silently fall back to a default.
func Parse(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, describeDecodeError(data, err)
	}
	if dec.More() {
		return nil, errors.New("unexpected content after the JSON document")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate checks every rule and returns all problems found, one per line.
func (c *Config) Validate() error {
	var errs []error
	if c.Version != CurrentVersion {
		errs = append(errs, errUnsupportedVer)
	}
	if len(c.Apps) == 0 {
		errs = append(errs, errNoApps)
	}
	ids := map[string]int{}
	keyNames := map[string]int{}
	devKeys := map[string]int{}
	for i := range c.Apps {
		a := &c.Apps[i]
		where := fmt.Sprintf("apps[%d]", i)
		if a.ID != "" {
			where = fmt.Sprintf("apps[%d] (%q)", i, a.ID)
		}
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s.%s: %s", where, field, fmt.Sprintf(format, args...)))
		}
		switch {
		case a.ID == "":
			bad("id", "is required")
		case !appIDPattern.MatchString(a.ID):
			bad("id", "must be 1-63 lowercase letters, digits or '-', starting with a letter or digit")
		default:
			if j, dup := ids[a.ID]; dup {
				bad("id", "duplicates apps[%d]", j)
			}
			ids[a.ID] = i
		}
		if len(a.Platforms) == 0 {
			bad("platforms", "list at least one of ios, android")
		}
		seen := map[Platform]bool{}
		for k, p := range a.Platforms {
			if p != PlatformIOS && p != PlatformAndroid {
				bad(fmt.Sprintf("platforms[%d]", k), "%q is not a platform (ios, android)", p)
			} else if seen[p] {
				bad(fmt.Sprintf("platforms[%d]", k), "%q is listed twice", p)
			}
			seen[p] = true
		}
		switch {
		case a.APIKey.Name == "":
			bad("api_key.name", "is required")
		case !keyNamePattern.MatchString(a.APIKey.Name):
			bad("api_key.name", "must be 1-128 letters, digits, '_', '.' or '-'")
		default:
			if j, dup := keyNames[a.APIKey.Name]; dup {
				bad("api_key.name", "duplicates apps[%d]", j)
			}
			keyNames[a.APIKey.Name] = i
		}
		if r := a.APIKey.RateLimit; r < 0 || r > MaxRateLimit {
			bad("api_key.rate_limit", "must be 0 (the default) or 1..%d requests per second (got %d)", MaxRateLimit, r)
		}
		if b := a.APIKey.BurstLimit; b < 0 || b > MaxBurstLimit {
			bad("api_key.burst_limit", "must be 0 (the default) or 1..%d requests (got %d)", MaxBurstLimit, b)
		}
		if q := a.APIKey.QuotaPerDay; q < 0 {
			bad("api_key.quota_per_day", "must be 0 (no quota) or a positive number of requests per day (got %d)", q)
		}
		if v := a.APIKey.DevValue; v != "" {
			if len(v) < devKeyMinLength || strings.TrimSpace(v) != v {
				bad("api_key.dev_value", "must be at least %d characters without surrounding spaces", devKeyMinLength)
			} else if j, dup := devKeys[v]; dup {
				bad("api_key.dev_value", "duplicates apps[%d]", j)
			}
			devKeys[v] = i
		}
		if !digitsPattern.MatchString(a.Meta.DatasetID) {
			bad("meta.dataset_id", "must be the dataset's numeric id (got %q)", a.Meta.DatasetID)
		}
		if !adAccountPattern.MatchString(a.Meta.AdAccountID) {
			bad("meta.ad_account_id", "must look like act_<digits> (got %q)", a.Meta.AdAccountID)
		}
		if c := a.Meta.TestEventCode; c != "" && !testEventPattern.MatchString(c) {
			bad("meta.test_event_code", "must be 1-32 letters or digits as shown in Events Manager")
		}
		if t := a.Meta.AccessTier; t != "" && t != TierStandard && t != TierDevelopment {
			bad("meta.access_tier", "must be %q or %q (got %q)", TierStandard, TierDevelopment, t)
		}
		a.checkSegments(bad)
		a.checkAudiences(bad)
		a.checkMeasurement(bad)
		a.checkAutomation(bad)
		a.checkChannels(bad)
		a.checkAuth(bad)
	}
	return errors.Join(errs...)
}

// App returns the app with the given id.
func (c *Config) App(id string) (*App, bool) {
	for i := range c.Apps {
		if c.Apps[i].ID == id {
			return &c.Apps[i], true
		}
	}
	return nil, false
}

// MetaIDs lists, without repeats and in config order, the Meta datasets and ad accounts the
// apps use (each app's, and those its audiences name): what a Meta stand-in must know.
func (c *Config) MetaIDs() (datasets, adAccounts []string) {
	for _, a := range c.Apps {
		if !slices.Contains(datasets, a.Meta.DatasetID) {
			datasets = append(datasets, a.Meta.DatasetID)
		}
		accounts := []string{a.Meta.AdAccountID}
		for _, aud := range a.Audiences {
			accounts = append(accounts, aud.AdAccountID)
		}
		for _, id := range accounts {
			if id != "" && !slices.Contains(adAccounts, id) {
				adAccounts = append(adAccounts, id)
			}
		}
	}
	return datasets, adAccounts
}

// Supports reports whether the app ships on platform p.
func (a *App) Supports(p Platform) bool {
	for _, q := range a.Platforms {
		if q == p {
			return true
		}
	}
	return false
}

// describeDecodeError turns encoding/json errors into messages with a line number.
func describeDecodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("line %d: invalid JSON: %v", lineOf(data, syn.Offset), syn)
	case errors.As(err, &typ):
		return fmt.Errorf("line %d: %s: must be %s, not %s", lineOf(data, typ.Offset), typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("line %d: invalid JSON: the document ends too early", lineOf(data, int64(len(data))))
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return fmt.Errorf("%s (check the spelling; unknown keys are not ignored)", strings.TrimPrefix(err.Error(), "json: "))
	}
	return err
}

func lineOf(data []byte, offset int64) int {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// ForDeployment returns a copy of c without the dev API key values: a deployed function must
// not know a key that API Gateway did not issue, whatever its environment says.
func (c *Config) ForDeployment() *Config {
	out := *c
	out.Schema = "" // the schema's relative path means nothing next to the bundled copy
	out.Apps = make([]App, len(c.Apps))
	for i, a := range c.Apps {
		a.Platforms = append([]Platform(nil), a.Platforms...)
		a.APIKey.DevValue = ""
		// Channel header values too: the deployed connection reads its secret.
		a.Channels = slices.Clone(a.Channels)
		for k := range a.Channels {
			if au := a.Channels[k].Auth; au != nil {
				stripped := *au
				stripped.DevValue = ""
				a.Channels[k].Auth = &stripped
			}
		}
		out.Apps[i] = a
	}
	return &out
}

package appconfig

// The audience mapping schema: which segments become Meta Custom Audiences, how their rows are
// built, which audiences exclude each other, and how the audience sync behaves.
//
//	"audiences": [
//	  {"segment": "cart_abandoner", "name": "Cart abandoners (app)", "create": true},
//	  {"segment": "vip", "name": "Top spenders", "audience_id": "23850000000000001",
//	   "ad_account_id": "act_987", "columns": ["EXTERN_ID", "EMAIL"], "value_based": true}
//	],
//	"exclusive_groups": [["cart_abandoner", "onboarding_incomplete", "lapsed_7d"]],
//	"audience_sync": {"max_removal_fraction": 0.2, "full_refresh_hours": 0}
//
// Audience fields:
//
//	segment        one of the app's segment ids; each segment maps to at most one audience
//	name           the audience name shown in Ads Manager; names suggesting health or financial
//	               status are refused (see sensitiveNameStems)
//	ad_account_id  "act_<digits>"; defaults to the app's meta.ad_account_id
//	audience_id    an existing audience's numeric id, or
//	create         true: the sync creates the audience and stores its id (exactly one of the two)
//	columns        identifier columns of the multi-key schema, a subset of EXTERN_ID, EMAIL,
//	               PHONE, MADID in upload order; default all four. EXTERN_ID is required: a
//	               removal row is built from the user's identifiers at removal time, and when the
//	               email, phone or advertising id changed since the add, only EXTERN_ID (our
//	               stable pseudonymous user key) still matches the row that was added.
//	value_based    true: the audience is value-based and every row carries LOOKALIKE_VALUE, the
//	               user's lifetime value in the reporting currency. The column is appended
//	               automatically (never list it). Any segment may be value-based; it needs the
//	               app's reporting_currency. An existing audience_id must have been created as
//	               value-based at Meta (not checkable here).
//
// Exclusive groups are ordered by priority: a user in several segments of one group is put in
// the audience of the first only, so one person is not chased by several campaigns at once.
// Members must be mapped segments; a segment belongs to at most one group.
//
// audience_sync (optional): max_removal_fraction in [0, 1] (default 0.2): a sync run that
// would remove more than this fraction of an audience's members pauses that audience and
// alerts instead; full_refresh_hours: 0 (off, the default) or 24..8760, how often the whole
// audience is re-uploaded with usersreplace to heal drift, and 0 while any audience is
// value_based (see checkRefreshOfValueBased); max_payload_bytes: 0 (the default
// of package audiences) or at least 1024, the byte cap of one request's payload JSON.

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Identifier columns an audience can upload (Meta's multi-key schema names).
const (
	ColumnExternID = "EXTERN_ID" // the pseudonymous user key, never hashed
	ColumnEmail    = "EMAIL"     // SHA-256 hex of the normalised address
	ColumnPhone    = "PHONE"     // SHA-256 hex of the normalised number
	ColumnMADID    = "MADID"     // advertising id, lowercase, hyphens kept, never hashed
	// ColumnValue is appended to value-based audiences: lifetime value, never hashed.
	ColumnValue = "LOOKALIKE_VALUE"
)

// DefaultAudienceColumns are uploaded when an audience lists no columns: every identifier the
// state keeps, so that Meta matches as many users as possible.
var DefaultAudienceColumns = []string{ColumnExternID, ColumnEmail, ColumnPhone, ColumnMADID}

// Bounds of the audience_sync settings.
const (
	MinPayloadBytes = 1024 // below it not even a handful of rows fit in a request
	// A full refresh at most daily (Meta applies uploads within 24 hours) and at least yearly.
	MinFullRefreshHours = 24
	MaxFullRefreshHours = 8760
)

// sensitiveNameStems are refused in audience names, matched case-insensitively at the start
// of a word (so "pregnan" catches "pregnancy", while "Sloane" does not contain the word
// "loan"). Meta flags audiences whose names suggest a person's health or financial status and
// blocks uploads to them (error 100/1713230, operation_status 471); name audiences by
// behaviour instead ("Top spenders", not "High income"). The list catches the obvious
// mistakes; it is not Meta's policy in full.
var sensitiveNameStems = map[string]string{
	"income": "financial status", "salary": "financial status", "debt": "financial status",
	"credit": "financial status", "loan": "financial status", "mortgage": "financial status",
	"bankrupt": "financial status", "insolven": "financial status", "wealth": "financial status",
	"net worth": "financial status", "poverty": "financial status",
	"health": "health", "medical": "health", "medicat": "health", "pregnan": "health",
	"diagnos": "health", "disease": "health", "illness": "health", "diabet": "health",
	"cancer": "health", "depress": "health", "anxiety": "health", "disabil": "health",
	"obes": "health", "therap": "health",
}

var audienceIDPattern = regexp.MustCompile(`^[0-9]{1,20}$`)

// Audience maps one segment to a Meta Custom Audience.
type Audience struct {
	// Segment is the id of the segment whose members the audience holds.
	Segment string `json:"segment"`
	// Name is the audience name shown in Ads Manager.
	Name string `json:"name"`
	// AdAccountID is the ad account holding the audience ("act_<digits>"); empty means the
	// app's meta.ad_account_id (see AccountID).
	AdAccountID string `json:"ad_account_id,omitempty"`
	// AudienceID is an existing audience's id. Exactly one of AudienceID and Create is set.
	AudienceID string `json:"audience_id,omitempty"`
	// Create says the sync creates the audience through the API and stores its id.
	Create bool `json:"create,omitempty"`
	// Columns are the identifier columns in upload order; empty means DefaultAudienceColumns.
	Columns []string `json:"columns,omitempty"`
	// ValueBased adds the LOOKALIKE_VALUE column (lifetime value) to every row.
	ValueBased bool `json:"value_based,omitempty"`
	// HoldoutFraction is the share of the segment's users kept out of the audience and
	// uploaded to its holdout audience instead; nil means DefaultHoldoutFraction, 0 none
	// (measurement.go).
	HoldoutFraction *float64 `json:"holdout_fraction,omitempty"`
	// HoldoutSalt re-randomises the holdout assignment when changed.
	HoldoutSalt string `json:"holdout_salt,omitempty"`
	// HoldoutAudienceID is an existing holdout audience; empty: the sync creates one.
	HoldoutAudienceID string `json:"holdout_audience_id,omitempty"`

	problems []string // found while decoding; reported by Validate with the entry's path
}

// AudienceSync tunes the audience sync of one app. Zero values mean the defaults.
type AudienceSync struct {
	// MaxRemovalFraction is the largest share of an audience one run may remove (0..1);
	// nil means the default (0.2).
	MaxRemovalFraction *float64 `json:"max_removal_fraction,omitempty"`
	// FullRefreshHours is how often each audience is re-uploaded whole with usersreplace,
	// from the member index with current identifiers, to heal drift: 0 (off, the default) or
	// MinFullRefreshHours..MaxFullRefreshHours.
	FullRefreshHours int `json:"full_refresh_hours,omitempty"`
	// MaxPayloadBytes caps one request's payload JSON; 0 = the default of package audiences.
	MaxPayloadBytes int `json:"max_payload_bytes,omitempty"`

	problems []string
}

// AccountID returns the ad account holding the audience: its own, else the app's.
func (a *Audience) AccountID(app *App) string {
	if a.AdAccountID != "" {
		return a.AdAccountID
	}
	return app.Meta.AdAccountID
}

// IdentifierColumns returns the configured identifier columns, or the defaults.
func (a *Audience) IdentifierColumns() []string {
	if len(a.Columns) == 0 {
		return slices.Clone(DefaultAudienceColumns)
	}
	return slices.Clone(a.Columns)
}

// UnmarshalJSON decodes an audience strictly, keeping problems (unknown keys, wrong types) for
// Validate so that the message names the app and the entry.
func (a *Audience) UnmarshalJSON(data []byte) error {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		*a = Audience{problems: []string{`must be an object: {"segment": ..., "name": ..., "create": true}`}}
		return nil
	}
	type plain Audience
	var p plain
	err := strictDecode(data, &p)
	*a = Audience(p)
	if err != nil {
		a.problems = append(a.problems, describeFieldError(err))
	}
	return nil
}

// UnmarshalJSON decodes the sync settings strictly, like Audience.
func (s *AudienceSync) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*s = AudienceSync{}
		return nil
	}
	if !bytes.HasPrefix(data, []byte("{")) {
		*s = AudienceSync{problems: []string{`must be an object: {"max_removal_fraction": 0.2, "full_refresh_hours": 0}`}}
		return nil
	}
	type plain AudienceSync
	var p plain
	err := strictDecode(data, &p)
	*s = AudienceSync(p)
	if err != nil {
		s.problems = append(s.problems, describeFieldError(err))
	}
	return nil
}

// checkAudiences validates the audience mapping, the exclusive groups and the sync settings;
// it reads the segment ids, so it runs after checkSegments.
func (a *App) checkAudiences(bad func(field, format string, args ...any)) {
	segmentIDs := make([]string, 0, len(a.Segments))
	for _, s := range a.Segments {
		segmentIDs = append(segmentIDs, s.ID)
	}
	mapped := map[string]int{}
	audienceIDs := map[string]int{}
	names := map[[2]string]int{} // (account, name)
	for i := range a.Audiences {
		au := &a.Audiences[i]
		where := fmt.Sprintf("audiences[%d]", i)
		if au.Segment != "" {
			where = fmt.Sprintf("audiences[%d] (%q)", i, au.Segment)
		}
		for _, p := range au.problems {
			bad(where, "%s", p)
		}
		switch {
		case au.Segment == "":
			bad(where+".segment", "is required (the id of one of the app's segments)")
		case !slices.Contains(segmentIDs, au.Segment):
			bad(where+".segment", "%q is not one of the app's segments (%s)", au.Segment, strings.Join(segmentIDs, ", "))
		default:
			if j, dup := mapped[au.Segment]; dup {
				bad(where+".segment", "is already mapped by audiences[%d] (one audience per segment)", j)
			} else {
				mapped[au.Segment] = i
			}
		}
		if au.AdAccountID != "" && !adAccountPattern.MatchString(au.AdAccountID) {
			bad(where+".ad_account_id", "must look like act_<digits> (got %q)", au.AdAccountID)
		}
		checkAudienceName(au.Name, where+".name", bad)
		if au.Name != "" {
			key := [2]string{au.AccountID(a), au.Name}
			if j, dup := names[key]; dup {
				bad(where+".name", "%q duplicates audiences[%d] in ad account %s", au.Name, j, key[0])
			} else if names[key] = i; au.Holdout() > 0 && au.HoldoutAudienceID == "" {
				hk := [2]string{key[0], au.HoldoutName()}
				if j, dup := names[hk]; dup {
					bad(where+".name", "its holdout audience %q duplicates audiences[%d] in ad account %s", hk[1], j, key[0])
				} else {
					names[hk] = i
				}
			}
		}
		switch {
		case au.AudienceID != "" && au.Create:
			bad(where, `set audience_id or "create": true, not both`)
		case au.AudienceID == "" && !au.Create:
			bad(where, `set audience_id (an existing audience's numeric id) or "create": true`)
		case au.AudienceID != "" && !audienceIDPattern.MatchString(au.AudienceID):
			bad(where+".audience_id", "must be the audience's numeric id (got %q)", au.AudienceID)
		case au.AudienceID != "":
			if j, dup := audienceIDs[au.AudienceID]; dup {
				bad(where+".audience_id", "duplicates audiences[%d] (each segment needs an audience of its own)", j)
			} else {
				audienceIDs[au.AudienceID] = i
			}
		}
		checkAudienceColumns(au.Columns, where+".columns", bad)
		checkHoldout(au, where, bad)
		if id := au.HoldoutAudienceID; id != "" {
			if j, dup := audienceIDs[id]; dup {
				bad(where+".holdout_audience_id", "duplicates audiences[%d] (each audience needs its own holdout)", j)
			} else {
				audienceIDs[id] = i
			}
		}
		if au.ValueBased && a.ReportingCurrency == "" {
			bad(where+".value_based", "needs the app's reporting_currency (LOOKALIKE_VALUE is the lifetime value in it)")
		}
	}

	inGroup := map[string]int{}
	for g, group := range a.ExclusiveGroups {
		where := fmt.Sprintf("exclusive_groups[%d]", g)
		if len(group) < 2 {
			bad(where, "list at least two segments, highest priority first (a group of one excludes nothing)")
		}
		for k, seg := range group {
			field := fmt.Sprintf("%s[%d]", where, k)
			_, isMapped := mapped[seg]
			switch {
			case slices.Contains(group[:k], seg):
				bad(field, "%q is listed twice", seg)
			case !isMapped:
				bad(field, "%q is not mapped to an audience (groups hold segments listed in audiences)", seg)
			default:
				if h, dup := inGroup[seg]; dup {
					bad(field, "%q is already in exclusive_groups[%d] (a segment belongs to at most one group)", seg, h)
				} else {
					inGroup[seg] = g
				}
			}
		}
	}

	s := &a.AudienceSync
	for _, p := range s.problems {
		bad("audience_sync", "%s", p)
	}
	if f := s.MaxRemovalFraction; f != nil && !(*f >= 0 && *f <= 1) {
		bad("audience_sync.max_removal_fraction", "must be between 0 and 1 (got %v)", *f)
	}
	if h := s.FullRefreshHours; h != 0 && (h < MinFullRefreshHours || h > MaxFullRefreshHours) {
		bad("audience_sync.full_refresh_hours", "must be 0 (off) or %d..%d: Meta takes up to 24 hours to apply an upload, so a refresh every few hours only churns (got %d)",
			MinFullRefreshHours, MaxFullRefreshHours, h)
	}
	if s.FullRefreshHours != 0 {
		checkRefreshOfValueBased(a.Audiences, bad)
	}
	if b := s.MaxPayloadBytes; b != 0 && b < MinPayloadBytes {
		bad("audience_sync.max_payload_bytes", "must be 0 (the default) or at least %d (got %d)", MinPayloadBytes, b)
	}
}

// checkRefreshOfValueBased refuses a full refresh while an audience is value-based. The full
// refresh replaces an audience through usersreplace, and the keys Meta documents for that
// edge's payload.schema do not include LOOKALIKE_VALUE (the /users edge's list does): a
// replace of a value-based audience might be refused, or lose the values the lookalike is
// seeded from. Whether Meta takes it there is unverified without a real ad account (see
// infra/docs/guarantees.md), so the config refuses the combination instead of finding out in
// production. Sources: LOOKALIKE_VALUE in a /users payload,
// https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/custom-audience/users;
// usersreplace's schema keys without it, the Marketing API's Custom Audiences guide
// (https://developers.facebook.com/documentation/ads-commerce/marketing-api/audiences/guides/custom-audiences),
// as summarised in the project's Meta reference notes ("Corrections and additions").
func checkRefreshOfValueBased(audiences []Audience, bad func(field, format string, args ...any)) {
	for i := range audiences {
		if au := &audiences[i]; au.ValueBased {
			bad("audience_sync.full_refresh_hours", "must be 0 (off) while audiences[%d] (%q) is value_based: the full refresh replaces an audience through usersreplace, whose documented schema keys do not include LOOKALIKE_VALUE, so the replace could be refused or lose the values; drop value_based or turn the refresh off",
				i, au.Segment)
		}
	}
}

func checkAudienceName(name, field string, bad func(field, format string, args ...any)) {
	switch {
	case name == "":
		bad(field, "is required (the audience name shown in Ads Manager)")
		return
	case strings.TrimSpace(name) != name:
		bad(field, "%q: must not start or end with spaces", name)
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		bad(field, "%q: must be valid UTF-8 without control characters", name)
		return
	}
	if stem, ok := sensitiveStem(name); ok {
		bad(field, "%q contains %q, which suggests %s: Meta flags such audiences and blocks uploads to them; name audiences by behaviour (e.g. \"Top spenders\", \"Cart abandoners\")",
			name, stem, sensitiveNameStems[stem])
	}
}

// sortedSensitiveStems fixes the order stems are tried in, so messages are deterministic.
var sortedSensitiveStems = slices.Sorted(maps.Keys(sensitiveNameStems))

// sensitiveStem returns the stem starting the first flagged word of name. A word starts at the
// beginning, after a character that is not a letter or digit, or at a lower-to-upper case
// change ("HighIncome").
func sensitiveStem(name string) (string, bool) {
	prev := rune(-1)
	for i, r := range name {
		boundary := prev == -1 || !(unicode.IsLetter(prev) || unicode.IsDigit(prev)) ||
			unicode.IsLower(prev) && unicode.IsUpper(r)
		prev = r
		if !boundary || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			continue
		}
		rest := strings.ToLower(name[i:])
		for _, s := range sortedSensitiveStems {
			if strings.HasPrefix(rest, s) {
				return s, true
			}
		}
	}
	return "", false
}

func checkAudienceColumns(cols []string, field string, bad func(field, format string, args ...any)) {
	if cols == nil {
		return // the defaults
	}
	matchable := false
	for k, c := range cols {
		f := fmt.Sprintf("%s[%d]", field, k)
		switch {
		case c == ColumnValue:
			bad(f, "%q is added automatically when value_based is true; do not list it", c)
		case !slices.Contains(DefaultAudienceColumns, c):
			bad(f, "%q is not a column (use %s)", c, strings.Join(DefaultAudienceColumns, ", "))
		case slices.Contains(cols[:k], c):
			bad(f, "%q is listed twice", c)
		case c != ColumnExternID:
			matchable = true
		}
	}
	if !slices.Contains(cols, ColumnExternID) {
		bad(field, "must include EXTERN_ID (a removal must match the add even after the user's email, phone or advertising id changed)")
	}
	if !matchable {
		bad(field, "list at least one of EMAIL, PHONE, MADID besides EXTERN_ID (a first upload matches nobody by EXTERN_ID alone)")
	}
}

// ValidateAudiences checks the app's audience mapping, exclusive groups and sync settings
// alone (segment ids are read, not validated); Config.Validate runs the same checks for every
// app.
func (a *App) ValidateAudiences() error {
	var errs []error
	where := fmt.Sprintf("app %q", a.ID)
	a.checkAudiences(func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", where, field, fmt.Sprintf(format, args...)))
	})
	return errors.Join(errs...)
}

package audiences

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/holdout"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// DefaultMaxRemovalFraction is the removal guard's threshold when the config sets none.
const DefaultMaxRemovalFraction = 0.2

// HoldoutKeySuffix ends the key of a holdout audience: "<segment>:holdout". Segment ids match
// ^[a-z][a-z0-9_]*$, so the key cannot clash with a segment.
const HoldoutKeySuffix = ":holdout"

// Audience is one Custom Audience of a segment, compiled from the config: the treated audience
// (the segment's configured audience) or its holdout audience, which holds the users the
// holdout assignment keeps out of the treated one and which every ad set excludes. It is
// immutable and safe for concurrent use.
type Audience struct {
	segment    string // the key: the segment, or "<segment>:holdout"
	base       string // the configured segment
	arm        holdout.Arm
	holdout    *Audience // a treated audience's holdout audience; nil when none
	name       string
	account    string // act_<digits>
	id         string // "" when the sync creates the audience
	create     bool
	valueBased bool
	schema     []string
	cols       []column // schema as cell kinds
}

type column uint8

const (
	colExternID column = iota
	colEmail
	colPhone
	colMADID
	colValue
)

var columnKinds = map[string]column{
	appconfig.ColumnExternID: colExternID,
	appconfig.ColumnEmail:    colEmail,
	appconfig.ColumnPhone:    colPhone,
	appconfig.ColumnMADID:    colMADID,
	appconfig.ColumnValue:    colValue,
}

// Segment is the audience's key: the segment for a treated audience, "<segment>:holdout" for
// a holdout audience. Sync state, member index, reports and metrics are keyed by it.
func (a *Audience) Segment() string { return a.segment }

// Base is the configured segment whose users the audience holds (either arm).
func (a *Audience) Base() string { return a.base }

// Arm is the arm of the segment's experiment whose users the audience holds.
func (a *Audience) Arm() holdout.Arm { return a.arm }

// Holdout returns the holdout audience of a treated audience; nil when the audience has no
// holdout (holdout_fraction 0) or is itself a holdout audience.
func (a *Audience) Holdout() *Audience { return a.holdout }

// Name is the audience name shown in Ads Manager.
func (a *Audience) Name() string { return a.name }

// AdAccountID is the ad account holding the audience, "act_<digits>" (the app's by default).
func (a *Audience) AdAccountID() string { return a.account }

// ID is the configured audience id; "" when Create is true (the sync stores the created id).
func (a *Audience) ID() string { return a.id }

// Create reports whether the sync creates the audience through the API.
func (a *Audience) Create() bool { return a.create }

// ValueBased reports whether rows carry LOOKALIKE_VALUE (lifetime value).
func (a *Audience) ValueBased() bool { return a.valueBased }

// Creation is the request that creates the audience at Meta (for an audience marked create):
// the audience sync and the operator CLI both send exactly this.
func (a *Audience) Creation() ports.NewAudience {
	desc := "Retarget segment " + a.base
	if a.arm == holdout.Holdout {
		desc += ", holdout: exclude it on every ad set that includes the segment's audience"
	}
	return ports.NewAudience{AdAccountID: a.account, Name: a.name, Description: desc, ValueBased: a.valueBased}
}

// Schema returns the multi-key schema of the payload: the configured identifier columns in
// order, then LOOKALIKE_VALUE for value-based audiences. Row cells follow it.
func (a *Audience) Schema() []string { return slices.Clone(a.schema) }

// Rules are an app's audience sync settings with the defaults applied.
type Rules struct {
	// MaxRemovalFraction is the largest share of an audience one run may remove (RemovalGuard).
	MaxRemovalFraction float64
	// MaxPayloadBytes caps one request's payload JSON (Chunk).
	MaxPayloadBytes int
	// FullRefresh is how often each audience is replaced whole (usersreplace) from the member
	// index; 0 = never.
	FullRefresh time.Duration
}

// AppAudiences are one app's audiences, exclusive groups and sync rules. Immutable and safe for
// concurrent use.
type AppAudiences struct {
	app       string
	audiences []*Audience                 // config order, each holdout audience right after its treated one
	bySegment map[string]*Audience        // by key
	assigners map[string]holdout.Assigner // by configured segment
	groups    [][]string                  // priority order
	groupOf   map[string]position         // segment -> its group and rank
	rules     Rules
}

type position struct{ group, rank int }

// Compile validates an app's audience mapping and compiles it. An app without audiences
// compiles to an AppAudiences that maps nothing.
func Compile(app *appconfig.App) (*AppAudiences, error) {
	if err := app.ValidateAudiences(); err != nil {
		return nil, err
	}
	out := &AppAudiences{
		app:       app.ID,
		bySegment: make(map[string]*Audience, 2*len(app.Audiences)),
		assigners: make(map[string]holdout.Assigner, len(app.Audiences)),
		groupOf:   map[string]position{},
		rules: Rules{
			MaxRemovalFraction: DefaultMaxRemovalFraction,
			MaxPayloadBytes:    MaxPayloadBytes,
		},
	}
	if f := app.AudienceSync.MaxRemovalFraction; f != nil {
		out.rules.MaxRemovalFraction = *f
	}
	if b := app.AudienceSync.MaxPayloadBytes; b != 0 {
		out.rules.MaxPayloadBytes = b
	}
	out.rules.FullRefresh = time.Duration(app.AudienceSync.FullRefreshHours) * time.Hour
	for i := range app.Audiences {
		c := &app.Audiences[i]
		au := &Audience{
			segment:    c.Segment,
			base:       c.Segment,
			arm:        holdout.Treated,
			name:       c.Name,
			account:    c.AccountID(app),
			id:         c.AudienceID,
			create:     c.Create,
			valueBased: c.ValueBased,
			schema:     c.IdentifierColumns(),
		}
		if au.valueBased {
			au.schema = append(au.schema, appconfig.ColumnValue)
		}
		for _, name := range au.schema {
			au.cols = append(au.cols, columnKinds[name]) // every name was validated
		}
		out.audiences = append(out.audiences, au)
		out.bySegment[au.segment] = au
		out.assigners[c.Segment] = holdout.New(app.ID, c.Segment, c.HoldoutSalt, c.Holdout())
		if c.Holdout() > 0 {
			// Same account, schema and kind as the treated audience: only the users differ.
			ho := *au
			ho.segment, ho.arm, ho.name = c.Segment+HoldoutKeySuffix, holdout.Holdout, c.HoldoutName()
			ho.id, ho.create = c.HoldoutAudienceID, c.HoldoutAudienceID == ""
			au.holdout = &ho
			out.audiences = append(out.audiences, &ho)
			out.bySegment[ho.segment] = &ho
		}
	}
	for g, group := range app.ExclusiveGroups {
		out.groups = append(out.groups, slices.Clone(group))
		for rank, seg := range group {
			out.groupOf[seg] = position{group: g, rank: rank}
		}
	}
	return out, nil
}

// ForConfig compiles the audiences of every app in cfg, by app id.
func ForConfig(cfg *appconfig.Config) (map[string]*AppAudiences, error) {
	out := make(map[string]*AppAudiences, len(cfg.Apps))
	var errs []error
	for i := range cfg.Apps {
		a, err := Compile(&cfg.Apps[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[cfg.Apps[i].ID] = a
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// App returns the app id.
func (a *AppAudiences) App() string { return a.app }

// Rules returns the sync settings with the defaults applied.
func (a *AppAudiences) Rules() Rules { return a.rules }

// Audiences returns the app's audiences in config order, each holdout audience right after its
// treated one.
func (a *AppAudiences) Audiences() []*Audience { return slices.Clone(a.audiences) }

// Audience returns the audience with key key: a segment gives its treated audience,
// "<segment>:holdout" its holdout audience.
func (a *AppAudiences) Audience(key string) (*Audience, bool) {
	au, ok := a.bySegment[key]
	return au, ok
}

// Assigner returns the holdout assignment of segment's audience (the zero Assigner, everyone
// treated, for a segment without an audience). A holdout key gives its segment's.
func (a *AppAudiences) Assigner(segment string) holdout.Assigner {
	return a.assigners[strings.TrimSuffix(segment, HoldoutKeySuffix)]
}

// Desired returns the segments whose audiences (treated or holdout) a user in segments belongs
// in, in config order: every mapped segment the user is in, except that within an exclusive
// group only the highest-priority segment the user is in is kept. When the user leaves that
// segment, the next one of the group they are in takes its place. Unmapped segments are
// ignored. Which of the segment's audiences the user goes to is DesiredFor's business.
func (a *AppAudiences) Desired(segments []string) []string {
	var out []string
	for _, au := range a.audiences {
		if !slices.Contains(segments, au.segment) || a.outranked(au.segment, segments) {
			continue
		}
		out = append(out, au.segment)
	}
	return out
}

// DesiredFor returns the keys of the audiences the user with key userKey, in segs, whose state
// is st, belongs in, in config order: for every segment Desired keeps, the treated audience or
// its holdout audience, by the user's arm of that segment's audience. None at all for a user
// whom LeftOut leaves out of audiences, whatever segments they are in, so the sync removes them
// from the audiences they may be in.
//
// The exclusive group decides the segment first; the arm of that segment's audience then picks
// the Meta audience. A user in a holdout is therefore never handed to the next audience of the
// group: they count, in that segment's holdout arm, as assigned and not treated, whatever an
// ad would have done (intention-to-treat). Arms are independent per audience, so a user who
// moves to another segment of the group draws that audience's arm, and gets their old arm back
// when they return (the assignment depends on the user key and the audience only).
func (a *AppAudiences) DesiredFor(userKey string, segs []string, st *segments.State) []string {
	if LeftOut(st) {
		return nil
	}
	out := a.Desired(segs)
	for i, seg := range out {
		out[i] = a.KeyFor(userKey, seg)
	}
	return out
}

// KeyFor returns the key of the audience of segment that the user with key userKey goes to:
// the segment's, or its holdout audience's when the user is in its holdout arm.
func (a *AppAudiences) KeyFor(userKey, segment string) string {
	if au, ok := a.bySegment[segment]; ok && au.holdout != nil && a.assigners[segment].Arm(userKey) == holdout.Holdout {
		return au.holdout.segment
	}
	return segment
}

// LeftOut reports whether a user is left out of every audience upload although their segments
// say otherwise: a user under Limited Data Use. Meta's Limited Data Use covers customer-list
// Custom Audiences (https://developers.facebook.com/docs/marketing-apis/data-processing-options;
// /work/shared/reference/meta-api.md, "Corrections and additions (December 2026)"), but how a
// /users upload would mark a row as LDU is not documented: leaving the user out is what is
// known to be safe. Unverified against a real ad account (infra/docs/guarantees.md).
func LeftOut(st *segments.State) bool { return st.LimitedDataUse() }

// outranked reports whether a higher-priority member of seg's group is among segments.
func (a *AppAudiences) outranked(seg string, segments []string) bool {
	p, ok := a.groupOf[seg]
	if !ok {
		return false
	}
	for _, higher := range a.groups[p.group][:p.rank] {
		if slices.Contains(segments, higher) {
			return true
		}
	}
	return false
}

// Affected returns the audiences (by key) whose membership can change when a user's
// membership in segment changes: the segment's, or those of its whole exclusive group in
// priority order, each treated audience followed by its holdout audience. Only the segment and
// the members below it can change from this change alone; the members above it are included so
// that a sync also heals a user left in the wrong audience after the group was reordered, at
// the cost of a comparison. Nil for an unmapped segment (and for a holdout key: changes are
// recorded per segment).
func (a *AppAudiences) Affected(segment string) []string {
	au, ok := a.bySegment[segment]
	if !ok || au.arm == holdout.Holdout {
		return nil
	}
	segs := []string{segment}
	if p, ok := a.groupOf[segment]; ok {
		segs = a.groups[p.group]
	}
	out := make([]string, 0, 2*len(segs))
	for _, seg := range segs {
		out = append(out, seg)
		if ho := a.bySegment[seg].holdout; ho != nil {
			out = append(out, ho.segment)
		}
	}
	return out
}

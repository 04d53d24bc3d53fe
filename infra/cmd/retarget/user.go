package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

var userShowCommand = &command{
	name:    "user show",
	args:    "<app> <id>",
	summary: "a user's stored state and segments, and the segments as of now",
	help: `Finds the user through the pseudonymous key the ingest function derives (HMAC of the app,
the id's kind and the id, with the pepper; the id is an app_user_id unless --id-kind says
otherwise), reads the user's item from the state table and
prints it: version, stored segments, the segments the app's rules give now (as the read API
computes them), first/last seen, install time, lifetime value, purchases, which identifiers
are known (yes/no, never their digests), consent, due and expiry times.

The pepper: --pepper-secret-id or PEPPER_SECRET_ID (the stack output PepperSecretArn, read
from Secrets Manager), else PSEUDONYM_PEPPER, else (DynamoDB on loopback) the dev stack's
built-in pepper. A wrong pepper finds no user.`,
	example: `  retarget user show sample-shop sample-user-1   # against make dev
  retarget user show sample-shop install-8c1e --id-kind anon_id
  retarget user show sample-shop u-123 --table Retarget-State-ABC --pepper-secret-id arn:aws:secretsmanager:... --json`,
	flags: func(fs *flag.FlagSet) any {
		o := &userOptions{}
		o.state.register(fs)
		configFlag(fs, &o.config)
		fs.StringVar(&o.pepperSecret, "pepper-secret-id", "", "Secrets Manager `id` of the pepper (default $PEPPER_SECRET_ID)")
		fs.StringVar(&o.kind, "id-kind", string(identity.KindAppUserID), "what the id is: app_user_id, anon_id or madid (users are keyed by the first of these their events carry)")
		fs.BoolVar(&o.json, "json", false, "print JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.userShow(ctx, *opts.(*userOptions), args)
	},
}

type userOptions struct {
	state        stateOptions
	config       string
	pepperSecret string
	kind         string
	json         bool
}

// userView is what user show prints; the JSON output is this struct.
type userView struct {
	App            string   `json:"app"`
	UserKeyPrefix  string   `json:"user_key_prefix"`
	Version        int64    `json:"version"`
	StoredSegments []string `json:"stored_segments"`
	SegmentsNow    []string `json:"segments_now"`
	// NextChangeAt is when the rules say membership changes next without a new event.
	NextChangeAt      string             `json:"next_change_at,omitempty"`
	FirstSeen         string             `json:"first_seen,omitempty"`
	InstalledAt       string             `json:"installed_at,omitempty"`
	LastSeen          string             `json:"last_seen,omitempty"`
	Platform          string             `json:"platform,omitempty"`
	LifetimeValue     float64            `json:"lifetime_value"`
	ReportingCurrency string             `json:"reporting_currency,omitempty"`
	UnconvertedValue  map[string]float64 `json:"unconverted_value,omitempty"`
	Purchases         int64              `json:"purchases"`
	LastEvents        map[string]string  `json:"last_events,omitempty"`
	SubscriptionAt    string             `json:"subscription_at,omitempty"`
	SubscriptionEnds  string             `json:"subscription_expires_at,omitempty"`
	Identifiers       identifiersView    `json:"identifiers"`
	Consent           string             `json:"consent"`
	ConsentAt         string             `json:"consent_at,omitempty"`
	// ExplicitConsent is the decision made through the consent or erasure API, if any.
	ExplicitConsent string `json:"explicit_consent,omitempty"`
	DueAt           string `json:"due_at,omitempty"`
	ExpiresAt       string `json:"expires_at,omitempty"`
}

// identifiersView says which identifiers the state holds, never their values.
type identifiersView struct {
	Email      bool `json:"email"`
	Phone      bool `json:"phone"`
	ExternalID bool `json:"external_id"`
	MADID      bool `json:"madid"`
	// TrackingDenied: the latest event denied tracking, so no advertising id is kept.
	TrackingDenied bool `json:"tracking_denied,omitempty"`
}

func (c *cli) userShow(ctx context.Context, o userOptions, args []string) error {
	if len(args) != 2 {
		return usagef("user show", "want <app> <id>, got %d argument(s)", len(args))
	}
	appID, userID := args[0], strings.TrimSpace(args[1]) // trimmed, as the ingest function does
	kind := identity.IDKind(o.kind)
	switch kind {
	case identity.KindAppUserID, identity.KindAnonID:
	case identity.KindMADID:
		userID = strings.ToLower(userID) // as the ingest function keys it
	default:
		return usagef("user show", "--id-kind %q: want app_user_id, anon_id or madid", o.kind)
	}
	if userID == "" || len(userID) > 256 {
		return usagef("user show", "the id must have 1 to 256 characters")
	}
	cfg, _, err := c.loadConfig(o.config)
	if err != nil {
		return err
	}
	app, err := findApp(cfg, appID)
	if err != nil {
		return err
	}
	rules, err := segments.Compile(app)
	if err != nil {
		return err
	}
	pseudo, pepperSource, err := c.pseudonymizer(ctx, o.pepperSecret)
	if err != nil {
		return err
	}
	store, err := c.stateStore(ctx, o.state)
	if err != nil {
		return err
	}
	key := pseudo.UserKey(app.ID, kind, userID)
	rec, found, err := store.GetUser(ctx, app.ID, key)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no such user in app %s (no state under its key %s, derived with %s: a different pepper finds nobody)",
			app.ID, shortKey(key), pepperSource)
	}
	var st segments.State
	if err := json.Unmarshal(rec.State, &st); err != nil {
		return fmt.Errorf("stored state of %s does not decode: %w", shortKey(key), err)
	}
	now := c.now()
	segsNow, nextDue := rules.Evaluate(&st, now)

	v := userView{
		App: app.ID, UserKeyPrefix: shortKey(key), Version: rec.Version,
		StoredSegments: emptyIfNil(inConfigOrder(rec.Segments, rules.Segments())), SegmentsNow: emptyIfNil(segsNow),
		FirstSeen: jsonTime(st.FirstSeen), InstalledAt: jsonTime(st.InstalledAt()), LastSeen: jsonTime(st.LastSeen),
		Platform: st.Platform, LifetimeValue: st.LifetimeValue(), ReportingCurrency: rules.ReportingCurrency(),
		UnconvertedValue: st.UnconvertedValue(), Purchases: st.Purchases,
		SubscriptionAt: jsonTime(st.Subscription.At), SubscriptionEnds: jsonTime(st.Subscription.ExpiresAt),
		Identifiers: identifiersView{
			Email: !st.Email.Hash.IsZero(), Phone: !st.Phone.Hash.IsZero(), ExternalID: !st.ExternalID.Hash.IsZero(),
			MADID: st.MADID.ID != "", TrackingDenied: st.MADID.At != 0 && st.MADID.ID == "",
		},
		DueAt: jsonTime(rec.DueAt), ExpiresAt: jsonTime(rec.ExpiresAt),
	}
	if !nextDue.IsZero() {
		v.NextChangeAt = jsonTime(nextDue.Unix())
	}
	if len(st.Last) > 0 {
		v.LastEvents = map[string]string{}
		for name, t := range st.Last {
			v.LastEvents[name] = jsonTime(t)
		}
	}
	switch {
	case st.Consent.At == 0:
		v.Consent = "unknown"
	case st.Consent.Withdrawn:
		v.Consent, v.ConsentAt = "withdrawn", jsonTime(st.Consent.At)
	default:
		v.Consent, v.ConsentAt = "granted", jsonTime(st.Consent.At)
	}
	decisions, err := store.Consents(ctx, app.ID, []string{key})
	if err != nil {
		return err
	}
	if d, ok := decisions[key]; ok {
		v.ExplicitConsent = describeDecision(d, now)
	}
	if o.json {
		return writeJSON(c.stdout, v)
	}
	return writeFields(c.stdout, v.fields(&st, rec.DueAt, rec.ExpiresAt, nextDue, now))
}

// describeDecision says what an explicit decision (consent or erasure API) does, e.g.
// "withdrawn by erasure er_… 2h ago" or "granted, LDU on, 5m ago".
func describeDecision(d ports.UserConsent, now time.Time) string {
	s := "granted"
	if d.Withdrawn() {
		s = "withdrawn"
		if d.ErasureID != "" {
			s += " by erasure " + d.ErasureID
		}
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"advertiser tracking", d.AdvertiserTracking}, {"app tracking", d.ApplicationTracking}, {"LDU", d.LDU}} {
		if f.v != nil {
			s += ", " + f.name + " " + map[bool]string{true: "on", false: "off"}[*f.v]
		}
	}
	return s + " " + fmtUnix(d.At, now)
}

// inConfigOrder sorts segment ids as the config lists them (the store keeps a set); ids the
// config no longer has go last.
func inConfigOrder(ids, config []string) []string {
	out := slices.Clone(ids)
	rank := func(id string) int {
		if i := slices.Index(config, id); i >= 0 {
			return i
		}
		return len(config)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// fields lays the view out for people, with the ages of the times.
func (v *userView) fields(st *segments.State, dueAt, expiresAt int64, nextDue, now time.Time) []field {
	value := strconv.FormatFloat(v.LifetimeValue, 'f', 2, 64)
	if v.ReportingCurrency != "" {
		value += " " + v.ReportingCurrency
	}
	if len(v.UnconvertedValue) > 0 {
		var other []string
		for code, x := range v.UnconvertedValue {
			other = append(other, strconv.FormatFloat(x, 'f', 2, 64)+" "+code)
		}
		sort.Strings(other)
		value += " (not converted: " + strings.Join(other, ", ") + ")"
	}
	madid := yesNo(v.Identifiers.MADID)
	if v.Identifiers.TrackingDenied {
		madid = "no (tracking denied)"
	}
	consent := v.Consent
	if st.Consent.At != 0 {
		consent += " " + fmtUnix(st.Consent.At, now)
	}
	next := ""
	if !nextDue.IsZero() {
		next = fmtTime(nextDue, now)
	}
	var last []string
	for name, t := range st.Last {
		last = append(last, name+" "+fmtUnix(t, now))
	}
	sort.Strings(last)
	fs := []field{
		{"app", v.App},
		{"user key", v.UserKeyPrefix},
		{"version", strconv.FormatInt(v.Version, 10)},
		{"segments (stored)", list(v.StoredSegments)},
		{"segments (now)", list(v.SegmentsNow)},
		{"next change", next},
		{"first seen", fmtUnix(st.FirstSeen, now)},
		{"installed", fmtUnix(st.InstalledAt(), now)},
		{"last seen", fmtUnix(st.LastSeen, now)},
		{"platform", v.Platform},
		{"lifetime value", value},
		{"purchases", strconv.FormatInt(v.Purchases, 10)},
	}
	for i, l := range last {
		name := ""
		if i == 0 {
			name = "last events"
		}
		fs = append(fs, field{name, l})
	}
	if st.Subscription.At != 0 {
		sub := "since " + fmtUnix(st.Subscription.At, now)
		if st.Subscription.ExpiresAt != 0 {
			sub += ", expires " + fmtUnix(st.Subscription.ExpiresAt, now)
		}
		fs = append(fs, field{"subscription", sub})
	}
	return append(fs,
		field{"has email", yesNo(v.Identifiers.Email)},
		field{"has phone", yesNo(v.Identifiers.Phone)},
		field{"has external id", yesNo(v.Identifiers.ExternalID)},
		field{"has advertising id", madid},
		field{"consent", consent},
		field{"explicit consent", v.ExplicitConsent},
		field{"due at", fmtUnix(dueAt, now)},
		field{"expires at", fmtUnix(expiresAt, now)},
	)
}

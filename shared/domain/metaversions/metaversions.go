// Package metaversions knows when Meta retires the API versions the pipeline calls. Meta runs
// two schedules over the same version numbers:
//
//   - the Marketing API (Custom Audiences: the audience sync and `retarget audiences create`)
//     keeps a version about a year; a call on an expired version answers error 2635 unless the
//     endpoint is unchanged in the next version (then Meta upgrades the call silently);
//   - the Graph API (the Conversions API: the CAPI forwarder) keeps a version at least two years.
//
// Expiry dates are published only some time after a version's release, so a version may be
// known without an expiry (Expires zero). The table is the only place the dates live: update it
// when Meta publishes one (the sources are next to each row). Everything here is pure: callers
// pass the clock.
package metaversions

import (
	"fmt"
	"regexp"
	"time"
)

// API is one of Meta's version schedules.
type API string

const (
	// Conversions is the Graph API schedule, which the Conversions API follows.
	Conversions API = "conversions"
	// Marketing is the Marketing API schedule, which Custom Audiences follow.
	Marketing API = "marketing"
)

// Defaults current at release: the newest version of each schedule (v27.0, released
// 2026-11-04 for both). The Conversions API stays on v26.0, which the forwarder was validated
// against and which the Graph API keeps for at least two years; the Marketing API moves to
// v27.0, the version that will expire last.
const (
	DefaultConversions = "v26.0"
	DefaultMarketing   = "v27.0"
)

// WarnDays is how long before expiry `retarget doctor` warns; AlarmDays when the stack's alarm
// on the functions' days-left metric fires.
const (
	WarnDays  = 60
	AlarmDays = 30
)

// Version is one row of the table.
type Version struct {
	API     API
	Version string // "v25.0"
	// Released is the release date, zero when not recorded.
	Released time.Time
	// Expires is the last day the version works, zero when Meta has not published it.
	Expires time.Time
	// Source is where the dates come from.
	Source string
}

// Sources of the dates (as /work/shared/reference/meta-measurement.md, section 5, gives them).
const (
	sourceMarketing = "https://developers.facebook.com/documentation/ads-commerce/marketing-api/marketing-api-changelog/versions"
	sourceGraph     = "https://developers.facebook.com/docs/graph-api/changelog/versions"
	sourceV27       = "https://developers.facebook.com/blog/post/2026/11/04/introducing-graph-api-v27-and-marketing-api-v27/"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // the table below is constant
	}
	return t
}

// table is every version Meta documents as in force on 2026-12-06, per schedule.
var table = []Version{
	// Marketing API: v24.0 expired 2026-11-10, v25.0 expires 2027-02-23, v26.0 and v27.0 have no
	// published expiry yet.
	{API: Marketing, Version: "v24.0", Expires: day("2026-11-10"), Source: sourceMarketing},
	{API: Marketing, Version: "v25.0", Expires: day("2027-02-23"), Source: sourceMarketing},
	{API: Marketing, Version: "v26.0", Released: day("2026-07-29"), Source: sourceMarketing},
	{API: Marketing, Version: "v27.0", Released: day("2026-11-04"), Source: sourceV27},
	// Graph API: at least two years per version.
	{API: Conversions, Version: "v21.0", Expires: day("2027-01-21"), Source: sourceGraph},
	{API: Conversions, Version: "v22.0", Expires: day("2027-05-20"), Source: sourceGraph},
	{API: Conversions, Version: "v23.0", Expires: day("2027-10-08"), Source: sourceGraph},
	{API: Conversions, Version: "v24.0", Expires: day("2028-02-18"), Source: sourceGraph},
	{API: Conversions, Version: "v25.0", Expires: day("2028-07-29"), Source: sourceGraph},
	{API: Conversions, Version: "v26.0", Source: sourceGraph},
	{API: Conversions, Version: "v27.0", Released: day("2026-11-04"), Source: sourceV27},
}

// Table returns a copy of the table.
func Table() []Version { return append([]Version(nil), table...) }

var versionPattern = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// Valid reports whether v looks like a Graph API version ("v26.0").
func Valid(v string) bool { return versionPattern.MatchString(v) }

// Lookup returns the table's row of version v of api.
func Lookup(api API, v string) (Version, bool) {
	for _, r := range table {
		if r.API == api && r.Version == v {
			return r, true
		}
	}
	return Version{}, false
}

// Status is what the table says about one version on one day.
type Status struct {
	API     API    `json:"api"`
	Version string `json:"version"`
	// Known: the version is in the table.
	Known bool `json:"known"`
	// HasExpiry: Meta published an expiry date; DaysLeft and Expires are meaningful.
	HasExpiry bool `json:"has_expiry"`
	// Expires is the expiry date as YYYY-MM-DD, "" without one.
	Expires string `json:"expires,omitempty"`
	// DaysLeft is the number of whole days until the expiry date (0 on the day itself,
	// negative once expired).
	DaysLeft int `json:"days_left"`
	// Source is where the date comes from, "" for an unknown version.
	Source string `json:"source,omitempty"`
}

// Expired reports whether the version has expired by the day of Check.
func (s Status) Expired() bool { return s.HasExpiry && s.DaysLeft < 0 }

// Within reports whether the version expires within days (or already has).
func (s Status) Within(days int) bool { return s.HasExpiry && s.DaysLeft < days }

// String says it in one sentence.
func (s Status) String() string {
	switch {
	case !s.Known:
		return fmt.Sprintf("%s API %s is not in the version table: its expiry is unknown (check %s)", s.API, s.Version, sourceFor(s.API))
	case !s.HasExpiry:
		return fmt.Sprintf("%s API %s has no published expiry yet (%s)", s.API, s.Version, s.Source)
	case s.DaysLeft < 0:
		return fmt.Sprintf("%s API %s expired on %s, %d days ago (%s)", s.API, s.Version, s.Expires, -s.DaysLeft, s.Source)
	default:
		return fmt.Sprintf("%s API %s expires on %s, in %d days (%s)", s.API, s.Version, s.Expires, s.DaysLeft, s.Source)
	}
}

func sourceFor(api API) string {
	if api == Marketing {
		return sourceMarketing
	}
	return sourceGraph
}

// Check returns the status of version v of api on now's day (UTC).
func Check(api API, v string, now time.Time) Status {
	s := Status{API: api, Version: v}
	r, ok := Lookup(api, v)
	if !ok {
		return s
	}
	s.Known, s.Source = true, r.Source
	if r.Expires.IsZero() {
		return s
	}
	s.HasExpiry, s.Expires = true, r.Expires.Format(time.DateOnly)
	y, m, d := now.UTC().Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	s.DaysLeft = int(r.Expires.Sub(today).Hours() / 24)
	return s
}

// DaysLeft returns the days left of version v of api on now's day, and whether they are known
// (false: the version is not in the table, or Meta has published no expiry for it).
func DaysLeft(api API, v string, now time.Time) (int, bool) {
	s := Check(api, v, now)
	return s.DaysLeft, s.HasExpiry
}

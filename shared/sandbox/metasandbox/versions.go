package metasandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/retarget-dev/retarget/shared/domain/metaversions"
)

// Versions says how the sandbox treats the API versions it accepts (Config.Version and
// Config.Versions), as Meta does around a version's end:
//
//   - a version in Expired answers every call, events and Custom Audiences alike, with error
//     2635 "You are calling a deprecated version of the Ads API" (the answer Meta gives on an
//     expired Marketing API version: meta-measurement.md section 5, [AU]
//     https://developers.facebook.com/blog/post/2024/04/16/upcoming-change-in-marketing-api-version-deprecation);
//   - a version in Warn is served, with an X-Ad-Api-Version-Warning header on every answer (Meta
//     sends it before expiry: meta-api.md, "Corrections and additions"). The header's wording
//     here is the sandbox's own.
//
// They are set with Config.ExpiredVersions and Config.WarnVersions, SetVersions, or
// GET/POST /_sandbox/versions ({"expired": [...], "warn": [...]}; POST replaces both).
type Versions struct {
	Expired []string `json:"expired"`
	Warn    []string `json:"warn"`
}

func (v Versions) validate() error {
	for _, l := range [][]string{v.Expired, v.Warn} {
		for _, s := range l {
			if !versionRE.MatchString(s) {
				return fmt.Errorf("version %q is not like v26.0", s)
			}
		}
	}
	return nil
}

// SetVersions replaces the expired and warning lists.
func (s *Sandbox) SetVersions(v Versions) error {
	if err := v.validate(); err != nil {
		return fmt.Errorf("metasandbox: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions = Versions{Expired: slices.Clone(v.Expired), Warn: slices.Clone(v.Warn)}
	return nil
}

// Versions returns the expired and warning lists in force.
func (s *Sandbox) Versions() Versions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Versions{Expired: nonNil(slices.Clone(s.versions.Expired)), Warn: nonNil(slices.Clone(s.versions.Warn))}
}

// accepts reports whether version is one the sandbox serves at all.
func (s *Sandbox) accepts(version string) bool {
	return version == s.cfg.Version || slices.Contains(s.cfg.Versions, version)
}

// checkVersion is the version check of both endpoint families: a version the sandbox does not
// serve, or one in the expired list, answers 2635.
func (s *Sandbox) checkVersion(version string) *graphError {
	if !s.accepts(version) {
		return errDeprecatedVersion(version, s.cfg.Version)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.versions.Expired, version) {
		return nil
	}
	latest := s.cfg.Version // Meta's message names the version to move to
	for _, v := range s.cfg.Versions {
		if !slices.Contains(s.versions.Expired, v) {
			latest = v
		}
	}
	return errDeprecatedVersion(version, latest)
}

// warnVersion adds X-Ad-Api-Version-Warning to the answer of a Graph call whose version is in
// the warning list.
func (s *Sandbox) warnVersion(w http.ResponseWriter, path string) {
	version, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	s.mu.Lock()
	warn := slices.Contains(s.versions.Warn, version)
	s.mu.Unlock()
	if warn {
		w.Header().Set("X-Ad-Api-Version-Warning", fmt.Sprintf(
			"The API version %s you are calling will be deprecated soon. Please upgrade to a newer version.", version))
	}
}

// serveVersions answers GET and POST /_sandbox/versions.
func (s *Sandbox) serveVersions(w http.ResponseWriter, r *http.Request, allow func(string) bool) {
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, s.Versions())
		return
	}
	if !allow(http.MethodPost) {
		return
	}
	var v Versions
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "versions: " + err.Error()})
		return
	}
	if err := s.SetVersions(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.Versions())
}

// defaultVersions are the versions served besides DefaultVersion when the config names none:
// the project's default Marketing API version, so that the audience sync's calls are served.
var defaultVersions = []string{metaversions.DefaultMarketing}

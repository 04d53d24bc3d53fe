package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

var doctorCommand = &command{
	name:    "doctor",
	summary: "check the Meta API versions against their published expiry, and the app config",
	help: `Checks the pipeline's settings for what stops it silently over time:

  - the Conversions API version (the CAPI forwarder's, Graph API schedule: at least two years
    per version) and the Marketing API version (the audience sync's and audiences create's,
    about a year per version) against the table of published expiries
    (shared/domain/metaversions): warns --warn-days before expiry, fails once expired (Meta
    then answers error 2635 and the pipeline holds everything), and warns for a version whose
    expiry is not known;
  - the deprecated META_API_VERSION in the environment (it sets both versions);
  - that the app config loads and validates.

The versions come from --capi-version and --marketing-version, else META_CAPI_VERSION and
META_MARKETING_VERSION (or META_API_VERSION), else the deployed stack's outputs (--stack) or
the running dev stack, else the defaults. Exits 1 when a check fails.`,
	example: `  retarget doctor                               # against make dev
  retarget doctor --stack Retarget-prod --json
  retarget doctor --marketing-version v25.0 --warn-days 90`,
	flags: func(fs *flag.FlagSet) any {
		o := &doctorOptions{}
		fs.StringVar(&o.capi, "capi-version", "", "Conversions API `version` to check (default: the pipeline's)")
		fs.StringVar(&o.marketing, "marketing-version", "", "Marketing API `version` to check (default: the pipeline's)")
		fs.IntVar(&o.warnDays, "warn-days", metaversions.WarnDays, "warn this many `days` before a version expires")
		configFlag(fs, &o.config)
		fs.BoolVar(&o.json, "json", false, "print JSON")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.doctor(*opts.(*doctorOptions), args)
	},
}

type doctorOptions struct {
	capi, marketing string
	warnDays        int
	config          string
	json            bool
}

// Check outcomes.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
)

// doctorCheck is one line of retarget doctor.
type doctorCheck struct {
	Check  string `json:"check"`
	Status string `json:"status"` // ok, warn, fail
	Detail string `json:"detail"`
	// Version is the table's answer for a version check.
	Version *metaversions.Status `json:"version,omitempty"`
	// From says where a checked version came from: flag, environment, stack, dev stack, default.
	From string `json:"from,omitempty"`
}

func (c *cli) doctor(o doctorOptions, args []string) error {
	if len(args) > 0 {
		return usagef("doctor", "unexpected arguments %q", args)
	}
	if o.warnDays < 0 {
		return usagef("doctor", "--warn-days %d must not be negative", o.warnDays)
	}
	now := c.now()
	checks := []doctorCheck{
		c.versionCheck("capi version", metaversions.Conversions, o.capi, env.CAPIVersion, metaversions.DefaultConversions, o.warnDays, now),
		c.versionCheck("marketing version", metaversions.Marketing, o.marketing, env.MarketingVersion, metaversions.DefaultMarketing, o.warnDays, now),
	}
	if v := c.getenv(env.APIVersion); v != "" {
		checks = append(checks, doctorCheck{Check: "deprecated setting", Status: checkWarn,
			Detail: fmt.Sprintf("%s=%s sets both versions where %s or %s is unset: set those two instead (Marketing API versions expire about a year after release, Graph API versions after two)",
				env.APIVersion, v, env.CAPIVersion, env.MarketingVersion)})
	}
	if _, path, err := c.loadConfig(o.config); err != nil {
		checks = append(checks, doctorCheck{Check: "app config", Status: checkFail, Detail: err.Error()})
	} else {
		checks = append(checks, doctorCheck{Check: "app config", Status: checkOK, Detail: path + " is valid"})
	}

	if o.json {
		if err := writeJSON(c.stdout, checks); err != nil {
			return err
		}
	} else {
		rows := make([][]string, len(checks))
		for i, ch := range checks {
			rows[i] = []string{ch.Check, ch.Status, ch.Detail}
		}
		if err := writeTable(c.stdout, []string{"CHECK", "STATUS", "DETAIL"}, rows); err != nil {
			return err
		}
	}
	failed := 0
	for _, ch := range checks {
		if ch.Status == checkFail {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	return nil
}

// versionCheck checks one API's version: the flag's, else the setting's (environment, stack or
// dev stack), else the default.
func (c *cli) versionCheck(name string, api metaversions.API, flagValue, setting, def string, warnDays int, now time.Time) doctorCheck {
	version, from := flagValue, "flag"
	if version == "" {
		version, from = env.MetaVersion(c.getenv, setting), c.settingSource(setting)
	}
	if version == "" {
		version, from = def, "default"
	}
	ch := doctorCheck{Check: name, From: from}
	if !metaversions.Valid(version) {
		ch.Status, ch.Detail = checkFail, fmt.Sprintf("%q is not a version like %s", version, def)
		return ch
	}
	s := metaversions.Check(api, version, now)
	ch.Version = &s
	switch {
	case s.Expired():
		ch.Status = checkFail
		ch.Detail = s.String() + ": Meta answers error 2635 and the pipeline holds everything; set a current version"
	case s.Within(warnDays):
		ch.Status = checkWarn
		ch.Detail = s.String() + ": set a newer version before then"
	case !s.Known:
		ch.Status = checkWarn
		ch.Detail = s.String()
	default:
		ch.Status, ch.Detail = checkOK, s.String()
	}
	ch.Detail += " [" + from + "]"
	return ch
}

// settingSource says where c.getenv finds the setting name (or its deprecated fallback).
func (c *cli) settingSource(name string) string {
	for _, k := range []string{name, env.APIVersion} {
		if c.target.settings[k] != "" && c.getenv(k) == c.target.settings[k] {
			if c.target.stack != "" {
				return "stack " + c.target.stack
			}
			return "dev stack"
		}
		if c.getenv(k) != "" {
			return "environment " + k
		}
	}
	return "default"
}

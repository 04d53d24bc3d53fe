package main

import (
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func TestDoctor(t *testing.T) {
	h := newHarness(t)
	h.now = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	h.env[env.ConfigFile] = sampleConfig

	t.Run("defaults: current, no published expiry yet for the Marketing default", func(t *testing.T) {
		out := h.mustRun(exitOK, "doctor")
		wantContains(t, out, "CHECK", "capi version", "marketing version", "app config", "[default]")
		var checks []doctorCheck
		h.mustRun(exitOK, "doctor", "--json")
		h.decodeJSON(&checks)
		if len(checks) != 3 || checks[0].Version == nil || checks[0].Version.Version != "v26.0" || checks[1].Version.Version != "v27.0" ||
			checks[2].Status != checkOK {
			t.Fatalf("checks %+v", checks)
		}
	})
	t.Run("60 days before expiry: a warning, exit 0", func(t *testing.T) {
		h.env[env.MarketingVersion] = "v25.0" // expires 2027-02-23: 78 days
		h.mustRun(exitOK, "doctor", "--warn-days", "90", "--json")
		var checks []doctorCheck
		h.decodeJSON(&checks)
		if checks[1].Status != checkWarn || checks[1].Version.DaysLeft != 78 || checks[1].From != "environment "+env.MarketingVersion {
			t.Fatalf("marketing check %+v", checks[1])
		}
		h.mustRun(exitOK, "doctor", "--json") // 78 days is outside the default 60
		h.decodeJSON(&checks)
		if checks[1].Status != checkOK {
			t.Fatalf("marketing check %+v", checks[1])
		}
	})
	t.Run("expired: a failure, exit 1", func(t *testing.T) {
		h.env[env.MarketingVersion] = ""
		h.env[env.APIVersion] = "v24.0" // the deprecated fallback: Marketing v24.0 expired 2026-11-10
		if code := h.run("doctor"); code != exitFailure {
			t.Fatalf("exit %d, want %d\n%s", code, exitFailure, h.stdout.String())
		}
		wantContains(t, h.stdout.String(), "expired on 2026-11-10", "deprecated setting", "META_API_VERSION=v24.0")
		wantContains(t, h.stderr.String(), "retarget doctor: 1 check(s) failed")
		// The CAPI version v24.0 has years left on the Graph API's schedule.
		h.run("doctor", "--json")
		var checks []doctorCheck
		h.decodeJSON(&checks)
		if checks[0].Status != checkOK || checks[1].Status != checkFail || !strings.Contains(checks[1].Detail, "2635") {
			t.Fatalf("checks %+v", checks)
		}
	})
	t.Run("flags win; unknown and malformed versions", func(t *testing.T) {
		h.env[env.APIVersion] = ""
		h.mustRun(exitOK, "doctor", "--capi-version", "v19.0", "--json")
		var checks []doctorCheck
		h.decodeJSON(&checks)
		if checks[0].Status != checkWarn || checks[0].From != "flag" || !strings.Contains(checks[0].Detail, "not in the version table") {
			t.Fatalf("capi check %+v", checks[0])
		}
		if code := h.run("doctor", "--marketing-version", "27"); code != exitFailure {
			t.Fatalf("exit %d for a malformed version", code)
		}
	})
}

// With --stack, the versions are the deployed stack's outputs.
func TestDoctorReadsTheStackOutputs(t *testing.T) {
	outputs := fullOutputs("https://api.example")
	outputs[outputMetaCapiVersion], outputs[outputMetaMarketingVersion] = "v25.0", "v24.0"
	cfn := startCloudFormation(t, map[string]map[string]string{"Retarget-prod": outputs})
	h := newHarness(t)
	h.now = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	h.env["AWS_ENDPOINT_URL_CLOUDFORMATION"] = cfn.url
	h.env["AWS_REGION"], h.env["AWS_ACCESS_KEY_ID"], h.env["AWS_SECRET_ACCESS_KEY"] = "us-east-1", "AKIDEXAMPLE", "secret"
	h.env[env.ConfigFile] = sampleConfig
	if code := h.run("doctor", "--stack", "Retarget-prod", "--json"); code != exitFailure {
		t.Fatalf("exit %d, want %d: %s %s", code, exitFailure, h.stdout.String(), h.stderr.String())
	}
	var checks []doctorCheck
	h.decodeJSON(&checks)
	if checks[0].Version.Version != "v25.0" || checks[0].From != "stack Retarget-prod" || checks[1].Version.Version != "v24.0" || checks[1].Status != checkFail {
		t.Fatalf("checks %+v", checks)
	}
}

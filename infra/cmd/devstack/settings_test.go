package main

import (
	"io"
	"strings"
	"testing"

	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func TestSandboxFaultsFromEnv(t *testing.T) {
	envOf := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	s, err := parseSettings(nil, envOf(map[string]string{EnvFaults: `{"server_error_rate":0.3,"poison_event_ids":["e-1"],"seed":7}`}), io.Discard)
	if err != nil || s.Faults.ServerErrorRate != 0.3 || s.Faults.Seed != 7 || len(s.Faults.PoisonEventIDs) != 1 {
		t.Fatalf("faults %+v, %v", s.Faults, err)
	}
	if _, err := parseSettings(nil, envOf(map[string]string{EnvFaults: `{"server_eror_rate":0.3}`}), io.Discard); err == nil || !strings.Contains(err.Error(), EnvFaults) {
		t.Fatalf("a misspelt fault was accepted: %v", err)
	}
	if _, err := parseSettings(nil, envOf(map[string]string{env.GraphURL: "https://graph.facebook.com"}), io.Discard); err == nil || !strings.Contains(err.Error(), env.AccessToken) {
		t.Fatalf("a real Graph URL without a token was accepted: %v", err)
	}
}

package main

import (
	"testing"
	"time"
)

func TestPurgeSettingsFromEnv(t *testing.T) {
	envOf := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	ps, err := readPurgeSettings(envOf(nil))
	if err != nil || ps != (purgeSettings{interval: time.Minute, settle: 30 * time.Second, lookback: 400}) {
		t.Fatalf("defaults = %+v, %v", ps, err)
	}
	ps, err = readPurgeSettings(envOf(map[string]string{EnvArchivePurgeInterval: "2s", EnvArchivePurgeSettle: "0s", EnvArchivePurgeLookback: "7"}))
	if err != nil || ps != (purgeSettings{interval: 2 * time.Second, settle: 0, lookback: 7}) {
		t.Fatalf("set = %+v, %v", ps, err)
	}
	for k, v := range map[string]string{EnvArchivePurgeInterval: "0s", EnvArchivePurgeSettle: "-1s", EnvArchivePurgeLookback: "-3"} {
		if _, err := readPurgeSettings(envOf(map[string]string{k: v})); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
	if _, err := readPurgeSettings(envOf(map[string]string{EnvArchivePurgeInterval: "soon"})); err == nil {
		t.Error("an interval that is not a duration was accepted")
	}
}

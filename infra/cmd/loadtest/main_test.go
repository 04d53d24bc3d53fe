package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Rate != TargetEventsPerSecond || o.EventsPerRequest != 20 || o.Duration.String() != "30s" || o.PrefillUsers != defaultPrefillUsers || o.Shape != "device" {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseOptions([]string{"--url", "http://127.0.0.1:3000", "--sandbox-url", "http://127.0.0.1:4000"}, io.Discard)
	if err != nil || o.PrefillUsers != 0 {
		t.Errorf("--url: prefill %d, err %v; want no prefill of a running stack unless asked", o.PrefillUsers, err)
	}
	for api, want := range map[string][]FrontDoor{"rest": {DoorREST}, "http": {DoorHTTP}, "both": {DoorREST, DoorHTTP}, "": {DoorREST, DoorHTTP}} {
		o, err := parseOptions([]string{"--api", api}, io.Discard)
		if err != nil || !slices.Equal(o.doors(), want) {
			t.Errorf("--api %q: doors %v, err %v; want %v", api, o.doors(), err, want)
		}
	}
	for _, args := range [][]string{
		{"--rate", "0"},
		{"--duration", "-1s"},
		{"--senders", "0"},
		{"--consent", "1.5"},
		{"--prefill-users", "200000"},
		{"--api", "websocket"},
		{"--url", "http://127.0.0.1:3000"}, // no sandbox: nothing to measure end to end
		{"stray"},
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("%s: no error", strings.Join(args, " "))
		}
	}
}

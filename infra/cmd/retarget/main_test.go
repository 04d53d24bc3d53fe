package main

import (
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestTopLevelUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{"no arguments", nil, exitUsage, nil, []string{"Usage: retarget <command>"}, true},
		{"--help", []string{"--help"}, exitOK, []string{"Usage: retarget <command>", "dlq replay", "audiences create", "Exit codes"}, nil, false},
		{"help", []string{"help"}, exitOK, []string{"rules check"}, nil, false},
		{"-h", []string{"-h"}, exitOK, []string{"user show"}, nil, false},
		{"unknown command", []string{"frobnicate"}, exitUsage, nil, []string{`retarget: unknown command "frobnicate"`, "retarget --help"}, true},
		{"group without subcommand", []string{"dlq"}, exitUsage, nil, []string{"dlq needs a subcommand: list, show, replay"}, true},
		{"unknown subcommand", []string{"audiences", "delete"}, exitUsage, nil, []string{`unknown command "audiences delete"`, "status, create"}, true},
		{"group help", []string{"dlq", "--help"}, exitOK, []string{"Usage: retarget dlq <subcommand>", "list", "show", "replay"}, nil, false},
		{"help for a command", []string{"help", "user", "show"}, exitOK, []string{"Usage: retarget user show [flags] <app> <id>"}, nil, false},
		{"unknown flag", []string{"dlq", "list", "--bogus"}, exitUsage, nil, []string{"retarget dlq list: flag provided but not defined: -bogus", "retarget dlq list --help"}, true},
		{"bad flag value", []string{"send", "--sample", "many"}, exitUsage, nil, []string{"retarget send:", `invalid value "many"`}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if code := h.run(tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, h.stderr.String())
			}
			wantContains(t, h.stdout.String(), tc.stdout...)
			wantContains(t, h.stderr.String(), tc.stderr...)
			if tc.noStdout && h.stdout.Len() > 0 {
				t.Errorf("stdout should be empty on a usage error:\n%s", h.stdout.String())
			}
		})
	}
}

// Every command answers --help with its usage line, its flags and examples, on stdout, exit 0.
func TestEveryCommandHasHelp(t *testing.T) {
	for _, cmd := range commands {
		t.Run(cmd.name, func(t *testing.T) {
			h := newHarness(t)
			args := append(strings.Fields(cmd.name), "--help")
			out := h.mustRun(exitOK, args...)
			wantContains(t, out, "Usage: retarget "+cmd.name+" [flags]", "Flags:", "Examples:\n  ", "retarget "+cmd.name)
			if !strings.Contains(out, "--json") {
				t.Errorf("%s has no --json flag", cmd.name)
			}
			if h.stderr.Len() > 0 {
				t.Errorf("help wrote to stderr: %s", h.stderr.String())
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantOn  bool
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, false},
		{[]string{"--json", "a", "b"}, []string{"a", "b"}, true},
		{[]string{"a", "--json", "b"}, []string{"a", "b"}, true},
		{[]string{"a", "b", "--json"}, []string{"a", "b"}, true},
		{[]string{"a", "--", "--json"}, []string{"a", "--json"}, false},
	}
	for _, tc := range tests {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		on := fs.Bool("json", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.wantPos) || *on != tc.wantOn {
			t.Errorf("parse %q = %q, json=%v, %v; want %q, json=%v", tc.args, pos, *on, err, tc.wantPos, tc.wantOn)
		}
	}
}

func TestFieldWithoutIndex(t *testing.T) {
	for in, want := range map[string]string{
		"events[12].user.email": "user.email",
		"events[3]":             "(event)",
		"":                      "(event)",
		"line 4":                "line 4",
	} {
		if got := fieldWithoutIndex(in); got != want {
			t.Errorf("fieldWithoutIndex(%q) = %q, want %q", in, got, want)
		}
	}
}

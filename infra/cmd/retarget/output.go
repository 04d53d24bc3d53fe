package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeJSON writes v as indented JSON and a newline: the --json output of every command.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeTable writes an aligned table: a header line, then one line per row. Empty cells are
// printed as "-" so that columns stay readable and splittable by whitespace.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		out := make([]string, len(cells))
		for i, s := range cells {
			if s == "" {
				s = "-"
			}
			out[i] = strings.ReplaceAll(s, "\t", " ")
		}
		fmt.Fprintln(tw, strings.Join(out, "\t"))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

// field is one line of a key/value listing.
type field struct{ name, value string }

// writeFields writes "name  value" lines, aligned.
func writeFields(w io.Writer, fields []field) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fields {
		v := f.value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", f.name, v)
	}
	return tw.Flush()
}

// timeLayout is how times are printed: UTC, to the second.
const timeLayout = time.RFC3339

// fmtUnix prints a unix time in seconds with its age relative to now, or "" for 0.
func fmtUnix(sec int64, now time.Time) string {
	if sec == 0 {
		return ""
	}
	return fmtTime(time.Unix(sec, 0), now)
}

// fmtTime prints t in UTC with its distance from now: "2026-03-02T10:00:00Z (3h ago)".
func fmtTime(t time.Time, now time.Time) string {
	d := now.Sub(t)
	rel := fmtAge(d) + " ago"
	if d < 0 {
		rel = "in " + fmtAge(-d)
	}
	return t.UTC().Format(timeLayout) + " (" + rel + ")"
}

// fmtAge prints a duration coarsely: 42s, 5m, 3h12m, 4d3h.
func fmtAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		h := int(d / time.Hour)
		if m := int(d%time.Hour) / int(time.Minute); m != 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	default:
		days := int(d / (24 * time.Hour))
		if h := int(d%(24*time.Hour)) / int(time.Hour); h != 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
	}
}

// jsonTime is a unix time in seconds as an RFC 3339 string, or "" for 0 (omitted with omitempty).
func jsonTime(sec int64) string {
	if sec == 0 {
		return ""
	}
	return time.Unix(sec, 0).UTC().Format(timeLayout)
}

// prefixLen is how much of a user key or digest is ever printed: enough to tell two apart in a
// listing, far too little to match against anything.
const prefixLen = 8

// shortKey returns the first characters of a pseudonymous key or a digest, marked as cut.
func shortKey(s string) string {
	if s == "" {
		return ""
	}
	if len(s) <= prefixLen {
		return s + "…"
	}
	return s[:prefixLen] + "…"
}

// yesNo prints a boolean for people.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// list prints a list of names, "" when empty.
func list(names []string) string { return strings.Join(names, ", ") }

// emptyIfNil returns s, or an empty list for nil: JSON prints [] rather than null.
func emptyIfNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

package appconfig

import (
	"strings"
	"testing"
)

// TestArchiveRawFields: the archive drops the raw fields unless the app says true; other types
// and misspellings are refused, never read as either answer.
func TestArchiveRawFields(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		want        bool
		err         string
	}{
		{name: "absent", extra: "", want: false},
		{name: "false", extra: `, "archive_raw_fields": false`, want: false},
		{name: "true", extra: `, "archive_raw_fields": true`, want: true},
		{name: "string", extra: `, "archive_raw_fields": "true"`, err: "archive_raw_fields: must be bool"},
		{name: "misspelt", extra: `, "archive_raw_field": true`, err: `unknown field "archive_raw_field"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(appWith(tc.extra)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Apps[0].ArchiveKeepsRawFields(); got != tc.want {
				t.Errorf("ArchiveKeepsRawFields() = %v, want %v", got, tc.want)
			}
		})
	}
}

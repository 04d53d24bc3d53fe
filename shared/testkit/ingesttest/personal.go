package ingesttest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// personalFields are the user fields that must reach the stream only as hashes.
var personalFields = []string{"email", "phone", "first_name", "last_name", "city", "zip", "date_of_birth"}

// minPersonalValues is the fewest values PersonalValues accepts: a check against fewer would
// prove little.
const minPersonalValues = 10

var (
	nonDigits = regexp.MustCompile(`\D`)
	hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// PersonalValues lists, from request bodies, the raw personal values of the users (the fields
// that must reach the stream only as hashes) and their obvious normalised forms: lower case,
// without spaces, digits only (five or more). Values shorter than four characters are left out
// (they occur anywhere by chance), as are empty bodies (a GET). It fails the test when the
// bodies hold fewer than 10 values: AssertNoPersonalData would then prove little.
func PersonalValues(t testing.TB, bodies ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s = strings.ToLower(s); len(s) >= 4 && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, b := range bodies {
		if b == "" {
			continue
		}
		var req struct {
			Events []struct {
				User map[string]any `json:"user"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(b), &req); err != nil {
			t.Fatalf("request body: %v", err)
		}
		for _, e := range req.Events {
			for _, f := range personalFields {
				v, _ := e.User[f].(string)
				if v == "" {
					continue
				}
				add(v)
				add(strings.ReplaceAll(v, " ", ""))
				if d := nonDigits.ReplaceAllString(v, ""); len(d) >= 5 {
					add(d)
				}
			}
		}
	}
	if len(out) < minPersonalValues {
		t.Fatalf("only %d personal values in the requests; the check would prove little", len(out))
	}
	return out
}

// AssertNoPersonalData checks every string of a stream record's JSON, case-insensitively, for
// the values of PersonalValues. Hex digests are skipped (digits of a zip code may occur in them
// by chance), as is the user key "uk".
func AssertNoPersonalData(t testing.TB, data []byte, values []string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		t.Helper()
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case string:
			if path == ".uk" || hexDigest.MatchString(v) {
				return
			}
			for _, n := range values {
				if strings.Contains(strings.ToLower(v), n) {
					t.Errorf("record field %s = %q contains personal data %q", path, v, n)
				}
			}
		}
	}
	walk("", doc)
}

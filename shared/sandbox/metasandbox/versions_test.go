package metasandbox

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A version in the expired list answers 2635 on both endpoint families, the warning list adds
// X-Ad-Api-Version-Warning; both lists change at run time (the fault-injection suite's window).
func TestExpiredAndWarnedVersions(t *testing.T) {
	sb, base := newSandbox(t, func(c *Config) {
		c.AdAccounts = []string{"act_" + testAdAccount}
		c.Versions = []string{"v27.0"}
		c.WarnVersions = []string{"v26.0"}
	})
	// Served with a warning: the events call and an audience create, on v26.0.
	r := postJSON(t, base, []any{appEvent("e1")}, nil)
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("X-Ad-Api-Version-Warning"), "v26.0") {
		t.Fatalf("warned version: %d %q %s", r.status, r.header.Get("X-Ad-Api-Version-Warning"), r.raw)
	}
	a := callJSON(t, sb, "POST", createPath(testAdAccount), map[string]any{"name": "n", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"})
	if a.status != http.StatusOK || a.header.Get("X-Ad-Api-Version-Warning") == "" {
		t.Fatalf("warned audience call: %d %s", a.status, a.raw)
	}
	// The other served version has no warning.
	a = callJSON(t, sb, "POST", "/v27.0/act_"+testAdAccount+"/customaudiences", map[string]any{"name": "m", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"})
	if a.status != http.StatusOK || a.header.Get("X-Ad-Api-Version-Warning") != "" {
		t.Fatalf("v27.0: %d %v %s", a.status, a.header, a.raw)
	}

	if err := sb.SetVersions(Versions{Expired: []string{"v26.0"}}); err != nil {
		t.Fatal(err)
	}
	r = postJSON(t, base, []any{appEvent("e2")}, nil)
	if r.body.Error == nil || r.body.Error.Code != CodeDeprecatedVersion || !strings.Contains(r.body.Error.Message, "latest version: v27.0") {
		t.Fatalf("expired version: %d %s", r.status, r.raw)
	}
	a = callJSON(t, sb, "POST", createPath(testAdAccount), map[string]any{"name": "o", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"})
	if c, _ := a.code(); c != CodeDeprecatedVersion {
		t.Fatalf("expired audience call: %d %s", a.status, a.raw)
	}
	if n := len(sb.Accepted()); n != 1 {
		t.Errorf("accepted %d events, want only the one sent before the expiry", n)
	}

	// Through the developer endpoint: lift the expiry, and refuse a malformed version.
	rec := httptest.NewRecorder()
	sb.ServeHTTP(rec, httptest.NewRequest("POST", "/_sandbox/versions", strings.NewReader(`{"expired":[],"warn":["v27.0"]}`)))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"warn":["v27.0"]`) {
		t.Fatalf("POST /_sandbox/versions: %d %s", rec.Code, rec.Body.String())
	}
	if r = postJSON(t, base, []any{appEvent("e3")}, nil); r.status != http.StatusOK {
		t.Fatalf("after the expiry was lifted: %d %s", r.status, r.raw)
	}
	for _, bad := range []string{`{"expired":["26"]}`, `{"expird":[]}`} {
		rec = httptest.NewRecorder()
		sb.ServeHTTP(rec, httptest.NewRequest("POST", "/_sandbox/versions", strings.NewReader(bad)))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("POST %s: %d, want 400", bad, rec.Code)
		}
	}
}

// By default the sandbox serves the project's two default versions.
func TestDefaultVersionsServed(t *testing.T) {
	sb, _ := newAudienceSandbox(t, nil)
	for _, v := range []string{"v26.0", "v27.0"} {
		a := callJSON(t, sb, "POST", "/"+v+"/act_"+testAdAccount+"/customaudiences", map[string]any{"name": v, "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"})
		if a.status != http.StatusOK {
			t.Errorf("%s: %d %s", v, a.status, a.raw)
		}
	}
	if a := callJSON(t, sb, "POST", "/v24.0/act_"+testAdAccount+"/customaudiences", map[string]any{"name": "x", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"}); a.status == http.StatusOK {
		t.Error("v24.0 served")
	}
}

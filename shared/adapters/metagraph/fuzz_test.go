package metagraph

import (
	"errors"
	"math"
	"net/http"
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
)

// FuzzParseResponse: any answer Meta (or a proxy in between) could give is turned into an ack
// or a classified *ports.CAPIError, never a panic; a 200 with a readable body and no error
// envelope is a success; usage headers never give a negative or NaN usage.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, []byte(`{"events_received":3,"messages":[],"fbtrace_id":"AbC"}`), `{"123":[{"call_count":80,"total_time":12,"estimated_time_to_regain_access":5}]}`)
	f.Add(400, []byte(`{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804019,"fbtrace_id":"x"}}`), "")
	f.Add(403, []byte(`{"error":{"code":190,"message":"expired"}}`), `{"call_count":100}`)
	f.Add(500, []byte(`<html>bad gateway</html>`), "")
	f.Add(200, []byte(`{"error":{"code":4,"is_transient":true}}`), `not json`)
	f.Add(429, []byte(``), `{"1":[{"estimated_time_to_regain_access":1e309}]}`)
	f.Fuzz(func(t *testing.T, status int, raw []byte, usageHeader string) {
		h := http.Header{}
		h.Set("X-Business-Use-Case-Usage", usageHeader)
		h.Set("X-App-Usage", usageHeader)
		usage := ParseUsage(h)
		if pct := usage.MaxPct(); pct < 0 || math.IsNaN(pct) || math.IsInf(pct, 0) {
			t.Fatalf("usage %v from %q", pct, usageHeader)
		}
		if usage.RegainAfter < 0 {
			t.Fatalf("regain after %v from %q", usage.RegainAfter, usageHeader)
		}
		ack, err := parseResponse(status, raw, nil, usage, h)
		if err == nil {
			if status != http.StatusOK {
				t.Fatalf("status %d accepted as a success: %+v", status, ack)
			}
			return
		}
		var ce *ports.CAPIError
		if !errors.As(err, &ce) {
			t.Fatalf("error %T is not a *ports.CAPIError: %v", err, err)
		}
		if ce.Class < ports.CAPIUnknown || ce.Class > ports.CAPIVersionExpired {
			t.Fatalf("unclassified error %v (class %d)", err, ce.Class)
		}
		if ce.RetryAfter < 0 {
			t.Fatalf("negative RetryAfter %v", ce.RetryAfter)
		}
	})
}

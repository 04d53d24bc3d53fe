package metagraph

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/ports"
)

// An expired version (2635) is its own class on both edges, never Unknown: Unknown is retried and
// then left to the stream, which dead-letters it after the record age.
func TestVersionExpiredIsClassified(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(metaError(2635, 0, false)))
	})
	c := newClient(t, g, nil)
	_, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "123", Events: events(1)})
	var ce *ports.CAPIError
	if !errors.As(err, &ce) || ce.Class != ports.CAPIVersionExpired || ce.Class.String() != "version_expired" {
		t.Fatalf("SendEvents err = %v, want class version_expired", err)
	}
	_, err = c.Upload(context.Background(), ports.AudienceUpload{AudienceID: "456", Op: ports.AudienceAdd,
		Schema: []string{"EXTERN_ID"}, Rows: [][]string{{"u1"}}})
	if !errors.As(err, &ce) || ce.Class != ports.CAPIVersionExpired {
		t.Fatalf("Upload err = %v, want class version_expired", err)
	}
	// Even flagged transient, an expired version stays expired.
	if got := Classify(400, &ports.MetaError{Code: 2635, IsTransient: true}); got != ports.CAPIVersionExpired {
		t.Errorf("Classify(2635, transient) = %v", got)
	}
}

// The warning header reaches Config.OnVersionWarning from both edges, on success and failure.
func TestVersionWarningHeader(t *testing.T) {
	g := newGraph(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(VersionWarningHeader, "v25.0 will be deprecated on 2027-02-23")
		if strings.HasSuffix(r.URL.Path, "/users") {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(metaError(2, 0, true)))
			return
		}
		w.Write([]byte(`{"events_received":1,"fbtrace_id":"T"}`))
	})
	var got []string
	c := newClient(t, g, func(c *Config) { c.OnVersionWarning = func(s string) { got = append(got, s) } })
	if _, err := c.SendEvents(context.Background(), ports.CAPIRequest{DatasetID: "123", Events: events(1)}); err != nil {
		t.Fatal(err)
	}
	c.Upload(context.Background(), ports.AudienceUpload{AudienceID: "456", Op: ports.AudienceAdd,
		Schema: []string{"EXTERN_ID"}, Rows: [][]string{{"u1"}}})
	if len(got) != 2 || got[0] != "v25.0 will be deprecated on 2027-02-23" {
		t.Fatalf("warnings = %q, want the header twice", got)
	}
}

func TestVersionWatch(t *testing.T) {
	now := time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC)
	var logs, metrics bytes.Buffer
	w := &VersionWatch{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: observability.NewEmitter(&metrics, "T"),
		Function: "audience-sync", API: metaversions.Marketing, Version: "v25.0", Now: func() time.Time { return now }}
	if s := w.Start(); s.DaysLeft != 44 {
		t.Fatalf("Start = %+v", s)
	}
	if !strings.Contains(metrics.String(), `"MetaAPIVersionDaysLeft":44`) || !strings.Contains(metrics.String(), `"API":"marketing"`) {
		t.Errorf("metrics = %s", metrics.String())
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "expires soon") {
		t.Errorf("logs = %s", logs.String())
	}

	logs.Reset()
	metrics.Reset()
	for range 5 {
		w.Warned("deprecated soon")
	}
	if n := strings.Count(logs.String(), "nears its end"); n != 1 {
		t.Errorf("%d WARN lines for 5 warnings, want 1 per container: %s", n, logs.String())
	}
	if n := strings.Count(metrics.String(), `"MetaAPIVersionWarnings":`); n != 1 {
		t.Errorf("%d warning metrics within a minute, want 1: %s", n, metrics.String())
	}
	now = now.Add(time.Minute)
	w.Warned("deprecated soon")
	if !strings.Contains(metrics.String(), `"MetaAPIVersionWarnings":5`) {
		t.Errorf("the next minute's metric counts the warnings since: %s", metrics.String())
	}

	// Expired: an ALERT; unknown expiry: no days-left metric.
	logs.Reset()
	metrics.Reset()
	(&VersionWatch{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Metrics: observability.NewEmitter(&metrics, "T"),
		API: metaversions.Marketing, Version: "v24.0", Now: func() time.Time { return now }}).Start()
	if !strings.Contains(logs.String(), "ALERT: the configured Meta API version has expired") {
		t.Errorf("logs = %s", logs.String())
	}
	metrics.Reset()
	(&VersionWatch{Metrics: observability.NewEmitter(&metrics, "T"), API: metaversions.Marketing, Version: "v27.0"}).Start()
	if metrics.Len() != 0 {
		t.Errorf("a version without a published expiry emitted %s", metrics.String())
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/handlers/keyauthorizer"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/sandbox/devbus"
)

// console is the terminal: the startup summary, the access log and the stream tail on stdout,
// problems on stderr. Lines from different goroutines never interleave.
type console struct {
	mu       sync.Mutex
	out, err io.Writer
}

// Println writes one line to stdout.
func (c *console) Println(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(c.out, line+"\n")
}

// Printf formats one line to stdout.
func (c *console) Printf(format string, args ...any) { c.Println(fmt.Sprintf(format, args...)) }

// Errorf formats one line to stderr.
func (c *console) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.err, "devstack: "+format+"\n", args...)
}

// access prints one access log line:
//
//	api POST /v1/events 202 3.1ms req=5b0c...
func (c *console) access(e AccessEntry) {
	c.Printf("api %s %s %d %s req=%s", e.Method, e.Path, e.Status, e.Took.Round(100*time.Microsecond), e.RequestID)
}

// started describes what is running, for the summary.
type started struct {
	Settings       settings
	App            *appconfig.App // first app of the config; its key is the dev key
	Key            string         // the dev key of App, "" if none
	KinesisURL     string
	KinesisPID     int
	DynamoURL      string
	DynamoPID      int
	APIURL         string // http://host:port, the port actually bound
	ExampleEventAt time.Time
	Meta           *meta
}

// printSummary prints what runs, a curl example and, last, the ready line. Line formats that
// scripts and tests rely on (documented in the package comment):
//
//	  kinesis   http://127.0.0.1:PORT  (kinesalite, pid N) ...
//	  dynamodb  http://127.0.0.1:PORT  (dynalite, pid N) ...
//	retarget dev stack ready on http://127.0.0.1:PORT
func (c *console) printSummary(s started) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("retarget dev stack (config %s)", s.Settings.ConfigFile)
	w("  kinesis   %s  (kinesalite, pid %d) stream %s, %d shards", s.KinesisURL, s.KinesisPID, s.Settings.StreamName, streamShards)
	w("  dynamodb  %s  (dynalite, pid %d) table %s", s.DynamoURL, s.DynamoPID, stateTable)
	w("  api       %s  POST /v1/events, GET /v1/health (stage dev)", s.APIURL)
	if s.Settings.FrontDoor == devenv.FrontDoorHTTP {
		w("  door      HTTP API (%s=%s): key authorizer (cached %d s per key), JWT authorizer on /v1/me, SigV4 on the IAM routes; per-app limit in the ingest function, table %s",
			EnvFrontDoor, devenv.FrontDoorHTTP, keyauthorizer.CacheTTLSeconds, rateTable)
	} else {
		w("  door      REST API: API keys, request models, SigV4 on the IAM routes (%s=%s for the HTTP API)", EnvFrontDoor, devenv.FrontDoorHTTP)
	}
	if s.Meta != nil {
		if s.Meta.Sandbox != nil {
			w("  meta      %s  (Meta Graph sandbox: GET /_sandbox/events, POST /_sandbox/faults)", s.Meta.URL)
		} else {
			w("  meta      %s  (%s)", s.Meta.URL, env.GraphURL)
		}
		w("  forwarder capi-forwarder on the stream: batch %d, window %s, bisect on error, %d retries; dead letters in %s",
			forwarderESM.BatchSize, forwarderESM.BatchingWindow, forwarderESM.MaxRetryAttempts, deadLettersFile)
		w("  segments  segment-updater on the stream (batch %d), sweeper every %s (%s), table %s; GET /v1/users/{app_user_id}/segments, PUT .../consent, DELETE /v1/users/{app_user_id}",
			updaterESM.BatchSize, s.Settings.SweepInterval, EnvSweep, stateTable)
		w("  audiences audience-sync every %s (%s) to the Meta API above", s.Settings.AudienceSyncInterval, EnvSync)
		w("  channels  %d of app %s: segment events published after each sweep; dev bus: %d attempts, dead letters in %s; `retarget channels test ID`",
			len(s.App.Channels), s.App.ID, devbus.DefaultAttempts, devenv.ChannelDeadLettersFile)
		w("  insights  insights every %s (%s): ad sets and spend from the Meta API above, then automation and the misuse audit; GET /v1/reports/audiences, `retarget report`, `retarget automation list`",
			s.Settings.InsightsInterval, EnvInsights)
	}
	if s.Key != "" {
		w("  api key   %s  (app %s)", s.Key, s.App.ID)
	} else {
		w("  api key   none: app %s has no api_key.dev_value; set %s", s.App.ID, env.DevAPIKey)
	}
	if s.Settings.DevPepper {
		w("  pepper    built-in dev pepper (public, not a secret; set %s to change)", env.Pepper)
	} else {
		w("  pepper    from %s", env.Pepper)
	}
	w("  archive   %s (every accepted event as Parquet, app=<app>/day=<YYYY-MM-DD>/, written every %s; `retarget archive export`)",
		devenv.ArchivePath(s.Settings.DevDir), archiverESM.BatchingWindow)
	w("  logs      %s (ingest.log, forwarder.log: function JSON logs, metrics.log: EMF, kinesalite.log, dynalite.log)", s.Settings.LogDir)
	w("  endpoints %s (what runs where: retarget and the load test read it)", devenv.EndpointsPath(s.Settings.DevDir))
	switch {
	case s.Settings.TailJSON:
		w("  tail      every stream record as a JSON line")
	case s.Settings.Tail:
		w("  tail      one line per stream record (-tail=false to hide, -tail-json for whole records)")
	}
	w("")
	key := s.Key
	if key == "" {
		key = "YOUR-DEV-KEY"
	}
	w("Send an event (event_time is now; events older than 7 days are refused):")
	w("  curl -sS %s/v1/events -H %s -H 'content-type: application/json' -d %s",
		s.APIURL, shellQuote("x-api-key: "+key), shellQuote(exampleBatch(s.App, s.ExampleEventAt)))
	w("")
	w("Ctrl-C stops everything.")
	w("retarget dev stack ready on %s", s.APIURL)
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(c.out, b.String())
}

// exampleBatch is a small valid request for app: one purchase at t, with an e-mail address
// and a phone number that the function hashes before anything reaches the stream.
func exampleBatch(app *appconfig.App, t time.Time) string {
	platform := appconfig.PlatformAndroid
	if len(app.Platforms) > 0 {
		platform = app.Platforms[0]
	}
	type device struct {
		Platform   appconfig.Platform `json:"platform"`
		OSVersion  string             `json:"os_version"`
		AppVersion string             `json:"app_version"`
	}
	type consent struct {
		AdsPersonalization bool  `json:"ads_personalization"`
		AdvertiserTracking *bool `json:"advertiser_tracking_enabled,omitempty"` // iOS only
	}
	type event struct {
		EventID   string            `json:"event_id"`
		EventName string            `json:"event_name"`
		EventTime int64             `json:"event_time"`
		User      map[string]string `json:"user"`
		Device    device            `json:"device"`
		Consent   consent           `json:"consent"`
		Custom    map[string]any    `json:"custom_data"`
	}
	ev := event{
		EventID:   fmt.Sprintf("example-%d", t.Unix()),
		EventName: "fb_mobile_purchase",
		EventTime: t.Unix(),
		User:      map[string]string{"app_user_id": "demo-user-1", "email": "Demo.User@Example.com", "phone": "+1 650 555 0100"},
		Device:    device{Platform: platform, OSVersion: "14", AppVersion: "1.0.0"},
		Consent:   consent{AdsPersonalization: true},
		Custom:    map[string]any{"value": 12.5, "currency": "USD"},
	}
	if platform == appconfig.PlatformIOS {
		yes := true
		ev.Device.OSVersion = "17.4"
		ev.Consent.AdvertiserTracking = &yes
	}
	b, _ := json.Marshal(map[string][]event{"events": {ev}})
	return string(b)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

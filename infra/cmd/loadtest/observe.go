package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
)

// Function names as the functions put them in their EMF "Function" dimension.
const (
	FnIngest    = "ingest"
	FnForwarder = "capi-forwarder"
	FnUpdater   = "segment-updater"
	FnSweeper   = "segment-sweeper"
	FnSync      = "audience-sync"
)

// Log files of the dev stack's -log-dir (infra/cmd/devstack main.go).
const (
	metricsLog   = "metrics.log"
	ingestLog    = "ingest.log"
	forwarderLog = "forwarder.log"
	segmentsLog  = "segments.log"
)

// tailFile reads what was appended to a file since the last call, line by line. A missing file
// is empty (it may not exist yet).
type tailFile struct {
	path   string
	offset int64
	rest   []byte // an incomplete last line
}

// skipExisting makes the next read start at the file's current end.
func (t *tailFile) skipExisting() {
	if fi, err := os.Stat(t.path); err == nil {
		t.offset = fi.Size()
	}
}

// read calls fn for each complete line appended since the last call.
func (t *tailFile) read(fn func(line []byte)) error {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(t.offset, io.SeekStart); err != nil {
		return err
	}
	buf, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	t.offset += int64(len(buf))
	data := append(t.rest, buf...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		fn(data[:i])
		data = data[i+1:]
	}
	t.rest = append([]byte(nil), data...)
	return nil
}

// Metrics aggregates the EMF documents of metrics.log and the function logs: sums of every
// metric per function, invocations, bytes logged per function, the ingest handler's latency.
type Metrics struct {
	// Sum[function][metric] adds up the metric over the run.
	Sum map[string]map[string]float64
	// Invocations counts the per-invocation documents of a function: those with
	// EventsReceived (ingest) or RecordsRead (forwarder, updater); other documents of the same
	// function (FieldErrors by reason, DeadLetters by reason) are extra lines of one invocation.
	Invocations map[string]int
	// LogBytes[function] counts the bytes (newline included) of each function's JSON log
	// lines, EMFBytes[function] those of its EMF lines (metrics.log). CloudWatch Logs bills both.
	LogBytes map[string]int64
	EMFBytes map[string]int64
	// IngestLatencyMs is the ingest handler's time of every request (EMF IngestLatency), and
	// IngestEvents the request's EventsReceived, index by index.
	IngestLatencyMs []float64
	IngestEvents    []int
	// UpdaterUsers adds up the users of every updater batch ("batch applied" log lines): one
	// strongly consistent read and one consent key each.
	UpdaterUsers float64
	// syncIdle is the time of the latest audience sync run that found no pending change (zero
	// if the latest run found some).
	syncIdle time.Time

	files map[string]*tailFile
}

// NewMetrics reads the logs of logDir. With skipExisting, what the files hold now is left out
// (a stack that ran before the load test).
func NewMetrics(logDir string, skipExisting bool) *Metrics {
	m := &Metrics{
		Sum:         map[string]map[string]float64{},
		Invocations: map[string]int{},
		LogBytes:    map[string]int64{},
		EMFBytes:    map[string]int64{},
		files:       map[string]*tailFile{},
	}
	for _, name := range []string{metricsLog, ingestLog, forwarderLog, segmentsLog} {
		t := &tailFile{path: filepath.Join(logDir, name)}
		if skipExisting {
			t.skipExisting()
		}
		m.files[name] = t
	}
	return m
}

// Update reads what the logs gained since the last call.
func (m *Metrics) Update() error {
	var errs []error
	errs = append(errs, m.files[metricsLog].read(m.addEMF))
	errs = append(errs, m.files[ingestLog].read(func(l []byte) { m.LogBytes[FnIngest] += int64(len(l) + 1) }))
	errs = append(errs, m.files[forwarderLog].read(func(l []byte) { m.LogBytes[FnForwarder] += int64(len(l) + 1) }))
	errs = append(errs, m.files[segmentsLog].read(m.addSegmentsLine))
	return errors.Join(errs...)
}

func (m *Metrics) addEMF(line []byte) {
	var doc map[string]any
	if json.Unmarshal(line, &doc) != nil {
		return
	}
	fn, _ := doc["Function"].(string)
	if fn == "" {
		return
	}
	m.EMFBytes[fn] += int64(len(line) + 1)
	sums := m.Sum[fn]
	if sums == nil {
		sums = map[string]float64{}
		m.Sum[fn] = sums
	}
	for k, v := range doc {
		if f, ok := v.(float64); ok {
			sums[k] += f
		}
	}
	switch fn {
	case FnIngest:
		// The ingest function adds up its requests (observability.Aggregator): Requests
		// counts them, BatchSize and IngestLatency list one value per request, in order.
		if reqs, ok := doc["Requests"].(float64); ok {
			m.Invocations[fn] += int(reqs)
		}
		lat, _ := doc["IngestLatency"].([]any)
		size, _ := doc["BatchSize"].([]any)
		for i := range min(len(lat), len(size)) {
			l, _ := lat[i].(float64)
			n, _ := size[i].(float64)
			m.IngestLatencyMs = append(m.IngestLatencyMs, l)
			m.IngestEvents = append(m.IngestEvents, int(n))
		}
		if n, ok := doc["EventsReceived"].(float64); ok && doc["Requests"] == nil {
			m.Invocations[fn]++ // a document per request (before the aggregation)
			l, _ := doc["IngestLatency"].(float64)
			m.IngestLatencyMs = append(m.IngestLatencyMs, l)
			m.IngestEvents = append(m.IngestEvents, int(n))
		}
	case FnForwarder, FnUpdater:
		if _, ok := doc["RecordsRead"]; ok {
			m.Invocations[fn]++
		}
	case FnSync:
		if pending, ok := doc["PendingChanges"].(float64); ok {
			m.syncIdle = time.Time{}
			if aws, ok := doc["_aws"].(map[string]any); ok && pending == 0 {
				if ts, ok := aws["Timestamp"].(float64); ok {
					m.syncIdle = time.UnixMilli(int64(ts))
				}
			}
		}
	}
}

// SyncIdleSince reports whether an audience sync run reported nothing pending after t (and no
// later run found something). A run reports when it ends, so a run that started before t
// may report too: callers should allow for one sync interval.
func (m *Metrics) SyncIdleSince(t time.Time) bool {
	return !m.syncIdle.IsZero() && m.syncIdle.After(t)
}

// addSegmentsLine sorts segments.log (updater, sweeper, audience sync) by function: the
// updater writes "batch applied" per invocation and "record skipped" / "user state not
// updated" for its problems; everything else belongs to the scheduled functions.
func (m *Metrics) addSegmentsLine(line []byte) {
	var l struct {
		Msg   string  `json:"msg"`
		Users float64 `json:"users"`
	}
	if json.Unmarshal(line, &l) != nil {
		return
	}
	switch l.Msg {
	case "batch applied":
		m.UpdaterUsers += l.Users
		m.LogBytes[FnUpdater] += int64(len(line) + 1)
	case "record skipped", "user state not updated: records stay on the stream", "consent decisions unavailable: records stay on the stream":
		m.LogBytes[FnUpdater] += int64(len(line) + 1)
	default:
		m.LogBytes["scheduled"] += int64(len(line) + 1)
	}
}

// Get returns the sum of a function's metric.
func (m *Metrics) Get(fn, metric string) float64 { return m.Sum[fn][metric] }

// UpdaterEvents is the number of events the segment updater has read. RecordsRead counts
// stream records, one event each only in version 1: the updater's EventsRead when it reports
// one, else the events it applied or found already applied (every event of every record it
// read and folded, whatever the record's version).
func (m *Metrics) UpdaterEvents() float64 {
	if n, ok := m.Sum[FnUpdater]["EventsRead"]; ok {
		return n
	}
	return m.Get(FnUpdater, "EventsApplied") + m.Get(FnUpdater, "EventsDuplicate")
}

// ForwarderEvents is the number of events the CAPI forwarder has read: its EventsRead when it
// reports one, else the events it forwarded, skipped for want of consent or dead-lettered.
func (m *Metrics) ForwarderEvents() float64 {
	if n, ok := m.Sum[FnForwarder]["EventsRead"]; ok {
		return n
	}
	return m.Get(FnForwarder, "EventsForwarded") + m.Get(FnForwarder, "EventsSkippedNoConsent") + m.Get(FnForwarder, "EventsDeadLettered")
}

// SandboxStats sums up the Meta sandbox's request log (GET /_sandbox/requests).
type SandboxStats struct {
	// CAPIRequests counts the Conversions API calls (POST /<dataset>/events), CAPIFailed those
	// answered with anything but 200.
	CAPIRequests, CAPIFailed int
	// EventsDelivered is the number of events in the accepted CAPI calls.
	EventsDelivered int
	// FirstDelivery and LastDelivery are the times of the first and last accepted CAPI calls.
	FirstDelivery, LastDelivery time.Time
	// AudienceUploads counts the Custom Audience upload calls (/users, /usersreplace) and
	// AudienceRows their rows.
	AudienceUploads, AudienceRows int
	// Entries is the length of the request log when read.
	Entries int
}

// sandboxRequest is the part of metasandbox.RequestLog the load test reads.
type sandboxRequest struct {
	At     time.Time `json:"at"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Events int       `json:"events"`
	Status int       `json:"status"`
	Rows   int       `json:"rows"`
}

// Sandbox reads the Meta sandbox's admin endpoints.
type Sandbox struct {
	URL    string
	Client *http.Client
	// Skip is the number of request log entries that predate the load test.
	Skip int
}

// Stats reads the request log and sums up the entries after Skip.
func (s *Sandbox) Stats(ctx context.Context) (SandboxStats, error) {
	var log []sandboxRequest
	if err := s.getJSON(ctx, "/_sandbox/requests", &log); err != nil {
		return SandboxStats{}, err
	}
	return summarizeRequests(log, s.Skip), nil
}

// Timeline returns the events Meta accepted in each second from start (entries after Skip).
func (s *Sandbox) Timeline(ctx context.Context, start time.Time) ([]int, error) {
	var log []sandboxRequest
	if err := s.getJSON(ctx, "/_sandbox/requests", &log); err != nil {
		return nil, err
	}
	if s.Skip <= len(log) {
		log = log[s.Skip:]
	}
	var out []int
	for _, r := range log {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.Path, "/events") || r.Status != http.StatusOK {
			continue
		}
		sec := int(r.At.Sub(start) / time.Second)
		if sec < 0 {
			continue
		}
		for len(out) <= sec {
			out = append(out, 0)
		}
		out[sec] += r.Events
	}
	return out, nil
}

func summarizeRequests(log []sandboxRequest, skip int) SandboxStats {
	st := SandboxStats{Entries: len(log)}
	if skip > len(log) {
		skip = 0 // the log was reset meanwhile
	}
	for _, r := range log[skip:] {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/events"):
			st.CAPIRequests++
			if r.Status != http.StatusOK {
				st.CAPIFailed++
				continue
			}
			st.EventsDelivered += r.Events
			if st.FirstDelivery.IsZero() || r.At.Before(st.FirstDelivery) {
				st.FirstDelivery = r.At
			}
			if r.At.After(st.LastDelivery) {
				st.LastDelivery = r.At
			}
		case r.Method == http.MethodPost && (strings.HasSuffix(r.Path, "/users") || strings.HasSuffix(r.Path, "/usersreplace")):
			st.AudienceUploads++
			st.AudienceRows += r.Rows
		}
	}
	return st
}

// DeliveredIDs streams GET /_sandbox/events and returns how many accepted events carry each
// event_id starting with prefix. The answer holds every event Meta accepted since the sandbox
// started, up to its limit (hundreds of MB after a long run): it is decoded one event at a time.
func (s *Sandbox) DeliveredIDs(ctx context.Context, prefix string) (map[string]int, error) {
	resp, err := s.get(ctx, "/_sandbox/events")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if n := resp.Header.Get("X-Sandbox-Events-Dropped"); n != "" && n != "0" {
		return nil, fmt.Errorf("the sandbox forgot its %s oldest events (it keeps the latest %d, metasandbox.DefaultMaxAccepted): "+
			"--verify-ids needs a shorter run", n, metasandbox.DefaultMaxAccepted)
	}
	dec := json.NewDecoder(resp.Body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("sandbox events: want a JSON array (%v)", err)
	}
	ids := map[string]int{}
	for dec.More() {
		var ev struct {
			EventID string `json:"event_id"`
		}
		if err := dec.Decode(&ev); err != nil {
			return nil, fmt.Errorf("sandbox events: %w", err)
		}
		if strings.HasPrefix(ev.EventID, prefix) {
			ids[ev.EventID]++
		}
	}
	return ids, nil
}

func (s *Sandbox) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("meta sandbox %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("meta sandbox %s: HTTP %d", path, resp.StatusCode)
	}
	return resp, nil
}

func (s *Sandbox) getJSON(ctx context.Context, path string, v any) error {
	resp, err := s.get(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("meta sandbox %s: %w", path, err)
	}
	return nil
}

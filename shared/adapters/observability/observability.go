// Package observability sets up structured logging (log/slog, JSON) and CloudWatch Embedded
// Metric Format (EMF) metrics. Neither ever carries personal data: callers log counts, codes,
// app ids and request ids, never event contents.
package observability

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// NewLogger returns a JSON slog logger at the given level (debug, info, warn, error; default
// info). Lambda's JSON log format keeps these lines as they are.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// Unit is a CloudWatch metric unit.
type Unit string

// Units in use.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Bytes        Unit = "Bytes"
)

// Metric is one value of one metric.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Dimension is a metric dimension. Keep values low-cardinality (app ids, reason codes).
type Dimension struct {
	Name, Value string
}

// Emitter writes EMF documents, one JSON line each; CloudWatch turns them into metrics.
// Safe for concurrent use.
type Emitter struct {
	mu        sync.Mutex
	w         io.Writer
	namespace string
	now       func() time.Time
}

// NewEmitter returns an Emitter writing to w under namespace.
func NewEmitter(w io.Writer, namespace string) *Emitter {
	if namespace == "" {
		namespace = "Retarget"
	}
	return &Emitter{w: w, namespace: namespace, now: time.Now}
}

// Emit writes one EMF document holding metrics under one dimension set.
func (e *Emitter) Emit(dims []Dimension, metrics ...Metric) {
	if e == nil || len(metrics) == 0 {
		return
	}
	values := make([]emfValue, len(metrics))
	for i, m := range metrics {
		values[i] = emfValue{Metric: m}
	}
	e.emit(e.now(), dims, values)
}

// emfValue is a metric's value in a document: Value, or samples when not nil (an array).
type emfValue struct {
	Metric
	samples []float64
}

func (e *Emitter) emit(at time.Time, dims []Dimension, metrics []emfValue) {
	if e == nil || len(metrics) == 0 {
		return
	}
	doc := make(map[string]any, len(dims)+len(metrics)+1)
	names := make([]string, 0, len(dims))
	for _, d := range dims {
		doc[d.Name] = d.Value
		names = append(names, d.Name)
	}
	defs := make([]map[string]string, 0, len(metrics))
	for _, m := range metrics {
		if m.samples != nil {
			doc[m.Name] = m.samples
		} else {
			doc[m.Name] = m.Value
		}
		defs = append(defs, map[string]string{"Name": m.Name, "Unit": string(m.Unit)})
	}
	doc["_aws"] = map[string]any{
		"Timestamp": at.UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  e.namespace,
			"Dimensions": [][]string{names},
			"Metrics":    defs,
		}},
	}
	line, err := json.Marshal(doc)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(append(line, '\n'))
}

// Aggregator adds up the metrics of many invocations of a warm function instance and writes
// them as one EMF document per dimension set at most once per interval: a function that
// serves one request per invocation then logs a few hundred bytes per second instead of a
// document per request.
//
// Counts (Add) are summed. Distributions (Sample: latencies, batch sizes) keep every value, as
// an EMF array of at most MaxSamples values, so CloudWatch's statistics (averages, percentiles)
// are those of the requests; a set whose array is full is written early.
//
// The function calls FlushDue at the start and at the end of each invocation, which writes the
// sets whose oldest value is interval old, stamped with that value's time. With the real clock
// a timer also calls it an interval after a window's first value: it fires whenever the
// process runs (the dev stack, a long invocation), but Lambda freezes an instance between
// invocations, so there values wait at most until the instance's next invocation. When Lambda
// freezes an instance for good (scale-in, a new version), the values of its last interval are
// lost: at most one second of one instance's counts, which alarms that compare sums over
// minutes do not notice.
type Aggregator struct {
	mu       sync.Mutex
	e        *Emitter
	interval time.Duration
	now      func() time.Time
	sets     map[string]*aggSet
	order    []*aggSet // in order of first use; a flushed set stays, empty
	timer    bool      // arm a timer per window (the real clock only)
	armed    bool
}

// MaxSamples is the most values of a distribution in one EMF document (CloudWatch's limit).
const MaxSamples = 100

type aggSet struct {
	dims    []Dimension
	metrics []aggMetric
	oldest  time.Time // of the values not yet written; zero when none
}

type aggMetric struct {
	name    string
	unit    Unit
	sum     float64
	samples []float64 // a distribution's values; nil for a count
	dist    bool
	set     bool // has a value to write
}

// NewAggregator returns an Aggregator writing through e (nil: nothing is written) at most once
// per interval per dimension set; now is the clock (nil: time.Now, with the timer).
func NewAggregator(e *Emitter, interval time.Duration, now func() time.Time) *Aggregator {
	a := &Aggregator{e: e, interval: interval, now: now, sets: map[string]*aggSet{}}
	if now == nil {
		a.now, a.timer = time.Now, true
	}
	return a
}

// Add adds counts under dims.
func (a *Aggregator) Add(dims []Dimension, metrics ...Metric) { a.add(dims, metrics, false) }

// Sample records one value of each distribution under dims.
func (a *Aggregator) Sample(dims []Dimension, metrics ...Metric) { a.add(dims, metrics, true) }

func (a *Aggregator) add(dims []Dimension, metrics []Metric, dist bool) {
	if a == nil || a.e == nil || len(metrics) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.set(dims)
	if s.oldest.IsZero() {
		s.oldest = a.now()
	}
	if a.timer && !a.armed {
		a.armed = true
		time.AfterFunc(a.interval, func() {
			a.mu.Lock()
			a.armed = false
			a.mu.Unlock()
			a.FlushDue()
		})
	}
	full := false
	for _, m := range metrics {
		am := s.metric(m, dist)
		am.set = true
		if am.dist {
			am.samples = append(am.samples, m.Value)
			full = full || len(am.samples) >= MaxSamples
		} else {
			am.sum += m.Value
		}
	}
	if full {
		a.write(s)
	}
}

func (a *Aggregator) set(dims []Dimension) *aggSet {
	var k strings.Builder
	for _, d := range dims {
		k.WriteString(d.Name)
		k.WriteByte(0)
		k.WriteString(d.Value)
		k.WriteByte(0)
	}
	s := a.sets[k.String()]
	if s == nil {
		s = &aggSet{dims: append([]Dimension(nil), dims...)}
		a.sets[k.String()] = s
		a.order = append(a.order, s)
	}
	return s
}

func (s *aggSet) metric(m Metric, dist bool) *aggMetric {
	for i := range s.metrics {
		if s.metrics[i].name == m.Name {
			return &s.metrics[i]
		}
	}
	s.metrics = append(s.metrics, aggMetric{name: m.Name, unit: m.Unit, dist: dist})
	return &s.metrics[len(s.metrics)-1]
}

// FlushDue writes every set whose oldest unwritten value is at least interval old.
func (a *Aggregator) FlushDue() {
	if a == nil || a.e == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for _, s := range a.order {
		if !s.oldest.IsZero() && now.Sub(s.oldest) >= a.interval {
			a.write(s)
		}
	}
}

// Flush writes every set that holds values.
func (a *Aggregator) Flush() {
	if a == nil || a.e == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.order {
		if !s.oldest.IsZero() {
			a.write(s)
		}
	}
}

// write emits s's values as one document and empties it; a.mu is held.
func (a *Aggregator) write(s *aggSet) {
	values := make([]emfValue, 0, len(s.metrics))
	for i := range s.metrics {
		m := &s.metrics[i]
		if !m.set {
			continue
		}
		v := emfValue{Metric: Metric{Name: m.name, Unit: m.unit, Value: m.sum}}
		if m.dist {
			v.samples = m.samples
		}
		values = append(values, v)
	}
	a.e.emit(s.oldest, s.dims, values)
	for i := range s.metrics {
		m := &s.metrics[i]
		m.sum, m.samples, m.set = 0, m.samples[:0], false
	}
	s.oldest = time.Time{}
}

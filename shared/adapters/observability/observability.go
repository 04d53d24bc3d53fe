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
	doc := make(map[string]any, len(dims)+len(metrics)+1)
	names := make([]string, 0, len(dims))
	for _, d := range dims {
		doc[d.Name] = d.Value
		names = append(names, d.Name)
	}
	defs := make([]map[string]string, 0, len(metrics))
	for _, m := range metrics {
		doc[m.Name] = m.Value
		defs = append(defs, map[string]string{"Name": m.Name, "Unit": string(m.Unit)})
	}
	doc["_aws"] = map[string]any{
		"Timestamp": e.now().UnixMilli(),
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

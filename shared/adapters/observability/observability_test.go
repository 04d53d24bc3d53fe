package observability

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEmitWritesEMF(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, "Test")
	e.now = func() time.Time { return time.UnixMilli(1764300000123) }
	e.Emit([]Dimension{{"Function", "ingest"}, {"App", "shop"}}, Metric{"EventsAccepted", Count, 3}, Metric{"BatchSize", Count, 4})
	e.Emit(nil) // nothing to write
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %q", len(lines), buf.String())
	}
	var doc struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Function       string
		App            string
		EventsAccepted float64
		BatchSize      float64
	}
	if err := json.Unmarshal([]byte(lines[0]), &doc); err != nil {
		t.Fatal(err)
	}
	m := doc.AWS.CloudWatchMetrics
	if doc.AWS.Timestamp != 1764300000123 || len(m) != 1 || m[0].Namespace != "Test" ||
		strings.Join(m[0].Dimensions[0], ",") != "Function,App" || len(m[0].Metrics) != 2 ||
		m[0].Metrics[0].Name != "EventsAccepted" || m[0].Metrics[0].Unit != "Count" ||
		doc.Function != "ingest" || doc.App != "shop" || doc.EventsAccepted != 3 || doc.BatchSize != 4 {
		t.Fatalf("unexpected EMF document: %s", lines[0])
	}
}

func TestLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, "warn")
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"msg":"shown"`) {
		t.Fatalf("got %q", buf.String())
	}
}

// The aggregator sums counts and keeps samples per dimension set, writes a set once its oldest
// value is an interval old (stamped with that value's time), and early when a sample array is
// full.
func TestAggregatorWritesDueSetsOnce(t *testing.T) {
	var buf bytes.Buffer
	e := NewEmitter(&buf, "Test")
	now := time.UnixMilli(1764300000000)
	a := NewAggregator(e, time.Second, func() time.Time { return now })
	dims := []Dimension{{"Function", "ingest"}}
	a.Add(dims, Metric{"Events", Count, 20})
	a.Sample(dims, Metric{"Latency", Milliseconds, 4.5})
	now = now.Add(600 * time.Millisecond)
	a.Add(dims, Metric{"Events", Count, 5})
	a.Sample(dims, Metric{"Latency", Milliseconds, 2})
	a.FlushDue()
	if buf.Len() != 0 {
		t.Fatalf("written before the interval: %s", buf.String())
	}
	now = now.Add(400 * time.Millisecond)
	a.FlushDue()
	a.FlushDue()
	want := `"Events":25,"Function":"ingest","Latency":[4.5,2]`
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, want) || !strings.Contains(got, `"Timestamp":1764300000000`) {
		t.Fatalf("got %s, want one line with %s stamped with the oldest value's time", got, want)
	}
	buf.Reset()
	for i := range MaxSamples {
		a.Sample(dims, Metric{"Latency", Milliseconds, float64(i)})
	}
	if strings.Count(buf.String(), "\n") != 1 || strings.Contains(buf.String(), `"Events"`) {
		t.Fatalf("a full array is written at once, alone: %s", buf.String())
	}
	a.Flush()
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("nothing pending, nothing written: %s", buf.String())
	}
}

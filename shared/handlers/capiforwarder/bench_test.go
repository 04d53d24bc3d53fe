package capiforwarder

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/app/forward"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

// acceptAll stands in for Meta: the benchmark measures the forwarder's own work.
type acceptAll struct{}

func (acceptAll) Forward(_ context.Context, items []forward.Item) forward.Outcome {
	out := forward.Outcome{Requests: (len(items) + 999) / 1000, Delivered: make([]int, 0, len(items))}
	for _, it := range items {
		out.Delivered = append(out.Delivered, it.Index)
	}
	return out
}

// benchEvents returns n events as the ingest makes them from the 4-event fixture (3 with
// consent): n/perUser users of perUser events each, every user fully identified (the
// fixture's first user, with an external_id of their own) on one device.
func benchEvents(tb testing.TB, n, perUser int) []envelope.Record {
	var fixture []envelope.Record
	for _, r := range kinesisEvent(tb, validBody(tb)).Records {
		rec, err := envelope.DecodeOne(r.Kinesis.Data)
		if err != nil {
			tb.Fatal(err)
		}
		fixture = append(fixture, *rec)
	}
	head := &fixture[0]
	out := make([]envelope.Record, n)
	for i := range out {
		g := i / perUser
		r := fixture[i%len(fixture)]
		r.UserKey = fmt.Sprintf("%s-%04d", head.UserKey[:38], g)
		r.ReceivedAt, r.Event.Server = head.ReceivedAt, head.Event.Server
		r.Event.ID = fmt.Sprintf("%s-%04d", r.Event.ID, i)
		r.Event.User, r.Event.Device = head.Event.User, head.Event.Device
		r.Event.User.ExternalID = sha256.Sum256([]byte(r.UserKey))
		out[i] = r
	}
	return out
}

// benchBatch wraps events as stream records of version v: one event each (v1), or the events
// of one user in one record (v2, envelope.Pack, as the ingest writes them).
func benchBatch(recs []envelope.Record, v int) events.KinesisEvent {
	var ev events.KinesisEvent
	add := func(data []byte) {
		seq := fmt.Sprintf("4968%050d", len(ev.Records)+1)
		ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq,
			Kinesis: events.KinesisRecord{SequenceNumber: seq, Data: data}})
	}
	if v == 1 {
		for i := range recs {
			add(envelope.AppendV1(nil, &recs[i]))
		}
		return ev
	}
	for _, p := range envelope.Pack(recs) {
		add(p.Data)
	}
	return ev
}

// cpuTime returns the user and system time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandle1000 measures the forwarder's cost per event: decode the stream records, map
// each event to a CAPI event, check it and serialise it, for a batch of 1,000 fully identified
// events (3 in 4 with consent): v2 records of 20 events of one user as the ingest writes them,
// the same events as 1,000 v1 records, and 1,000 users of one event each in v2 records.
func BenchmarkHandle1000(b *testing.B) {
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(b), "infra", "config", "apps.json"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(Config{Apps: apps, Forwarder: acceptAll{}, DLQ: &deadletters.Memory{}})
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	for _, bc := range []struct {
		name       string
		v, perUser int
	}{{"v2-20-events-per-record", 2, 20}, {"v1", 1, 20}, {"v2-1-event-per-record", 2, 1}} {
		b.Run(bc.name, func(b *testing.B) {
			ev := benchBatch(benchEvents(b, n, bc.perUser), bc.v)
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cpu := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				resp, _ := h.Handle(context.Background(), ev)
				if len(resp.BatchItemFailures) != 0 {
					b.Fatal("failures")
				}
			}
			b.StopTimer()
			cpu = cpuTime() - cpu
			runtime.ReadMemStats(&after)
			// The machine these run on is shared: the CPU time the process spent (garbage
			// collection included) says what wall time cannot when other work competes.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/n, "cpu-ns/event")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/n, "allocs/event")
		})
	}
}

// ackAll stands in for Meta behind the real forward.Forwarder.
type ackAll struct{}

func (ackAll) SendEvents(_ context.Context, req ports.CAPIRequest) (ports.CAPIAck, error) {
	return ports.CAPIAck{EventsReceived: len(req.Events)}, nil
}

// BenchmarkHandle1000Forward is BenchmarkHandle1000 (v2 records of 20 events) with the real
// forward.Forwarder in front of a Meta that accepts everything at once: the invocation's cost
// but the network.
func BenchmarkHandle1000Forward(b *testing.B) {
	apps, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(b), "infra", "config", "apps.json"))
	if err != nil {
		b.Fatal(err)
	}
	dlq := &deadletters.Memory{}
	h, err := New(Config{Apps: apps, Forwarder: forward.New(ackAll{}, dlq, forward.Options{}), DLQ: dlq})
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	ev := benchBatch(benchEvents(b, n, 20), 2)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		resp, _ := h.Handle(context.Background(), ev)
		if len(resp.BatchItemFailures) != 0 {
			b.Fatal("failures")
		}
	}
	cpu = cpuTime() - cpu
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/n, "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
}

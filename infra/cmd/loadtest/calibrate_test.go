package main

import (
	"cmp"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// How generated requests are written to the stream in streamOf.
const (
	writeGrouped = iota // version 2, a request's events of one user in one record (envelope.Pack)
	writeSingle         // version 2, one record per event
	writeV1             // version 1
)

// generatedEvents parses n generated requests of 20 events with the ingest function's parser
// and returns each request's events, decoded from what the parser wrote (whatever its records
// hold), and the distinct users of each request.
func generatedEvents(t *testing.T, shape RequestShape, n int) (reqs [][]envelope.Record, users []int) {
	t.Helper()
	app := sampleApp(t)
	pseudo, err := identity.NewPseudonymizer([]byte("loadtest-test-pepper-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	parser := appevent.NewParser(pseudo)
	gen, err := NewGenerator(testPopulation(app), 20, shape, "lt-size")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for range n {
		req := gen.Next(now)
		batch, err := parser.Parse(app, string(req.Body), now)
		if err != nil || len(batch.Rejected) > 0 {
			t.Fatalf("parse: %v %+v", err, batch.Rejected)
		}
		var evs []envelope.Record
		for _, rec := range batch.Records {
			got, err := envelope.Decode(rec.Data)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, got...)
		}
		batch.Release()
		if len(evs) != 20 {
			t.Fatalf("%d events decoded from a request of 20", len(evs))
		}
		reqs = append(reqs, evs)
		distinct := map[int]bool{}
		for _, u := range req.Users {
			distinct[u] = true
		}
		users = append(users, len(distinct))
	}
	return reqs, users
}

// streamOf writes requests' events as stream records, the user key as partition key.
func streamOf(reqs [][]envelope.Record, how int) []types.Record {
	var out []types.Record
	put := func(key string, data []byte) {
		out = append(out, types.Record{Data: data, PartitionKey: aws.String(key)})
	}
	for _, evs := range reqs {
		switch how {
		case writeGrouped:
			sorted := slices.Clone(evs)
			slices.SortStableFunc(sorted, func(a, b envelope.Record) int { return cmp.Compare(a.UserKey, b.UserKey) })
			for _, p := range envelope.Pack(sorted) {
				put(p.UserKey, p.Data)
			}
		case writeSingle:
			for i := range evs {
				put(evs[i].UserKey, envelope.Append(nil, &evs[i]))
			}
		case writeV1:
			for i := range evs {
				put(evs[i].UserKey, envelope.AppendV1(nil, &evs[i]))
			}
		}
	}
	return out
}

// meanSizes is the mean of data + partition key and of its KB rounded up, computed here.
func meanSizes(recs []types.Record) (bytes, kb float64) {
	for _, r := range recs {
		size := float64(len(r.Data) + len(*r.PartitionKey))
		bytes += size
		kb += math.Ceil(size / 1024)
	}
	return bytes / float64(len(recs)), kb / float64(len(recs))
}

// TestStreamSampleVersion2 checks what the cost model takes from a sample of the stream:
// records per event and billed KB per record, for version 2 records of a device's flush (one
// record of 20 events), of requests mixing users, one event per record, version 1, and a
// stream mixing them.
func TestStreamSampleVersion2(t *testing.T) {
	const requests = 200
	device, _ := generatedEvents(t, ShapeDevice, requests)
	single := sizeOf(streamOf(device, writeSingle))
	grouped := streamOf(device, writeGrouped)
	s := sizeOf(grouped)
	if s.Records != requests || s.Events != 20*requests || s.V2Records != requests || s.V1Records != 0 || s.RecordsPerEvent != 1.0/20 {
		t.Errorf("a device's flush per record: %+v, want %d records of 20 events", s, requests)
	}
	bytes, kb := meanSizes(grouped)
	if !near(s.MeanBytes, bytes) || !near(s.BilledKB, kb) || s.PutUnits != 1 {
		t.Errorf("sizes %.1f B, %.3f KB, %.2f PUT units; want %.1f B, %.3f KB, 1", s.MeanBytes, s.BilledKB, s.PutUnits, bytes, kb)
	}
	// The naive design's record: each event alone, as the one-event stream holds them.
	if single.RecordsPerEvent != 1 || single.Events != 20*requests || !near(s.SingleEventBytes, single.MeanBytes) || !near(s.SingleEventBilledKB, single.BilledKB) {
		t.Errorf("single-event records %+v; the grouped sample says %.1f B, %.3f KB", single, s.SingleEventBytes, s.SingleEventBilledKB)
	}
	// A grouped record costs far less per event than one record per event.
	if perEvent := s.BilledKB * s.RecordsPerEvent; perEvent > single.BilledKB/4 {
		t.Errorf("grouped %.3f billed KB per event, one per record %.3f", perEvent, single.BilledKB)
	}
	t.Logf("device flush of 20: %.0f B a record (%.2f KB billed, %.3f KB per event); one event a record: %.0f B (%.2f KB billed)",
		s.MeanBytes, s.BilledKB, s.BilledKB*s.RecordsPerEvent, single.MeanBytes, single.BilledKB)

	// Requests mixing users: one record per distinct user of each request.
	mixed, users := generatedEvents(t, ShapeMixed, requests)
	m := sizeOf(streamOf(mixed, writeGrouped))
	distinct := 0
	for _, n := range users {
		distinct += n
	}
	if m.Records != distinct || m.Events != 20*requests || !near(m.RecordsPerEvent, float64(distinct)/(20*requests)) {
		t.Errorf("mixed requests: %d records for %d events (%.4f per event), want %d records", m.Records, m.Events, m.RecordsPerEvent, distinct)
	}
	if m.RecordsPerEvent < 0.5 {
		t.Errorf("mixed requests: %.3f records per event; the users of a mixed request are mostly distinct", m.RecordsPerEvent)
	}

	// Version 1 records hold one event each; a stream of both versions is summed record by record.
	v1 := streamOf(device[:10], writeV1)
	both := append(slices.Clone(v1), grouped[:10]...)
	b := sizeOf(both)
	if b.V1Records != 200 || b.V2Records != 10 || b.Events != 400 || !near(b.RecordsPerEvent, 210.0/400) {
		t.Errorf("mixed versions: %+v, want 200 v1 and 10 v2 records holding 400 events", b)
	}
	// A record that does not decode counts as one event.
	bad := sizeOf([]types.Record{{Data: []byte(`{"v":9}`), PartitionKey: aws.String("k")}, grouped[0]})
	if bad.Records != 2 || bad.Events != 21 || bad.V2Records != 1 {
		t.Errorf("undecodable record: %+v", bad)
	}
}

// TestSingleEventRecords checks the naive design's calibration input: the first event of each
// record, alone.
func TestSingleEventRecords(t *testing.T) {
	device, _ := generatedEvents(t, ShapeDevice, 3)
	grouped := streamOf(device, writeGrouped)
	grouped[1].SequenceNumber = aws.String("49590338271490256608559692538361571095921575989136588802")
	singles := singleEventRecords(append(grouped, types.Record{Data: []byte("not json")}))
	if len(singles) != 3 {
		t.Fatalf("%d single-event records from 3 records and a bad one", len(singles))
	}
	for i, r := range singles {
		evs, err := envelope.Decode(r.Data)
		if err != nil || len(evs) != 1 || evs[0].V != 2 {
			t.Fatalf("record %d: %d events, %v", i, len(evs), err)
		}
		first, _ := envelope.Decode(grouped[i].Data)
		if evs[0].Event.ID != first[0].Event.ID || evs[0].Event.User != first[0].Event.User || *r.PartitionKey != *grouped[i].PartitionKey {
			t.Errorf("record %d: event %s, want %s with its user and key", i, evs[0].Event.ID, first[0].Event.ID)
		}
	}
	if aws.ToString(singles[1].SequenceNumber) != aws.ToString(grouped[1].SequenceNumber) {
		t.Error("the sequence number was not kept")
	}
}

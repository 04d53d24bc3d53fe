package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// measure fills in the report's throughput, latency and per-hop figures.
func measure(rep *Report, res DriveResult, atEnd, final SandboxStats, m *Metrics, sendEnd, drainEnd time.Time, drained bool) {
	t := &rep.Throughput
	send := res.End.Sub(res.Start).Seconds()
	t.SendSeconds = send
	t.OfferedPerSec = float64(res.Generated) / send
	t.AcceptedPerSec = float64(res.Accepted) / send
	t.ExpectedAtMeta = res.Consented
	t.DeliveredToMeta = final.EventsDelivered
	t.Drained = drained
	t.DrainSeconds = drainEnd.Sub(sendEnd).Seconds()
	if !final.LastDelivery.IsZero() {
		t.MetaDrainSeconds = max(0, final.LastDelivery.Sub(sendEnd).Seconds())
	}
	t.BehindSeconds = res.Behind.Seconds()
	t.MetaPerSecWhileSending = float64(atEnd.EventsDelivered) / send
	t.BacklogAtEndOfSend = max(0, res.Consented-atEnd.EventsDelivered)
	if res.Consented > 0 && send > 0 {
		t.BacklogSeconds = float64(t.BacklogAtEndOfSend) / (float64(res.Consented) / send)
	}
	t.Sustained = t.BacklogSeconds <= SustainedBacklogSeconds
	// The sustained end-to-end rate. Drained, Meta received everything between its first and
	// last delivery: that span is the sending time shifted by the pipeline's latency, longer
	// when a stage fell behind (never counted shorter than the sending). Not drained, the
	// window runs from the first request to the drain deadline.
	window := drainEnd.Sub(res.Start).Seconds()
	if drained && !final.LastDelivery.IsZero() {
		window = max(final.LastDelivery.Sub(final.FirstDelivery).Seconds(), send)
	}
	if window > 0 {
		t.MetaPerSec = float64(final.EventsDelivered) / window
		// Every accepted event went through the stream and the updater; only the consented
		// ones may go to Meta. The pipeline's rate counts them all, at the pace Meta's share
		// arrived.
		t.EndToEndPerSec = t.MetaPerSec
		if res.Consented > 0 {
			t.EndToEndPerSec = t.MetaPerSec * float64(res.Accepted) / float64(res.Consented)
		}
	}
	rep.Latency = Summarize(slices.Clone(res.LatencyMs))

	h := &rep.Hops
	if final.EventsDelivered > 0 {
		h.CAPIRequestsPer1000 = float64(final.CAPIRequests) / float64(final.EventsDelivered) * 1000
	}
	h.CAPIFailedRequests = final.CAPIFailed
	h.AudienceUploads = final.AudienceUploads
	if final.AudienceUploads > 0 {
		h.AudienceRowsPerRequest = float64(final.AudienceRows) / float64(final.AudienceUploads)
	}
	if m == nil {
		return
	}
	t.DeadLettered = int(m.Get(FnForwarder, "EventsDeadLettered"))
	t.UpdaterRecords = int(m.Get(FnUpdater, "RecordsRead"))
	t.UpdaterEvents = int(m.UpdaterEvents())
	rep.Handler = Summarize(slices.Clone(m.IngestLatencyMs))
	acc := m.Get(FnIngest, "EventsAccepted")
	if acc > 0 {
		h.PutRecordsCallsPer500 = m.Get(FnIngest, "PutRecordsCalls") / acc * 500
	}
	h.PutRecordsRetries = m.Get(FnIngest, "PutRecordsRetries")
	per := func(fn string, v float64) float64 {
		if n := m.Invocations[fn]; n > 0 {
			return v / float64(n)
		}
		return 0
	}
	h.IngestEventsPerRequest = per(FnIngest, m.Get(FnIngest, "EventsReceived"))
	h.ForwarderRecordsPerInv = per(FnForwarder, m.Get(FnForwarder, "RecordsRead"))
	h.UpdaterRecordsPerInv = per(FnUpdater, m.Get(FnUpdater, "RecordsRead"))
	h.ForwarderEventsPerInv = per(FnForwarder, m.ForwarderEvents())
	h.UpdaterEventsPerInv = per(FnUpdater, m.UpdaterEvents())
	h.LogBytesPerInvocation = map[string]float64{}
	h.AppLogBytesPerEvent = map[string]float64{}
	h.EMFBytesPerEvent = map[string]float64{}
	var logs, emf int64
	for _, fn := range []string{FnIngest, FnForwarder, FnUpdater} {
		logs += m.LogBytes[fn]
		emf += m.EMFBytes[fn]
		if n := m.Invocations[fn]; n > 0 {
			h.LogBytesPerInvocation[fn] = float64(m.LogBytes[fn]+m.EMFBytes[fn]) / float64(n)
		}
		if acc > 0 {
			h.AppLogBytesPerEvent[fn] = float64(m.LogBytes[fn]) / acc
			h.EMFBytesPerEvent[fn] = float64(m.EMFBytes[fn]) / acc
		}
	}
	if acc > 0 {
		h.LogsMeasured = true
		h.AppLogBytes = float64(logs) / acc
		h.LogBytesPerEvent = float64(logs+emf) / acc
	}
	rep.Metrics = map[string]any{}
	for fn, sums := range m.Sum {
		rep.Metrics[fn] = sums
	}
	if fwd := m.ForwarderEvents(); fwd > float64(res.Accepted) {
		rep.Note("the forwarder read %.0f events for %d accepted: redeliveries (retried batches)", fwd, res.Accepted)
	}
}

// model estimates DynamoDB units, sets the Lambda figures and prices both designs.
func model(rep *Report, res DriveResult, m *Metrics, items ItemSample, calib *Calibration, singleIngestMs float64, o options) {
	events := float64(res.Accepted)
	get := func(fn, metric string) float64 { return 0 }
	if m != nil {
		get = m.Get
		if acc := m.Get(FnIngest, "EventsAccepted"); acc > 0 {
			events = acc
		}
	}
	if m != nil {
		usersCreated := float64(res.NewUsers)
		if rep.Settings.Mode == "url" {
			// A running stack may know these users from earlier runs: at most one creation per write.
			usersCreated = min(usersCreated, get(FnUpdater, "UserWrites"))
		}
		act := DynamoActivity{
			Events:       events,
			UpdaterUsers: updaterUsers(m, get), UpdaterRecords: get(FnUpdater, "RecordsRead"),
			UserWrites: get(FnUpdater, "UserWrites"), WriteConflicts: get(FnUpdater, "WriteConflicts"),
			UpdaterChanges: get(FnUpdater, "SegmentChanges"), UsersCreated: usersCreated,
			ForwarderRecords: get(FnForwarder, "RecordsRead"),
			SweptUsers:       get(FnSweeper, "UsersSwept"), SweeperChanges: get(FnSweeper, "SegmentChanges"),
			AudienceRows: get(FnSync, "AudienceRowsAdded") + get(FnSync, "AudienceRowsRemoved"),
		}
		rep.Dynamo = DynamoReport{DynamoUnits: EstimateDynamoUnits(act, items), Method: dynamoMethod}
		if items.Items == 0 {
			rep.Note("no user items read back: DynamoDB units assume 1 KB items")
		}
	}

	perEvent := func(fn string) float64 {
		if m == nil || events == 0 {
			return 0
		}
		return float64(m.Invocations[fn]) / events
	}
	ingest := FunctionLoad{Name: FnIngest, MemoryMB: IngestMemoryMB, InvocationsPerEvent: perEvent(FnIngest)}
	if m != nil {
		ingest.BilledMs = MeanBilledMs(slices.Clone(m.IngestLatencyMs))
	}
	if ingest.InvocationsPerEvent == 0 {
		ingest.InvocationsPerEvent = 1 / float64(o.EventsPerRequest)
	}
	fwd := FunctionLoad{Name: FnForwarder, MemoryMB: ForwarderMemoryMB, InvocationsPerEvent: perEvent(FnForwarder)}
	upd := FunctionLoad{Name: FnUpdater, MemoryMB: UpdaterMemoryMB, InvocationsPerEvent: perEvent(FnUpdater)}
	if calib != nil {
		fwd.BilledMs, upd.BilledMs = calib.ForwarderMs, calib.UpdaterMs
	} else {
		rep.Note("forwarder and updater handler times not measured (no calibration): their Lambda compute counts 0")
	}
	rep.Lambda = []FunctionLoad{ingest, fwd, upd}

	in := CostInputs{
		EventsPerAPIRequest: 1 / ingest.InvocationsPerEvent,
		Functions:           rep.Lambda,
		RecordsPerEvent:     1,
		RecordKB:            1,
		StreamConsumers:     2,
		EventsPerSecond:     rep.Throughput.EndToEndPerSec,
		WriteUnitsPerEvent:  rep.Dynamo.WriteUnitsPerEvent,
		ReadUnitsPerEvent:   rep.Dynamo.ReadUnitsPerEvent,
		AppLogBytesPerEvent: rep.Hops.LogBytesPerEvent,
		APIKeys:             o.apps,
	}
	recordBytes, putUnits := 1024.0, 1.0
	naive := NaiveFigures{
		SingleEventMs:         map[string]float64{},
		LogBytesPerInvocation: rep.Hops.LogBytesPerInvocation,
		WriteUnitsPerWrite:    items.WriteUnitsPerWrite,
		ReadUnitsPerRead:      items.ReadUnitsPerRead,
	}
	if st := rep.Stream; st != nil && st.Records > 0 {
		in.RecordKB, recordBytes, putUnits = st.BilledKB, st.MeanBytes, st.PutUnits
		in.RecordsPerEvent = st.RecordsPerEvent
		naive.SingleEventRecordKB = st.SingleEventBilledKB
	} else {
		rep.Note("stream records not read back: one event per record of 1 KB assumed")
	}
	if in.EventsPerSecond == 0 {
		in.EventsPerSecond = rep.Throughput.AcceptedPerSec
	}
	if singleIngestMs > 0 {
		naive.SingleEventMs[FnIngest] = singleIngestMs
	}
	if calib != nil {
		naive.SingleEventMs[FnForwarder] = calib.ForwarderSingleMs
		naive.SingleEventMs[FnUpdater] = calib.UpdaterSingleMs
	}
	rep.Naive = &naive
	rep.Cost = PriceDesigns(in, o.doors(), recordBytes, putUnits, naive)
}

// PriceDesigns prices in (measured on an on-demand stream) behind each door on both stream
// modes, the cheapest design again without Lambda's platform records (SystemLogLevel=WARN) and
// at the rates of ScaleRates, and the naive design (behind the first door, on demand).
func PriceDesigns(in CostInputs, doors []FrontDoor, recordBytes, putUnits float64, naive NaiveFigures) CostReport {
	c := CostReport{Region: PricesRegion, AsOf: PricesAsOf, RecordBytes: recordBytes}
	c.Designs = Designs(in, doors, recordBytes, putUnits)
	c.Cheapest = Cheapest(c.Designs)
	naiveIn := in
	naiveIn.Door = doors[0]
	c.Naive = Model(NaiveInputs(naiveIn, naive))
	if c.Cheapest < 0 {
		return c
	}
	best := c.Designs[c.Cheapest]
	quiet := best.Cost.Inputs
	quiet.SystemLogWarn = true
	c.SystemLogWarn = Model(quiet)
	for _, rate := range ScaleRates {
		row := ScaleRow{EventsPerSecond: rate}
		for _, d := range c.Designs {
			b := AtRate(d, rate, recordBytes)
			row.Designs = append(row.Designs, ScaleCost{Name: d.Name(), Shards: b.Inputs.StreamShards, Total: b.Total})
		}
		c.Scale = append(c.Scale, row)
	}
	return c
}

// ScaleRates are the sustained rates (events per second) the report reprices the designs at
// (infra/docs/scale.md).
var ScaleRates = []float64{10_000, 100_000, 1_000_000}

// dynamoMethod explains the DynamoDB figures in the report.
const dynamoMethod = "The dev stack connects its functions straight to dynalite's port (emulators.AWSConfig sets " +
	"the endpoint; AWS_ENDPOINT_URL_* and HTTP proxies do not apply on loopback), so no counting proxy can sit in front of " +
	"it without changing infra/cmd/devstack, and dynalite's ConsumedCapacity leaves out index writes anyway. The units are " +
	"therefore counted from what the functions did, as their EMF metrics and log lines report it (updater users per batch, " +
	"UserWrites, WriteConflicts, SegmentChanges; sweeper UsersSwept; audience rows), times the table's access pattern " +
	"(shared/adapters/dynamostate: one strongly consistent GetItem, one consent key and one conditional PutItem per user and batch, " +
	"2 WU per membership change, due-index entries) and the sizes of user items read back after the run " +
	"(dynamostate.UserItemSize, AWS's item size rules), the model of BenchmarkUpdaterWriteUnits."

// measureSingleEventIngest sends n requests of one event each, one after the other, and
// returns the ingest handler's mean billed time for them (from its EMF IngestLatency): the
// naive design's ingest invocation.
func measureSingleEventIngest(ctx context.Context, d *Driver, gen *Generator, logDir string, n int) float64 {
	single, err := NewGenerator(gen.pop, 1, ShapeDevice, gen.runID+"s")
	if err != nil {
		return 0
	}
	m := NewMetrics(logDir, true)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		d.post(ctx, single.Next(time.Now()).Body)
	}
	var ms []float64
	for wait := 0; wait < 20 && len(ms) < n; wait++ {
		time.Sleep(100 * time.Millisecond)
		m.Update()
		ms = ms[:0]
		for i, ev := range m.IngestEvents {
			if ev == 1 {
				ms = append(ms, m.IngestLatencyMs[i])
			}
		}
	}
	return MeanBilledMs(ms)
}

// verifyIDs checks that every accepted consented event reached Meta, by event_id.
func verifyIDs(ctx context.Context, s *Sandbox, runID string, expected map[string]bool, rep *Report) *IDCheck {
	got, err := s.DeliveredIDs(ctx, runID+"-")
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("event ids: %v", err))
		return nil
	}
	c := &IDCheck{Expected: len(expected), Delivered: len(got)}
	for id := range expected {
		if got[id] == 0 {
			c.Missing++
		}
	}
	for id, n := range got {
		if n > 1 {
			c.Duplicates++
		}
		if !expected[id] {
			c.Unexpected++
		}
	}
	return c
}

// updaterUsers is the users the segment updater read: its UsersRead metric (one Query per user
// and batch, state and consent together), or, from an updater older than that metric, the users
// of its "batch applied" log lines.
func updaterUsers(m *Metrics, get func(fn, metric string) float64) float64 {
	if n := get(FnUpdater, "UsersRead"); n > 0 {
		return n
	}
	return m.UpdaterUsers
}

package main

import (
	"math"
	"testing"
)

func TestEstimateDynamoUnits(t *testing.T) {
	// 10,000 events in batches of 500, 20 per user per batch: 500 user-batches.
	act := DynamoActivity{
		Events:       10_000,
		UpdaterUsers: 500, UpdaterRecords: 10_000, UserWrites: 480, WriteConflicts: 2, UpdaterChanges: 100,
		UsersCreated:     60,
		ForwarderRecords: 10_000,
		SweptUsers:       10, SweeperChanges: 4,
		AudienceRows: 50,
	}
	items := ItemSample{Items: 100, WriteUnitsPerWrite: 1.1, ReadUnitsPerRead: 1, DueShare: 0.5}
	u := EstimateDynamoUnits(act, items)
	wantWrites := map[string]float64{
		"user items (updater)": (480 + 2) * 1.1,
		"due index entries":    60 * 0.5,
		"membership changes":   2 * (100 + 4),
		"sweeper":              10 * (1.1 + 2),
		"audience sync":        3 * 50,
	}
	wantReads := map[string]float64{
		"user items (updater)": 500 + 2,
		"consent (forwarder)":  10_000 * (500.0 / 10_000),
		"sweeper":              10,
		"audience sync":        50,
	}
	var w, r float64
	for k, v := range wantWrites {
		if math.Abs(u.Writes[k]-v) > 1e-9 {
			t.Errorf("writes %q = %v, want %v", k, u.Writes[k], v)
		}
		w += v
	}
	for k, v := range wantReads {
		if math.Abs(u.Reads[k]-v) > 1e-9 {
			t.Errorf("reads %q = %v, want %v", k, u.Reads[k], v)
		}
		r += v
	}
	if math.Abs(u.WriteUnits-w) > 1e-9 || math.Abs(u.WriteUnitsPerEvent-w/10_000) > 1e-12 {
		t.Errorf("write units %v (%v/event), want %v", u.WriteUnits, u.WriteUnitsPerEvent, w)
	}
	if math.Abs(u.ReadUnits-r) > 1e-9 || math.Abs(u.ReadUnitsPerEvent-r/10_000) > 1e-12 {
		t.Errorf("read units %v (%v/event), want %v", u.ReadUnits, u.ReadUnitsPerEvent, r)
	}
	// About 0.1 WU per event: the order BenchmarkUpdaterWriteUnits reports for a steady day.
	if u.WriteUnitsPerEvent < 0.05 || u.WriteUnitsPerEvent > 0.3 {
		t.Errorf("%.3f WU/event", u.WriteUnitsPerEvent)
	}
}

func TestEstimateDynamoUnitsWithoutSample(t *testing.T) {
	// No item read back: every write and read counts one unit, none less.
	u := EstimateDynamoUnits(DynamoActivity{Events: 100, UserWrites: 10, UpdaterUsers: 10}, ItemSample{})
	if u.Writes["user items (updater)"] != 10 || u.Reads["user items (updater)"] != 10 || u.Reads["consent (forwarder)"] != 0 {
		t.Errorf("%+v", u)
	}
	if z := EstimateDynamoUnits(DynamoActivity{}, ItemSample{}); z.WriteUnitsPerEvent != 0 || math.IsNaN(z.ReadUnitsPerEvent) {
		t.Errorf("no events: %+v", z)
	}
}

package main

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1) // 1..100
	}
	tests := []struct {
		name   string
		values []float64
		p      float64
		want   float64
	}{
		{"empty", nil, 50, 0},
		{"one value", []float64{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50},
		{"p99 of 1..100", hundred, 99, 99},
		{"p100 of 1..100", hundred, 100, 100},
		{"p1 of 1..100", hundred, 1, 1},
		{"p50 of 4 values", []float64{1, 2, 3, 4}, 50, 2},
		{"p99 of 4 values is the max", []float64{1, 2, 3, 4}, 99, 4},
		{"p90 of 10 values", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9},
		{"p below the first rank", []float64{5, 6}, 0.1, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.values, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.values, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	// Unsorted input with one outlier: the mean moves, the median does not.
	s := Summarize([]float64{3, 1, 2, 100, 4, 5, 6, 7, 8, 9})
	want := LatencySummary{Count: 10, Mean: 14.5, P50: 5, P90: 9, P99: 100, Max: 100}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if z := Summarize(nil); z != (LatencySummary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", z)
	}
}

func TestMeanBilledMs(t *testing.T) {
	// Lambda rounds each invocation up to the millisecond, with 1 ms at least.
	got := MeanBilledMs([]float64{0.2, 1.0, 1.01, 4.5})
	if want := (1.0 + 1 + 2 + 5) / 4; math.Abs(got-want) > 1e-12 {
		t.Errorf("MeanBilledMs = %v, want %v", got, want)
	}
	if MeanBilledMs(nil) != 0 {
		t.Error("MeanBilledMs(nil) != 0")
	}
}

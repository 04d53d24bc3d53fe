package main

import (
	"math"
	"slices"
)

// LatencySummary describes a set of durations in milliseconds.
type LatencySummary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize computes the summary of ms (which it sorts in place).
func Summarize(ms []float64) LatencySummary {
	if len(ms) == 0 {
		return LatencySummary{}
	}
	slices.Sort(ms)
	sum := 0.0
	for _, v := range ms {
		sum += v
	}
	return LatencySummary{
		Count: len(ms),
		Mean:  sum / float64(len(ms)),
		P50:   Percentile(ms, 50),
		P90:   Percentile(ms, 90),
		P99:   Percentile(ms, 99),
		Max:   ms[len(ms)-1],
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the nearest-rank method:
// the smallest value such that at least p percent of the values are less or equal. It is
// always one of the values, which is what a latency percentile should be.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// MeanBilledMs is the mean of ms after rounding each value up to a whole millisecond (at least
// 1): Lambda bills every invocation's duration that way.
func MeanBilledMs(ms []float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	sum := 0.0
	for _, v := range ms {
		sum += max(1, math.Ceil(v))
	}
	return sum / float64(len(ms))
}

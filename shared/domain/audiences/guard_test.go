package audiences

import (
	"errors"
	"math"
	"testing"
)

func TestRemovalGuard(t *testing.T) {
	tests := []struct {
		name           string
		fraction       float64
		size, removals int
		trips          bool
	}{
		{"nothing removed", 0.2, 1000, 0, false},
		{"at the limit", 0.2, 1000, 200, false},
		{"one over the limit", 0.2, 1000, 201, true},
		{"flood", 0.2, 50_000, 49_000, true},
		{"limit rounds down", 0.2, 104, 20, false},
		{"limit rounds down, over", 0.2, 104, 21, true},
		{"no floating-point surprise", 0.29, 100, 29, false},
		{"guarded from 100 members", 0.2, 100, 21, true},
		{"99 members: exempt", 0.2, 99, 99, false},
		{"empty audience: exempt", 0.2, 0, 10, false},
		{"fraction 0: any removal trips", 0, 500, 1, true},
		{"fraction 1: everything may go", 1, 500, 500, false},
		{"more removals than members", 1, 500, 501, true},
		{"NaN fails safe", math.NaN(), 500, 1, true},
		{"negative fails safe", -0.5, 500, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := RemovalGuard(tt.fraction, tt.size, tt.removals)
			if (err != nil) != tt.trips || err != nil && !errors.Is(err, ErrRemovalFlood) {
				t.Fatalf("RemovalGuard(%v, %d, %d) = %v, trips want %v", tt.fraction, tt.size, tt.removals, err, tt.trips)
			}
		})
	}
	err := RemovalGuard(0.2, 1000, 201)
	if want := "removal flood: 201 removals from an audience of 1000 exceed max_removal_fraction 0.2 (at most 200 per run)"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
}

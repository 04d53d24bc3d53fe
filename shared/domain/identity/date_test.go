package identity

import (
	"testing"
	"time"
)

// daysIn agrees with the time package for every month from 1600 to 2400 (leap years every
// 4, not every 100, every 400).
func TestDaysInMatchesTime(t *testing.T) {
	for y := 1600; y <= 2400; y++ {
		for m := 1; m <= 12; m++ {
			if got, want := daysIn(y, m), time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day(); got != want {
				t.Fatalf("daysIn(%d, %d) = %d, want %d", y, m, got, want)
			}
		}
	}
}

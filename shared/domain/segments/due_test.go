package segments

import (
	"testing"
	"time"
)

func TestDueAt(t *testing.T) {
	step := int64(DueStep / time.Second)
	base := int64(1_800_000_000) / step * step // on a step boundary
	tests := []struct {
		name string
		in   time.Time
		want int64
	}{
		{"no flip", time.Time{}, 0},
		{"on a step boundary", time.Unix(base, 0), base},
		{"a second after: the next step", time.Unix(base+1, 0), base + step},
		{"a second before the next step", time.Unix(base+step-1, 0), base + step},
		{"sub-second part ignored", time.Unix(base, 999_000_000), base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DueAt(tt.in); got != tt.want {
				t.Errorf("DueAt(%v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

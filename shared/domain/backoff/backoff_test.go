package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFullJitter(t *testing.T) {
	top := func() float64 { return 0.999999 }
	for _, tc := range []struct {
		attempt int
		want    time.Duration // the ceiling
	}{{1, 10 * time.Millisecond}, {2, 20 * time.Millisecond}, {4, 80 * time.Millisecond}, {10, 100 * time.Millisecond}, {80, 100 * time.Millisecond}} {
		got := FullJitter(tc.attempt, 10*time.Millisecond, 100*time.Millisecond, top)
		if got > tc.want || got < tc.want*99/100 {
			t.Errorf("attempt %d: %v, want just under %v", tc.attempt, got, tc.want)
		}
		if d := FullJitter(tc.attempt, 10*time.Millisecond, 100*time.Millisecond, func() float64 { return 0 }); d != 0 {
			t.Errorf("attempt %d with rnd 0: %v", tc.attempt, d)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("zero sleep on a done ctx: %v", err)
	}
}

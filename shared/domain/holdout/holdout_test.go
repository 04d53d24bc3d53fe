package holdout

import (
	"fmt"
	"math"
	"testing"
)

// TestShareAndStability: the holdout share of many users is close to the fraction, the same
// user always gets the same arm, and different audiences (or salts) assign independently.
func TestShareAndStability(t *testing.T) {
	const n = 100_000
	a := New("shop", "cart_abandoner", "", 0.1)
	b := New("shop", "lapsed_7d", "", 0.1)
	salted := New("shop", "cart_abandoner", "2026-q4", 0.1)
	var inA, both, changedBySalt int
	for i := range n {
		uk := fmt.Sprintf("user-%d", i)
		if again := New("shop", "cart_abandoner", "", 0.1); a.Arm(uk) != again.Arm(uk) {
			t.Fatal("the same user got two arms from two assigners of one audience")
		}
		if a.Arm(uk) == Holdout {
			inA++
			if b.Arm(uk) == Holdout {
				both++
			}
		}
		if a.Arm(uk) != salted.Arm(uk) {
			changedBySalt++
		}
	}
	share := float64(inA) / n
	// 5 standard errors of a binomial share at p = 0.1: a fair assignment fails 1 in ~3.5 million runs.
	if se := math.Sqrt(0.1 * 0.9 / n); math.Abs(share-0.1) > 5*se {
		t.Errorf("holdout share %.4f, want 0.1 within %.4f", share, 5*se)
	}
	// Independence: P(holdout in both) is about 0.1 * 0.1.
	if joint := float64(both) / n; math.Abs(joint-0.01) > 0.002 {
		t.Errorf("share in both holdouts %.4f, want about 0.01 (independent arms)", joint)
	}
	if changedBySalt < n/10 {
		t.Errorf("a new salt moved %d of %d users, want about 18%%", changedBySalt, n)
	}
}

// TestFractionZeroAndKnownValue pins the assignment: a change to the HMAC's input would
// silently re-randomise every running experiment.
func TestFractionZeroAndKnownValue(t *testing.T) {
	if New("shop", "s", "", 0).Arm("anyone") != Treated {
		t.Error("fraction 0 put a user in the holdout")
	}
	a := New("shop", "cart_abandoner", "", 0.1)
	got := fmt.Sprintf("%.6f %.6f", a.Point("u1"), a.Point("u2"))
	const want = "0.458141 0.391019" // computed independently with Python's hmac module
	if got != want {
		t.Errorf("points %s, want %s (the assignment changed: every running holdout would be re-randomised)", got, want)
	}
}

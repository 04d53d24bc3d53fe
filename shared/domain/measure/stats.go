package measure

import (
	"fmt"
	"math"
	"strings"
)

// The two-proportion comparison of the treated and holdout arms (large-sample methods, as in
// Moore et al., Introduction to the Practice of Statistics, chapter 8, comparing two
// proportions; reference/meta-measurement.md section 4):
//
//	D  = p̂T − p̂H
//	CI = D ± z·√(p̂T(1−p̂T)/nT + p̂H(1−p̂H)/nH)        (95%: z = 1.959963984540054)
//	z  = D / √(p̂(1−p̂)(1/nT + 1/nH)),  p̂ = (sT+sH)/(nT+nH)   (pooled, under "no difference")
//	p  = P(|Z| ≥ |z|) = erfc(|z|/√2)                   (two-sided)
//
// The interval uses each arm's own variance, the test the pooled one, as the textbook does; at
// the 5% boundary the two can disagree (the interval just touching 0 while p is just under
// 0.05, or the reverse). Significant follows the test.
//
// Both are normal approximations: they are trusted only with at least MinSuccesses successes
// and as many failures in each arm (the textbook's rule for the interval, stricter than its
// rule of 5 for the test), and with the app's minimum sample of users per arm.

// Z95 is the standard normal quantile of 0.975: the half-width of a 95% interval in standard
// errors.
const Z95 = 1.959963984540054

// SignificanceLevel is the two-sided level of the test.
const SignificanceLevel = 0.05

// MinSuccesses is the fewest successes, and the fewest failures, per arm for the normal
// approximation.
const MinSuccesses = 10

// NotEnoughData starts every note that explains a null KPI by a too small sample.
const NotEnoughData = "not enough data"

// Proportion is one arm's outcome: Successes of N users.
type Proportion struct {
	Successes, N int64
}

// Rate is Successes/N; NaN when N is 0.
func (p Proportion) Rate() float64 {
	if p.N == 0 {
		return math.NaN()
	}
	return float64(p.Successes) / float64(p.N)
}

// Comparison is the raw result of comparing two proportions, without the sample rule.
type Comparison struct {
	Difference, CILow, CIHigh float64
	// Z is the pooled test statistic; PValue its two-sided p-value.
	Z, PValue float64
}

// CompareProportions compares treated with holdout. ok is false when either arm has no users
// (no rate to compare). An arm at 0% or 100% contributes no variance to the interval; when
// both arms are at the same extreme the pooled variance is 0 and the difference is 0: Z is 0
// and PValue 1 (no evidence of a difference). Callers that report the numbers apply the
// sample rule first (Lift does).
func CompareProportions(treated, holdout Proportion) (c Comparison, ok bool) {
	if treated.N <= 0 || holdout.N <= 0 {
		return Comparison{}, false
	}
	nT, nH := float64(treated.N), float64(holdout.N)
	pT, pH := treated.Rate(), holdout.Rate()
	c.Difference = pT - pH
	se := math.Sqrt(pT*(1-pT)/nT + pH*(1-pH)/nH)
	c.CILow, c.CIHigh = c.Difference-Z95*se, c.Difference+Z95*se

	pooled := float64(treated.Successes+holdout.Successes) / (nT + nH)
	sePooled := math.Sqrt(pooled * (1 - pooled) * (1/nT + 1/nH))
	if sePooled == 0 {
		// Both arms at 0% or both at 100%: the difference is exactly 0.
		c.Z, c.PValue = 0, 1
		return c, true
	}
	c.Z = c.Difference / sePooled
	c.PValue = math.Erfc(math.Abs(c.Z) / math.Sqrt2)
	return c, true
}

// SampleShortfall says what keeps treated and holdout from being compared: "" when each arm
// has at least minSample users (at least 1) and at least MinSuccesses users with the outcome
// and as many without; otherwise a note starting with NotEnoughData, e.g. "not enough data:
// holdout has 42 users, at least 100 per arm are needed". outcome names the success, e.g.
// "re-engaged within 7 days".
func SampleShortfall(treated, holdout Proportion, minSample int, outcome string) string {
	minUsers := int64(max(minSample, 1))
	var missing []string
	for _, arm := range []struct {
		name string
		p    Proportion
	}{{"treated", treated}, {"holdout", holdout}} {
		switch n, s := arm.p.N, arm.p.Successes; {
		case n < minUsers:
			missing = append(missing, fmt.Sprintf("%s has %d users, at least %d per arm are needed", arm.name, n, minUsers))
		case s < MinSuccesses:
			missing = append(missing, fmt.Sprintf("%s has %d users %s, at least %d per arm are needed", arm.name, s, outcome, MinSuccesses))
		case n-s < MinSuccesses:
			missing = append(missing, fmt.Sprintf("%s has %d users not %s, at least %d per arm are needed", arm.name, n-s, outcome, MinSuccesses))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return NotEnoughData + ": " + strings.Join(missing, "; ")
}

// LiftOf compares the arms under the sample rule: the difference, its 95% interval, the
// p-value and Significant (p < SignificanceLevel) when the sample suffices, else null numbers
// and the SampleShortfall note.
func LiftOf(treated, holdout Proportion, minSample int, outcome string) Lift {
	if note := SampleShortfall(treated, holdout, minSample, outcome); note != "" {
		return Lift{Note: note}
	}
	c, ok := CompareProportions(treated, holdout)
	if !ok { // unreachable: the sample rule needs users in both arms
		return Lift{Note: NotEnoughData + ": an arm has no users"}
	}
	return Lift{
		Difference:  ptr(c.Difference),
		CILow:       ptr(c.CILow),
		CIHigh:      ptr(c.CIHigh),
		PValue:      ptr(c.PValue),
		Significant: c.PValue < SignificanceLevel,
	}
}

func ptr(f float64) *float64 { return &f }

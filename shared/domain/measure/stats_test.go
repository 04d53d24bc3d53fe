package measure

import (
	"math"
	"strings"
	"testing"
)

// The expected values were computed independently in Python 3 with the standard library's
// statistics.NormalDist (its own normal CDF and quantile, not erfc):
//
//	from statistics import NormalDist; from math import sqrt
//	N = NormalDist(); z = N.inv_cdf(0.975)
//	pT, pH = sT/nT, sH/nH; d = pT - pH
//	se = sqrt(pT*(1-pT)/nT + pH*(1-pH)/nH)
//	p = (sT+sH)/(nT+nH); zz = d / sqrt(p*(1-p)*(1/nT+1/nH)); pv = 2*(1-N.cdf(abs(zz)))
//
// The first case is the textbook's binge-drinking comparison (Moore et al., Introduction to the
// Practice of Statistics, chapter 8: 1,630 of 7,180 men against 1,684 of 9,916 women), whose
// printed answers are D = 0.057, 95% CI 0.045 to 0.069, z = 9.34.
func TestCompareProportionsKnownValues(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		sT, nT, sH, nH       int64
		d, lo, hi, z, pValue float64
	}{
		{"textbook binge drinking", 1630, 7180, 1684, 9916,
			0.057192955646371, 0.04500671970976555, 0.06937919158297645, 9.336581697099465, 0},
		{"35% against 25%, 90/10 split", 630, 1800, 50, 200,
			0.09999999999999998, 0.036071247810858256, 0.1639287521891417, 2.832205920185103, 0.004622806742439867},
		{"not significant", 110, 500, 20, 100,
			0.01999999999999999, -0.06639862719032534, 0.10639862719032532, 0.4431696575077262, 0.657643024158749},
		{"treated at 0%", 0, 200, 10, 100,
			-0.1, -0.15879891953620162, -0.04120108046379839, -4.548588261473421, 5.400699190527547e-06},
		{"treated at 100%", 200, 200, 190, 200,
			0.050000000000000044, 0.01979492642096609, 0.080205073579034, 3.2025630761017436, 0.0013621046715841523},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := CompareProportions(Proportion{tc.sT, tc.nT}, Proportion{tc.sH, tc.nH})
			if !ok {
				t.Fatal("not comparable")
			}
			for _, f := range []struct {
				name      string
				got, want float64
			}{{"difference", c.Difference, tc.d}, {"ci_low", c.CILow, tc.lo}, {"ci_high", c.CIHigh, tc.hi}, {"z", c.Z, tc.z}} {
				if math.Abs(f.got-f.want) > 1e-12 {
					t.Errorf("%s = %.17g, want %.17g", f.name, f.got, f.want)
				}
			}
			// Python's 1-cdf loses everything below 1e-16; erfc keeps the tail.
			if tc.pValue == 0 {
				if !(c.PValue > 0 && c.PValue < 1e-15) {
					t.Errorf("p-value = %g, want a positive value below 1e-15", c.PValue)
				}
			} else if math.Abs(c.PValue-tc.pValue) > 1e-9*tc.pValue+1e-15 {
				t.Errorf("p-value = %.17g, want %.17g", c.PValue, tc.pValue)
			}
		})
	}
	// The textbook's rounded answers, to the printed precision.
	c, _ := CompareProportions(Proportion{1630, 7180}, Proportion{1684, 9916})
	if math.Round(c.Difference*1000) != 57 || math.Round(c.CILow*1000) != 45 || math.Round(c.CIHigh*1000) != 69 || math.Round(c.Z*100) != 934 {
		t.Errorf("textbook example: D %.3f CI %.3f..%.3f z %.2f, want 0.057, 0.045..0.069, 9.34", c.Difference, c.CILow, c.CIHigh, c.Z)
	}
}

func TestCompareProportionsEdges(t *testing.T) {
	if _, ok := CompareProportions(Proportion{10, 100}, Proportion{0, 0}); ok {
		t.Error("an empty holdout was compared")
	}
	if _, ok := CompareProportions(Proportion{0, 0}, Proportion{1, 10}); ok {
		t.Error("an empty treated arm was compared")
	}
	// Both arms at the same extreme: no variance, no difference, p = 1 (not NaN).
	for _, s := range []int64{0, 1} {
		c, ok := CompareProportions(Proportion{s * 50, 50}, Proportion{s * 20, 20})
		if !ok || c.Difference != 0 || c.CILow != 0 || c.CIHigh != 0 || c.Z != 0 || c.PValue != 1 {
			t.Errorf("both arms at %d: %+v ok %v, want all 0 and p-value 1", s, c, ok)
		}
	}
}

func TestLiftOfSampleRule(t *testing.T) {
	const outcome = "re-engaged within 7 days"
	for _, tc := range []struct {
		name             string
		treated, holdout Proportion
		minSample        int
		note             string // "" = computed
	}{
		{"enough", Proportion{630, 1800}, Proportion{50, 200}, 100, ""},
		{"small holdout", Proportion{630, 1800}, Proportion{15, 42}, 100,
			"not enough data: holdout has 42 users, at least 100 per arm are needed"},
		{"no holdout", Proportion{630, 1800}, Proportion{0, 0}, 100,
			"not enough data: holdout has 0 users, at least 100 per arm are needed"},
		{"both small", Proportion{30, 80}, Proportion{15, 42}, 100,
			"not enough data: treated has 80 users, at least 100 per arm are needed; holdout has 42 users, at least 100 per arm are needed"},
		{"few successes (p near 0)", Proportion{630, 1800}, Proportion{9, 200}, 100,
			"not enough data: holdout has 9 users re-engaged within 7 days, at least 10 per arm are needed"},
		{"p = 0 in an arm", Proportion{0, 1800}, Proportion{50, 200}, 100,
			"not enough data: treated has 0 users re-engaged within 7 days, at least 10 per arm are needed"},
		{"p = 1 in an arm", Proportion{630, 1800}, Proportion{200, 200}, 100,
			"not enough data: holdout has 0 users not re-engaged within 7 days, at least 10 per arm are needed"},
		{"min sample 0 still needs 10 and 10", Proportion{5, 15}, Proportion{10, 20}, 0,
			"not enough data: treated has 5 users re-engaged within 7 days, at least 10 per arm are needed"},
		{"exactly at the thresholds", Proportion{10, 20}, Proportion{10, 20}, 20, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := LiftOf(tc.treated, tc.holdout, tc.minSample, outcome)
			if l.Note != tc.note {
				t.Errorf("note %q, want %q", l.Note, tc.note)
			}
			computed := l.Difference != nil && l.CILow != nil && l.CIHigh != nil && l.PValue != nil
			if computed != (tc.note == "") {
				t.Errorf("numbers computed = %v with note %q", computed, l.Note)
			}
			if tc.note != "" && (l.Significant || !strings.HasPrefix(l.Note, NotEnoughData)) {
				t.Errorf("a lift without enough data: %+v", l)
			}
		})
	}
	// Significance follows p < 0.05.
	if l := LiftOf(Proportion{630, 1800}, Proportion{50, 200}, 100, outcome); !l.Significant || *l.PValue >= 0.05 {
		t.Errorf("p %v: want significant", *l.PValue)
	}
	if l := LiftOf(Proportion{110, 500}, Proportion{20, 100}, 100, outcome); l.Significant || *l.PValue < 0.05 {
		t.Errorf("p %v: want not significant", *l.PValue)
	}
}

package reportview_test

import (
	"fmt"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/measure"
)

func f(v float64) *float64 { return &v }

// sampleReport is a hand-built report of two audiences: cart_abandoner over 14 join days,
// every daily rate known, two days contaminated and spend in EUR; lapsed over 3 days below the
// minimum sample (no rates, "not enough data" everywhere).
func sampleReport() measure.Report {
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var days []measure.DayPoint
	for i := range 14 {
		t, h := int64(60+i*3), int64(7+i%3)
		tr, hr := int64(float64(t)*(0.30+0.01*float64(i%4))), int64(float64(h)*0.2)
		days = append(days, measure.DayPoint{Day: start.AddDate(0, 0, i).Format(measure.DateLayout), TreatedUsers: t, HoldoutUsers: h,
			TreatedReengaged7d: tr, HoldoutReengaged7d: hr, TreatedRate7d: f(float64(tr) / float64(t)), HoldoutRate7d: f(float64(hr) / float64(h)), Spend: 31.5})
	}
	short := measure.Lift{Note: "not enough data"}
	return measure.Report{App: "sample-shop", From: "2026-02-01", To: "2026-02-14", GeneratedAt: "2026-03-10T12:00:00Z",
		Audiences: []measure.AudienceReport{
			{App: "sample-shop", Segment: "cart_abandoner", AudienceID: "120000000001", HoldoutAudienceID: "120000000002", HoldoutFraction: 0.1,
				Treated: measure.ArmStats{Users: 1113, Reengaged1d: 150, Reengaged7d: 356, Reengaged28d: 420, Purchasers28d: 80, Revenue28d: 4012.5,
					Retention1d: f(0.135), Retention7d: f(0.32), Retention28d: f(0.377), ValuePerUser28d: f(3.6)},
				Holdout: measure.ArmStats{Users: 112, Reengaged1d: 10, Reengaged7d: 22, Reengaged28d: 30, Purchasers28d: 5, Revenue28d: 201,
					Retention1d: f(0.089), Retention7d: f(0.196), Retention28d: f(0.268), ValuePerUser28d: f(1.79)},
				HoldoutShare:           f(0.0914),
				Lift1d:                 measure.Lift{Difference: f(0.046), CILow: f(-0.01), CIHigh: f(0.1), PValue: f(0.12)},
				Lift7d:                 measure.Lift{Difference: f(0.124), CILow: f(0.043), CIHigh: f(0.205), PValue: f(0.003), Significant: true},
				Lift28d:                measure.Lift{Difference: f(0.109), CILow: f(0.02), CIHigh: f(0.198), PValue: f(0.02), Significant: true},
				IncrementalReengaged7d: f(138), IncrementalRevenue28d: f(2014.2), Spend: f(1234.5), Currency: "EUR",
				CostPerIncrementalReengagement: f(8.945), IncrementalROAS: f(1.63),
				Contaminated: true, ContaminatedDays: []string{"2026-02-03", "2026-02-04"}, WindowsOpen: true, Days: days,
				Notes: []string{"2 days contaminated: an active ad set did not exclude the holdout audience"}},
			{App: "sample-shop", Segment: "lapsed", AudienceID: "120000000003", HoldoutFraction: 0.1,
				Treated: measure.ArmStats{Users: 40, Reengaged7d: 4}, Holdout: measure.ArmStats{Users: 4},
				Lift1d: short, Lift7d: short, Lift28d: short, Currency: "EUR",
				Days: []measure.DayPoint{{Day: "2026-02-01", TreatedUsers: 15, HoldoutUsers: 2}, {Day: "2026-02-02", TreatedUsers: 12, HoldoutUsers: 1},
					{Day: "2026-02-03", TreatedUsers: 13, HoldoutUsers: 1}},
				Notes: []string{fmt.Sprintf("not enough data: %d holdout users, the minimum sample is %d", 4, 100)}},
		},
		Groups: []measure.GroupSpend{{Audiences: []string{"cart_abandoner", "lapsed"}, Spend: 99.99, Currency: "EUR", AdSets: []string{"23850000000009"},
			Note: "spend of ad sets that include several managed audiences is not split"}},
	}
}

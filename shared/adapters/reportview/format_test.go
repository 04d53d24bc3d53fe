package reportview_test

import (
	"testing"

	"github.com/retarget-dev/retarget/shared/adapters/reportview"
	"github.com/retarget-dev/retarget/shared/domain/measure"
)

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{reportview.Money(1234.5, "EUR"), "1,234.50 EUR"},
		{reportview.Money(98000.4, "JPY"), "98,000 JPY"},
		{reportview.Money(-0.001, "USD"), "0.00 USD"},
		{reportview.Money(-1234567.891, ""), "-1,234,567.89"},
		{reportview.Count(999), "999"},
		{reportview.Count(1000), "1,000"},
		{reportview.Rate(f(0.3204)), "32.0%"},
		{reportview.Rate(nil), "not enough data"},
		{reportview.Lift(measure.Lift{Difference: f(0.124), CILow: f(-0.003), CIHigh: f(0.205), Significant: false}), "+12.4 pp (95% CI -0.3 to +20.5 pp), not significant"},
		{reportview.Lift(measure.Lift{Note: "not enough data: 4 holdout users"}), "not enough data: 4 holdout users"},
		{reportview.Lift(measure.Lift{}), "not enough data"},
		{reportview.CostPerIncremental(measure.AudienceReport{Currency: "USD", Spend: f(10), CostPerIncrementalReengagement: f(2.5)}), "2.50 USD"},
		{reportview.CostPerIncremental(measure.AudienceReport{Currency: "USD"}), "no spend"},
		{reportview.CostPerIncremental(measure.AudienceReport{Currency: "USD", Spend: f(10)}), "not enough data"},
		{reportview.CostPerIncremental(measure.AudienceReport{Currency: "USD", Spend: f(10), Lift7d: measure.Lift{Difference: f(-0.01)}}), "no incremental re-engagement"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

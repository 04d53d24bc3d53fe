// Package reportview presents a remarketing report (measure.Report) to people: the numbers
// formatted with their units and currency (the CLI's table uses them) and a self-contained
// HTML page with a chart per audience (WriteHTML). It reads nothing and sends nothing; the
// page it writes loads nothing either.
package reportview

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/retarget-dev/retarget/shared/domain/measure"
)

// NotEnoughData stands for a KPI the report left null because an arm had fewer users than the
// app's minimum sample.
const NotEnoughData = "not enough data"

// zeroDecimal are the ISO 4217 currencies without minor units (amounts in whole units).
var zeroDecimal = map[string]bool{"BIF": true, "CLP": true, "DJF": true, "GNF": true, "ISK": true, "JPY": true, "KMF": true, "KRW": true,
	"PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true}

// Money formats an amount in a currency: "1,234.56 USD", "98,000 JPY". An empty currency
// prints the number alone.
func Money(v float64, currency string) string {
	decimals := 2
	if zeroDecimal[currency] {
		decimals = 0
	}
	s := grouped(v, decimals)
	if currency == "" {
		return s
	}
	return s + " " + currency
}

// Count formats a whole number with thousands separators: "12,345".
func Count(n int64) string { return grouped(float64(n), 0) }

// grouped formats v with decimals and a comma every three integer digits.
func grouped(v float64, decimals int) string {
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 && strings.Trim(s, "0.") != "" {
		b.WriteByte('-')
	}
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// Rate formats a proportion as a percentage with one decimal ("30.0%"), or NotEnoughData
// for nil.
func Rate(p *float64) string {
	if p == nil {
		return NotEnoughData
	}
	return strconv.FormatFloat(*p*100, 'f', 1, 64) + "%"
}

// points formats a difference of proportions in percentage points, signed: "+10.0 pp".
func points(p float64) string {
	return fmt.Sprintf("%+.1f pp", p*100)
}

// Lift formats a lift: "+10.0 pp (95% CI +2.0 to +18.0 pp), significant", its note when the
// report gave no numbers (NotEnoughData when it gave no note either).
func Lift(l measure.Lift) string {
	if l.Difference == nil {
		if l.Note != "" {
			return l.Note
		}
		return NotEnoughData
	}
	s := points(*l.Difference)
	if l.CILow != nil && l.CIHigh != nil {
		s += fmt.Sprintf(" (95%% CI %+.1f to %+.1f pp)", *l.CILow*100, *l.CIHigh*100)
	}
	if l.Significant {
		s += ", significant"
	} else {
		s += ", not significant"
	}
	return s
}

// Spend formats an audience's spend: "no spend" when the report has none.
func Spend(a measure.AudienceReport) string {
	if a.Spend == nil {
		return "no spend"
	}
	return Money(*a.Spend, a.Currency)
}

// CostPerIncremental formats the cost per incremental re-engagement, or says why there is
// none: no spend, too small a sample, or a lift that is not positive (no incremental users to
// divide by).
func CostPerIncremental(a measure.AudienceReport) string {
	switch {
	case a.CostPerIncrementalReengagement != nil:
		return Money(*a.CostPerIncrementalReengagement, a.Currency)
	case a.Spend == nil:
		return "no spend"
	case a.Lift7d.Difference == nil:
		return NotEnoughData
	default:
		return "no incremental re-engagement"
	}
}

// Optional formats a nullable number with f, NotEnoughData for nil.
func Optional(v *float64, f func(float64) string) string {
	if v == nil {
		return NotEnoughData
	}
	return f(*v)
}

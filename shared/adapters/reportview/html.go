package reportview

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/retarget-dev/retarget/shared/domain/measure"
)

// ContentSecurityPolicy is the page's policy (a meta element): nothing may be loaded, from
// anywhere; only the page's own style element applies. The page is opened from disk or an
// email attachment, so a remote load would tell a third party who read which report.
const ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"

// Chart geometry (SVG user units): the rates panel above, the users-per-day bars below.
const (
	chartWidth  = 760.0
	chartHeight = 330.0
	plotLeft    = 56.0
	plotRight   = chartWidth - 16
	ratesTop    = 34.0
	ratesBottom = 214.0
	barsTop     = 244.0
	barsBottom  = 304.0
)

// WriteHTML writes r as one self-contained HTML page: inline CSS, and per audience an inline
// SVG chart (the treated and holdout 7-day re-engagement rates over join days, two lines with
// a legend, above the users who joined each day, stacked by arm; contaminated days shaded),
// the KPI table and the report's notes. Amounts carry the currency.
func WriteHTML(w io.Writer, r measure.Report) error {
	v := pageView{Report: r, CSP: ContentSecurityPolicy}
	for _, a := range r.Audiences {
		v.Audiences = append(v.Audiences, audienceViewOf(a))
	}
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("report page: %w", err)
	}
	return nil
}

type pageView struct {
	measure.Report
	CSP       string
	Audiences []audienceView
}

type audienceView struct {
	A     measure.AudienceReport
	Chart chartView
	KPIs  []kpiRow
	Lifts []kpiRow
	// Warnings are shown above the chart: contamination, open windows.
	Warnings []string
}

type kpiRow struct{ Name, Treated, Holdout string }

type chartView struct {
	Title            string
	Treated, Holdout string // polyline points "x,y x,y ..."
	// TreatedN and HoldoutN are how many points each line has (days with a rate).
	TreatedN, HoldoutN int
	Bars               []barView
	YTicks, XTicks     []tickView
	Bands              []bandView
	BarsMax            string
	Empty              bool
	// Layout, for the template.
	W, H, L, R, RatesTop, RatesBottom, BarsTop, BarsBottom float64
}

type barView struct {
	X, Width, TreatedY, TreatedH, HoldoutY, HoldoutH float64
	Title                                            string
}

type tickView struct {
	Pos   float64
	Label string
}

type bandView struct{ X, Width float64 }

func audienceViewOf(a measure.AudienceReport) audienceView {
	v := audienceView{A: a, Chart: chartOf(a)}
	arm := func(s measure.ArmStats) []string {
		return []string{Count(s.Users), Count(s.Reengaged7d),
			Rate(s.Retention1d), Rate(s.Retention7d), Rate(s.Retention28d), Count(s.Purchasers28d),
			grouped(s.Revenue28d, 2), Optional(s.ValuePerUser28d, func(x float64) string { return grouped(x, 2) })}
	}
	t, h := arm(a.Treated), arm(a.Holdout)
	for i, name := range []string{"Users", "Re-engaged within 7 days", "Retention, day 1", "Retention, day 7", "Retention, day 28",
		"Purchasers within 28 days", "Revenue within 28 days (reporting currency)", "Value per user, 28 days (reporting currency)"} {
		v.KPIs = append(v.KPIs, kpiRow{name, t[i], h[i]})
	}
	v.Lifts = []kpiRow{
		{Name: "Lift, day 1", Treated: Lift(a.Lift1d)},
		{Name: "Lift, day 7", Treated: Lift(a.Lift7d)},
		{Name: "Lift, day 28", Treated: Lift(a.Lift28d)},
		{Name: "Incremental re-engaged users (7 days)", Treated: Optional(a.IncrementalReengaged7d, func(x float64) string { return grouped(x, 1) })},
		{Name: "Incremental revenue (28 days, reporting currency)", Treated: Optional(a.IncrementalRevenue28d, func(x float64) string { return grouped(x, 2) })},
		{Name: "Spend", Treated: Spend(a)},
		{Name: "Cost per incremental re-engagement", Treated: CostPerIncremental(a)},
		{Name: "Incremental ROAS", Treated: Optional(a.IncrementalROAS, func(x float64) string { return fmt.Sprintf("%.2f", x) })},
		{Name: "Holdout share (configured " + Rate(&a.HoldoutFraction) + ")", Treated: Rate(a.HoldoutShare)},
	}
	if a.Contaminated {
		v.Warnings = append(v.Warnings, "Contaminated: on "+strings.Join(a.ContaminatedDays, ", ")+
			" an active ad set included this audience without excluding its holdout audience. Holdout users could see the ads, so the lift is biased toward zero.")
	}
	if a.WindowsOpen {
		v.Warnings = append(v.Warnings, "Some cohorts joined less than 28 days ago: their counts can still grow (in both arms alike).")
	}
	return v
}

// chartOf lays out an audience's chart: one x position per join day; each line joins the days
// that have a rate (a day below the minimum sample has none and is bridged).
func chartOf(a measure.AudienceReport) chartView {
	c := chartView{Title: "7-day re-engagement by join day, " + a.Segment, W: chartWidth, H: chartHeight, L: plotLeft, R: plotRight,
		RatesTop: ratesTop, RatesBottom: ratesBottom, BarsTop: barsTop, BarsBottom: barsBottom}
	n := len(a.Days)
	if n == 0 {
		c.Empty = true
		return c
	}
	step := (plotRight - plotLeft) / float64(n)
	x := func(i int) float64 { return plotLeft + step*(float64(i)+0.5) }

	maxRate := 0.0
	for _, d := range a.Days {
		for _, p := range []*float64{d.TreatedRate7d, d.HoldoutRate7d} {
			if p != nil {
				maxRate = max(maxRate, *p)
			}
		}
	}
	top := niceCeil(maxRate)
	y := func(p float64) float64 { return ratesBottom - (ratesBottom-ratesTop)*p/top }
	for i := 0; i <= 4; i++ {
		p := top * float64(i) / 4
		c.YTicks = append(c.YTicks, tickView{Pos: round1(y(p)), Label: Rate(&p)})
	}
	var tp, hp []string
	for i, d := range a.Days {
		if d.TreatedRate7d != nil {
			tp = append(tp, fmt.Sprintf("%.1f,%.1f", x(i), y(*d.TreatedRate7d)))
		}
		if d.HoldoutRate7d != nil {
			hp = append(hp, fmt.Sprintf("%.1f,%.1f", x(i), y(*d.HoldoutRate7d)))
		}
	}
	c.Treated, c.Holdout, c.TreatedN, c.HoldoutN = strings.Join(tp, " "), strings.Join(hp, " "), len(tp), len(hp)
	c.Empty = len(tp) == 0 && len(hp) == 0

	var maxUsers int64 = 1
	for _, d := range a.Days {
		maxUsers = max(maxUsers, d.TreatedUsers+d.HoldoutUsers)
	}
	c.BarsMax = Count(maxUsers)
	scale := (barsBottom - barsTop) / float64(maxUsers)
	barW := math.Max(step*0.7, 1)
	for i, d := range a.Days {
		th, hh := float64(d.TreatedUsers)*scale, float64(d.HoldoutUsers)*scale
		c.Bars = append(c.Bars, barView{X: round1(x(i) - barW/2), Width: round1(barW),
			TreatedY: round1(barsBottom - th), TreatedH: round1(th), HoldoutY: round1(barsBottom - th - hh), HoldoutH: round1(hh),
			Title: fmt.Sprintf("%s: %s treated, %s holdout", d.Day, Count(d.TreatedUsers), Count(d.HoldoutUsers))})
		if slices.Contains(a.ContaminatedDays, d.Day) {
			c.Bands = append(c.Bands, bandView{X: round1(x(i) - step/2), Width: round1(step)})
		}
	}
	// Day labels: the first, the last, and about six between.
	every := max(1, (n+6)/7)
	for i := 0; i < n; i += every {
		if n-1-i < every/2 && i != 0 {
			break // too close to the last label
		}
		c.XTicks = append(c.XTicks, tickView{Pos: round1(x(i)), Label: shortDay(a.Days[i].Day)})
	}
	if n > 1 {
		c.XTicks = append(c.XTicks, tickView{Pos: round1(x(n - 1)), Label: shortDay(a.Days[n-1].Day)})
	}
	return c
}

// niceCeil is the top of the rate axis: the smallest of 1, 2, 2.5 or 5 times a power of ten
// at or above p (at least 1%, at most 100%).
func niceCeil(p float64) float64 {
	if p <= 0.01 {
		return 0.01
	}
	exp := math.Pow(10, math.Floor(math.Log10(p)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*exp >= p-1e-12 {
			return math.Min(m*exp, 1)
		}
	}
	return 1
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// shortDay is "03-14" for "2026-03-14".
func shortDay(day string) string {
	if len(day) == len(measure.DateLayout) {
		return day[5:]
	}
	return day
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"money":  Money,
	"half":   func(a, b float64) float64 { return (a + b) / 2 },
	"add":    func(a, b float64) float64 { return a + b },
	"sub":    func(a, b float64) float64 { return a - b },
	"mul100": func(a float64) float64 { return a * 100 },
	"join":   func(s []string) string { return strings.Join(s, ", ") },
}).Parse(pageTemplate))

const pageTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{.CSP}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Remarketing report: {{.App}}, {{.From}} to {{.To}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; background: #fff; margin: 24px auto; max-width: 820px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 4px; border-top: 1px solid #d9dde5; padding-top: 20px; }
.meta, .ids { color: #5b6475; margin: 0 0 12px; }
.warning { background: #fff4e5; border-left: 4px solid #e08a00; padding: 6px 10px; margin: 8px 0; }
.note { background: #eef3fb; border-left: 4px solid #4a78c2; padding: 6px 10px; margin: 8px 0; }
svg.chart { display: block; width: 100%; height: auto; margin: 8px 0; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #5b6475; }
svg.chart .title { font-size: 13px; fill: #1d2330; }
svg.chart .grid { stroke: #e6e9ef; stroke-width: 1; }
svg.chart .axis { stroke: #9aa3b2; stroke-width: 1; }
svg.chart polyline { fill: none; stroke-width: 2.5; stroke-linejoin: round; stroke-linecap: round; }
.treated { stroke: #1f6fd1; fill: #1f6fd1; }
.holdout { stroke: #e0612b; fill: #e0612b; }
svg.chart rect.treated, svg.chart rect.holdout { stroke: none; }
svg.chart rect.holdout { fill: #f3a47f; }
svg.chart rect.treated { fill: #7fb0ea; }
svg.chart .band { fill: #fde2e2; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e6e9ef; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<h1>Remarketing report: {{.App}}</h1>
<p class="meta">Users who joined from {{.From}} to {{.To}} (UTC). Generated {{.GeneratedAt}}. Treated users were uploaded to the audience; holdout users were kept out of it (and excluded at Meta) and are tracked the same way: the difference between the two arms is what remarketing earned.</p>
{{if not .Audiences}}<p class="note">No measured audience in this period.</p>{{end}}
{{range .Audiences}}{{$c := .Chart}}
<section class="audience" id="audience-{{.A.Segment}}" data-segment="{{.A.Segment}}">
<h2>{{.A.Segment}}</h2>
<p class="ids">Audience {{if .A.AudienceID}}{{.A.AudienceID}}{{else}}not created yet{{end}} · holdout audience {{if .A.HoldoutAudienceID}}{{.A.HoldoutAudienceID}}{{else}}not created yet{{end}} · holdout fraction {{printf "%.0f%%" (mul100 .A.HoldoutFraction)}}</p>
{{range .Warnings}}<p class="warning">{{.}}</p>
{{end}}{{range .A.Notes}}<p class="note">{{.}}</p>
{{end}}
<svg class="chart" viewBox="0 0 {{$c.W}} {{$c.H}}" role="img" aria-label="{{$c.Title}}" data-days="{{len .A.Days}}">
<title>{{$c.Title}}</title>
<text class="title" x="{{$c.L}}" y="16">7-day re-engagement rate by join day</text>
<g class="legend" transform="translate({{$c.L}},22)">
<line class="treated" x1="300" y1="-4" x2="322" y2="-4" stroke-width="3"></line><text x="328" y="0">Treated</text>
<line class="holdout" x1="400" y1="-4" x2="422" y2="-4" stroke-width="3"></line><text x="428" y="0">Holdout</text>
</g>
{{range $c.Bands}}<rect class="band" x="{{.X}}" y="{{$c.RatesTop}}" width="{{.Width}}" height="{{sub $c.BarsBottom $c.RatesTop}}"><title>contaminated day</title></rect>
{{end}}{{range $c.YTicks}}<line class="grid" x1="{{$c.L}}" x2="{{$c.R}}" y1="{{.Pos}}" y2="{{.Pos}}"></line><text x="{{sub $c.L 6}}" y="{{add .Pos 4}}" text-anchor="end">{{.Label}}</text>
{{end}}<line class="axis" x1="{{$c.L}}" x2="{{$c.R}}" y1="{{$c.RatesBottom}}" y2="{{$c.RatesBottom}}"></line>
{{if $c.Empty}}<text x="{{half $c.L $c.R}}" y="{{half $c.RatesTop $c.RatesBottom}}" text-anchor="middle">not enough data for daily rates</text>
{{end}}{{if $c.TreatedN}}<polyline class="treated" data-series="treated" data-points="{{$c.TreatedN}}" points="{{$c.Treated}}"></polyline>
{{end}}{{if $c.HoldoutN}}<polyline class="holdout" data-series="holdout" data-points="{{$c.HoldoutN}}" points="{{$c.Holdout}}"></polyline>
{{end}}<text x="{{$c.L}}" y="{{sub $c.BarsTop 8}}">Users joined per day (treated, holdout stacked; max {{$c.BarsMax}})</text>
{{range $c.Bars}}<g class="bar"><title>{{.Title}}</title><rect class="treated" x="{{.X}}" y="{{.TreatedY}}" width="{{.Width}}" height="{{.TreatedH}}"></rect><rect class="holdout" x="{{.X}}" y="{{.HoldoutY}}" width="{{.Width}}" height="{{.HoldoutH}}"></rect></g>
{{end}}<line class="axis" x1="{{$c.L}}" x2="{{$c.R}}" y1="{{$c.BarsBottom}}" y2="{{$c.BarsBottom}}"></line>
{{range $c.XTicks}}<text x="{{.Pos}}" y="{{add $c.BarsBottom 16}}" text-anchor="middle">{{.Label}}</text>
{{end}}</svg>
<table class="kpis">
<thead><tr><th></th><th class="num">Treated</th><th class="num">Holdout</th></tr></thead>
<tbody>
{{range .KPIs}}<tr><th scope="row">{{.Name}}</th><td class="num">{{.Treated}}</td><td class="num">{{.Holdout}}</td></tr>
{{end}}</tbody>
</table>
<table class="lift">
<tbody>
{{range .Lifts}}<tr><th scope="row">{{.Name}}</th><td class="num">{{.Treated}}</td></tr>
{{end}}</tbody>
</table>
</section>
{{end}}
{{if .Groups}}<h2>Spend of audience groups</h2>
<table class="groups">
<thead><tr><th>Audiences</th><th>Ad sets</th><th class="num">Spend</th><th>Note</th></tr></thead>
<tbody>
{{range .Groups}}<tr><td>{{join .Audiences}}</td><td>{{join .AdSets}}</td><td class="num">{{money .Spend .Currency}}</td><td>{{.Note}}</td></tr>
{{end}}</tbody>
</table>{{end}}
</body>
</html>
`

package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// The chart's geometry, in SVG user units.
const (
	chartW, chartH = 960, 540
	padL, padR     = 70, 200
	padT, padB     = 64, 60
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"}

// WriteSVG draws each operation's latency by percentile, the way
// HdrHistogram plots do: the x axis spreads the tail (50%, 90%, 99%,
// 99.9%), the y axis is logarithmic milliseconds. One path per operation;
// a comparison run adds the bare handler's creates, dashed.
func (r *Report) WriteSVG(w io.Writer) error {
	type series struct {
		name   string
		sorted []time.Duration
		dashed bool
	}
	var all []series
	for _, o := range r.Ops {
		all = append(all, series{o.Op, o.sorted, false})
	}
	if r.Bare != nil {
		if o := r.Bare.Op(OpCreate); o != nil {
			all = append(all, series{"bare create", o.sorted, true})
		}
	}
	// The y range, in whole decades around every sample.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range all {
		if len(s.sorted) == 0 {
			continue
		}
		lo = math.Min(lo, math.Max(ms(s.sorted[0]), 0.01))
		hi = math.Max(hi, math.Max(ms(s.sorted[len(s.sorted)-1]), 0.01))
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0.1, 1000
	}
	yLo, yHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yHi <= yLo {
		yHi = yLo + 1
	}
	const xMax = 4.0 // up to 99.99%
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	xAt := func(q float64) float64 {
		return padL + plotW*math.Min(-math.Log10(math.Max(1-q, 1e-4)), xMax)/xMax
	}
	yAt := func(v float64) float64 {
		v = math.Max(v, 0.01)
		return padT + plotH*(1-(math.Log10(v)-yLo)/(yHi-yLo))
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := "Latency by percentile"
	if r.Label != "" {
		title = r.Label + ": latency by percentile"
	}
	sub := fmt.Sprintf("%d requests in %.1f s (%.0f req/s), %d errors; %s, concurrency %d; %d CPUs",
		r.Requests, r.Seconds, r.RPS, r.Errors, r.Mode, r.Concurrency, r.Machine.CPUs)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#444">%s</text>`+"\n", padL, html.EscapeString(sub))
	// Grid and axes.
	for d := yLo; d <= yHi; d++ {
		y := yAt(math.Pow(10, d))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padL, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s ms</text>`+"\n", padL-6, y+4, trimFloat(math.Pow(10, d)))
	}
	for _, t := range []struct {
		q     float64
		label string
	}{{0, "0%"}, {0.5, "50%"}, {0.9, "90%"}, {0.95, "95%"}, {0.99, "99%"}, {0.999, "99.9%"}, {0.9999, "99.99%"}} {
		x := xAt(t.q)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, padT, x, padT+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, padT+plotH+18, t.label)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", padL, padT, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">percentile (the tail spread out)</text>`+"\n", padL+plotW/2, chartH-12)

	for i, s := range all {
		color := palette[i%len(palette)]
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var d strings.Builder
		n := len(s.sorted)
		for k := 0; k <= 400 && n > 0; k++ {
			q := 1 - math.Pow(10, -xMax*float64(k)/400)
			if k > 0 && q > 1-1/float64(n) {
				q = 1 - 1/float64(n) // no point past the last sample
			}
			cmd := "L"
			if k == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, xAt(q), yAt(ms(quantile(s.sorted, q))))
			if q == 1-1/float64(n) {
				break
			}
		}
		if n > 0 { // the maximum, at the right edge of what was sampled
			fmt.Fprintf(&d, "L%.1f %.1f", xAt(1-1/float64(n)), yAt(ms(s.sorted[n-1])))
		}
		fmt.Fprintf(&b, `<path data-op="%s" d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n",
			html.EscapeString(s.name), strings.TrimSpace(d.String()), color, dash)
		ly := padT + 10 + 36*i
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="3"%s/>`+"\n",
			padL+plotW+12, ly, padL+plotW+36, ly, color, dash)
		p95 := quantile(s.sorted, 0.95)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", padL+plotW+42, ly+4, html.EscapeString(s.name))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#555" font-size="11">n=%d p95=%.1f ms</text>`+"\n", padL+plotW+42, ly+18, n, ms(p95))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func trimFloat(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

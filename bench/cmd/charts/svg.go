package main

import (
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dealix/platform/bench"
)

// The chart's geometry, in SVG user units. The plot sits left, the legend
// in a column on its right, the configuration and the command under both.
const (
	chartW       = 960
	padL, padR   = 80, 240
	padT         = 64
	plotH        = 360
	axisB        = 56 // tick labels and the x label under the plot
	inset        = 24 // keeps the outermost markers off the frame
	lineH        = 15 // one line of the footer
	footerChars  = 150
	legendChars  = 26
	maxTicks     = 12
	markerRadius = 4
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

// check refuses a curve that cannot be drawn honestly: no series, a
// series without points, a spread that does not contain its median, a
// negative x on a log axis.
func check(c bench.Curve) error {
	if len(c.Series) == 0 {
		return errors.New("the curve has no series")
	}
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			return fmt.Errorf("series %q has no points", s.Name)
		}
		for i, p := range s.Points {
			switch {
			case c.LogX && p.X < 0:
				return fmt.Errorf("series %q, point %d: x %g is negative on a log axis", s.Name, i, p.X)
			case p.Lo > p.Y || p.Hi < p.Y:
				return fmt.Errorf("series %q, point %d: the spread [%g, %g] does not contain the median %g (a single run has lo = hi = y)", s.Name, i, p.Lo, p.Hi, p.Y)
			}
		}
	}
	return nil
}

// sortedPoints is a copy of points in x order, for a path drawn left to
// right; points of equal x keep their order.
func sortedPoints(points []bench.Point) []bench.Point {
	out := slices.Clone(points)
	slices.SortStableFunc(out, func(a, b bench.Point) int { return cmp.Compare(a.X, b.X) })
	return out
}

// axis maps values to SVG coordinates and lists its ticks.
type axis struct {
	at    func(float64) float64
	ticks []tick
	// brk is the coordinate of the break between zero and the first
	// decade of a log axis with a zero, or NaN.
	brk float64
}

type tick struct {
	at    float64
	label string
}

// linearRange is [lo, hi] widened to take in zero and rounded out to
// whole steps of about maxTicks/2 ticks.
func linearRange(lo, hi float64) (start, step float64, n int, err error) {
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	if hi == lo {
		hi = lo + 1
	}
	span := hi - lo
	if math.IsInf(span, 0) || math.IsNaN(span) {
		return 0, 0, 0, fmt.Errorf("values from %g to %g are too far apart to draw", lo, hi)
	}
	raw := span / (maxTicks / 2)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, f := range []float64{1, 2, 5} {
		if raw <= f*mag {
			step = f * mag
			break
		}
	}
	start, end := math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	if math.IsInf(start, 0) || math.IsInf(end, 0) || step == 0 || math.IsInf(step, 0) {
		return 0, 0, 0, fmt.Errorf("values from %g to %g are too far apart to draw", lo, hi)
	}
	// Zero is in [lo, hi], so the range is at most a few steps wider than
	// the span: n is small whatever the values.
	n = max(1, int(math.Round((end-start)/step)))
	return start, step, min(n, 4*maxTicks), nil
}

// linearAxis maps [lo, hi] (widened to whole steps, zero included) onto
// [from, to]; from > to for the y axis, which grows upwards.
func linearAxis(lo, hi, from, to float64) (axis, error) {
	start, step, n, err := linearRange(lo, hi)
	if err != nil {
		return axis{}, err
	}
	end := start + float64(n)*step
	label := numberFormat(math.Max(math.Abs(start), math.Abs(end)), step)
	a := axis{brk: math.NaN(), at: func(v float64) float64 {
		return from + (to-from)*(v-start)/(end-start)
	}}
	for i := 0; i <= n; i++ {
		v := start + float64(i)*step
		if math.Abs(v) < step/1e6 {
			v = 0 // no "-0" from rounding
		}
		a.ticks = append(a.ticks, tick{a.at(v), label(v)})
	}
	return a, nil
}

// logAxis maps the positive values on a log scale onto [from, to], one
// slot per decade; zero, when present, takes a slot of its own at the left
// end, set off by a break.
func logAxis(xs []float64, from, to float64) axis {
	hasZero := false
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		if x == 0 {
			hasZero = true
			continue
		}
		l := math.Log10(x)
		lo, hi = math.Min(lo, l), math.Max(hi, l)
	}
	dLo, dHi := 0.0, 1.0
	if !math.IsInf(lo, 0) {
		dLo, dHi = math.Floor(lo), math.Ceil(hi)
	}
	off := 0.0
	if hasZero {
		off = 1 // zero and one decade (0 and 1000 rows) need no second decade
	} else if dHi == dLo {
		dHi = dLo + 1
	}
	slots := dHi - dLo + off
	a := axis{brk: math.NaN()}
	a.at = func(x float64) float64 {
		if x <= 0 {
			return from
		}
		return from + (to-from)*(off+math.Log10(x)-dLo)/slots
	}
	if hasZero {
		a.ticks = append(a.ticks, tick{from, "0"})
		a.brk = from + (to-from)*0.5/slots
	}
	every := math.Ceil((dHi - dLo + 1) / maxTicks)
	for d := dLo; d <= dHi; d += every {
		a.ticks = append(a.ticks, tick{from + (to-from)*(off+d-dLo)/slots, decade(d)})
	}
	return a
}

// decade labels 10^d the way row counts are spoken: 1k, 100k, 1M.
func decade(d float64) string {
	switch {
	case d >= 0 && d < 3:
		return strconv.FormatFloat(math.Pow(10, d), 'f', 0, 64)
	case d >= 3 && d < 12:
		i := int(d)
		return strconv.Itoa(int(math.Pow10(i%3))) + []string{"k", "M", "G"}[i/3-1]
	case d < 0 && d > -4:
		return strconv.FormatFloat(math.Pow(10, d), 'f', int(-d), 64)
	}
	return "1e" + strconv.FormatFloat(d, 'f', 0, 64)
}

// numberFormat returns a label function for an axis whose largest value
// is top and whose ticks are step apart: one unit (k, M, G) and one
// number of decimals for every tick.
func numberFormat(top, step float64) func(float64) string {
	if top >= 1e15 || step < 1e-6 {
		return func(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
	}
	unit, div := "", 1.0
	switch {
	case top >= 1e9:
		unit, div = "G", 1e9
	case top >= 1e6:
		unit, div = "M", 1e6
	case top >= 1e4:
		unit, div = "k", 1e3
	}
	decimals := min(max(0, int(-math.Floor(math.Log10(step/div)+1e-9))), 6)
	return func(v float64) string {
		if v == 0 {
			return "0"
		}
		return strconv.FormatFloat(v/div, 'f', decimals, 64) + unit
	}
}

// value formats a measured figure for the tooltips and tables: four
// significant digits without an exponent (21000, 20.5, 0.8125) unless the
// figure is very large or very small.
func value(v float64) string {
	a := math.Abs(v)
	if a == 0 {
		return "0"
	}
	if a < 1e-3 || a >= 1e15 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	decimals := max(0, 3-int(math.Floor(math.Log10(a))))
	out := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(out, ".") {
		out = strings.TrimRight(strings.TrimRight(out, "0"), ".")
	}
	return out
}

// esc escapes s as XML character data; characters XML cannot carry
// become U+FFFD, so any input gives a document that parses.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

// wrap breaks s into lines of at most width runes, at spaces where it
// can, at newlines always.
func wrap(s string, width int) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := []rune{}
		flush := func() {
			lines = append(lines, string(line))
			line = line[:0:0]
		}
		for _, word := range strings.Fields(para) {
			w := []rune(word)
			if len(line) > 0 && len(line)+1+len(w) > width {
				flush()
			}
			for len(w) > width {
				if len(line) > 0 {
					flush()
				}
				line = append(line, w[:width]...)
				flush()
				w = w[width:]
			}
			if len(line) > 0 {
				line = append(line, ' ')
			}
			line = append(line, w...)
		}
		if len(line) > 0 {
			flush()
		}
	}
	return lines
}

// Render draws c as an SVG document: the title, the axes with their ticks
// and labels, one path per series with a marker at each point and a
// whisker over its spread (lo to hi), a legend, and the configuration and
// command under the chart. The y axis starts at zero, so a flat curve
// looks flat and a 10 % drop looks like one. The same curve always gives
// the same bytes.
func Render(w io.Writer, c bench.Curve) error {
	if err := check(c); err != nil {
		return err
	}
	plotW := float64(chartW - padL - padR)
	left, right := float64(padL+inset), float64(padL)+plotW-inset
	// The y axis runs from the frame's bottom to just under its top,
	// from zero (or the lowest value, if negative) to a round tick.
	top, bottom := float64(padT+8), float64(padT+plotH)

	// Each series' points in x order: a path drawn left to right.
	series := make([][]bench.Point, len(c.Series))
	var xs []float64
	yLo, yHi := math.Inf(1), math.Inf(-1)
	xLo, xHi := math.Inf(1), math.Inf(-1)
	for i, s := range c.Series {
		series[i] = sortedPoints(s.Points)
		for _, p := range s.Points {
			xs = append(xs, p.X)
			xLo, xHi = math.Min(xLo, p.X), math.Max(xHi, p.X)
			yLo, yHi = math.Min(yLo, p.Lo), math.Max(yHi, p.Hi)
		}
	}
	var xa axis
	if c.LogX {
		xa = logAxis(xs, left, right)
	} else {
		var err error
		if xa, err = linearAxis(xLo, xHi, left, right); err != nil {
			return fmt.Errorf("x axis: %w", err)
		}
	}
	ya, err := linearAxis(yLo, yHi, bottom, top)
	if err != nil {
		return fmt.Errorf("y axis: %w", err)
	}

	var footer []string
	if c.Config != "" {
		footer = append(footer, wrap("Configuration: "+c.Config, footerChars)...)
	}
	cmdLines := 0
	if c.Command != "" {
		cmd := wrap("$ "+c.Command, footerChars)
		cmdLines = len(cmd)
		footer = append(footer, cmd...)
	}

	// The document's height is known once the legend is drawn: b holds
	// what comes after the <svg> element's opening tag.
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("<title>%s</title>\n", esc(c.Title))
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text class="title" x="%d" y="28" font-size="15" font-weight="bold">%s</text>`+"\n", padL, esc(c.Title))

	// Grid, ticks and the frame.
	for _, t := range ya.ticks {
		p(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", padL, t.at, float64(padL)+plotW, t.at)
		p(`<text class="tick-y" x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padL-6, t.at+4, esc(t.label))
	}
	for _, t := range xa.ticks {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>`+"\n", t.at, padT, t.at, padT+plotH)
		p(`<text class="tick-x" x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", t.at, padT+plotH+18, esc(t.label))
	}
	p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="none" stroke="#333"/>`+"\n", padL, padT, plotW, plotH)
	if !math.IsNaN(xa.brk) {
		// Two slashes across the x axis: zero is not on the log scale.
		for _, dx := range []float64{-3, 3} {
			x := xa.brk + dx
			p(`<line class="break" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", x-3, padT+plotH+5, x+3, padT+plotH-5)
		}
	}
	p(`<text class="label-x" x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(padL)+plotW/2, padT+plotH+42, esc(c.XLabel))
	p(`<text class="label-y" transform="translate(20 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padT+plotH/2, esc(c.YLabel))

	// The series: spread whiskers under the line, markers over it.
	// Series that measured the same x are set a few units apart, so
	// equal figures do not hide each other's markers and whiskers.
	dodge := func(i int) float64 {
		if len(c.Series) < 2 {
			return 0
		}
		step := math.Min(5, 30/float64(len(c.Series)-1))
		return step * (float64(i) - float64(len(c.Series)-1)/2)
	}
	legendX := float64(padL) + plotW + 16
	ly := float64(padT + 8)
	for i, s := range c.Series {
		color := palette[i%len(palette)]
		dash := ""
		if i >= len(palette) {
			dash = ` stroke-dasharray="6 3"`
		}
		at := func(x float64) float64 { return xa.at(x) + dodge(i) }
		p(`<g class="series" data-series="%s">`+"\n", esc(s.Name))
		for _, pt := range series[i] {
			if pt.Hi > pt.Lo {
				x, y1, y2 := at(pt.X), ya.at(pt.Lo), ya.at(pt.Hi)
				p(`<g class="spread" stroke="%s">`, color)
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x, y1, x, y2)
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x-5, y1, x+5, y1)
				p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x-5, y2, x+5, y2)
				p("</g>\n")
			}
		}
		var d strings.Builder
		for k, pt := range series[i] {
			if k > 0 {
				d.WriteByte(' ')
			}
			fmt.Fprintf(&d, "%c%.1f %.1f", "ML"[min(k, 1)], at(pt.X), ya.at(pt.Y))
		}
		p(`<path d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", d.String(), color, dash)
		for _, pt := range series[i] {
			p(`<circle class="marker" cx="%.1f" cy="%.1f" r="%d" fill="%s" stroke="white"><title>%s: x %s, median %s (%s to %s)</title></circle>`+"\n",
				at(pt.X), ya.at(pt.Y), markerRadius, color, esc(s.Name), esc(xLabel(c.LogX, pt.X)), value(pt.Y), value(pt.Lo), value(pt.Hi))
		}
		p("</g>\n")

		// Legend: a swatch, the name, and the last point against the
		// first (at 1M rows against the empty table).
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", legendX, ly, legendX+22, ly, color, dash)
		for k, line := range wrap(s.Name, legendChars) {
			if k > 0 {
				ly += 14
			}
			p(`<text class="legend" x="%.1f" y="%.1f">%s</text>`+"\n", legendX+28, ly+4, esc(line))
		}
		if first, last := series[i][0], series[i][len(series[i])-1]; len(series[i]) > 1 && first.Y != 0 {
			p(`<text class="legend-ratio" x="%.1f" y="%.1f" fill="#555" font-size="11">at %s: %s× of %s</text>`+"\n",
				legendX+28, ly+18, esc(xLabel(c.LogX, last.X)), strconv.FormatFloat(last.Y/first.Y, 'f', 2, 64), esc(xLabel(c.LogX, first.X)))
			ly += 14
		}
		ly += 26
	}

	// Under the plot, or under the legend when many series make it longer.
	footTop := max(padT+plotH+axisB+8, int(math.Ceil(ly))+8)
	height := footTop + lineH*len(footer) + 12
	for k, line := range footer {
		font := ""
		if k >= len(footer)-cmdLines {
			font = ` font-family="monospace"`
		}
		p(`<text class="footer" x="20" y="%d" font-size="11" fill="#444"%s>%s</text>`+"\n", footTop+lineH*k, font, esc(line))
	}
	b.WriteString("</svg>\n")
	_, err = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n%s",
		chartW, height, chartW, height, b.String())
	return err
}

// xLabel names a point's x in the legend: row counts as 100k, 1M.
func xLabel(logX bool, x float64) string {
	if logX && x > 0 {
		if l := math.Log10(x); l == math.Floor(l) {
			return decade(l)
		}
	}
	return value(x)
}

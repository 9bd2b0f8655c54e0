package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dealix/platform/bench"
)

// writeTable prints a Markdown table with one row per series of each
// curve: its points as x: median (lo–hi), in x order, and its last point's
// median against its first (the figure the growth goals are stated in:
// at 1M rows against the empty table). names are the charts' file stems.
func writeTable(w io.Writer, names []string, curves []bench.Curve) error {
	var b strings.Builder
	b.WriteString("| chart | series | x: median (lo–hi) | last / first |\n| --- | --- | --- | --- |\n")
	for i, c := range curves {
		for _, s := range c.Series {
			pts := sortedPoints(s.Points)
			cells := make([]string, len(pts))
			for k, p := range pts {
				cells[k] = xLabel(c.LogX, p.X) + ": " + value(p.Y)
				if p.Hi > p.Lo {
					cells[k] += " (" + value(p.Lo) + "–" + value(p.Hi) + ")"
				}
			}
			ratio := "—"
			if first, last := pts[0], pts[len(pts)-1]; len(pts) > 1 && first.Y != 0 {
				ratio = strconv.FormatFloat(last.Y/first.Y, 'f', 2, 64)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(names[i]), cell(s.Name), cell(strings.Join(cells, "; ")), ratio)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell makes s safe inside one Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Curve is one published measurement of how a cost grows: one or more
// series of (x, y) points, written as JSON under results/ by the growth
// benchmarks and drawn as SVG under charts/ by cmd/charts.
type Curve struct {
	// Name is the file stem: results/<Name>.json, charts/<Name>.svg.
	Name string `json:"name"`
	// Title, XLabel and YLabel label the chart.
	Title  string `json:"title"`
	XLabel string `json:"x_label"`
	YLabel string `json:"y_label"`
	// LogX draws the x axis on a log scale (row counts 0, 100k, 1M);
	// zero is drawn at the axis' left end.
	LogX bool `json:"log_x,omitempty"`
	// Config states each side's configuration, printed under the chart.
	Config string `json:"config"`
	// Command reproduces the figures.
	Command string   `json:"command"`
	Series  []Series `json:"series"`
}

// Series is one line of a Curve.
type Series struct {
	Name   string  `json:"name"`
	Points []Point `json:"points"`
}

// Point is one measured value: Y is the median of the runs, Lo and Hi
// their spread (equal to Y after a single run).
type Point struct {
	X  float64 `json:"x"`
	Y  float64 `json:"y"`
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// WriteCurve writes c to dir/<c.Name>.json, creating dir when it is
// missing. Benchmarks pass "results" (relative to bench/).
func WriteCurve(dir string, c Curve) error {
	if c.Name == "" {
		return fmt.Errorf("bench: a curve needs a name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, c.Name+".json"), append(data, '\n'), 0o644)
}

// ReadCurve reads one file WriteCurve wrote.
func ReadCurve(path string) (Curve, error) {
	var c Curve
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("bench: %s: %w", path, err)
	}
	return c, nil
}

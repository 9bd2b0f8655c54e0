package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dealix/platform/bench"
)

// sample is a growth curve as a benchmark publishes it: two series over
// 0, 100k and 1M rows, some points with a spread and one without.
func sample() bench.Curve {
	return bench.Curve{
		Name:    "dlq-throughput-growth",
		Title:   "dlq fetch-and-complete throughput",
		XLabel:  "finished jobs in the table",
		YLabel:  "jobs/s",
		LogX:    true,
		Config:  "dlq: Concurrency 2,000, FetchCooldown 2ms; PostgreSQL 15, 2 cores",
		Command: "cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkGrowth -benchtime 1x",
		Series: []bench.Series{
			{Name: "finished jobs", Points: []bench.Point{
				{X: 1_000_000, Y: 19_900, Lo: 19_000, Hi: 20_400}, // out of order on purpose
				{X: 0, Y: 21_000, Lo: 20_100, Hi: 21_900},
				{X: 100_000, Y: 20_500, Lo: 20_500, Hi: 20_500},
			}},
			{Name: "10k scheduled", Points: []bench.Point{
				{X: 0, Y: 20_800, Lo: 20_000, Hi: 21_500},
				{X: 100_000, Y: 20_300, Lo: 19_900, Hi: 20_600},
				{X: 1_000_000, Y: 19_500, Lo: 18_000, Hi: 20_100},
			}},
		},
	}
}

// node is an SVG element, parsed with encoding/xml.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []node     `xml:",any"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// all lists n and its descendants named local, in document order.
func (n node) all(local string) []node {
	var out []node
	if n.XMLName.Local == local {
		out = append(out, n)
	}
	for _, c := range n.Nodes {
		out = append(out, c.all(local)...)
	}
	return out
}

func parseSVG(t testing.TB, data []byte) node {
	t.Helper()
	var root node
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("the SVG does not parse as XML: %v\n%s", err, data)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element %v, want svg in the SVG namespace", root.XMLName)
	}
	return root
}

func render(t testing.TB, c bench.Curve) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Render(&buf, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func texts(root node, class string) []string {
	var out []string
	for _, n := range root.all("text") {
		if c := n.attr("class"); c == class || strings.HasPrefix(c, class+"-") {
			out = append(out, n.Text)
		}
	}
	return out
}

func num(t testing.TB, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRenderKnownCurve(t *testing.T) {
	c := sample()
	root := parseSVG(t, render(t, c))

	if got := len(root.all("path")); got != len(c.Series) {
		t.Fatalf("%d paths, want one per series (%d)", got, len(c.Series))
	}
	for i, p := range root.all("path") {
		if d := p.attr("d"); strings.Count(d, "M") != 1 || strings.Count(d, "L") != len(c.Series[i].Points)-1 {
			t.Errorf("series %d: path %q, want one move and a line to each further point", i, d)
		}
	}
	if got := len(root.all("circle")); got != 6 {
		t.Fatalf("%d markers, want 6 (3 points in each of 2 series)", got)
	}
	// Five points have lo < hi; the one with lo = hi = y gets no whisker.
	spreads := 0
	for _, g := range root.all("g") {
		if g.attr("class") == "spread" {
			spreads++
			if len(g.Nodes) != 3 {
				t.Errorf("a whisker of %d lines, want 3 (the bar and two caps)", len(g.Nodes))
			}
		}
	}
	if spreads != 5 {
		t.Fatalf("%d whiskers, want 5", spreads)
	}

	if got := texts(root, "title"); len(got) != 1 || got[0] != c.Title {
		t.Errorf("title %q, want %q", got, c.Title)
	}
	if got := texts(root, "label"); len(got) != 2 || got[0] != c.XLabel || got[1] != c.YLabel {
		t.Errorf("axis labels %q, want %q and %q", got, c.XLabel, c.YLabel)
	}
	if got := texts(root, "tick-x"); strings.Join(got[:3], " ") != "0 100k 1M" {
		t.Errorf("x ticks %q, want 0 100k 1M first", got)
	}
	yTicks := texts(root, "tick-y")
	if len(yTicks) < 3 || yTicks[0] != "0" || !strings.HasSuffix(yTicks[len(yTicks)-1], "k") {
		t.Errorf("y ticks %q, want 0 up to some k", yTicks)
	}
	legend := strings.Join(texts(root, "legend"), "\n")
	for _, want := range []string{"finished jobs", "10k scheduled", "at 1M: 0.95× of 0", "at 1M: 0.94× of 0"} {
		if !strings.Contains(legend, want) {
			t.Errorf("legend %q lacks %q", legend, want)
		}
	}
	footer := strings.Join(texts(root, "footer"), " ")
	if !strings.Contains(footer, c.Config) || !strings.Contains(footer, c.Command) {
		t.Errorf("footer %q lacks the configuration or the command", footer)
	}
}

// TestRenderLogXPlacement checks the log axis: 0 at the axis' left end,
// then 100k, then 1M, a decade a slot, so 100k sits halfway.
func TestRenderLogXPlacement(t *testing.T) {
	c := sample()
	c.Series = c.Series[:1] // no dodging: markers sit on their ticks
	root := parseSVG(t, render(t, c))
	var cx []float64
	for _, m := range root.all("circle") {
		cx = append(cx, num(t, m.attr("cx")))
	}
	if len(cx) != 3 {
		t.Fatalf("%d markers, want 3", len(cx))
	}
	if !(cx[0] < cx[1] && cx[1] < cx[2]) {
		t.Fatalf("markers at x %v: want 0, 100k, 1M from left to right", cx)
	}
	frame := root.all("rect")[1]
	if left := num(t, frame.attr("x")); cx[0] != left+inset {
		t.Errorf("x = 0 drawn at %v, want the axis' left end %v", cx[0], left+inset)
	}
	if mid := (cx[0] + cx[2]) / 2; cx[1] != mid {
		t.Errorf("100k drawn at %v, want %v halfway between 0 and 1M", cx[1], mid)
	}
	// The ticks stand where the markers are.
	var ticks []float64
	for _, n := range root.all("text") {
		if n.attr("class") == "tick-x" {
			ticks = append(ticks, num(t, n.attr("x")))
		}
	}
	if len(ticks) != 3 || ticks[0] != cx[0] || ticks[1] != cx[1] || ticks[2] != cx[2] {
		t.Errorf("x ticks at %v, markers at %v", ticks, cx)
	}
	// A break marks the gap between zero and the first decade.
	breaks := 0
	for _, l := range root.all("line") {
		if l.attr("class") == "break" {
			breaks++
			if x := num(t, l.attr("x1")); x <= cx[0] || x >= cx[1] {
				t.Errorf("break at %v, want between %v and %v", x, cx[0], cx[1])
			}
		}
	}
	if breaks != 2 {
		t.Errorf("%d break strokes, want 2", breaks)
	}
}

// Without a zero the log axis has no break and its first decade starts
// at the left end.
func TestRenderLogXWithoutZero(t *testing.T) {
	c := sample()
	c.Series = []bench.Series{{Name: "s", Points: []bench.Point{{X: 1000, Y: 1, Lo: 1, Hi: 1}, {X: 1e6, Y: 2, Lo: 2, Hi: 2}}}}
	root := parseSVG(t, render(t, c))
	for _, l := range root.all("line") {
		if l.attr("class") == "break" {
			t.Fatal("a break on an axis without zero")
		}
	}
	if got := strings.Join(texts(root, "tick-x"), " "); got != "1k 10k 100k 1M" {
		t.Errorf("x ticks %q", got)
	}
}

// The short form's sizes, 0 and 1000 rows: zero at the left end, 1k at
// the right, no empty decade after it.
func TestRenderLogXShortSizes(t *testing.T) {
	c := sample()
	c.Series = []bench.Series{{Name: "s", Points: []bench.Point{{X: 0, Y: 1, Lo: 1, Hi: 1}, {X: 1000, Y: 2, Lo: 2, Hi: 2}}}}
	root := parseSVG(t, render(t, c))
	if got := strings.Join(texts(root, "tick-x"), " "); got != "0 1k" {
		t.Errorf("x ticks %q", got)
	}
	frame := root.all("rect")[1]
	right := num(t, frame.attr("x")) + num(t, frame.attr("width")) - inset
	if cx := num(t, root.all("circle")[1].attr("cx")); cx != right {
		t.Errorf("1k drawn at %v, want the axis' right end %v", cx, right)
	}
}

func TestRenderLinearAxes(t *testing.T) {
	c := bench.Curve{Title: "t", XLabel: "goroutines", YLabel: "ms", Series: []bench.Series{
		{Name: "a", Points: []bench.Point{{X: 1, Y: 0.5, Lo: 0.4, Hi: 0.6}, {X: 16, Y: 2.25, Lo: 2, Hi: 3}, {X: 64, Y: 7.5, Lo: 7, Hi: 8}}},
	}}
	root := parseSVG(t, render(t, c))
	if got := strings.Join(texts(root, "tick-x"), " "); got != "0 20 40 60 80" {
		t.Errorf("x ticks %q", got)
	}
	if got := strings.Join(texts(root, "tick-y"), " "); got != "0 2 4 6 8" {
		t.Errorf("y ticks %q", got)
	}
	var cx []float64
	for _, m := range root.all("circle") {
		cx = append(cx, num(t, m.attr("cx")))
	}
	// 1, 16, 64 on a linear axis from 0 to 80.
	if r := (cx[1] - cx[0]) / (cx[2] - cx[0]); r < 0.238 || r > 0.239 {
		t.Errorf("markers at %v: (16-1)/(64-1) of the way is %.4f", cx, r)
	}
}

func TestRenderDeterministic(t *testing.T) {
	a, b := render(t, sample()), render(t, sample())
	if !bytes.Equal(a, b) {
		t.Fatal("two renders of one curve differ")
	}
}

func TestRenderEscapes(t *testing.T) {
	c := sample()
	c.Title = `p99 <  1 ms & "fast"` + "\x00\xff"
	c.Series[0].Name = "<script>alert(1)</script>"
	root := parseSVG(t, render(t, c))
	if got := texts(root, "title")[0]; got != `p99 <  1 ms & "fast"`+"\uFFFD\uFFFD" {
		t.Errorf("title %q", got)
	}
	if got := root.all("g")[0].attr("data-series"); got != c.Series[0].Name {
		t.Errorf("data-series %q", got)
	}
	if len(root.all("script")) != 0 {
		t.Error("a series name became an element")
	}
}

func TestRenderRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*bench.Curve)
		want string
	}{
		"no series":       {func(c *bench.Curve) { c.Series = nil }, "no series"},
		"empty series":    {func(c *bench.Curve) { c.Series[1].Points = nil }, `series "10k scheduled" has no points`},
		"lo above median": {func(c *bench.Curve) { c.Series[0].Points[1].Lo = 30_000 }, `series "finished jobs", point 1: the spread`},
		"hi below median": {func(c *bench.Curve) { c.Series[1].Points[2].Hi = 0 }, `series "10k scheduled", point 2: the spread`},
		"negative log x":  {func(c *bench.Curve) { c.Series[0].Points[0].X = -1 }, "negative on a log axis"},
		"too wide": {func(c *bench.Curve) {
			c.LogX = false
			c.Series[0].Points[0].X, c.Series[0].Points[1].X = -1e308, 1e308
		}, "x axis: values from"},
	} {
		t.Run(name, func(t *testing.T) {
			c := sample()
			tc.edit(&c)
			err := Render(io.Discard, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	got := wrap("one two three\nfour fivesixseveneight", 7)
	want := []string{"one two", "three", "four", "fivesix", "sevenei", "ght"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("wrap: %q, want %q", got, want)
	}
}

// TestRunDrawsEachCurve writes two curves the way benchmarks do and draws
// them: one SVG each, named after the curve, the same bytes on a rerun.
func TestRunDrawsEachCurve(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "results"), filepath.Join(dir, "charts")
	a, b := sample(), sample()
	b.Name, b.LogX = "durable-steps-per-s", false
	for _, c := range []bench.Curve{a, b} {
		if err := bench.WriteCurve(in, c); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	if err := run(in, out, false, &log); err != nil {
		t.Fatal(err)
	}
	first := map[string][]byte{}
	for _, name := range []string{"dlq-throughput-growth", "durable-steps-per-s"} {
		data, err := os.ReadFile(filepath.Join(out, name+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		parseSVG(t, data)
		first[name] = data
		if !strings.Contains(log.String(), name+".svg") {
			t.Errorf("output %q does not name %s.svg", log.String(), name)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 2 {
		t.Errorf("%d files in charts/, want 2", len(entries))
	}
	if err := run(in, out, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	for name, data := range first {
		again, _ := os.ReadFile(filepath.Join(out, name+".svg"))
		if !bytes.Equal(again, data) {
			t.Errorf("%s.svg changed on a rerun", name)
		}
	}
}

// TestRunBadJSON: a file that is not a curve is named in the error, and
// the other files are still drawn.
func TestRunBadJSON(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "results"), filepath.Join(dir, "charts")
	if err := bench.WriteCurve(in, sample()); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(in, "broken.json")
	if err := os.WriteFile(bad, []byte(`{"name": "broken", "series": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	undrawable := filepath.Join(in, "no-points.json")
	data, _ := json.Marshal(bench.Curve{Name: "no-points", Series: []bench.Series{{Name: "s"}}})
	if err := os.WriteFile(undrawable, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(in, out, false, io.Discard)
	if err == nil {
		t.Fatal("no error for a broken file")
	}
	for _, want := range []string{bad, "unexpected end of JSON input", undrawable, `series "s" has no points`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) {
		t.Errorf("error %v does not wrap the JSON syntax error", err)
	}
	if _, err := os.Stat(filepath.Join(out, "dlq-throughput-growth.svg")); err != nil {
		t.Errorf("the good curve was not drawn: %v", err)
	}
	for _, name := range []string{"broken.svg", "no-points.svg"} {
		if _, err := os.Stat(filepath.Join(out, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written for a file that could not be drawn", name)
		}
	}
}

func TestRunEmptyResults(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "results"), filepath.Join(dir, "charts")
	if err := os.MkdirAll(filepath.Join(in, "old"), 0o755); err != nil { // a directory is not a result
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := run(in, out, false, &log); err != nil {
		t.Fatalf("an empty results directory: %v", err)
	}
	if !strings.Contains(log.String(), "no results in "+in) {
		t.Errorf("output %q does not say there is nothing to draw", log.String())
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("charts/ created with nothing to draw")
	}
}

func TestRunMissingResults(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "results")
	err := run(missing, t.TempDir(), false, io.Discard)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want one naming %s", err, missing)
	}
}

// FuzzRender: whatever JSON a results file holds, drawing it (and its
// table) never panics, and what it draws parses as XML with one path per
// series.
func FuzzRender(f *testing.F) {
	seed, _ := json.Marshal(sample())
	f.Add(seed)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"log_x":true,"series":[{"name":"z","points":[{"x":0,"y":0,"lo":0,"hi":0}]}]}`))
	f.Add([]byte(`{"series":[{"name":"a","points":[{"x":1e308,"y":-1e308,"lo":-1e308,"hi":1e308}]}]}`))
	f.Add([]byte(`{"log_x":true,"series":[{"points":[{"x":5e-324,"y":5e-324,"lo":0,"hi":1e300},{"x":1e300,"y":1}]}]}`))
	f.Add([]byte(`{"title":"\u0000<&>","config":"` + strings.Repeat("word ", 100) + `","series":[{"name":"\ud800","points":[{"x":3,"y":3,"lo":3,"hi":3},{"x":3,"y":3,"lo":3,"hi":3}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c bench.Curve
		if json.Unmarshal(data, &c) != nil {
			return
		}
		var buf bytes.Buffer
		if err := Render(&buf, c); err != nil {
			return
		}
		root := parseSVG(t, buf.Bytes())
		if got := len(root.all("path")); got != len(c.Series) {
			t.Fatalf("%d paths for %d series", got, len(c.Series))
		}
		if err := writeTable(io.Discard, []string{"fuzz"}, []bench.Curve{c}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRunTable(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "results")
	c := sample()
	c.Series[1].Name = "a|b"
	if err := bench.WriteCurve(in, c); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := run(in, filepath.Join(dir, "charts"), true, &log); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| chart | series | x: median (lo–hi) | last / first |",
		"| dlq-throughput-growth | finished jobs | 0: 21000 (20100–21900); 100k: 20500; 1M: 19900 (19000–20400) | 0.95 |",
		`| dlq-throughput-growth | a\|b | 0: 20800 (20000–21500); 100k: 20300 (19900–20600); 1M: 19500 (18000–20100) | 0.94 |`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, log.String())
		}
	}
}

func TestValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 21000: "21000", 20.5: "20.5", 0.8125: "0.8125", 1234.5678: "1235", -3: "-3", 1e-5: "1e-05", 2e15: "2e+15"} {
		if got := value(v); got != want {
			t.Errorf("value(%v) = %q, want %q", v, got, want)
		}
	}
}

// Many series make the legend longer than the plot: the footer moves
// under it and the document grows to hold both.
func TestRenderLongLegend(t *testing.T) {
	c := sample()
	c.Series = nil
	for i := range 14 {
		y := float64(100 + i)
		c.Series = append(c.Series, bench.Series{Name: "series " + strconv.Itoa(i), Points: []bench.Point{{X: 0, Y: y, Lo: y, Hi: y}, {X: 1e6, Y: y, Lo: y, Hi: y}}})
	}
	root := parseSVG(t, render(t, c))
	var lastLegend float64
	for _, n := range root.all("text") {
		if strings.HasPrefix(n.attr("class"), "legend") {
			lastLegend = max(lastLegend, num(t, n.attr("y")))
		}
	}
	var footer []float64
	for _, n := range root.all("text") {
		if n.attr("class") == "footer" {
			footer = append(footer, num(t, n.attr("y")))
		}
	}
	if len(footer) == 0 || footer[0] <= lastLegend {
		t.Fatalf("footer at %v, legend down to %v", footer, lastLegend)
	}
	if h := num(t, root.attr("height")); h < footer[len(footer)-1] {
		t.Errorf("height %v, footer down to %v", h, footer[len(footer)-1])
	}
	if got := len(root.all("path")); got != 14 {
		t.Errorf("%d paths, want 14", got)
	}
}

// Command charts draws the growth curves the benchmarks publish: one SVG
// per results/<name>.json (written by bench.WriteCurve) into
// charts/<name>.svg, with the curve's configuration and command under it.
//
//	cd bench && go run ./cmd/charts [-in results] [-out charts] [-table]
//
// With -table it also prints a Markdown table of every curve's points and
// each series' last point against its first, for bench/README.md.
//
// The same results always give the same bytes, so a chart changes in a
// commit only when its figures do. A file that cannot be read or drawn is
// named in the error and the others are still drawn; an empty results
// directory is not an error.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dealix/platform/bench"
)

func main() {
	in := flag.String("in", "results", "directory of the curves' JSON files (bench.WriteCurve)")
	out := flag.String("out", "charts", "directory the SVG files are written to")
	table := flag.Bool("table", false, "also print a Markdown table of the curves' points")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "charts: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*in, *out, *table, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run draws every in/*.json into out/*.svg and says what it wrote on
// stdout, followed by the table when table is set. It draws what it can
// and returns one error per file it could not, each naming the file.
func run(in, out string, table bool, stdout io.Writer) error {
	entries, err := os.ReadDir(in)
	if err != nil {
		return fmt.Errorf("charts: the results directory: %w (the growth benchmarks create it; -in names another)", err)
	}
	var files []string
	for _, e := range entries { // ReadDir sorts by name: the same order every run
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			files = append(files, filepath.Join(in, e.Name()))
		}
	}
	if len(files) == 0 {
		fmt.Fprintf(stdout, "charts: no results in %s (no *.json): nothing to draw\n", in)
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	var errs []error
	var names []string
	var drawn []bench.Curve
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		svg := filepath.Join(out, name+".svg")
		c, err := draw(file, svg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "%s -> %s\n", file, svg)
		names, drawn = append(names, name), append(drawn, c)
	}
	if table && len(drawn) > 0 {
		fmt.Fprintln(stdout)
		if err := writeTable(stdout, names, drawn); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// draw renders one results file into one SVG file, named after the
// results file (bench.WriteCurve names it after the curve).
func draw(file, svg string) (bench.Curve, error) {
	c, err := bench.ReadCurve(file) // its errors name the file
	if err != nil {
		return c, fmt.Errorf("charts: %w", err)
	}
	var buf bytes.Buffer
	if err := Render(&buf, c); err != nil {
		return c, fmt.Errorf("charts: %s: %w", file, err)
	}
	if err := os.WriteFile(svg, buf.Bytes(), 0o644); err != nil {
		return c, fmt.Errorf("charts: %w", err)
	}
	return c, nil
}

// Command gates runs a gate file and prints its report.
//
//	go run ./gates/cmd/gates -file gates/sets/architecture.json
//	go run ./gates/cmd/gates -file launch.json -format markdown -var BASE_URL=http://127.0.0.1:8080
//
// It exits 0 when the set passes, 1 when it fails, and 2 when it could not
// run (a broken gate file is named with its line and column).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dealix/platform/gates"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// vars collects repeated -var NAME=value flags.
type vars map[string]string

func (v vars) String() string { return fmt.Sprint(map[string]string(v)) }

func (v vars) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=value, got %q", s)
	}
	v[name] = value
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gates", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "gate file to run (JSON)")
	format := fs.String("format", "text", "report format: text, markdown or json")
	values := vars{}
	fs.Var(values, "var", "NAME=value filling ${NAME} in the gate file (repeatable; else the environment)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	write, ok := writers[*format]
	if *file == "" || !ok {
		fmt.Fprintln(stderr, "gates: -file is required and -format is text, markdown or json")
		return 2
	}
	set, err := gates.Load(*file, values)
	if err != nil {
		fmt.Fprintf(stderr, "gates: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := set.Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "gates: %v\n", err)
		return 2
	}
	if err := write(report, stdout); err != nil {
		fmt.Fprintf(stderr, "gates: %v\n", err)
		return 2
	}
	return report.ExitCode()
}

var writers = map[string]func(*gates.Report, io.Writer) error{
	"text":     (*gates.Report).WriteText,
	"markdown": (*gates.Report).WriteMarkdown,
	"json":     (*gates.Report).WriteJSON,
}

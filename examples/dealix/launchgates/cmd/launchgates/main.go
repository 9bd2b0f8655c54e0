// Command launchgates runs the Dealix launch gates or the release readiness
// matrix against a running reference server and prints the report.
//
//	go run ./examples/dealix/launchgates/cmd/launchgates -set launch \
//	    -base-url http://127.0.0.1:8080 -admin-token "$ADMIN_TOKEN" -user-token "$USER_TOKEN" \
//	    -database-url "$DATABASE_URL" -format markdown
//	go run ./examples/dealix/launchgates/cmd/launchgates -set release -only RR12 ...
//
// Every flag also reads its environment variable (BASE_URL, ADMIN_TOKEN,
// USER_TOKEN, DATABASE_URL, APP_DATABASE_URL, ALLOWED_ORIGIN). It exits 0
// when the set passes, 1 when it fails and 2 when it could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/dealix/platform/examples/dealix/launchgates"
	"github.com/dealix/platform/gates"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("launchgates", flag.ContinueOnError)
	fs.SetOutput(stderr)
	which := fs.String("set", "launch", "launch or release")
	format := fs.String("format", "text", "text, brief (gate lines and the score line), markdown or json")
	only := fs.String("only", "", "comma-separated gate ids to run (the rule then asks for all of them)")
	var cfg launchgates.Config
	fs.StringVar(&cfg.BaseURL, "base-url", getenv("BASE_URL"), "the running server (BASE_URL)")
	fs.StringVar(&cfg.AdminToken, "admin-token", getenv("ADMIN_TOKEN"), "credential with the admin scope (ADMIN_TOKEN)")
	fs.StringVar(&cfg.UserToken, "user-token", getenv("USER_TOKEN"), "credential of the same tenant without admin (USER_TOKEN)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", getenv("DATABASE_URL"), "the server's database as a role that reads every row and may create databases (DATABASE_URL)")
	fs.StringVar(&cfg.AppDatabaseURL, "app-database-url", getenv("APP_DATABASE_URL"), "the database as the serving role, for the RLS audit (APP_DATABASE_URL)")
	fs.StringVar(&cfg.AllowedOrigin, "origin", getenv("ALLOWED_ORIGIN"), "a browser origin the server allows (ALLOWED_ORIGIN)")
	fs.StringVar(&cfg.Root, "root", ".", "the repository's root")
	fs.StringVar(&cfg.PGBin, "pg-bin", "", "directory of pg_dump and pg_restore (default: PATH)")
	ci := fs.String("ci", "", "command that runs CI for T3, such as 'bash .ci/run' (default: T3 blocked)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *ci != "" {
		cfg.CICommand = strings.Fields(*ci)
	}
	write, ok := writers[*format]
	if cfg.BaseURL == "" || !ok || (*which != "launch" && *which != "release") {
		fmt.Fprintln(stderr, "launchgates: -base-url (or BASE_URL) is required, -set is launch or release, -format text, brief, markdown or json")
		return 2
	}
	set := launchgates.LaunchSet(cfg)
	if *which == "release" {
		set = launchgates.ReleaseSet(cfg)
	}
	if *only != "" {
		ids := strings.Split(*only, ",")
		set.Gates = slices.DeleteFunc(set.Gates, func(g gates.Gate) bool { return !slices.Contains(ids, g.ID) })
		set.Rule = gates.Rule{}
		if len(set.Gates) != len(ids) {
			fmt.Fprintf(stderr, "launchgates: -only %s names a gate the %s set does not have\n", *only, *which)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := set.Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "launchgates: %v\n", err)
		return 2
	}
	if err := write(report, stdout); err != nil {
		fmt.Fprintf(stderr, "launchgates: %v\n", err)
		return 2
	}
	return report.ExitCode()
}

var writers = map[string]func(*gates.Report, io.Writer) error{
	"text":     (*gates.Report).WriteText,
	"markdown": (*gates.Report).WriteMarkdown,
	"json":     (*gates.Report).WriteJSON,
	"brief":    writeBrief,
}

// writeBrief is the text report without its title and rule lines, so the
// last lines of a one-gate run (what a gate file's command check shows)
// hold the gate's evidence or reason.
func writeBrief(r *gates.Report, w io.Writer) error {
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	lines = slices.DeleteFunc(lines[1:], func(l string) bool { return strings.HasPrefix(l, "Rule: ") })
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

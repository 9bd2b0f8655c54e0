// Package sets_test runs this repository's gate files: the architecture
// brief against the tree, and the release matrix's parse.
package sets_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dealix/platform/gates"
)

func TestArchitectureBriefRuns(t *testing.T) {
	set, err := gates.Load("architecture.json", map[string]string{"ROOT": "../.."})
	if err != nil {
		t.Fatal(err)
	}
	report, err := set.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := report.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("architecture brief:\n%s", text.String())
	if len(report.Results) != len(set.Gates) || !strings.Contains(text.String(), "OVERALL SCORE: ") {
		t.Fatalf("report of %d gates for a set of %d", len(report.Results), len(set.Gates))
	}
	// What this tree holds for certain closes: the gates package itself,
	// the reference server's entry point, the library's packages.
	for _, gr := range report.Results {
		if gr.Result.Status == gates.Blocked {
			t.Errorf("%s blocked: the brief checks only the tree", gr.Gate.ID)
		}
		switch gr.Gate.ID {
		case "A1", "A6", "A9", "A12", "A15", "A18", "A21", "A23", "A24", "A26":
			if gr.Result.Status != gates.Closed {
				t.Errorf("%s: %s (%s)", gr.Gate.ID, gr.Result.Status, gr.Result.Reason)
			}
		}
	}
}

func TestReleaseMatrixParses(t *testing.T) {
	vars := map[string]string{"BASE_URL": "http://127.0.0.1:8080", "ADMIN_TOKEN": "a", "USER_TOKEN": "u",
		"DATABASE_URL": "postgres://127.0.0.1/dealix", "ROOT": "../.."}
	set, err := gates.Load("release.json", vars)
	if err != nil {
		t.Fatal(err)
	}
	if set.Verdict != "RELEASE READY" || len(set.Gates) != 12 || set.Rule != (gates.Rule{}) {
		t.Fatalf("%q, %d gates, rule %+v", set.Verdict, len(set.Gates), set.Rule)
	}
	// A variable given neither as a value nor in the environment is
	// refused, naming it, rather than sent as an empty credential.
	delete(vars, "USER_TOKEN")
	t.Setenv("USER_TOKEN", "")
	if err := os.Unsetenv("USER_TOKEN"); err != nil {
		t.Fatal(err)
	}
	if _, err := gates.Load("release.json", vars); err == nil || !strings.Contains(err.Error(), "${USER_TOKEN} is not set") {
		t.Fatalf("release.json without USER_TOKEN: %v", err)
	}
}

// TestTestsSetRunsTheREADMECommand checks that Gate 3 runs exactly the
// test command the README gives (running it here would run these tests
// again, so its outcome is left to `go run ./gates/cmd/gates -file
// gates/sets/tests.json -var ROOT=.`).
func TestTestsSetRunsTheREADMECommand(t *testing.T) {
	set, err := gates.Load("tests.json", map[string]string{"ROOT": "../.."})
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "## Run the tests")
	_, block, _ := strings.Cut(section, "```\n")
	command, _, _ := strings.Cut(block, "\n")
	check, ok := set.Gates[0].Check.(gates.CommandCheck)
	if !ok || len(check.Args) != 3 || check.Args[2] != command || check.Dir != "../.." {
		t.Fatalf("Gate 3 runs %+v, the README's command is %q", set.Gates[0].Check, command)
	}
}

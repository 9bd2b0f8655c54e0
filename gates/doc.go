// Package gates turns release and launch gates into executable checks.
//
// A Gate has an id, a title, an area, a priority (P0–P2), a definition of
// done and a Check. Running a check yields a Result: closed, partial, open
// or blocked, with the evidence it measured and how long it took. Blocked
// carries its reason (missing credentials, needs a person) and never counts
// as closed: a gate is reported closed only when its check verified it.
//
// Check kinds cover what a repository and a running service can prove:
//
//	FileCheck       a file or directory exists, optionally non-empty, with required headings
//	GoPackageCheck  a Go package exists, has a doc.go, and exports named symbols
//	CommandCheck    a command exits 0 within a timeout
//	HTTPCheck       an HTTP probe: status, a JSON field's value, headers, a latency budget
//	SQLCheck        a SQL query returns the expected number of rows (or a single true)
//	CheckFunc       any Go function
//	BlockedCheck    a gate that cannot be verified here, with the reason
//
// A Set groups gates under a Rule: every gate closed (the zero Rule), or at
// least N closed including every P0 (the launch rule: 24 of 30 with all P0
// closed). Set.Run runs the checks concurrently, each under its own timeout,
// and returns a Report, which renders as text ending in a score line
// ("OVERALL SCORE: 100.0% (40/40) — RELEASE READY: YES"), as the Markdown
// table of a launch-gates document, or as JSON. ExitCode maps it to a
// process status: 0 pass, 1 fail; 2 is for a set that could not run.
//
// Sets live in Go or in a JSON file beside the repository's code (Load,
// Parse); a broken file is refused with its line and column. The command
// gates/cmd/gates runs a file:
//
//	go run ./gates/cmd/gates -file gates/sets/architecture.json
//
// As in net/http's CrossOriginProtection, each check is a pure function of
// its inputs (Check.Run) and the HTTP and CLI adapters only present it.
package gates

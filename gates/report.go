package gates

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// GateResult is one gate and what its check found.
type GateResult struct {
	Gate   Gate   `json:"gate"`
	Result Result `json:"result"`
}

// Report is the outcome of running a set.
type Report struct {
	// Name is the set's name.
	Name string `json:"name"`
	// Verdict labels the score line, such as "RELEASE READY".
	Verdict string `json:"verdict"`
	// Rule is the set's rule.
	Rule Rule `json:"rule"`
	// Results are in the set's order.
	Results []GateResult `json:"results"`
	// Counts is the number of gates in each status.
	Counts map[Status]int `json:"counts"`
	// OpenP0 lists the P0 gates that did not close.
	OpenP0 []string `json:"open_p0,omitempty"`
	// Pass is the rule's verdict.
	Pass bool `json:"pass"`
}

func newReport(s *Set, results []GateResult) *Report {
	r := &Report{Name: s.Name, Verdict: cmp.Or(s.Verdict, "READY"), Rule: s.Rule, Results: results, Counts: map[Status]int{}}
	for _, gr := range results {
		r.Counts[gr.Result.Status]++
		if gr.Gate.Priority == P0 && gr.Result.Status != Closed {
			r.OpenP0 = append(r.OpenP0, gr.Gate.ID)
		}
	}
	need := cmp.Or(s.Rule.MinClosed, len(results))
	r.Pass = r.Counts[Closed] >= need && (!s.Rule.AllP0 || len(r.OpenP0) == 0)
	return r
}

// Closed is the number of gates that closed.
func (r *Report) Closed() int { return r.Counts[Closed] }

// ExitCode is the process status for r: 0 when the set passed, 1 when it
// failed. (2, a set that could not run, has no report.)
func (r *Report) ExitCode() int {
	if r.Pass {
		return 0
	}
	return 1
}

// ScoreLine is the last line of the text report, as the release scripts
// print it: "OVERALL SCORE: 100.0% (40/40) — RELEASE READY: YES".
func (r *Report) ScoreLine() string {
	total := len(r.Results)
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(r.Closed()) / float64(total)
	}
	yes := "NO"
	if r.Pass {
		yes = "YES"
	}
	return fmt.Sprintf("OVERALL SCORE: %.1f%% (%d/%d) — %s: %s", pct, r.Closed(), total, r.Verdict, yes)
}

// WriteText writes one line per gate and ends with the score line.
// Durations are left out so the report of an unchanged tree is stable.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Name)
	for _, gr := range r.Results {
		fmt.Fprintf(&b, "[%-7s] %-4s %s %s", strings.ToUpper(string(gr.Result.Status)), gr.Gate.ID, cmp.Or(gr.Gate.Priority, P1), gr.Gate.Title)
		if detail := cmp.Or(gr.Result.Reason, gr.Result.Evidence); detail != "" {
			fmt.Fprintf(&b, " — %s", detail)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s\n", r.rule())
	fmt.Fprintf(&b, "%s\n", r.ScoreLine())
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) rule() string {
	need := cmp.Or(r.Rule.MinClosed, len(r.Results))
	s := fmt.Sprintf("Rule: at least %d of %d closed", need, len(r.Results))
	if r.Rule.AllP0 {
		s += ", every P0 closed"
	}
	if len(r.OpenP0) > 0 {
		s += fmt.Sprintf(" (P0 not closed: %s)", strings.Join(r.OpenP0, ", "))
	}
	return s
}

// symbols are the launch-gates document's legend.
var symbols = map[Status]string{Closed: "✅", Partial: "🟡", Open: "🔴", Blocked: "🚫"}

// WriteMarkdown writes the launch-gates document: the legend, one table
// per area with each gate's status and evidence, and the summary.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Name)
	b.WriteString("## Legend\n\n")
	b.WriteString("- ✅ **Closed**: implemented and verified by its check\n")
	b.WriteString("- 🟡 **Partial**: part of the definition of done holds\n")
	b.WriteString("- 🔴 **Open**: not done, or its check failed\n")
	b.WriteString("- 🚫 **Blocked**: needs what this environment cannot give (credentials, a person)\n")
	for _, area := range r.areas() {
		var closed, total int
		var rows strings.Builder
		for _, gr := range r.Results {
			if gr.Gate.Area != area {
				continue
			}
			total++
			if gr.Result.Status == Closed {
				closed++
			}
			fmt.Fprintf(&rows, "| %s | %s | %s | %s | %s |\n", gr.Gate.ID, cell(gr.Gate.Title), cmp.Or(gr.Gate.Priority, P1),
				symbols[gr.Result.Status], cell(cmp.Or(gr.Result.Evidence, gr.Result.Reason, gr.Gate.Done)))
		}
		fmt.Fprintf(&b, "\n## %s (%d/%d closed)\n\n", cmp.Or(area, "Gates"), closed, total)
		b.WriteString("| # | Gate | Priority | Status | Evidence / DoD |\n|---|---|---|---|---|\n")
		b.WriteString(rows.String())
	}
	b.WriteString("\n## Summary\n\n")
	for _, s := range []Status{Closed, Partial, Open, Blocked} {
		fmt.Fprintf(&b, "- **%s:** %d/%d\n", strings.ToUpper(string(s[:1]))+string(s[1:]), r.Counts[s], len(r.Results))
	}
	fmt.Fprintf(&b, "- %s\n\n%s\n", r.rule(), r.ScoreLine())
	_, err := io.WriteString(w, b.String())
	return err
}

// areas lists the areas in the order they first appear.
func (r *Report) areas() []string {
	var areas []string
	seen := map[string]bool{}
	for _, gr := range r.Results {
		if !seen[gr.Gate.Area] {
			seen[gr.Gate.Area] = true
			areas = append(areas, gr.Gate.Area)
		}
	}
	return areas
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

// WriteJSON writes the report as indented JSON. Durations are in
// nanoseconds (duration_ns).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

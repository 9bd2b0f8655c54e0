package gates_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/gates"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sampleReport runs a small launch-style set whose checks report fixed
// results, so its reports are stable.
func sampleReport(t *testing.T) *gates.Report {
	t.Helper()
	fixed := func(r gates.Result) gates.Check {
		return gates.CheckFunc(func(context.Context) gates.Result { return r })
	}
	set := &gates.Set{Name: "Launch gates", Verdict: "LAUNCH READY", Rule: gates.Rule{MinClosed: 3, AllP0: true}, Gates: []gates.Gate{
		{ID: "T1", Title: "/health/deep green", Area: "Technical", Priority: gates.P0, Check: fixed(gates.Result{Status: gates.Closed, Evidence: "200 in 4ms, postgres ok"})},
		{ID: "T6", Title: "Load probe | 100 rps", Area: "Technical", Priority: gates.P1, Check: fixed(gates.Result{Status: gates.Partial, Evidence: "p95 612ms"})},
		{ID: "S1", Title: "Webhook signatures enforced", Area: "Security", Priority: gates.P0, Check: fixed(gates.Result{Status: gates.Closed, Evidence: "3 routes refuse unsigned deliveries"})},
		{ID: "O3", Title: "PostHog funnel live", Area: "Observability", Priority: gates.P1, Check: gates.BlockedCheck{Reason: "needs a PostHog API key"}},
		{ID: "G5", Title: "1 paid deal", Area: "GTM", Priority: gates.P0, Done: "a real customer pays", Check: fixed(gates.Result{Status: gates.Open})},
	}}
	report, err := set.Run(context.Background())
	require.NoError(t, err)
	for i := range report.Results {
		report.Results[i].Result.Duration = 0
	}
	return report
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

func TestReportsMatchTheirGoldenFiles(t *testing.T) {
	t.Parallel()
	report := sampleReport(t)
	require.False(t, report.Pass, "G5, a P0, is open")
	require.Equal(t, []string{"G5"}, report.OpenP0)

	var text, md, js bytes.Buffer
	require.NoError(t, report.WriteText(&text))
	require.NoError(t, report.WriteMarkdown(&md))
	require.NoError(t, report.WriteJSON(&js))
	golden(t, "launch.txt.golden", text.Bytes())
	golden(t, "launch.md.golden", md.Bytes())
	golden(t, "launch.json.golden", js.Bytes())

	require.Contains(t, text.String(), "OVERALL SCORE: 40.0% (2/5) — LAUNCH READY: NO\n")
	var decoded map[string]any
	require.NoError(t, json.Unmarshal(js.Bytes(), &decoded))
	require.Equal(t, false, decoded["pass"])
}

func TestScoreLineOfAPassingSet(t *testing.T) {
	t.Parallel()
	set := &gates.Set{Name: "Architecture brief", Verdict: "RELEASE READY"}
	for _, id := range []string{"A1", "A2"} {
		set.Gates = append(set.Gates, gates.Gate{ID: id, Title: id, Check: status(gates.Closed)})
	}
	report, err := set.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, "OVERALL SCORE: 100.0% (2/2) — RELEASE READY: YES", report.ScoreLine())
	require.Zero(t, report.ExitCode())
}

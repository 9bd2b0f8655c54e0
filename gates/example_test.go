package gates_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/dealix/platform/gates"
)

// A launch set needs 2 of its 3 gates closed, every P0 among them. The
// health probe runs against a live server; the pen test cannot be proven
// here and is reported blocked, never closed.
func ExampleSet_Run() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()

	set := &gates.Set{
		Name:    "Launch gates",
		Verdict: "LAUNCH READY",
		Rule:    gates.Rule{MinClosed: 2, AllP0: true},
		Gates: []gates.Gate{
			{ID: "T1", Title: "/health/deep green", Priority: gates.P0,
				Check: gates.HTTPCheck{URL: srv.URL + "/health/deep", JSON: map[string]string{"status": "ok"}}},
			{ID: "O5", Title: "SLO document", Priority: gates.P1,
				Check: gates.CheckFunc(func(context.Context) gates.Result {
					return gates.Result{Status: gates.Closed, Evidence: "docs/SLO.md has tiers"}
				})},
			{ID: "S7", Title: "External pen test", Priority: gates.P2,
				Check: gates.BlockedCheck{Reason: "needs an outside tester"}},
		},
	}
	report, err := set.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range report.Results {
		fmt.Println(r.Gate.ID, r.Result.Status)
	}
	fmt.Println(report.ScoreLine())
	// Output:
	// T1 closed
	// O5 closed
	// S7 blocked
	// OVERALL SCORE: 66.7% (2/3) — LAUNCH READY: YES
}

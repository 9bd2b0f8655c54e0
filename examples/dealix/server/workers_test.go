package server_test

import (
	"testing"
	"time"

	"github.com/dealix/platform/examples/dealix/scoring"
	"github.com/dealix/platform/examples/dealix/server"
)

// TestAPIOnlyInstanceLeavesWorkToAWorkerInstance runs an instance with
// NoWorkers (DEALIX_WORKERS=false) and, on the same database, later an
// instance with workers: the lead created through the first commits its
// scoring job, which waits untouched until the second works it.
func TestAPIOnlyInstanceLeavesWorkToAWorkerInstance(t *testing.T) {
	api := newEnv(t, func(c *server.Config) { c.NoWorkers = true })
	tenant := newTenant()
	l := api.createLead(api.token(tenant, "leads:write", "leads:read"), `{"name":"Noura","email":"noura@example.com","company":"Acme"}`)

	jobState := func() string {
		var state string
		err := api.db.System.QueryRow(t.Context(), `SELECT state FROM platform.dlq_jobs
			WHERE kind = $1 AND payload->>'lead_id' = $2`, scoring.KindScore, l.ID).Scan(&state)
		if err != nil {
			t.Fatalf("the lead's scoring job: %v", err)
		}
		return state
	}
	// Longer than the queue's poll interval (1s): a worker, had this
	// instance one, would have claimed the job by now.
	time.Sleep(1500 * time.Millisecond)
	if got := jobState(); got != "available" {
		t.Fatalf("scoring job on an instance without workers is %q, want available", got)
	}
	if n := api.count(t, `SELECT count(*) FROM dealix.lead_scores WHERE lead_id = $1`, l.ID); n != 0 {
		t.Fatalf("an instance without workers scored the lead (%d rows)", n)
	}

	newEnvOn(t, api.db, urlsFor(t, api.db)) // an instance with workers
	scoringEventually(t, "the worker instance scores the lead", func() bool {
		return api.count(t, `SELECT count(*) FROM dealix.lead_scores WHERE lead_id = $1`, l.ID) == 1
	})
	// The job's completion is stored by the worker's completer, in a
	// batch of its own after the handler's transaction committed.
	scoringEventually(t, "the scoring job is completed", func() bool { return jobState() == "completed" })
}

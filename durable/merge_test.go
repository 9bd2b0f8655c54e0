package durable

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
)

// TestMergedStatementsFenceEachMember sends the step records and the ends
// of three runs of one tenant as one batch (so each kind goes as one
// statement over arrays) where one run's claim is stale: only that
// member writes nothing, the others are recorded.
func TestMergedStatementsFenceEachMember(t *testing.T) {
	const tenant = "7a1c1a8e-0000-4000-8000-00000000000c"
	db := pgtest.New(t)
	ctx := context.Background()
	rt, err := New(Config{App: db.App, System: db.System})
	require.NoError(t, err)
	// r3 was claimed again (attempt 2) since this execution's claim.
	_, err = db.System.Exec(ctx, `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, owner, attempt, lease_until, ready_at, created_at, updated_at)
SELECT $1::uuid, id, 'w', 'running', '1', 'x', attempt, now() + interval '1 hour', now() + interval '1 hour', now(), now()
FROM (VALUES ('r1', 1), ('r2', 1), ('r3', 2)) AS v(id, attempt)`, tenant)
	require.NoError(t, err)
	states := make([]*runState, 3)
	for i, id := range []string{"r1", "r2", "r3"} {
		states[i] = &runState{rt: rt, tenant: tenant, id: id, workflow: "w", attempt: 1}
	}

	var batch []*commitRequest
	for _, rs := range states {
		batch = append(batch, rs.checkpointRequest(&StepRecord{Seq: 1, Kind: kindStep, Name: "a", Status: "completed",
			Output: json.RawMessage(`{"run":"` + rs.id + `"}`), Attempts: 1}, nil))
	}
	rt.flush(ctx, batch)
	for i, want := range []int64{1, 1, 0} {
		require.NoError(t, batch[i].err)
		require.Equal(t, want, batch[i].rows, "step of %s", states[i].id)
	}
	var recorded []string
	rows, err := db.System.Query(ctx, `SELECT run_id FROM platform.durable_steps WHERE tenant_id = $1 ORDER BY run_id`, tenant)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		recorded = append(recorded, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"r1", "r2"}, recorded)

	ends := make([]time.Time, 3)
	batch = batch[:0]
	batch = append(batch, finishRequest(states[0], StatusCompleted, json.RawMessage(`7`), "", &ends[0]),
		finishRequest(states[1], StatusFailed, nil, "boom", &ends[1]),
		finishRequest(states[2], StatusCompleted, json.RawMessage(`9`), "", &ends[2]))
	rt.flush(ctx, batch)
	for i, want := range []int64{1, 1, 0} {
		require.NoError(t, batch[i].err)
		require.Equal(t, want, batch[i].rows, "end of %s", states[i].id)
	}
	require.False(t, ends[0].IsZero())
	require.Equal(t, ends[0], ends[1], "one transaction, one now()")
	require.True(t, ends[2].IsZero())
	for _, want := range []struct{ id, status, output, error string }{
		{"r1", "completed", "7", ""}, {"r2", "failed", "", "boom"}, {"r3", "running", "", ""},
	} {
		var status, output, errText string
		require.NoError(t, db.System.QueryRow(ctx, `SELECT status, coalesce(output::text, ''), coalesce(error, '')
FROM platform.durable_runs WHERE tenant_id = $1 AND id = $2`, tenant, want.id).Scan(&status, &output, &errText))
		require.Equal(t, []string{want.status, want.output, want.error}, []string{status, output, errText}, want.id)
	}
}

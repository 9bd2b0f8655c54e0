package durable

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// TestMergedStatementMixesKinds sends starts, step records and ends of
// different runs of one tenant as one batch, so that they go as one
// statement: each member gets its own outcome (a start whose run exists,
// a step and an end whose claim is stale write nothing), and the others
// are recorded with the statement's time.
func TestMergedStatementMixesKinds(t *testing.T) {
	const tenant = "7a1c1a8e-0000-4000-8000-00000000000d"
	db := pgtest.New(t)
	ctx := context.Background()
	rt, err := New(Config{App: db.App, System: db.System, WorkerID: "w1"})
	require.NoError(t, err)
	// s1..s3 run under claim 1, except s3 and e3 claimed again since
	// (attempt 2); dup exists already.
	_, err = db.System.Exec(ctx, `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, owner, attempt, lease_until, ready_at, created_at, updated_at)
SELECT $1::uuid, id, 'w', 'running', '1', 'x', attempt, now() + interval '1 hour', now() + interval '1 hour', now(), now()
FROM (VALUES ('s1', 1), ('s2', 1), ('s3', 2), ('e1', 1), ('e3', 2), ('dup', 1)) AS v(id, attempt)`, tenant)
	require.NoError(t, err)
	state := func(id string) *runState {
		return &runState{rt: rt, tenant: tenant, id: id, workflow: "w", attempt: 1}
	}
	start := func(id string, at *time.Time) *commitRequest {
		return &commitRequest{tenant: tenant, sql: startClaimedSQL,
			args:  []any{tenant, id, "w", json.RawMessage(`{"in":"` + id + `"}`), "w1", micros(time.Minute)},
			scan:  func(row rowScanner) error { return row.Scan(at) },
			merge: &mergeable{kind: mergeStart, run: id, at: at, workflow: "w", input: json.RawMessage(`{"in":"` + id + `"}`)}}
	}
	step := func(id string) *commitRequest {
		return state(id).checkpointRequest(&StepRecord{Seq: 1, Kind: kindStep, Name: "a", Status: "completed",
			Output: json.RawMessage(`"` + id + `"`), Attempts: 1}, nil)
	}
	times := make([]time.Time, 5)
	batch := []*commitRequest{
		start("n1", &times[0]), step("s1"), finishRequest(state("e1"), StatusCompleted, json.RawMessage(`7`), "", &times[1]),
		start("dup", &times[2]), step("s2"), step("s3"), finishRequest(state("e3"), StatusCompleted, json.RawMessage(`9`), "", &times[3]),
		start("n2", &times[4]),
	}
	// All of them go as one statement after the tenant's set_config.
	b := &pgx.Batch{}
	sent := rt.queueTenant(b, nil, batch)
	require.Len(t, sent, 1)
	require.Len(t, sent[0].merged, len(batch))

	rt.flush(ctx, batch)
	for i, want := range []int64{1, 1, 1, 0, 1, 0, 0, 1} {
		require.NoError(t, batch[i].err)
		require.Equal(t, want, batch[i].rows, "member %d", i)
	}
	require.False(t, times[0].IsZero())
	require.Equal(t, times[0], times[1], "one transaction, one now()")
	require.Equal(t, times[0], times[4])
	require.True(t, times[2].IsZero(), "an existing run is not started again")
	require.True(t, times[3].IsZero(), "a stale end writes nothing")

	var steps []string
	rows, err := db.System.Query(ctx, `SELECT run_id || '=' || output::text FROM platform.durable_steps WHERE tenant_id = $1 ORDER BY run_id`, tenant)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		steps = append(steps, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{`s1="s1"`, `s2="s2"`}, steps)
	for _, want := range []struct{ id, status, owner, input, output string }{
		{"n1", "running", "w1", `{"in": "n1"}`, ""}, {"n2", "running", "w1", `{"in": "n2"}`, ""},
		{"dup", "running", "x", "1", ""}, {"e1", "completed", "", "1", "7"}, {"e3", "running", "x", "1", ""},
	} {
		var status, owner, input, output string
		require.NoError(t, db.System.QueryRow(ctx, `SELECT status, coalesce(owner, ''), input::text, coalesce(output::text, '')
FROM platform.durable_runs WHERE tenant_id = $1 AND id = $2`, tenant, want.id).Scan(&status, &owner, &input, &output))
		require.Equal(t, []string{want.status, want.owner, want.input, want.output}, []string{status, owner, input, output}, want.id)
	}
}

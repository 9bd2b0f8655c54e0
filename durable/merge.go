package durable

import (
	"encoding/json"
	"time"
)

// mergeKind names the statements that the group commit may merge: the
// members of a batch of one tenant, of these kinds and of distinct runs,
// go as one statement over arrays (one array element per member) instead
// of one statement each, so the server parses, plans and executes one
// statement for all of them, whatever their mix of kinds. The merged
// statement returns a row for each member it wrote; a member without one
// was refused by its fence (or, for a start, its run existed already),
// exactly as its own statement would have affected no row. When
// PostgreSQL refuses the merged statement, the batch falls back to
// sending every member alone (see flush), so one member's refused value
// still fails only its own run.
type mergeKind int

const (
	mergeStep   mergeKind = iota // a checkpoint of a run that stays running
	mergeFinish                  // a run's end
	mergeStart                   // a run started claimed by this runtime
)

// mergeable is one member's share of a merged statement.
type mergeable struct {
	kind mergeKind
	run  string
	// at receives the time the merged statement returns for the member
	// (created_at of its step or run, finished_at), as the member's own
	// statement's scan would.
	at *time.Time

	attempt  int64
	step     *StepRecord     // mergeStep
	status   Status          // mergeFinish
	output   json.RawMessage // mergeFinish
	errText  string          // mergeFinish
	workflow string          // mergeStart
	input    json.RawMessage // mergeStart
}

// mergedSQL is startClaimedSQL, recordRunningSQL and finishSQL for
// several runs of one tenant (each run at most once), in one statement.
// Its parts write distinct rows (a run is started, checkpointed or ended,
// never two of these at once), so they do not see or disturb one another
// although they share the statement's snapshot. Every part runs, an empty
// array making it write nothing; a run's row appears in the result only
// when its write took place.
//
// $1 tenant, $2 owner, $3 lease, $4 renewal threshold (microseconds);
// starts $5-$7, steps $8-$16, ends $17-$21.
const mergedSQL = `
WITH started AS (
    INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, owner, attempt, lease_until, ready_at, created_at, updated_at)
    SELECT $1::uuid, m.id, m.workflow, 'running', m.input::jsonb, $2::text, 1, now() + $3::bigint * interval '1 microsecond',
           now() + $3::bigint * interval '1 microsecond', now(), now()
    FROM unnest($5::text[], $6::text[], $7::text[]) AS m(id, workflow, input)
    ON CONFLICT (tenant_id, id) DO NOTHING
    RETURNING id, created_at
), m AS (
    SELECT * FROM unnest($8::text[], $9::bigint[], $10::integer[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::integer[])
        AS m(run_id, attempt, seq, kind, name, status, output, error, attempts)
), fence AS (
    UPDATE platform.durable_runs r
    SET lease_until = CASE WHEN r.lease_until < now() + $4::bigint * interval '1 microsecond'
                           THEN now() + $3::bigint * interval '1 microsecond' ELSE r.lease_until END,
        ready_at = CASE WHEN r.lease_until < now() + $4::bigint * interval '1 microsecond'
                        THEN now() + $3::bigint * interval '1 microsecond' ELSE r.ready_at END,
        wake_at = NULL, wait_signal = NULL, wait_seq = NULL, updated_at = now()
    FROM m
    WHERE r.tenant_id = $1::uuid AND r.id = m.run_id AND r.attempt = m.attempt AND r.status = 'running'
    RETURNING r.id
), stepped AS (
    INSERT INTO platform.durable_steps (tenant_id, run_id, seq, kind, name, status, output, error, attempts, created_at)
    SELECT $1::uuid, m.run_id, m.seq, m.kind, m.name, m.status, m.output::jsonb, NULLIF(m.error, ''), m.attempts, now()
    FROM m JOIN fence ON fence.id = m.run_id
    RETURNING run_id, created_at
), finished AS (
    UPDATE platform.durable_runs r
    SET status = f.status, output = f.output::jsonb, error = NULLIF(f.error, ''), finished_at = now(), updated_at = now(),
        owner = NULL, lease_until = NULL, ready_at = NULL, wake_at = NULL, wait_signal = NULL, wait_seq = NULL
    FROM unnest($17::text[], $18::bigint[], $19::text[], $20::text[], $21::text[]) AS f(run_id, attempt, status, output, error)
    WHERE r.tenant_id = $1::uuid AND r.id = f.run_id AND r.attempt = f.attempt AND r.status = 'running'
    RETURNING r.id, r.finished_at
)
SELECT id, created_at FROM started
UNION ALL SELECT run_id, created_at FROM stepped
UNION ALL SELECT id, finished_at FROM finished`

// jsonText is a JSON value as a text array element (NULL when absent).
func jsonText(v json.RawMessage) *string {
	if v == nil {
		return nil
	}
	s := string(v)
	return &s
}

// mergedStatement builds the merged statement of members (at least two,
// one tenant, distinct runs).
func (rt *Runtime) mergedStatement(members []*commitRequest) (string, []any) {
	var (
		startIDs, startWorkflows []string
		startInputs              []*string

		stepRuns                                       []string
		stepAttempts                                   []int64
		stepSeqs, stepTries                            []int32
		stepKinds, stepNames, stepStatuses, stepErrors []string
		stepOutputs                                    []*string
		endRuns, endStatuses, endErrors                []string
		endAttempts                                    []int64
		endOutputs                                     []*string
	)
	for _, req := range members {
		m := req.merge
		switch m.kind {
		case mergeStart:
			startIDs = append(startIDs, m.run)
			startWorkflows = append(startWorkflows, m.workflow)
			startInputs = append(startInputs, jsonText(m.input))
		case mergeStep:
			rec := m.step
			stepRuns, stepAttempts = append(stepRuns, m.run), append(stepAttempts, m.attempt)
			stepSeqs, stepTries = append(stepSeqs, int32(rec.Seq)), append(stepTries, int32(rec.Attempts))
			stepKinds, stepNames = append(stepKinds, rec.Kind), append(stepNames, rec.Name)
			stepStatuses, stepErrors = append(stepStatuses, rec.Status), append(stepErrors, rec.Error)
			stepOutputs = append(stepOutputs, jsonText(rec.Output))
		case mergeFinish:
			endRuns, endAttempts = append(endRuns, m.run), append(endAttempts, m.attempt)
			endStatuses, endErrors = append(endStatuses, string(m.status)), append(endErrors, m.errText)
			endOutputs = append(endOutputs, jsonText(m.output))
		}
	}
	return mergedSQL, []any{members[0].tenant, rt.cfg.WorkerID, micros(rt.cfg.Lease), micros(rt.cfg.Lease - rt.cfg.Heartbeat),
		startIDs, startWorkflows, startInputs,
		stepRuns, stepAttempts, stepSeqs, stepKinds, stepNames, stepStatuses, stepOutputs, stepErrors, stepTries,
		endRuns, endAttempts, endStatuses, endOutputs, endErrors}
}
